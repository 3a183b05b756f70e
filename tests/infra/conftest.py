"""Synthesise the app once per session, from cdk.json's context, exactly as `cdk synth` does."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack, Stage
from aws_cdk.assertions import Template
from kernel_access.local.deployments import BUCKET_DEPLOYMENT, deployed_files
from kernel_access.local.nested_stacks import merge_nested_stacks
from kernel_access_cdk.app import build_app

REPO = Path(__file__).resolve().parents[2]
KERNEL_STACK = "KernelAccessKernel"
_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def load_cdk_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return context


def synth(
    outdir: Path, context: dict[str, Any] | None = None, *, builtin_validation: bool | None = None
) -> Path:
    app = build_app(
        context if context is not None else load_cdk_context(),
        str(outdir),
        builtin_validation=builtin_validation,
    )
    app.synth()
    return outdir


def _as_json_string_content(value: Any) -> str:
    """A deploy-time value as it can stand inside a JSON string: its CloudFormation JSON, escaped."""
    return json.dumps(json.dumps(value, sort_keys=True))[1:-1]


def deployed_documents(outdir: Path, template: dict[str, Any]) -> dict[str, Any]:
    """Object key -> parsed document of every ``BucketDeployment`` of ``template`` (synthesised into
    ``outdir``), read from the staged asset; a deploy-time value (role ARN) reads as the JSON of its
    CloudFormation expression."""
    documents: dict[str, Any] = {}
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == BUCKET_DEPLOYMENT:
            for key, content in deployed_files(outdir, resource["Properties"], _as_json_string_content):
                documents[key] = json.loads(content)
    return documents


def stack_documents(stack: Stack) -> dict[str, Any]:
    """:func:`deployed_documents` of a stack of a test app (synthesises its app)."""
    assembly = Stage.of(stack).synth()  # type: ignore[union-attr]
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    return deployed_documents(Path(assembly.directory), artifact.template)


def stack_environments(manifest: dict[str, Any]) -> dict[str, str]:
    """Stack artifact name -> ``aws://account/region`` of a cloud assembly manifest."""
    return {
        name: artifact["environment"]
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


def normalise_asset_hashes(text: str) -> str:
    """Asset hashes change whenever runtime code does; snapshots pin everything else."""
    return _ASSET_HASH.sub("<asset-hash>", text)


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    return load_cdk_context()


@pytest.fixture
def context_copy(cdk_context: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(cdk_context)


@pytest.fixture(scope="session")
def cloud_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def templates(cloud_assembly: Path) -> dict[str, dict[str, Any]]:
    manifest = json.loads((cloud_assembly / "manifest.json").read_text())
    result: dict[str, dict[str, Any]] = {}
    for name, artifact in sorted(manifest["artifacts"].items()):
        if artifact["type"] == "aws:cloudformation:stack":
            template_file = artifact["properties"]["templateFile"]
            result[name] = json.loads((cloud_assembly / template_file).read_text())
    return result


@pytest.fixture(scope="session")
def kernel(templates: dict[str, dict[str, Any]]) -> Template:
    return Template.from_json(templates[KERNEL_STACK])


@pytest.fixture(scope="session")
def kernel_resources(cloud_assembly: Path, templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The kernel account's resources as deployed: the kernel stack's own and its nested stacks'
    (external partners' roles), parameters replaced by what the parent passes."""
    return deployed_resources(templates[KERNEL_STACK], cloud_assembly)


def deployed_resources(template: dict[str, Any], assembly_dir: Path) -> dict[str, Any]:
    """``template``'s resources with its nested stacks' merged in (``kernel_access.local.nested_stacks``)."""
    resources: dict[str, Any] = merge_nested_stacks(template, assembly_dir)["Resources"]
    return resources


def of_type(resources: dict[str, Any], cfn_type: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == cfn_type}
