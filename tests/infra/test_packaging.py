"""The wheel, installed outside the repository: with the ``cdk`` extra it synthesises a partner app
whose Lambda asset is the handlers' import closure, the same files (and hash) as from this checkout;
without it the runtime imports and the CDK libraries do not.

Slow (builds a wheel and two virtual environments; pip downloads come from the pip cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest
from kernel_access_cdk.lambda_asset import stage_package

from tests.infra.conftest import REPO

pytestmark = pytest.mark.slow

PARTNER_APP = """
import json, sys
from aws_cdk import App, Environment, Stack
from kernel_access_cdk.config import PartnerConfig
from kernel_access_cdk.roles import KernelAccessRoles
from kernel_access_cdk.stacks import PartnerAccountStack
from kernel_access_cdk.vending import CredentialVendingService

partner = PartnerConfig("globex", "444444444444", False, "us-east-1", "globex-external-id")
app = App(outdir=sys.argv[1], builtin_cloud_formation_validation=False)  # speed only
stack = Stack(app, "GlobexKernel", env=Environment(account="111111111111", region="us-east-1"))
roles = KernelAccessRoles(stack, "Roles", partners=[partner], organization_id="o-abcdefghij")
CredentialVendingService(
    stack, "Vending", kernel_roles=roles,
    policy_document={"version": "1", "partners": {"globex": {"account_id": "444444444444",
                     "in_organization": False}}, "rules": []},
)
PartnerAccountStack(app, "Globex", partner=partner, kernel_account="111111111111", kernel_region="us-east-1")
app.synth()
import kernel_access_cdk
from kernel_access_cdk.lambda_asset import staged_kernel_access
print(json.dumps({"cdk_package": kernel_access_cdk.__file__, "asset_sha256": staged_kernel_access().sha256}))
"""

RUNTIME_ONLY = """
import importlib.util, json, sys
import kernel_access, kernel_access.policy, kernel_access.contract
assert "aws_cdk" not in sys.modules
assert importlib.util.find_spec("aws_cdk") is None, "aws-cdk-lib must not be installed"
try:
    import kernel_access_cdk
except ImportError as error:
    message = str(error)
else:
    raise SystemExit("kernel_access_cdk imported without the cdk extra")
from kernel_access.schemas import SCHEMA_FILES, render, shipped
for kind in SCHEMA_FILES:  # the schemas ship as package data, equal to what the parsers define
    assert shipped(kind) == render(kind), kind
print(json.dumps({"message": message, "file": kernel_access.__file__}))
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _build_wheel(work: Path) -> Path:
    # Build from a clean copy: no build/ or egg-info side effects in the shared checkout.
    source = work / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("runtime", "infra"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(source)], cwd=work)
    (wheel,) = (work / "dist").glob("kernel_access-*.whl")
    return wheel


def _venv_with(work: Path, name: str, requirement: str) -> subprocess.Popen[str]:
    """Create a venv without pip and install into it with this interpreter's pip (faster)."""
    target = work / name
    venv.create(target, with_pip=False)
    return subprocess.Popen(
        [
            sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install",
            "--quiet", "--disable-pip-version-check", "--no-compile", requirement,
        ],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_wheel_in_fresh_environments(tmp_path_factory: pytest.TempPathFactory) -> None:
    work = tmp_path_factory.mktemp("packaging")
    assert REPO not in work.parents
    started = time.monotonic()
    repo_asset = stage_package(work / "repo-asset")
    wheel = _build_wheel(work)
    built = time.monotonic()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    runtime_files = sorted(n for n in names if n.startswith("kernel_access/"))
    assert any(n.startswith("kernel_access_cdk/") for n in names)
    assert not any(n.startswith("tests/") or "__pycache__" in n for n in names)
    assert {"kernel_access/schemas/policy.schema.json", "kernel_access/schemas/exchange.schema.json"} <= set(
        names
    )

    installs = {
        "with-cdk": _venv_with(work, "with-cdk", f"{wheel}[cdk]"),
        "runtime-only": _venv_with(work, "runtime-only", str(wheel)),
    }
    for name, process in installs.items():
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}: {stdout}\n{stderr}"
    installed = time.monotonic()

    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "1"
    app_dir = work / "partner-app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(PARTNER_APP)
    out = app_dir / "cdk.out"
    report = json.loads(
        _run(
            [str(work / "with-cdk" / "bin" / "python"), "app.py", str(out)], cwd=app_dir, env=env
        ).splitlines()[-1]
    )
    assert str(work / "with-cdk") in report["cdk_package"], "constructs must come from the wheel"
    # Same sources, other machine layout (site-packages vs editable checkout): same asset hash.
    assert report["asset_sha256"] == repo_asset.sha256
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"GlobexKernel", "Globex"} <= set(manifest["artifacts"])
    # The Lambda code asset (the others: the config documents and aws-cdk-lib's deployment handler).
    (asset_dir,) = [d for d in out.glob("asset.*") if (d / "kernel_access" / "handlers").is_dir()]
    asset_files = sorted(p.relative_to(asset_dir).as_posix() for p in asset_dir.rglob("*") if p.is_file())
    # The handlers' import closure, computed from site-packages: the same files as from the checkout,
    # all of them in the wheel, and none of the CLI, client or emulator.
    assert asset_files == list(repo_asset.files)
    assert set(asset_files) <= set(runtime_files)
    assert not [n for n in asset_files if n.startswith(("kernel_access/cli/", "kernel_access/local/"))]
    template = json.loads((out / "GlobexKernel.template.json").read_text())
    handlers = {
        r["Properties"]["Handler"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert "kernel_access.handlers.vending.handler" in handlers

    runtime_only = json.loads(
        _run([str(work / "runtime-only" / "bin" / "python"), "-c", RUNTIME_ONLY], cwd=work, env=env)
    )
    assert "pip install 'kernel-access[cdk]'" in runtime_only["message"]
    assert str(work / "runtime-only") in runtime_only["file"]
    version = _run([str(work / "runtime-only" / "bin" / "kernel-access"), "--version"], cwd=work, env=env)
    assert version.strip()
    finished = time.monotonic()
    print(
        f"packaging timings: wheel {built - started:.1f}s, installs {installed - built:.1f}s, "
        f"synth+checks {finished - installed:.1f}s"
    )
