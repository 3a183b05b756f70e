"""``ConfigBucket`` and ``ConfigDocument``: the configuration documents, one versioned S3 object each.

The Lambdas decide with JSON documents an operator deploys (the vending policy, the exchange
configuration). Each is one object of a kernel-owned bucket: versioned (every earlier document is
kept; a rollback is "make the previous version current again"), private (block public access, an
SSL-only bucket policy), encrypted. ``cdk deploy`` puts each document in place with an
``aws_s3_deployment.BucketDeployment`` of exactly the bytes the runtime's parser validated at synth;
the runtime reads it with a conditional ``GetObject`` (``kernel_access.document_store``). Why S3 and
not SSM, AppConfig or DynamoDB is written down in docs/policy-store.md.

Size: S3 objects may hold terabytes; we allow ``kernel_access.contract.MAX_DOCUMENT_BYTES`` (5 MiB)
per document, because a Lambda parses the whole document on every change: checked at synth by the
limits plugin (rule ``ConfigDocumentSize``, ``limits.Limits.config_document_bytes``) and by the
Lambda on every load, so a larger version uploaded out of band is refused too.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import CfnOutput, DefaultStackSynthesizer, RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct, IConstruct

from .nag import IAM4, IAM5, acknowledge, acknowledge_resource, nag_rendering

#: Construct id prefix of the stack-wide singleton function every ``BucketDeployment`` shares.
_DEPLOYMENT_HANDLER_PREFIX: Final = "Custom::CDKBucketDeployment"


class ConfigBucket(Construct):
    """The kernel's bucket of configuration documents.

    Props (keyword-only):
        removal_policy: Default: ``RemovalPolicy.RETAIN`` (the documents' history outlives the stack).
        log_retention: of the deployment handler's log group. Default: one year.

    Attributes: ``bucket``, ``deployment_log_group`` (of the ``BucketDeployment`` handler that puts
    the documents in place during ``cdk deploy``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        super().__init__(scope, construct_id)
        self.deployment_log_group = logs.LogGroup(
            self, "DeploymentLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal_policy,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions::AwsSolutions-S1",
            "Holds the configuration documents only: written by the stack's deployment and by operators "
            "(each write is a new, kept version), read by the kernel-access Lambdas. Who read or wrote "
            "which version is recorded by CloudTrail S3 data events, which, unlike server access logs, "
            "need no second bucket.",
        )

    def add_document(self, scope: Construct, construct_id: str, *, key: str, body: str) -> ConfigDocument:
        """A ``ConfigDocument`` of this bucket (child ``construct_id`` of ``scope``)."""
        return ConfigDocument(scope, construct_id, config_bucket=self, key=key, body=body)


class ConfigDocument(Construct):
    """One configuration document: the object ``key`` of a ``ConfigBucket``, deployed by ``cdk deploy``.

    Props (keyword-only):
        config_bucket: the ``ConfigBucket``.
        key: the object key (e.g. ``kernel_access.contract.POLICY_DOCUMENT_KEY``).
        body: the document, exactly as the runtime reads it (may contain deploy-time tokens such as
            role ARNs, which the deployment substitutes).

    Objects are never pruned (the other documents of the bucket stay) and stay in place when the
    deployment resource is removed. Output ``Location``: the document's ``s3://`` URL.

    Attributes: ``bucket``, ``key``, ``deployment``, ``object_arn``, ``url``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config_bucket: ConfigBucket,
        key: str,
        body: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = config_bucket.bucket
        self.key = key
        self.object_arn = self.bucket.arn_for_objects(key)
        self.url = f"s3://{self.bucket.bucket_name}/{key}"
        self.deployment = s3_deployment.BucketDeployment(
            self,
            "Deployment",
            destination_bucket=self.bucket,
            sources=[s3_deployment.Source.data(key, body)],
            prune=False,
            retain_on_delete=True,
            extract=True,
            log_group=config_bucket.deployment_log_group,
        )
        _acknowledge_deployment_handler(self.deployment, self.bucket)
        CfnOutput(self, "Location", value=self.url, description=f"the configuration document {key}")

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """``s3:GetObject`` on this document's object only (its current version)."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["s3:GetObject"], resource_arns=[self.object_arn]
        )


def _assets_objects_arn(stack: Stack) -> str | None:
    """The CDK assets bucket's objects as the deployment's policy names them, rendered the way
    cdk-nag prints them (None when the stack's account or region is not known at synth)."""
    if Token.is_unresolved(stack.account) or Token.is_unresolved(stack.region):
        return None
    qualifier = (
        getattr(stack.synthesizer, "bootstrap_qualifier", None) or DefaultStackSynthesizer.DEFAULT_QUALIFIER
    )
    bucket = f"cdk-{qualifier}-assets-{stack.account}-{stack.region}"
    return nag_rendering(stack, stack.format_arn(service="s3", region="", account="", resource=bucket)) + "/*"


def _acknowledge_deployment_handler(deployment: s3_deployment.BucketDeployment, bucket: s3.IBucket) -> None:
    """cdk-nag findings of the stack-wide function ``BucketDeployment`` brings (aws-cdk-lib's own
    custom-resource handler: its runtime, role and policy are not ours to choose)."""
    stack = Stack.of(deployment)
    handlers: list[IConstruct] = [
        child for child in stack.node.children if child.node.id.startswith(_DEPLOYMENT_HANDLER_PREFIX)
    ]
    from .vending import depend_on_policy_only  # (vending imports this module)

    for handler in handlers:
        if isinstance(handler, lambda_.Function):
            # cfn-lint W3005, as for our own functions: the role dependency is implied by GetAtt.
            depend_on_policy_only(handler)
        acknowledge(
            handler,
            f"{IAM4}[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "aws-cdk-lib's BucketDeployment handler (runs only during cdk deploy) is created with "
            "AWSLambdaBasicExecutionRole by the library; it writes only its own log streams.",
        )
        acknowledge(
            handler,
            f"{IAM5}[Action::s3:GetObject*]",
            "aws-cdk-lib's BucketDeployment handler reads the staged document from the CDK assets "
            "bucket and writes it to the config bucket; the library grants object wildcards on those "
            "two buckets only.",
        )
        acknowledge_resource(
            handler,
            IAM5,
            bucket.arn_for_objects("*"),
            "aws-cdk-lib's BucketDeployment handler writes the configuration documents into the config "
            "bucket (grant of the library on the bucket's objects); it runs only during cdk deploy.",
        )
        assets = _assets_objects_arn(stack)
        if assets is not None:
            acknowledge(
                handler,
                f"{IAM5}[Resource::{assets}]",
                "aws-cdk-lib's BucketDeployment handler reads the staged documents from the CDK "
                "bootstrap assets bucket (grant of the library); it runs only during cdk deploy.",
            )
        for finding in (
            "Action::s3:GetBucket*",
            "Action::s3:List*",
            "Action::s3:Abort*",
            "Action::s3:DeleteObject*",
        ):
            acknowledge(
                handler,
                f"{IAM5}[{finding}]",
                "aws-cdk-lib's BucketDeployment grant (read of the CDK assets bucket, read-write of "
                "the config bucket); the handler runs only during cdk deploy, and prune is off.",
            )
        for rule in ("AwsSolutions::AwsSolutions-L1", "Serverless::Serverless-LambdaLatestVersion"):
            acknowledge(
                handler,
                rule,
                "aws-cdk-lib's BucketDeployment handler: its runtime is pinned by the library version "
                "(upgrading aws-cdk-lib upgrades it); it runs only during cdk deploy.",
            )
        for rule, reason in (
            (
                "Serverless::Serverless-LambdaDLQ",
                "Invoked synchronously by CloudFormation as a custom resource: a failure fails the "
                "deployment, which rolls back; a dead-letter queue would hold nothing to replay.",
            ),
            (
                "Serverless::Serverless-LambdaTracing",
                "aws-cdk-lib's BucketDeployment handler runs once per deployment; its outcome is the "
                "CloudFormation event and its CloudWatch log, tracing adds nothing.",
            ),
            (
                "Serverless::Serverless-LambdaDefaultMemorySize",
                "aws-cdk-lib's BucketDeployment handler copies one small document (at most 5 MiB) per "
                "deployment; the library's memory size is enough.",
            ),
        ):
            acknowledge(handler, rule, reason)
