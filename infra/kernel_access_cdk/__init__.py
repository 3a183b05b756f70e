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
