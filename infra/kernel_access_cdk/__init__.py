"""kernel-access CDK constructs and stacks.

Needs the ``cdk`` extra; without it importing this package fails with the command that fixes it.
"""

from __future__ import annotations

try:
    import aws_cdk as _aws_cdk  # noqa: F401
    import cdk_nag as _cdk_nag  # noqa: F401
    import constructs as _constructs  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised by the fresh-venv packaging test
    raise ImportError(
        "kernel_access_cdk needs the AWS CDK libraries: pip install 'kernel-access[cdk]'"
    ) from error

from kernel_access_cdk.app import build_app
from kernel_access_cdk.audit_table import AuditTable
from kernel_access_cdk.codeartifact import CodeArtifactRegistry
from kernel_access_cdk.config import (
    CodeArtifactConfig,
    ConfigError,
    KernelAccessConfig,
    PartnerConfig,
    TargetRoleConfig,
    load_config,
)
from kernel_access_cdk.config_store import ConfigBucket, ConfigDocument
from kernel_access_cdk.lambda_asset import kernel_access_code
from kernel_access_cdk.monitoring import KernelAccessMonitoring, MonitoringThresholds
from kernel_access_cdk.partner_stackset import PartnerRolloutStack, PartnerStackSet
from kernel_access_cdk.roles import KernelAccessRoles
from kernel_access_cdk.service_api import KernelServiceApi, RouteSpec
from kernel_access_cdk.stacks import KernelAccountStack, PartnerAccountStack
from kernel_access_cdk.token_exchange import TokenExchange
from kernel_access_cdk.vending import CredentialVendingService

__all__ = [
    "AuditTable",
    "CodeArtifactConfig",
    "CodeArtifactRegistry",
    "ConfigBucket",
    "ConfigDocument",
    "ConfigError",
    "CredentialVendingService",
    "KernelAccessConfig",
    "KernelAccessMonitoring",
    "KernelAccessRoles",
    "KernelAccountStack",
    "KernelServiceApi",
    "MonitoringThresholds",
    "PartnerAccountStack",
    "PartnerConfig",
    "PartnerRolloutStack",
    "PartnerStackSet",
    "RouteSpec",
    "TargetRoleConfig",
    "TokenExchange",
    "build_app",
    "kernel_access_code",
    "load_config",
]
