"""The kernel stack at organization scale: 1,000 in-organization + 200 external partners, and 5,000 +
500 with rules written by partner attribute, synthesize with every template (the kernel stack's own
and each nested stack of external partners' roles) inside CloudFormation's and IAM's limits, and
cdk-nag passing on all of them.

One synth per configuration (module-scoped fixtures); the 5,000-partner one takes the longest
(tens of seconds) and is marked ``slow``. Only the kernel stack is built: partner stacks are one
small stack per partner in the partner's own account, the same at any scale.

The vending policy document (with its partner map) is an object of the config bucket, checked by the
limits check against its own 5 MiB (``ConfigDocumentSize``): at both sizes the limits check reports
nothing at all.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from kernel_access import contract
from kernel_access_cdk.app import CONTEXT_KEY
from kernel_access_cdk.config import load_config
from kernel_access_cdk.limits import PLUGIN_NAME, Limits, check, load_templates, register_limits
from kernel_access_cdk.nag import register_nag
from kernel_access_cdk.roles import EXTERNAL_ROLE_SHARDS, external_role_shard
from kernel_access_cdk.stacks import KernelAccountStack, kernel_stack_id

from tests.infra.conftest import deployed_documents, deployed_resources, of_type


def scaled_context(
    cdk_context: dict[str, Any], in_org: int, external: int, *, by_attribute: bool
) -> dict[str, Any]:
    """cdk.json's context with ``in_org`` + ``external`` generated partners added to the example's.

    Names and external IDs are the longest allowed (32-character names, 1,224-character external
    IDs), so the templates are as large as these counts can make them. ``by_attribute``: every
    partner carries ``environment``/``tier`` attributes and the added rules select by them (a group
    and ``partner_attributes``), as an organization-sized policy is written.
    """
    context = copy.deepcopy(cdk_context)
    config = context[CONTEXT_KEY]
    for index in range(in_org + external):
        in_organization = index < in_org
        partner: dict[str, Any] = {
            "name": f"{'org' if in_organization else 'ext'}-{index:05d}-".ljust(32, "x"),
            "account_id": f"{500_000_000_000 + index:012d}",
            "in_organization": in_organization,
        }
        if not in_organization:
            partner["external_id"] = f"{index:05d}".ljust(1224, "e")
        if by_attribute:
            partner["attributes"] = {
                "environment": "production" if index % 4 else "staging",
                "tier": ("gold", "silver", "bronze")[index % 3],
            }
        config["partners"].append(partner)
    if by_attribute:
        for example in config["partners"][:2]:
            example["attributes"] = {"environment": "production", "tier": "gold"}
        policy = config["policy"]
        policy["groups"] = {"production-gold": {"environment": ["production"], "tier": ["gold"]}}
        policy["rules"] = [
            {
                "id": "staging-never-deploys",
                "effect": "deny",
                "partner_attributes": {"environment": ["staging"]},
                "roles": ["kernel-deployer"],
            },
            {
                "id": "gold-deploys",
                "effect": "allow",
                "partner_groups": ["production-gold"],
                "roles": ["kernel-deployer"],
            },
            *policy["rules"],
            {
                "id": "production-reads",
                "effect": "allow",
                "partner_attributes": {"environment": ["production"]},
                "roles": ["kernel-reader"],
            },
        ]
    return context


@dataclass(frozen=True)
class Synth:
    outdir: Path
    seconds: float
    external: int
    limits_findings: list[str]
    report: dict[str, Any]

    @property
    def template_paths(self) -> list[str]:
        """Every template file: the kernel stack's and its nested stacks'."""
        return [str(p) for p in sorted(self.outdir.glob("*.template.json"))]

    def deployed(self) -> dict[str, Any]:
        kernel = json.loads((self.outdir / f"{kernel_stack_id()}.template.json").read_text())
        return deployed_resources(kernel, self.outdir)


def synth_kernel(context: dict[str, Any], outdir: Path) -> Synth:
    """The kernel stack with the cdk-nag packs and the limits check, as ``build_app`` registers
    them; a ValidationFailed synth still writes the templates and the report."""
    started = time.perf_counter()
    app = App(
        context=context,
        outdir=str(outdir),
        analytics_reporting=False,
        post_cli_context={"aws:cdk:enable-path-metadata": True},  # construct paths name the shard
    )
    config = load_config(context[CONTEXT_KEY])
    KernelAccountStack(app, kernel_stack_id(), config=config)
    register_nag(app)
    register_limits(app, config.limits)
    try:
        app.synth()
    except Exception as error:  # the report below says what failed
        if "ValidationFailed" not in str(error):
            raise
    seconds = time.perf_counter() - started
    report = json.loads((outdir / "validation-report.json").read_text())
    findings = [
        v["ruleName"]
        for p in report["pluginReports"]
        if p["pluginName"] == PLUGIN_NAME
        for v in p["violations"]
    ]
    external = sum(1 for p in config.partners if not p.in_organization)
    return Synth(outdir, seconds, external, findings, report)


@pytest.fixture(scope="module")
def thousand(cdk_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Synth:
    context = scaled_context(cdk_context, 1_000, 200, by_attribute=False)
    return synth_kernel(context, tmp_path_factory.mktemp("scale-1000"))


@pytest.fixture(scope="module")
def five_thousand(cdk_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Synth:
    context = scaled_context(cdk_context, 5_000, 500, by_attribute=True)
    synth = synth_kernel(context, tmp_path_factory.mktemp("scale-5000"))
    print(f"\n5,000 + 500 partners: kernel stack synth (cdk-nag + limits) {synth.seconds:.1f} s")
    return synth


def _assert_within_limits(synth: Synth) -> None:
    # Every limit passes on every template (nested ones included) and on the policy document.
    assert synth.limits_findings == []
    assert check(synth.template_paths, Limits()) == []
    for path in synth.template_paths:
        assert Path(path).stat().st_size < Limits().template_bytes, path
    # cdk-nag walks the construct tree, nested stacks included.
    conclusions = {p["pluginName"]: p["conclusion"] for p in synth.report["pluginReports"]}
    assert conclusions["AwsSolutions"] == "success"
    assert conclusions["Serverless"] == "success"


def _assert_sharded(synth: Synth) -> None:
    templates = load_templates(synth.template_paths)
    nested = [t for t in templates if t.path.endswith(".nested.template.json")]
    assert 1 < len(nested) <= EXTERNAL_ROLE_SHARDS
    kernel = next(t for t in templates if t.path.endswith(f"/{kernel_stack_id()}.template.json"))
    # The kernel stack's own template does not grow with external partners: one resource per
    # shard, no per-partner output.
    assert len(kernel.body.get("Outputs", {})) < 10
    assert len(of_type(dict(kernel.resources), "AWS::IAM::Role")) < 20
    roles = {
        r["Properties"]["RoleName"]: r
        for r in of_type(synth.deployed(), "AWS::IAM::Role").values()
        if str(r["Properties"].get("RoleName", "")).startswith("kernel-access-external-")
    }
    assert len(roles) == synth.external  # the generated ones and the example's acme-analytics
    # Each role sits in the shard its name hashes to (the shard number is in the construct path).
    for template in nested:
        for role in of_type(dict(template.resources), "AWS::IAM::Role").values():
            partner = role["Properties"]["RoleName"].removeprefix("kernel-access-external-")
            path = role["Metadata"]["aws:cdk:path"]
            assert f"/ExternalPartnerRoles-{external_role_shard(partner):02d}/" in path


def test_1000_in_org_and_200_external_partners_stay_within_every_limit(thousand: Synth) -> None:
    _assert_within_limits(thousand)


def test_external_roles_are_sharded_by_name_at_1000(thousand: Synth) -> None:
    _assert_sharded(thousand)


@pytest.mark.slow
def test_5000_in_org_and_500_external_partners_by_attribute_stay_within_every_limit(
    five_thousand: Synth,
) -> None:
    _assert_within_limits(five_thousand)
    _assert_sharded(five_thousand)
    # The rules by attribute made it into the policy document the Lambda loads.
    kernel = json.loads((five_thousand.outdir / f"{kernel_stack_id()}.template.json").read_text())
    document = deployed_documents(five_thousand.outdir, kernel)[contract.POLICY_DOCUMENT_KEY]
    assert document["groups"] == {"production-gold": {"environment": ["production"], "tier": ["gold"]}}
    assert len(document["partners"]) == 5_502


def test_adding_a_partner_moves_no_other_partners_role() -> None:
    """Shards depend on the partner's name alone: adding or removing partners keeps every other
    partner's role in its nested stack (a move would delete and re-create that partner's role)."""
    names = [f"partner-{i:05d}" for i in range(5_000)]
    before = {name: external_role_shard(name) for name in names}
    after = {name: external_role_shard(name) for name in [*names, "newcomer", "another-one"]}
    assert all(after[name] == shard for name, shard in before.items())
    # A fixed hash (not Python's per-process hash()): the same shard in every process, forever.
    assert external_role_shard("acme-analytics") == 26
    # Spread: the fullest shard at 5,000 external partners stays far under 500 resources.
    counts = [list(before.values()).count(shard) for shard in range(EXTERNAL_ROLE_SHARDS)]
    assert max(counts) < 250
