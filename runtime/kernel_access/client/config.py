"""Where a partner's kernel-client configuration comes from: environment variables and/or the SSM
parameters that ``PartnerAccountStack`` publishes in the partner account.

Precedence, per setting: explicit environment variable, then SSM parameter, then default. SSM is read
when ``KERNEL_ACCESS_SSM_PREFIX`` is set, or when the environment alone does not name the kernel
account (then the default prefix ``/kernel-access/`` is tried). Parameters (under the prefix):

==========================  ==================================  ==============================
SSM parameter               environment variable                meaning
==========================  ==================================  ==============================
``kernel-account-id``       ``KERNEL_ACCESS_ACCOUNT_ID``        kernel account (12 digits)
``kernel-role-arn``         ``KERNEL_ACCESS_ROLE_ARN``          role to assume (else by name)
\\-                          ``KERNEL_ACCESS_ROLE_NAME``         role name, if no ARN
``region``                  ``KERNEL_ACCESS_REGION``            kernel region
``partner-name``            ``KERNEL_ACCESS_PARTNER``           this partner's name
``external-id``             ``KERNEL_ACCESS_EXTERNAL_ID``       external partners only
``vending-api-url``         ``KERNEL_ACCESS_VENDING_API_URL``   base URL of the vending API
==========================  ==================================  ==============================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kernel_access.client.response import KernelConfigError

if TYPE_CHECKING:
    import boto3

ENV_ACCOUNT_ID: Final = "KERNEL_ACCESS_ACCOUNT_ID"
ENV_REGION: Final = "KERNEL_ACCESS_REGION"
ENV_EXTERNAL_ID: Final = "KERNEL_ACCESS_EXTERNAL_ID"
ENV_ROLE_ARN: Final = "KERNEL_ACCESS_ROLE_ARN"
ENV_ROLE_NAME: Final = "KERNEL_ACCESS_ROLE_NAME"
ENV_PARTNER: Final = "KERNEL_ACCESS_PARTNER"
ENV_VENDING_API_URL: Final = "KERNEL_ACCESS_VENDING_API_URL"
ENV_SSM_PREFIX: Final = "KERNEL_ACCESS_SSM_PREFIX"

DEFAULT_SSM_PREFIX: Final = "/kernel-access/"
#: Parameter names (relative to the prefix) that PartnerAccountStack publishes.
SSM_ACCOUNT_ID: Final = "kernel-account-id"
SSM_ROLE_ARN: Final = "kernel-role-arn"
SSM_REGION: Final = "region"
SSM_PARTNER: Final = "partner-name"
SSM_EXTERNAL_ID: Final = "external-id"
SSM_VENDING_API_URL: Final = "vending-api-url"
SSM_PARAMETERS: Final = (
    SSM_ACCOUNT_ID,
    SSM_ROLE_ARN,
    SSM_REGION,
    SSM_PARTNER,
    SSM_EXTERNAL_ID,
    SSM_VENDING_API_URL,
)


@dataclass(frozen=True)
class KernelClientConfig:
    """Resolved settings; validation happens when a client is built from them."""

    account_id: str
    region: str = "us-east-1"
    partner: str | None = None
    external_id: str | None = None
    role_name: str | None = None
    role_arn: str | None = None
    vending_api_url: str | None = None
    #: Where the values came from ("env", "ssm:/kernel-access/" or both), for error messages.
    source: str = "env"


def read_ssm_parameters(prefix: str, *, boto3_session: boto3.Session | None = None) -> dict[str, str]:
    """The parameters directly under ``prefix`` (relative names), via Powertools Parameters."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    client = (boto3_session or _default_session()).client("ssm")
    provider = SSMProvider(boto3_client=client)
    values = provider.get_multiple(prefix.rstrip("/") + "/", decrypt=True, recursive=False, max_age=0)
    return {name.strip("/"): str(value) for name, value in values.items()}


def load_config(
    environ: Mapping[str, str] | None = None, *, boto3_session: boto3.Session | None = None
) -> KernelClientConfig:
    """Resolve the configuration (see the module docstring). Raises ``KernelConfigError`` naming
    the missing setting when the kernel account cannot be determined."""
    env = os.environ if environ is None else environ
    explicit_prefix = env.get(ENV_SSM_PREFIX)
    ssm: dict[str, str] = {}
    source = "env"
    if explicit_prefix is not None or not env.get(ENV_ACCOUNT_ID):
        prefix = explicit_prefix or DEFAULT_SSM_PREFIX
        if not prefix.startswith("/"):
            raise KernelConfigError(f"{ENV_SSM_PREFIX}: must start with '/', got {prefix!r}")
        try:
            ssm = read_ssm_parameters(prefix, boto3_session=boto3_session)
        except Exception as exc:  # surfaced as a configuration error that names the source
            raise KernelConfigError(
                f"{ENV_SSM_PREFIX}: could not read SSM parameters under {prefix!r}: {type(exc).__name__}"
            ) from exc
        source = f"env+ssm:{prefix}" if any(env.get(n) for n in _ENV_NAMES) else f"ssm:{prefix}"

    def pick(env_name: str, ssm_name: str | None) -> str | None:
        value = env.get(env_name) or (ssm.get(ssm_name) if ssm_name else None)
        return value.strip() if value else None

    account_id = pick(ENV_ACCOUNT_ID, SSM_ACCOUNT_ID)
    if not account_id:
        raise KernelConfigError(
            f"account_id: not configured (set {ENV_ACCOUNT_ID} or publish "
            f"{(explicit_prefix or DEFAULT_SSM_PREFIX)}{SSM_ACCOUNT_ID} in SSM)"
        )
    return KernelClientConfig(
        account_id=account_id,
        region=pick(ENV_REGION, SSM_REGION) or env.get("AWS_REGION") or "us-east-1",
        partner=pick(ENV_PARTNER, SSM_PARTNER),
        external_id=pick(ENV_EXTERNAL_ID, SSM_EXTERNAL_ID),
        role_name=pick(ENV_ROLE_NAME, None),
        role_arn=pick(ENV_ROLE_ARN, SSM_ROLE_ARN),
        vending_api_url=pick(ENV_VENDING_API_URL, SSM_VENDING_API_URL),
        source=source,
    )


_ENV_NAMES: Final = (
    ENV_ACCOUNT_ID,
    ENV_REGION,
    ENV_EXTERNAL_ID,
    ENV_ROLE_ARN,
    ENV_ROLE_NAME,
    ENV_PARTNER,
    ENV_VENDING_API_URL,
)


def _default_session() -> boto3.Session:
    import boto3

    return boto3.Session()
