"""Build the kernel-access CDK app from the ``"kernel-access"`` context.

``app.py`` (what ``cdk synth`` runs) and the tests both call :func:`build_app`, so the tests
synthesise exactly what the CLI does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aws_cdk import App
from kernel_access.contract import CONFIG_CONTEXT_KEY

from .config import load_config
from .limits import register_limits
from .nag import register_nag
from .stacks import build_stacks

CONTEXT_KEY: Final = CONFIG_CONTEXT_KEY

#: Forced after the CLI's context so `cdk synth` and `build_app()` in tests emit the same bytes:
#: no AWS::CDK::Metadata resource (it varies with CLI/library versions), path and asset metadata on.
_POST_CLI_CONTEXT: Final[Mapping[str, Any]] = {
    "aws:cdk:version-reporting": False,
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
}


def build_app(
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    *,
    builtin_validation: bool | None = None,
) -> App:
    """An app with the kernel stack, one stack per partner, the cdk-nag packs and the limits check
    (:mod:`kernel_access_cdk.limits`, with the config's ``limits``) registered.

    ``context`` is cdk.json's ``"context"`` object (feature flags + ``"kernel-access"``); None
    means "whatever the CDK CLI passed", which is what ``app.py`` uses. ``builtin_validation``
    switches CDK's own CloudFormation validation plugin (None: CDK's default, i.e. on unless
    ``CDK_VALIDATION=false``); it never changes the templates, only what is checked.
    """
    app = App(
        context=dict(context) if context is not None else None,
        outdir=outdir,
        post_cli_context=dict(_POST_CLI_CONTEXT),
        analytics_reporting=False,
        builtin_cloud_formation_validation=builtin_validation,
    )
    config = load_config(app.node.try_get_context(CONTEXT_KEY))
    build_stacks(app, config)
    register_nag(app)
    register_limits(app, config.limits)
    return app
