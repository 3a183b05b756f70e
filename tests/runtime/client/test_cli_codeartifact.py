"""codeartifact login: pip/npm/twine files like `aws codeartifact login`, mode 0600; token never printed."""

from __future__ import annotations

import configparser
import json
import stat
from pathlib import Path

import pytest
from kernel_access.cli.main import main

from tests.runtime.client.conftest import CODEARTIFACT_TOKEN, FakeVending

OWNER = "111111111111"
HOST = f"kernel-{OWNER}.d.codeartifact.us-east-1.amazonaws.com"


def login(vending: FakeVending, tool: str, config: Path, *extra: str) -> int:
    return main(
        [
            "codeartifact", "login", "--tool", tool, "--domain", "kernel", "--repository", "python",
            "--domain-owner", OWNER, "--region", "us-east-1", "--api", vending.url,
            "--config-file", str(config), *extra,
        ]
    )  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_pip(vending: FakeVending, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pip" / "pip.conf"
    config.parent.mkdir()
    config.write_text("[global]\ntimeout = 60\n")
    assert login(vending, "pip", config) == 0
    parser = configparser.RawConfigParser()
    parser.read(config)
    assert parser.get("global", "timeout") == "60"
    index = parser.get("global", "index-url")
    assert index.startswith("https://aws:")
    assert index.endswith(f"@{HOST}/pypi/python/simple/")
    from urllib.parse import unquote

    assert unquote(index.split("aws:", 1)[1].split("@", 1)[0]) == CODEARTIFACT_TOKEN
    assert mode(config) == 0o600
    out = capsys.readouterr()
    assert CODEARTIFACT_TOKEN not in out.out + out.err
    assert vending.requests == [{"domain": "kernel", "repository": "python"}]


def test_npm_keeps_other_lines_and_replaces_old_auth(
    vending: FakeVending, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / ".npmrc"
    config.write_text(
        f"save-exact=true\n//{HOST}/npm/python/:_authToken=old\nregistry=https://registry.npmjs.org/\n"
    )
    assert login(vending, "npm", config) == 0
    lines = config.read_text().splitlines()
    assert "save-exact=true" in lines
    assert f"registry=https://{HOST}/npm/python/" in lines
    assert f"//{HOST}/npm/python/:_authToken={CODEARTIFACT_TOKEN}" in lines
    assert not any(line.endswith("=old") or "registry.npmjs.org" in line for line in lines)
    assert mode(config) == 0o600
    assert CODEARTIFACT_TOKEN not in capsys.readouterr().out


def test_twine_adds_an_index_server(vending: FakeVending, tmp_path: Path) -> None:
    config = tmp_path / ".pypirc"
    config.write_text("[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\n")
    assert login(vending, "twine", config, "--output", "json") == 0
    parser = configparser.RawConfigParser()
    parser.read(config)
    assert parser.get("distutils", "index-servers").split() == ["pypi", "codeartifact"]
    assert parser.get("codeartifact", "repository") == f"https://{HOST}/pypi/python/"
    assert parser.get("codeartifact", "username") == "aws"
    assert parser.get("codeartifact", "password") == CODEARTIFACT_TOKEN
    assert parser.get("pypi", "username") == "__token__"
    assert mode(config) == 0o600


def test_dry_run_writes_nothing_and_masks(
    vending: FakeVending, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pip.conf"
    assert login(vending, "pip", config, "--dry-run", "--output", "json") == 0
    assert not config.exists()
    out = capsys.readouterr().out
    assert CODEARTIFACT_TOKEN not in out
    summary = json.loads(out)
    assert summary["written"] is False
    assert "https://aws:****@" in summary["content"]


def test_explicit_endpoint_and_refusal(
    vending: FakeVending, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pip.conf"
    endpoint = "https://custom-111111111111.d.codeartifact.us-west-2.amazonaws.com/pypi/internal"
    assert login(vending, "pip", config, "--repository-endpoint", endpoint) == 0
    assert (
        "@custom-111111111111.d.codeartifact.us-west-2.amazonaws.com/pypi/internal/simple/"
        in config.read_text()
    )
    vending.deny_with = "POLICY_DENY"
    before = config.read_text()
    assert login(vending, "pip", config, "--output", "json") == 3
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error_code"] == "POLICY_DENY"
    assert config.read_text() == before
