"""``TargetRoleBoundary``: the permissions boundary every target role carries.

Target roles are what partners receive sessions of, so whatever a platform team attaches to one
(an AWS-managed policy included) must never reach kernel-access itself: the audit trail (other
partners' source IPs, session names, access key ids), the rate-limit, revocation, replay and
issued-token tables, the functions and their logs, the vending policy and the exchange
configuration (objects of the config bucket: a target session that could write one could grant
itself anything), the stack's template, the SSM parameters, the KMS keys, the audit archive, and
the kernel-access roles.

A boundary is a ceiling: one ``Allow *`` (the role's own policies still decide what is granted)
and one ``Deny`` per resource class. The denies name kernel-access's resources by reference where
that is possible, and are computed when the template is rendered, from every resource of the stack
the boundary lives in: a table or log group added later (by any construct) is covered without
anyone remembering to add it. Two classes cannot be referenced without a dependency cycle (the
target roles carry this boundary, and the functions' environment and the exchange configuration
name the target roles): functions are denied by the stack's generated-name prefix and by
CloudFormation's own ``aws:cloudformation:stack-id`` tag (which no principal can set or remove),
the target roles themselves and the parameters by name.
"""

from __future__ import annotations

import json
from typing import Any, Final, cast

import jsii
from aws_cdk import AspectPriority, Aspects, Aws, IAspect, Stack, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct, IConstruct

from .nag import IAM5, acknowledge

#: Names every kernel-access role and parameter starts with.
NAME_PREFIX: Final = "kernel-access"
#: IAM's limit on a managed policy (characters, whitespace excluded).
MANAGED_POLICY_LIMIT: Final = 6144
#: What a reference is counted as when the boundary's deployed size is estimated at synth
#: (generated names are at most ~64 characters; an ARN around one is below this).
_REFERENCE_LENGTH: Final = 128


class TargetRoleBoundary(Construct):
    """The boundary of the target roles of one kernel stack.

    Props: none. Create one per stack and pass ``policy`` as ``permissions_boundary`` of each target
    role, then :meth:`register` it (its name is denied by name, see the module docstring).

    Attributes: ``policy`` (``iam.ManagedPolicy``, id "Resource"), ``role_names`` (registered).
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role_names: list[str] = []
        self.policy = iam.ManagedPolicy(
            self,
            "Resource",
            description="kernel-access: boundary of every target role (excludes kernel-access itself)",
            statements=[_ceiling()],
        )
        # Rendered once every construct of the stack exists (an aspect runs before synthesis).
        Aspects.of(self).add(_RenderDocument(self), priority=AspectPriority.MUTATING)
        acknowledge(
            self.policy,
            f"{IAM5}[Action::*]",
            "A permissions boundary's Allow is a ceiling, not a grant: a target role may do only what "
            "its own policies allow, minus everything this boundary denies.",
        )
        acknowledge(
            self.policy,
            f"{IAM5}[Resource::*]",
            "A permissions boundary's Allow is a ceiling, not a grant; the Resource '*' statements "
            "otherwise are Denies (functions by CloudFormation's stack tag, keys by alias).",
        )

    @property
    def managed_policy_arn(self) -> str:
        return self.policy.managed_policy_arn

    def register(self, role: iam.Role) -> None:
        """Record a role that carries this boundary: it is denied by name, not by reference."""
        name = cast(iam.CfnRole, role.node.default_child).role_name
        if name is None or Token.is_unresolved(name):
            raise ValueError("TargetRoleBoundary: a target role needs a literal role_name")
        self.role_names.append(name)

    def _resources(self, stack: Stack) -> dict[str, list[str]]:
        """ARNs (or ARN patterns) of the stack's resources, by class; see the module docstring for
        why parameters and the boundary's own roles are left to names."""
        found: dict[str, list[str]] = {
            kind: [] for kind in ("tables", "log_groups", "parameters", "keys", "roles", "buckets", "queues")
        }
        for child in stack.node.find_all():
            # Tables and log groups with names CloudFormation generates ("<stack name>-<id>-<suffix>")
            # are covered by one stack-name pattern each (as functions are), so the boundary does
            # not grow with every table or log group; only literal names are listed.
            if isinstance(child, dynamodb.CfnTable):
                if _literal(child.table_name):
                    found["tables"].append(_arn(stack, "dynamodb", f"table/{child.table_name}*"))
            elif isinstance(child, logs.CfnLogGroup):
                if _literal(child.log_group_name):
                    found["log_groups"].append(_arn(stack, "logs", f"log-group:{child.log_group_name}*"))
            elif isinstance(child, ssm.CfnParameter):
                found["parameters"] += _parameter_arns(stack, child.name)
            elif isinstance(child, kms.CfnKey):
                found["keys"].append(child.attr_arn)
            elif isinstance(child, iam.CfnRole) and child.role_name not in self.role_names:
                # Roles named ``kernel-access*`` (the partner-facing roles, one per external
                # partner) are covered by the name pattern: listing them would grow the boundary
                # with the number of partners. Only roles with generated names are listed.
                named = child.role_name
                if not (_literal(named) and str(named).startswith(NAME_PREFIX)):
                    found["roles"].append(child.attr_arn)
            elif isinstance(child, s3.CfnBucket):
                found["buckets"] += [child.attr_arn, f"{child.attr_arn}/*"]
            elif isinstance(child, sqs.CfnQueue):
                found["queues"].append(child.attr_arn)
        return found

    def document(self) -> dict[str, Any]:
        """The boundary as it is rendered (statements computed from the stack's resources)."""
        stack = Stack.of(self)
        found = self._resources(stack)
        keys, buckets, queues = (found[kind] for kind in ("keys", "buckets", "queues"))
        # The table pattern covers each table's indexes and stream too (``table/<name>/...``).
        tables = [_arn(stack, "dynamodb", f"table/{Aws.STACK_NAME}-*"), *found["tables"]]
        log_groups = [_arn(stack, "logs", f"log-group:{Aws.STACK_NAME}-*"), *found["log_groups"]]
        parameters = [_arn(stack, "ssm", f"parameter/{NAME_PREFIX}*"), *found["parameters"]]
        roles = [
            _arn(stack, "iam", f"role/{NAME_PREFIX}*", regional=False),
            *(_arn(stack, "iam", f"role/{name}", regional=False) for name in self.role_names),
            *found["roles"],
        ]
        statements: list[dict[str, Any]] = [_ceiling().to_statement_json()]
        statements += [
            _deny("DenyKernelAccessTables", ["dynamodb:*"], tables),
            _deny("DenyKernelAccessLogs", ["logs:*"], log_groups),
            _deny("DenyKernelAccessParameters", ["ssm:*"], parameters),
            _deny("DenyKernelAccessRoles", ["iam:*", "sts:*"], roles),
            _deny(
                "DenyKernelAccessFunctions",
                ["lambda:*"],
                [_arn(stack, "lambda", f"function:{Aws.STACK_NAME}-*")],
            ),
            _deny(
                "DenyKernelAccessFunctionsByStackTag",
                ["lambda:*"],
                ["*"],
                {"StringEquals": {"aws:ResourceTag/aws:cloudformation:stack-id": Aws.STACK_ID}},
            ),
            _deny(
                "DenyKernelAccessKeysByAlias",
                ["kms:*"],
                ["*"],
                {
                    "Null": {"kms:ViaService": "true"},
                    "ForAnyValue:StringLike": {"kms:ResourceAliases": f"alias/{NAME_PREFIX}*"},
                },
            ),
            _deny("DenyKernelAccessStack", ["cloudformation:*"], [Aws.STACK_ID]),
        ]
        if keys:
            statements.append(
                _deny("DenyKernelAccessKeys", ["kms:*"], keys, {"Null": {"kms:ViaService": "true"}})
            )
        if buckets:
            statements.append(_deny("DenyKernelAccessBuckets", ["s3:*"], buckets))
        if queues:
            statements.append(_deny("DenyKernelAccessQueues", ["sqs:*"], queues))
        document = {"Version": "2012-10-17", "Statement": statements}
        _check_size(stack, document)
        return document


@jsii.implements(IAspect)
class _RenderDocument:
    def __init__(self, boundary: TargetRoleBoundary) -> None:
        self._boundary = boundary

    def visit(self, node: IConstruct) -> None:
        target = self._boundary.policy.node.default_child
        if target is not None and node.node.path == target.node.path:
            cast(iam.CfnManagedPolicy, node).policy_document = self._boundary.document()


def _literal(name: object) -> bool:
    """Whether a resource's name is a literal string (not generated by CloudFormation)."""
    return isinstance(name, str) and not Token.is_unresolved(name)


def _ceiling() -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="CeilingIsTheRolesOwnPolicies", actions=["*"], resources=["*"])


def _deny(
    sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Deny", "Action": actions, "Resource": resources}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def _parameter_arns(stack: Stack, name: str | None) -> list[str]:
    """A literal parameter name outside ``/kernel-access`` (those are denied by one pattern)."""
    if name is None or Token.is_unresolved(name) or name.startswith(f"/{NAME_PREFIX}"):
        return []
    return [_arn(stack, "ssm", f"parameter/{name.lstrip('/')}")]


def _arn(stack: Stack, service: str, resource: str, *, regional: bool = True) -> str:
    region = stack.region if regional else ""
    return f"arn:{stack.partition}:{service}:{region}:{stack.account}:{resource}"


def _check_size(stack: Stack, document: dict[str, Any]) -> None:
    """Fail synth, not deploy, when the boundary could exceed IAM's managed-policy limit."""
    resolved = stack.resolve(document)

    def measure(value: Any) -> int:
        if isinstance(value, dict):
            if len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
                key, argument = next(iter(value.items()))
                if key == "Fn::Join":
                    return sum(measure(part) for part in argument[1])
                return _REFERENCE_LENGTH
            return sum(len(json.dumps(k)) + 1 + measure(v) for k, v in value.items()) + len(value) + 1
        if isinstance(value, list):
            return sum(measure(v) for v in value) + len(value) + 1
        return len(json.dumps(value))

    size = measure(resolved)
    if size > MANAGED_POLICY_LIMIT:
        raise ValueError(
            f"TargetRoleBoundary: the boundary may reach {size} characters once deployed; IAM allows "
            f"{MANAGED_POLICY_LIMIT} per managed policy (split the stack's resources across stacks)"
        )
