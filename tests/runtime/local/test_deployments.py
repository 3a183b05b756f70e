"""What a ``Custom::CDKBucketDeployment`` puts in its bucket, read from a cloud assembly: staged
directories and zips, the destination prefix, deploy-time markers (plain and JSON-escaped)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from kernel_access.local.deployments import deployed_files


def _assembly(tmp_path: Path) -> Path:
    """An assembly with a directory asset (hash ``aaa``) and a zip asset (hash ``bbb``)."""
    (tmp_path / "asset.aaa" / "vending").mkdir(parents=True)
    (tmp_path / "asset.aaa" / "vending" / "policy.json").write_text('{"role_arn":"<<marker:0xbaba:0>>"}')
    with zipfile.ZipFile(tmp_path / "asset.bbb.zip", "w") as archive:
        archive.writestr("notes.txt", "role <<marker:0xbaba:0>> twice <<marker:0xbaba:0>>")
    manifest = {
        "files": {
            "aaa": {
                "source": {"path": "asset.aaa", "packaging": "zip"},
                "destinations": {"d": {"bucketName": "assets", "objectKey": "aaa.zip"}},
            },
            "bbb": {
                "source": {"path": "asset.bbb.zip", "packaging": "file"},
                "destinations": {"d": {"bucketName": "assets", "objectKey": "bbb.zip"}},
            },
        }
    }
    (tmp_path / "Stack.assets.json").write_text(json.dumps(manifest))
    return tmp_path


def _render(value: Any) -> str:
    return "arn:aws:iam::111111111111:role/" + value["Fn::GetAtt"][0]


def test_directory_and_zip_assets_with_markers_and_prefix(tmp_path: Path) -> None:
    marker = {"<<marker:0xbaba:0>>": {"Fn::GetAtt": ["Deployer", "Arn"]}}
    properties = {
        "SourceObjectKeys": ["aaa.zip", "bbb.zip"],
        "SourceMarkers": [marker, marker],
        "SourceMarkersConfig": [{}, {"jsonEscape": True}],
        "DestinationBucketKeyPrefix": "config",
    }
    files = dict(deployed_files(_assembly(tmp_path), properties, _render))
    assert set(files) == {"config/vending/policy.json", "config/notes.txt"}
    arn = "arn:aws:iam::111111111111:role/Deployer"
    assert json.loads(files["config/vending/policy.json"]) == {"role_arn": arn}
    assert files["config/notes.txt"].decode() == f"role {arn} twice {arn}"


def test_json_escape_keeps_the_document_valid_json(tmp_path: Path) -> None:
    properties = {
        "SourceObjectKeys": ["aaa.zip"],
        "SourceMarkers": [{"<<marker:0xbaba:0>>": 'quoted "value"'}],
        "SourceMarkersConfig": [{"jsonEscape": True}],
    }
    [(key, content)] = deployed_files(_assembly(tmp_path), properties, str)
    assert key == "vending/policy.json"
    assert json.loads(content) == {"role_arn": 'quoted "value"'}


def test_an_asset_missing_from_the_assembly_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ccc\.zip"):
        list(deployed_files(_assembly(tmp_path), {"SourceObjectKeys": ["ccc.zip"]}, str))
