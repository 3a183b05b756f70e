"""The partner-side resources, defined once for both ways they reach a partner account.

A partner account holds a workload role that may assume the right kernel role, and String
parameters under ``/kernel-access/`` that tell partner applications how to reach the kernel
(:mod:`kernel_access.client.config` reads them). ``PartnerAccountStack`` (one stack per partner,
``cdk deploy`` in each account) and ``PartnerStackSet`` (one account-agnostic template deployed by a
service-managed StackSet) both call :func:`add_partner_resources`.

It is a function that adds the resources to the scope it is given rather than a construct of its
own: a construct would add a path segment and change the logical ids of the resources of every
deployed ``KernelAccessPartner-<name>`` stack, and CloudFormation would replace the workload role,
which has a fixed name (the replacement fails on the name it cannot take twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct
from kernel_access.contract import KERNEL_ACCESS_EXTERNAL_ROLE, KERNEL_ACCESS_ROLE

from .config import PartnerConfig
from .roles import external_role_name_for

#: Where partner accounts publish what partner applications need to reach the kernel.
PARAMETER_PREFIX: Final = "/kernel-access"
#: Name of the workload role without the deployment's ``name_suffix``.
WORKLOAD_ROLE_NAME: Final = "kernel-access-client"
#: What the workload role may do on its kernel role (the external ID travels in the AssumeRole call).
KERNEL_ROLE_ACTIONS: Final = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")


@dataclass(frozen=True)
class PartnerResources:
    """What :func:`add_partner_resources` created."""

    workload_role: iam.Role
    kernel_role_arn: str
    #: Parameter key (``kernel-account-id``, ...) -> the ``/kernel-access/<key>`` parameter.
    parameters: dict[str, ssm.StringParameter]


def kernel_role_name(partner: PartnerConfig, name_suffix: str = "") -> str:
    """The kernel role ``partner`` assumes: the shared in-organization role, or its own external one."""
    if partner.in_organization:
        return KERNEL_ACCESS_ROLE + name_suffix
    return external_role_name_for(KERNEL_ACCESS_EXTERNAL_ROLE + name_suffix, partner)


def add_partner_resources(
    scope: Construct,
    *,
    kernel_account: str,
    kernel_region: str,
    kernel_role: str,
    partner_name: str | None = None,
    external_id: str | None = None,
    vending_api_url: str | None = None,
    workload_principal: iam.IPrincipal | None = None,
    workload_role_name: str = WORKLOAD_ROLE_NAME,
) -> PartnerResources:
    """Add the workload role and the ``/kernel-access/`` parameters to ``scope``.

    ``kernel_account``, ``kernel_region`` and ``vending_api_url`` may be tokens (the StackSet
    template passes CloudFormation parameters). ``partner_name`` None publishes no ``partner-name``
    parameter: an in-organization partner is identified by its account (session names start with
    ``${aws:PrincipalAccount}.``), so an account-agnostic template needs no name. ``external_id``
    and ``vending_api_url`` None publish no parameter either (see ``PartnerAccountStack``).
    """
    kernel_role_arn = f"arn:{Stack.of(scope).partition}:iam::{kernel_account}:role/{kernel_role}"
    who = f"Partner {partner_name} workloads" if partner_name is not None else "Partner workloads"
    workload_role = iam.Role(
        scope,
        "WorkloadRole",
        role_name=workload_role_name,
        description=f"{who}: may assume the kernel role {kernel_role}",
        assumed_by=workload_principal or iam.ServicePrincipal("lambda.amazonaws.com"),
    )
    # The external ID is sent by the caller in AssumeRole; it is not part of this policy.
    workload_role.add_to_policy(
        iam.PolicyStatement(
            sid="AssumeKernelRole", actions=list(KERNEL_ROLE_ACTIONS), resources=[kernel_role_arn]
        )
    )
    values: dict[str, tuple[str, str]] = {
        "kernel-account-id": (kernel_account, "Account id of the kernel"),
        "kernel-role-arn": (kernel_role_arn, "Kernel role this partner assumes"),
        "region": (kernel_region, "Region of the kernel APIs"),
    }
    if partner_name is not None:
        values["partner-name"] = (partner_name, "Partner name as the kernel's configuration knows it")
    if external_id is not None:
        values["external-id"] = (external_id, "sts:ExternalId of this partner (not a secret)")
    if vending_api_url is not None:
        values["vending-api-url"] = (vending_api_url, "URL of the kernel-access vending API")
    parameters: dict[str, ssm.StringParameter] = {}
    for key, (value, description) in values.items():
        parameters[key] = ssm.StringParameter(
            scope,
            f"Parameter-{key}",
            parameter_name=f"{PARAMETER_PREFIX}/{key}",
            string_value=value,
            description=description,
        )
    return PartnerResources(workload_role, kernel_role_arn, parameters)
