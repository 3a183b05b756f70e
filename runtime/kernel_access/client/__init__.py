"""The partner side of kernel-access: ``KernelClient`` and what the CLI tools build on.

Importing this package pulls in only boto3/botocore (and urllib3, which botocore ships);
the Powertools middleware lives in ``kernel_access.client.middleware`` and is imported on demand.
"""

from kernel_access.client.config import KernelClientConfig, load_config
from kernel_access.client.kernel_client import KernelClient
from kernel_access.client.response import (
    KernelCallError,
    KernelClientError,
    KernelConfigError,
    KernelConnectionError,
    KernelCredentialsError,
    KernelResponse,
)

__all__ = [
    "KernelCallError",
    "KernelClient",
    "KernelClientConfig",
    "KernelClientError",
    "KernelConfigError",
    "KernelConnectionError",
    "KernelCredentialsError",
    "KernelResponse",
    "load_config",
]
