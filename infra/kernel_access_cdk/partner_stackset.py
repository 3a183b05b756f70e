"""``PartnerStackSet``: the partner-side resources for every account of some organizational units,
from ONE account-agnostic template, through a service-managed CloudFormation StackSet.

Why: with one ``KernelAccessPartner-<name>`` stack per partner, 5,000 partners are 5,000 templates
and 5,000 ``cdk deploy`` runs, each with credentials for its account. A service-managed StackSet
with automatic deployment deploys the same template to every account of the admitted OUs, and to
every account that joins them later, from the management account or a delegated administrator.

The template is synthesised from a stack holding exactly what ``PartnerAccountStack`` holds
(:func:`partner_resources.add_partner_resources`), with the kernel's values as CloudFormation
parameters the StackSet supplies. Nothing in it names a partner or a partner account: an
in-organization partner is its account (session names are ``${aws:PrincipalAccount}.*``), which
the kernel maps to the partner through the policy document. The template has no assets, so it is
passed inline as ``TemplateBody`` (checked against the 51,200-byte limit by
:mod:`kernel_access_cdk.limits`) and target accounts need no CDK bootstrap.

Why ``aws_cloudformation.CfnStackSet`` and not the cdklabs ``cdk-stacksets`` library:
docs/partner-rollout.md#why-cfnstackset.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, cast

from aws_cdk import (
    App,
    BootstraplessSynthesizer,
    CfnCondition,
    CfnParameter,
    CfnResource,
    Environment,
    Fn,
    Stack,
)
from aws_cdk import aws_cloudformation as cfn
from aws_cdk import aws_iam as iam
from constructs import Construct
from kernel_access.contract import KERNEL_ACCESS_ROLE
from kernel_access.validation import ACCOUNT_ID_RE

from .config import (
    CALL_AS,
    DEFAULT_FAILURE_TOLERANCE_PERCENTAGE,
    DEFAULT_MAX_CONCURRENT_PERCENTAGE,
    DEFAULT_REGION_CONCURRENCY,
    ORGANIZATIONAL_UNIT_RE,
    REGION_CONCURRENCY,
    REGION_RE,
    KernelAccessConfig,
    StackSetRollout,
)
from .limits import STACKSET_ORGANIZATIONAL_UNITS
from .nag import register_nag
from .partner_resources import WORKLOAD_ROLE_NAME, PartnerResources, add_partner_resources

#: Base name of the StackSet (``name_suffix`` is appended).
STACK_SET_NAME: Final = "kernel-access-partner"
#: Id of the stack inside the template's private app (it appears in nothing deployed).
_TEMPLATE_STACK_ID: Final = "PartnerStackSetTemplate"
#: The template's own app: no version reporting (an ``AWS::CDK::Metadata`` resource per account)
#: and no path metadata (bytes against the inline-body limit that nobody in the partner reads).
_TEMPLATE_CONTEXT: Final[Mapping[str, Any]] = {
    "aws:cdk:version-reporting": False,
    "aws:cdk:enable-path-metadata": False,
}
#: Template parameters the StackSet supplies (same value for every stack instance).
KERNEL_ACCOUNT_PARAMETER: Final = "KernelAccountId"
KERNEL_REGION_PARAMETER: Final = "KernelRegion"
VENDING_API_URL_PARAMETER: Final = "VendingApiUrl"
WORKLOAD_ROLE_REGION_PARAMETER: Final = "WorkloadRoleRegion"


class PartnerStackSet(Construct):
    """A service-managed ``AWS::CloudFormation::StackSet`` deploying the partner resources (workload
    role + ``/kernel-access/`` parameters, as ``PartnerAccountStack``) to organizational units, with
    automatic deployment: an account that joins an OU gets a stack instance, one that leaves loses
    it (``RetainStacksOnAccountRemoval: false``).

    Props (keyword-only):
        organizational_units: OU ids (``ou-…``) whose accounts get the resources; 1 to 50.
        regions: regions of the stack instances. The workload role is global: only the stack
            instance in the first region creates it (``WorkloadRoleRegion``), so do not reorder.
        kernel_account / kernel_region: the kernel (stack-set parameters, not template literals).
        name_suffix: suffix of the role names, as ``PartnerAccountStack``. Default: "".
        vending_api_url: Default: None -> no ``vending-api-url`` parameter (see ``PartnerAccountStack``).
        call_as: "SELF" (deployed from the management account) or "DELEGATED_ADMIN" (from a
            registered delegated administrator). Default: "SELF".
        failure_tolerance_percentage: accounts per region that may fail before the operation stops
            in that region. Default: 10.
        max_concurrent_percentage: accounts per region deployed at once. Default: 25.
        region_concurrency: "SEQUENTIAL" (region by region, in ``regions`` order: a broken template
            stops in the first) or "PARALLEL". Default: "SEQUENTIAL".
        stack_set_name: Default: "kernel-access-partner" + name_suffix.
        workload_principal: who may assume the workload role. Default: the Lambda service.
        workload_role_name: Default: "kernel-access-client" + name_suffix.

    Operation preferences govern create/update operations; automatic deployment to accounts that
    join an OU does not use them (CloudFormation's rule).

    Attributes: ``stack_set`` (``CfnStackSet``), ``template`` (the template as a dict),
    ``template_body`` (the exact string passed as ``TemplateBody``), ``parameters`` (template
    parameter -> value the StackSet supplies), ``stack_set_name``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        organizational_units: Sequence[str],
        regions: Sequence[str],
        kernel_account: str,
        kernel_region: str,
        name_suffix: str = "",
        vending_api_url: str | None = None,
        call_as: str = "SELF",
        failure_tolerance_percentage: int = DEFAULT_FAILURE_TOLERANCE_PERCENTAGE,
        max_concurrent_percentage: int = DEFAULT_MAX_CONCURRENT_PERCENTAGE,
        region_concurrency: str = DEFAULT_REGION_CONCURRENCY,
        stack_set_name: str | None = None,
        workload_principal: iam.IPrincipal | None = None,
        workload_role_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        _check_props(organizational_units, regions, call_as, region_concurrency)
        self.stack_set_name = stack_set_name or STACK_SET_NAME + name_suffix
        self.parameters: dict[str, str] = {
            KERNEL_ACCOUNT_PARAMETER: kernel_account,
            KERNEL_REGION_PARAMETER: kernel_region,
            WORKLOAD_ROLE_REGION_PARAMETER: regions[0],
        }
        if vending_api_url is not None:
            self.parameters[VENDING_API_URL_PARAMETER] = vending_api_url
        self.template = _synthesize_template(
            dict(scope.node.get_all_context()),
            kernel_role=KERNEL_ACCESS_ROLE + name_suffix,
            vending_api_url=vending_api_url is not None,
            workload_principal=workload_principal,
            workload_role_name=workload_role_name or WORKLOAD_ROLE_NAME + name_suffix,
        )
        self.template_body = json.dumps(self.template, separators=(",", ":"), sort_keys=True)
        self.stack_set = cfn.CfnStackSet(
            self,
            "Resource",
            stack_set_name=self.stack_set_name,
            description="kernel-access: partner resources (workload role, /kernel-access/ parameters)",
            permission_model="SERVICE_MANAGED",
            auto_deployment=cfn.CfnStackSet.AutoDeploymentProperty(
                enabled=True, retain_stacks_on_account_removal=False
            ),
            call_as=call_as,
            capabilities=["CAPABILITY_NAMED_IAM"],
            managed_execution={"Active": True},
            operation_preferences=cfn.CfnStackSet.OperationPreferencesProperty(
                failure_tolerance_percentage=failure_tolerance_percentage,
                max_concurrent_percentage=max_concurrent_percentage,
                region_concurrency_type=region_concurrency,
                region_order=list(regions),
            ),
            parameters=[
                cfn.CfnStackSet.ParameterProperty(parameter_key=key, parameter_value=value)
                for key, value in self.parameters.items()
            ],
            stack_instances_group=[
                cfn.CfnStackSet.StackInstancesProperty(
                    deployment_targets=cfn.CfnStackSet.DeploymentTargetsProperty(
                        organizational_unit_ids=list(organizational_units)
                    ),
                    regions=list(regions),
                )
            ],
            template_body=self.template_body,
        )


def _check_props(
    organizational_units: Sequence[str], regions: Sequence[str], call_as: str, region_concurrency: str
) -> None:
    """Fail at synth on what CloudFormation would refuse at deploy (``load_config`` checks the
    same, naming the cdk.json field; this covers constructs built without it)."""
    if not 0 < len(organizational_units) <= STACKSET_ORGANIZATIONAL_UNITS or not all(
        ORGANIZATIONAL_UNIT_RE.fullmatch(ou) for ou in organizational_units
    ):
        raise ValueError(
            f"PartnerStackSet: organizational_units must be 1 to {STACKSET_ORGANIZATIONAL_UNITS} OU ids, "
            f"got {list(organizational_units)}"
        )
    if not regions or not all(REGION_RE.fullmatch(region) for region in regions):
        raise ValueError(f"PartnerStackSet: regions must be region names, got {list(regions)}")
    if call_as not in CALL_AS:
        raise ValueError(f"PartnerStackSet: call_as must be one of {list(CALL_AS)}, got {call_as!r}")
    if region_concurrency not in REGION_CONCURRENCY:
        raise ValueError(
            f"PartnerStackSet: region_concurrency must be one of {list(REGION_CONCURRENCY)}, "
            f"got {region_concurrency!r}"
        )


def _synthesize_template(
    context: dict[str, Any],
    *,
    kernel_role: str,
    vending_api_url: bool,
    workload_principal: iam.IPrincipal | None,
    workload_role_name: str,
) -> dict[str, Any]:
    """The StackSet's template, synthesised in a private app with the caller's context (feature
    flags) and the cdk-nag packs: a template nag rejects fails synth like any other stack. The
    bootstrapless synthesizer adds no ``BootstrapVersion`` parameter (target accounts are not
    bootstrapped) and refuses assets (there is no bucket for them in 5,000 accounts)."""
    with tempfile.TemporaryDirectory(prefix="kernel-access-stackset-") as outdir:
        app = App(
            context=context,
            post_cli_context=dict(_TEMPLATE_CONTEXT),
            outdir=outdir,
            auto_synth=False,
            analytics_reporting=False,
        )
        stack = Stack(
            app,
            _TEMPLATE_STACK_ID,
            synthesizer=BootstraplessSynthesizer(),
            description="kernel-access: partner resources (deployed by a StackSet)",
        )
        _define_template(
            stack,
            kernel_role=kernel_role,
            vending_api_url=vending_api_url,
            workload_principal=workload_principal,
            workload_role_name=workload_role_name,
        )
        register_nag(app)
        template: dict[str, Any] = app.synth().get_stack_by_name(_TEMPLATE_STACK_ID).template
    return template


def _define_template(
    stack: Stack,
    *,
    kernel_role: str,
    vending_api_url: bool,
    workload_principal: iam.IPrincipal | None,
    workload_role_name: str,
) -> PartnerResources:
    account = CfnParameter(
        stack,
        KERNEL_ACCOUNT_PARAMETER,
        type="String",
        allowed_pattern=ACCOUNT_ID_RE.pattern,
        description="Account id of the kernel",
    )
    region = CfnParameter(
        stack,
        KERNEL_REGION_PARAMETER,
        type="String",
        allowed_pattern=REGION_RE.pattern,
        description="Region of the kernel APIs",
    )
    role_region = CfnParameter(
        stack,
        WORKLOAD_ROLE_REGION_PARAMETER,
        type="String",
        allowed_pattern=REGION_RE.pattern,
        description="The one region whose stack instance creates the (global) workload role",
    )
    url: str | None = None
    if vending_api_url:
        url = CfnParameter(
            stack,
            VENDING_API_URL_PARAMETER,
            type="String",
            allowed_pattern="^https://[^\\s]+$",
            description="URL of the kernel-access vending API",
        ).value_as_string
    resources = add_partner_resources(
        stack,
        kernel_account=account.value_as_string,
        kernel_region=region.value_as_string,
        kernel_role=kernel_role,
        vending_api_url=url,
        workload_principal=workload_principal,
        workload_role_name=workload_role_name,
    )
    # IAM roles are global: a second region's stack instance would fail on the name.
    in_role_region = CfnCondition(
        stack,
        "InWorkloadRoleRegion",
        expression=Fn.condition_equals(stack.region, role_region.value_as_string),
    )
    for child in resources.workload_role.node.find_all():
        if CfnResource.is_cfn_resource(child):
            cast(CfnResource, child).cfn_options.condition = in_role_region
    return resources


def stackset_partner_names(config: KernelAccessConfig) -> frozenset[str]:
    """Names of the partners ``config`` puts behind the StackSet (they get no partner stack)."""
    rollout = config.partner_rollout
    return frozenset(rollout.partners) if rollout is not None else frozenset()


class PartnerRolloutStack(Stack):
    """The stack holding the ``PartnerStackSet``, deployed to the StackSet's administrator account:
    the organization's management account (``call_as`` SELF) or a delegated administrator for
    CloudFormation StackSets (DELEGATED_ADMIN). It is not the kernel account (``load_config``
    refuses it): whoever can update this StackSet can deploy into every admitted account.

    Props (keyword-only): ``config`` (with a ``partner_rollout`` section); ``rollout`` overrides
    ``config.partner_rollout``; the rest are ``Stack`` props (``env`` defaults to the administrator
    account and region).

    Attributes: ``stack_set`` (``PartnerStackSet``), ``rollout`` (``StackSetRollout``).
    """

    STACK_ID: ClassVar[str] = "KernelAccessPartnerRollout"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: KernelAccessConfig,
        rollout: StackSetRollout | None = None,
        **stack_props: Any,
    ) -> None:
        chosen = rollout or config.partner_rollout
        if chosen is None:
            raise ValueError("PartnerRolloutStack: the configuration has no partner_rollout.stackset section")
        self.rollout = chosen
        stack_props.setdefault(
            "env", Environment(account=chosen.administrator_account, region=chosen.administrator_region)
        )
        stack_props.setdefault(
            "description", "kernel-access: partner rollout (StackSet to organizational units)"
        )
        super().__init__(scope, construct_id, **stack_props)
        self.stack_set = PartnerStackSet(
            self,
            "PartnerStackSet",
            organizational_units=chosen.organizational_units,
            regions=chosen.regions,
            kernel_account=config.kernel_account,
            kernel_region=config.region,
            name_suffix=config.name_suffix,
            vending_api_url=config.vending_api_url,
            call_as=chosen.call_as,
            failure_tolerance_percentage=chosen.failure_tolerance_percentage,
            max_concurrent_percentage=chosen.max_concurrent_percentage,
            region_concurrency=chosen.region_concurrency,
        )
