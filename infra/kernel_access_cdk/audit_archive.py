"""``AuditArchive``: the audit table's stream, kept in an S3 bucket under Object Lock.

The audit table removes records by TTL and cannot stop an unconditional ``PutItem`` from
overwriting one. Its stream (old and new images) feeds a small function
(``kernel_access.handlers.audit_archive``) that writes every batch, with a SHA-256 checksum, to a
bucket whose objects are locked in COMPLIANCE mode: no one, the account root included, can delete
or shorten the retention of an archived object before it ends. Why a stream and our own function
rather than Kinesis Data Streams and Firehose is written down in ``kernel_access.audit_archive``.

Failures never drop records silently: the event source mapping retries, bisects a failing batch
and finally sends the batch's coordinates to an SQS queue (14 days), while the stream still holds
the records for 24 hours; ``metric_failed_batches`` is what to alarm on.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from kernel_access import settings
from kernel_access.audit_archive import KEY_PREFIX

from .audit_table import AuditTable
from .config import DEFAULT_ARCHIVE_RETENTION_DAYS
from .nag import IAM5, acknowledge, acknowledge_resource
from .vending import (
    DEFAULT_POWERTOOLS_LAYER_VERSION,
    depend_on_policy_only,
    function_role,
    kernel_access_function,
)

ARCHIVE_HANDLER: Final = "kernel_access.handlers.audit_archive.handler"
#: Object changes no one but break glass may make (COMPLIANCE mode already refuses them on locked
#: versions; the policy also covers delete markers and anything written before a lock applied).
OBJECT_CHANGE_ACTIONS: Final = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:BypassGovernanceRetention",
)
#: Bucket changes a deployment may make too (CloudFormation updates lifecycle, lock and versioning).
BUCKET_CHANGE_ACTIONS: Final = (
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketVersioning",
)


class AuditArchive(Construct):
    """The Object Lock archive of an ``AuditTable``'s stream.

    Props (keyword-only):
        audit_table: the ``AuditTable`` (its stream and break-glass role are used).
        retention_days: COMPLIANCE-mode retention of every archived object; objects (and their
            old versions) expire one day after it. Default: 2557 (seven years).
        batch_size: stream records per object. Default: 100.
        max_batching_window: how long records may wait to fill a batch. Default: 30 s.
        log_retention: the function's log group. Default: one year.
        powertools_layer_version: Default: the vending service's.
        code: Lambda code. Default: the installed ``kernel_access`` package.

    Attributes: ``bucket``, ``function``, ``function_role``, ``log_group``, ``failure_queue``,
    ``retention_days``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        audit_table: AuditTable,
        retention_days: int = DEFAULT_ARCHIVE_RETENTION_DAYS,
        batch_size: int = 100,
        max_batching_window: Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        powertools_layer_version: int = DEFAULT_POWERTOOLS_LAYER_VERSION,
        code: lambda_.Code | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if retention_days < 1:
            raise ValueError("AuditArchive: retention_days must be at least 1")
        self.retention_days = retention_days
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.compliance(Duration.days(retention_days)),
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAfterRetention",
                    expiration=Duration.days(retention_days + 1),
                    noncurrent_version_expiration=Duration.days(retention_days + 1),
                )
            ],
        )
        acknowledge(
            self.bucket,
            "AwsSolutions::AwsSolutions-S1",
            "The archive is written only by the archive function (the bucket policy denies every other "
            "PutObject) and its objects cannot be changed; reads are recorded by CloudTrail S3 data "
            "events, which, unlike server access logs, need no second bucket that could be tampered with.",
        )
        self.log_group = logs.LogGroup(
            self, "FunctionLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.function_role = function_role(
            self, "FunctionRole", self.log_group, "Execution role of the kernel-access audit archive"
        )
        self.failure_queue = sqs.Queue(
            self,
            "FailedBatches",
            retention_period=Duration.days(14),
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
        )
        for rule in ("AwsSolutions::AwsSolutions-SQS3", "Serverless::Serverless-SQSRedrivePolicy"):
            acknowledge(
                self.failure_queue,
                rule,
                "This queue is itself the on-failure destination of the archive's stream mapping: it "
                "receives the coordinates of batches that could not be archived, for an operator to replay.",
            )
        self.function = kernel_access_function(
            self,
            description="kernel-access audit archive: audit table stream -> Object Lock bucket",
            handler=ARCHIVE_HANDLER,
            role=self.function_role,
            log_group=self.log_group,
            environment={
                settings.AUDIT_ARCHIVE_BUCKET: self.bucket.bucket_name,
                "POWERTOOLS_SERVICE_NAME": "kernel-access-audit-archive",
            },
            code=code,
            memory_size=256,
            timeout=Duration.seconds(60),
            reserved_concurrent_executions=None,
            powertools_layer_version=powertools_layer_version,
        )
        self.function.add_event_source(
            sources.DynamoEventSource(
                audit_table.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=batch_size,
                max_batching_window=max_batching_window or Duration.seconds(30),
                bisect_batch_on_error=True,
                retry_attempts=10,
                on_failure=sources.SqsDlq(self.failure_queue),
            )
        )
        # PutObject on the archive's objects and nothing else (no read, no delete).
        objects = self.bucket.arn_for_objects(f"{KEY_PREFIX}*")
        iam.Grant.add_to_principal(
            grantee=self.function_role, actions=["s3:PutObject"], resource_arns=[objects]
        )
        acknowledge_resource(
            self.function_role,
            IAM5,
            objects,
            "The archive writes one new object per stream batch under records/; object keys are not "
            "known in advance. PutObject only: the function can neither read nor delete.",
        )
        self._bucket_policy(audit_table)
        self._acknowledge()
        depend_on_policy_only(self.function)

    def _bucket_policy(self, audit_table: AuditTable) -> None:
        everyone = [iam.AnyPrincipal()]
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheArchiveWriterPuts",
                effect=iam.Effect.DENY,
                principals=everyone,
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects("*")],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": [self.function_role.role_arn]}},
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyObjectChangesButBreakGlass",
                effect=iam.Effect.DENY,
                principals=everyone,
                actions=list(OBJECT_CHANGE_ACTIONS),
                resources=[self.bucket.arn_for_objects("*")],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": audit_table.break_glass_role_arn}},
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyBucketChangesButBreakGlassAndDeployment",
                effect=iam.Effect.DENY,
                principals=everyone,
                actions=list(BUCKET_CHANGE_ACTIONS),
                resources=[self.bucket.bucket_arn],
                conditions={
                    "ArnNotLike": {
                        "aws:PrincipalArn": [
                            audit_table.break_glass_role_arn,
                            *audit_table.deployment_role_arns,
                        ]
                    }
                },
            )
        )

    def _acknowledge(self) -> None:
        acknowledge(
            self.function_role,
            f"{IAM5}[Resource::*]",
            "Active X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords accept only Resource '*') "
            "and dynamodb:ListStreams, which has no resource-level permission; the stream itself is "
            "granted by its ARN.",
        )
        for rule in ("AwsSolutions::AwsSolutions-L1", "Serverless::Serverless-LambdaLatestVersion"):
            acknowledge(
                self.function,
                rule,
                "Pinned to Python 3.13 on purpose: the AWS-managed Powertools layer we use is built for "
                "python313-arm64, and the runtime code is tested on 3.11 and 3.13.",
            )
        acknowledge(
            self.function,
            "Serverless::Serverless-LambdaDLQ",
            "Invoked by a DynamoDB stream event source mapping, where a function DLQ never applies; "
            "the mapping's own on-failure destination (the FailedBatches queue) holds failed batches.",
        )

    def metric_failed_batches(self) -> cloudwatch.Metric:
        """Batches sent to the failure queue: each is a gap in the archive until it is replayed."""
        return self.failure_queue.metric_approximate_number_of_messages_visible(statistic="Maximum")

    def metric_errors(self) -> cloudwatch.Metric:
        return self.function.metric_errors(statistic="Sum")
