"""``AuditTable``: the append-only record of every vending and exchange decision.

Keys answer the three questions an investigator asks:
* "what happened in request R"            -> partition key ``request_id``
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
"""

from __future__ import annotations

from typing import Final

from aws_cdk import RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct
from kernel_access.cli.audit import BY_ACCESS_KEY_INDEX, BY_CALLER_INDEX, BY_PARTNER_INDEX

PARTITION_KEY: Final = "request_id"
SORT_KEY: Final = "recorded_at"
TTL_ATTRIBUTE: Final = "expires_at"


def pitr() -> dynamodb.PointInTimeRecoverySpecification:
    return dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True)


class AuditTable(Construct):
    """DynamoDB audit table (on-demand, PITR, deletion protection, RETAIN, encrypted, TTL).

    Props (keyword-only):
        table_name: physical name. Default: CDK-generated.
        encryption_key: customer-managed KMS key. Default: none (AWS-managed key, ``aws/dynamodb``).
        removal_policy: Default: RETAIN (an audit trail outlives its stack).
        deletion_protection: Default: True.

    Attributes: ``table`` (id "Resource"), ``encryption_key`` (or None), ``table_name``, ``table_arn``.
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
    ) -> None:
        super().__init__(scope, construct_id)
        self.encryption_key = encryption_key
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            "Resource",
            table_name=table_name,
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=string),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=string),
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
        for index_name, key in (
            (BY_CALLER_INDEX, "caller_arn"),
            (BY_ACCESS_KEY_INDEX, "access_key_id"),
            (BY_PARTNER_INDEX, "partner"),
        ):
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

    def grant_append(self, grantee: iam.IGrantable) -> iam.Grant:
        """``dynamodb:PutItem`` on the table and nothing else: the writer cannot update, delete or
        read records (writes use ``attribute_not_exists`` so they never overwrite either)."""
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
