"""``AuditTable``: the append-only record of every vending and exchange decision.

Keys answer the three questions an investigator asks:
* "what happened in request R"            -> key ``request_id`` (the whole key: a request id is
  recorded once, ``attribute_not_exists(request_id)`` makes a replayed id fail the write)
* "every decision for caller X over time" -> GSI ``by-caller`` (``caller_arn``, ``recorded_at``)
* "who was given access key id K"         -> GSI ``by-access-key`` (``access_key_id``, ``recorded_at``),
  sparse: only records that vended a key carry the attribute.
* "every decision for partner P over time" -> GSI ``by-partner`` (``partner``, ``recorded_at``),
  sparse: only records of an identified partner carry it.

``kernel-access audit`` answers its questions from these keys. There is deliberately no index on
the error code or the target role: a handful of distinct values would put every audit write on a
few index partitions, and a throttled index write throttles the table write, which (audit being
fail-closed) refuses the request. Those are filters on one of the keys above. CloudFormation adds
one global secondary index per stack update; ``by-partner`` is the only one added since the table
was first released, so an existing table takes it in one deployment.

Tamper resistance: a resource policy denies changing or deleting records, and changing the table's
protections (TTL, backups, the policy itself, deletion), to every principal but one named
break-glass role. ``PutItem`` stays open to the writers the table grants it to (that is how records
are appended); an overwrite by ``PutItem`` cannot be denied by IAM, which is why the table streams
old and new images to the Object Lock archive (``AuditArchive``): an overwritten or expired record
is still there, and the change is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct
from kernel_access.audit import INDEX_KEYS, INDEX_SORT_KEY, RECORD_KEY

from .config import DEFAULT_BREAK_GLASS_ROLE

PARTITION_KEY: Final = RECORD_KEY
#: Sort key of the indexes (the table itself has none: its key is the request id alone).
SORT_KEY: Final = INDEX_SORT_KEY
#: Roles CloudFormation deploys with (the CDK bootstrap's execution role, any qualifier).
DEFAULT_DEPLOYMENT_ROLE_PATTERN: Final = "role/cdk-*-cfn-exec-role-*"
#: Changing or removing a record.
RECORD_CHANGE_ACTIONS: Final = (
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
)
#: Removing the table or the protections around it.
TABLE_CHANGE_ACTIONS: Final = (
    "dynamodb:DeleteTable",
    "dynamodb:DeleteBackup",
    "dynamodb:DeleteResourcePolicy",
    "dynamodb:DisableKinesisStreamingDestination",
)
#: Table changes a deployment makes (indexes, stream, this policy, TTL and PITR, which CloudFormation
#: sets right after creating the table): break glass or the deployment role.
DEPLOYMENT_ACTIONS: Final = (
    "dynamodb:UpdateTable",
    "dynamodb:PutResourcePolicy",
    "dynamodb:UpdateTimeToLive",
    "dynamodb:UpdateContinuousBackups",
)
TTL_ATTRIBUTE: Final = "expires_at"


def pitr() -> dynamodb.PointInTimeRecoverySpecification:
    return dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True)


def tamper_policy(break_glass_role_arn: str, deployment_role_arns: Sequence[str]) -> iam.PolicyDocument:
    """The audit table's resource policy: Deny statements only (who may write is granted by the
    writers' identity policies). ``Resource: "*"`` is the table itself: a resource policy is the
    table's own, and naming its ARN would make the table depend on itself."""
    everyone = [iam.AnyPrincipal()]
    but_break_glass = {"ArnNotEquals": {"aws:PrincipalArn": break_glass_role_arn}}
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="DenyRecordChangesButBreakGlass",
                effect=iam.Effect.DENY,
                principals=everyone,
                actions=list(RECORD_CHANGE_ACTIONS),
                resources=["*"],
                conditions=but_break_glass,
            ),
            iam.PolicyStatement(
                sid="DenyTableChangesButBreakGlass",
                effect=iam.Effect.DENY,
                principals=everyone,
                actions=list(TABLE_CHANGE_ACTIONS),
                resources=["*"],
                conditions=but_break_glass,
            ),
            iam.PolicyStatement(
                sid="DenyTableUpdatesButBreakGlassAndDeployment",
                effect=iam.Effect.DENY,
                principals=everyone,
                actions=list(DEPLOYMENT_ACTIONS),
                resources=["*"],
                conditions={
                    "ArnNotLike": {"aws:PrincipalArn": [break_glass_role_arn, *deployment_role_arns]}
                },
            ),
        ]
    )


class AuditTable(Construct):
    """DynamoDB audit table (on-demand, PITR, deletion protection, RETAIN, encrypted, TTL, stream,
    tamper-denying resource policy).

    Props (keyword-only):
        table_name: physical name. Default: CDK-generated.
        encryption_key: customer-managed KMS key. Default: none (AWS-managed key, ``aws/dynamodb``).
        removal_policy: Default: RETAIN (an audit trail outlives its stack).
        deletion_protection: Default: True.
        break_glass_role_name: the one role (in this account) the resource policy lets change or
            delete records. It is named, not created. Default: "kernel-access-audit-break-glass".
        deployment_role_arns: who may also ``UpdateTable``/``PutResourcePolicy`` (deployments change
            indexes, the stream and this policy); ``ArnLike`` patterns. Default: the CDK bootstrap's
            CloudFormation execution role of this account (``role/cdk-*-cfn-exec-role-*``).

    Attributes: ``table`` (id "Resource"), ``encryption_key`` (or None), ``table_name``, ``table_arn``,
    ``table_stream_arn``, ``break_glass_role_arn``, ``deployment_role_arns``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table_name: str | None = None,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        deletion_protection: bool = True,
        break_glass_role_name: str = DEFAULT_BREAK_GLASS_ROLE,
        deployment_role_arns: Sequence[str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.encryption_key = encryption_key
        stack = Stack.of(self)
        self.break_glass_role_arn = f"arn:{stack.partition}:iam::{stack.account}:role/{break_glass_role_name}"
        deployers = list(
            deployment_role_arns
            or [f"arn:{stack.partition}:iam::{stack.account}:{DEFAULT_DEPLOYMENT_ROLE_PATTERN}"]
        )
        self.deployment_role_arns: tuple[str, ...] = tuple(deployers)
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            "Resource",
            table_name=table_name,
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=string),
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            resource_policy=tamper_policy(self.break_glass_role_arn, deployers),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=pitr(),
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
            time_to_live_attribute=TTL_ATTRIBUTE,
            encryption=(
                dynamodb.TableEncryption.CUSTOMER_MANAGED
                if encryption_key is not None
                else dynamodb.TableEncryption.AWS_MANAGED
            ),
            encryption_key=encryption_key,
        )
        for index_name, key in INDEX_KEYS.items():
            self.table.add_global_secondary_index(
                index_name=index_name,
                partition_key=dynamodb.Attribute(name=key, type=string),
                sort_key=dynamodb.Attribute(name=SORT_KEY, type=string),
                projection_type=dynamodb.ProjectionType.ALL,
            )

    @property
    def table_name(self) -> str:
        return self.table.table_name

    @property
    def table_arn(self) -> str:
        return self.table.table_arn

    @property
    def table_stream_arn(self) -> str:
        arn = self.table.table_stream_arn
        assert arn is not None  # the stream is always on
        return arn

    def grant_append(self, grantee: iam.IGrantable) -> iam.Grant:
        """``dynamodb:PutItem`` on the table and nothing else: the writer cannot update, delete or
        read records (writes use ``attribute_not_exists(request_id)`` so they never overwrite, and
        the resource policy denies updates and deletes to everyone but break glass)."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=["dynamodb:PutItem"], resource_arns=[self.table.table_arn]
        )
        if self.encryption_key is not None:
            self.encryption_key.grant(grantee, "kms:Encrypt", "kms:GenerateDataKey*", "kms:Decrypt")
        return grant

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Query/read the table and its indexes (for investigators and reporting tools)."""
        return self.table.grant_read_data(grantee)

    def metric_put_errors(self) -> cloudwatch.Metric:
        """System errors on PutItem: each one is a denied request (audit is fail-closed)."""
        return self.table.metric(
            "SystemErrors",
            dimensions_map={"TableName": self.table.table_name, "Operation": "PutItem"},
            statistic="Sum",
        )

    def metric_put_latency(self) -> cloudwatch.Metric:
        return self.table.metric_successful_request_latency(dimensions_map={"Operation": "PutItem"})

    def metric_throttled_puts(self) -> cloudwatch.Metric:
        return self.table.metric(
            "ThrottledRequests",
            dimensions_map={"TableName": self.table.table_name, "Operation": "PutItem"},
            statistic="Sum",
        )
