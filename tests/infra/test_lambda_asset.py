"""The Lambda asset is the handlers' import closure: nothing they load is missing, nothing else ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_access_cdk.lambda_asset import (
    collect_files,
    handler_modules,
    import_closure,
    package_directory,
    stage_package,
)

HERE = Path(__file__).resolve().parent


def _asset_modules(files: tuple[str, ...]) -> set[str]:
    modules = set()
    for name in files:
        if not name.endswith(".py"):
            continue
        parts = name.removesuffix(".py").split("/")
        if parts[-1] == "__init__":
            parts.pop()
        modules.add(".".join(parts))
    return modules


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    return stage_package(tmp_path_factory.mktemp("asset")).files


def test_handlers_load_exactly_the_modules_of_the_asset(staged: tuple[str, ...]) -> None:
    """Every handler (vending, exchange, audit archive), built from its environment on moto and
    driven through its routes in a fresh interpreter, loads every module of the asset and nothing
    of ``kernel_access`` outside it."""
    result = subprocess.run(
        [sys.executable, str(HERE / "handler_imports.py")],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # The handlers really ran the routes (a handler failing at import would load less).
    assert report["statuses"] == {
        "GET /credentials": 200,
        "GET /credentials bad": 400,
        "GET /codeartifact/token": 503,  # moto has no CodeArtifact: the mint path runs and fails closed
        "GET /health": 200,
        "POST /exchange aws_role": 200,
        "POST /exchange codeartifact": 503,
        "POST /exchange bad": 400,
        "audit archive": 200,
    }
    loaded = set(report["modules"])
    shipped = _asset_modules(staged)
    assert sorted(loaded - shipped) == [], "handlers import modules the asset does not hold"
    assert sorted(shipped - loaded) == [], "the asset holds modules no handler imports"


def test_asset_leaves_out_the_cli_client_and_emulator(staged: tuple[str, ...]) -> None:
    assert "kernel_access/py.typed" in staged
    assert "kernel_access/handlers/vending.py" in staged
    assert "kernel_access/handlers/exchange.py" in staged
    for package in ("cli", "client", "local", "schemas"):
        assert not [f for f in staged if f.startswith(f"kernel_access/{package}/")], package
    # The JSON Schemas are package data for editors and CI, never Lambda code.
    assert not [f for f in staged if not f.endswith((".py", "py.typed"))]
    source = package_directory()
    everything = [p for p in source.rglob("*.py") if "__pycache__" not in p.parts]
    assert len(staged) < len(everything)


def test_closure_follows_lazy_and_relative_imports_and_skips_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "handlers").mkdir(parents=True)
    (package / "sub").mkdir()
    files = {
        "__init__.py": "",
        "handlers/__init__.py": "",
        "handlers/entry.py": (
            "from typing import TYPE_CHECKING\n"
            "from . import helper\n"
            "if TYPE_CHECKING:\n"
            "    from pkg import typing_only\n"
            "else:\n"
            "    import pkg.runtime_branch\n"
            "def handler():\n"
            "    from pkg.sub.lazy import thing\n"
            "    return thing\n"
        ),
        "handlers/helper.py": "from ..sub import rel\n",
        "sub/__init__.py": "",
        "sub/lazy.py": "thing = 1\n",
        "sub/rel.py": "import json\n",
        "runtime_branch.py": "",
        "typing_only.py": "",
        "unused.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    (package / "py.typed").write_text("")

    assert handler_modules(package, "pkg") == ["pkg.handlers.entry", "pkg.handlers.helper"]
    assert import_closure(package, ["pkg.handlers.entry"], "pkg") == {
        "pkg",
        "pkg.handlers",
        "pkg.handlers.entry",
        "pkg.handlers.helper",
        "pkg.sub",
        "pkg.sub.lazy",
        "pkg.sub.rel",
        "pkg.runtime_branch",
    }
    assert [p.as_posix() for p in collect_files(package, "pkg")] == [
        "__init__.py",
        "handlers/__init__.py",
        "handlers/entry.py",
        "handlers/helper.py",
        "py.typed",
        "runtime_branch.py",
        "sub/__init__.py",
        "sub/lazy.py",
        "sub/rel.py",
    ]
