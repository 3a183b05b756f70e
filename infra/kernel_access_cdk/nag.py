"""cdk-nag v3 wiring: rule packs registered as policy-validation plugins, acknowledgements one
finding at a time, each with a reason specific to the construct it is attached to.

In cdk-nag v3 ``NagSuppressions`` and the Aspect pattern are gone: packs run as CDK validation
plugins after synthesis, and ``app.synth()`` raises when a finding is not acknowledged.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct

IAM4: Final = "AwsSolutions::AwsSolutions-IAM4"
IAM5: Final = "AwsSolutions::AwsSolutions-IAM5"


def register_nag(app: App) -> None:
    """Run the AwsSolutions and Serverless packs over every stack of ``app`` at synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding on ``scope`` (and its children) with a specific reason."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a specific reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def nag_rendering(scope: IConstruct, value: str) -> str:
    """How cdk-nag prints ``value`` inside a finding id (e.g. ``Resource::<finding>``).

    cdk-nag flattens intrinsics: ``Ref X`` -> ``<X>``, ``Fn::GetAtt [X, A]`` -> ``<X.A>``,
    ``Fn::Join`` -> the joined text. Computing the id this way lets each acknowledgement name the
    exact resource it covers instead of silencing a whole rule.
    """
    return _flatten(Stack.of(scope).resolve(value))


def _flatten(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return f"<{argument}>"
        if key == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if key == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_flatten(part) for part in parts)
    raise ValueError(f"cannot render {value!r} the way cdk-nag does")


def acknowledge_resource(scope: IConstruct, rule: str, resource: str, reason: str) -> None:
    """Acknowledge ``rule`` (e.g. ``AwsSolutions::AwsSolutions-IAM5``) for exactly one resource."""
    acknowledge(scope, f"{rule}[Resource::{nag_rendering(scope, resource)}]", reason)
