"""S3 buckets and ``Custom::CDKBucketDeployment`` resources of the template, in the local S3.

The configuration documents the Lambdas decide with (the vending policy, the exchange
configuration) are objects of the kernel's config bucket, put there at deploy time by
``aws_s3_deployment.BucketDeployment``: a custom resource whose Lambda copies a staged asset (a
zip in the CDK assets bucket) into the destination bucket. Locally there is no assets bucket and no
custom-resource Lambda; this module does what that Lambda does, from the cloud assembly the template
came from: it finds the asset by the object key the resource names (``SourceObjectKeys``, listed in
the assembly's ``*.assets.json``), substitutes the deploy-time values (``SourceMarkers``: role ARNs
and other tokens, resolved with the local names) and puts every file under
``DestinationBucketKeyPrefix``. So the emulator runs the S3-backed document store for real.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from kernel_access.local.template import Resolver, StackTemplate

BUCKET_DEPLOYMENT: Final = "Custom::CDKBucketDeployment"


def create_bucket(s3: Any, resolver: Resolver, logical_id: str) -> str:
    """The bucket with the versioning the template gives it (other bucket settings are not emulated)."""
    name = resolver.physical_name(logical_id)
    s3.create_bucket(Bucket=name)
    props = resolver.resource_properties(logical_id)
    versioning = props.get("VersioningConfiguration")
    if isinstance(versioning, Mapping) and versioning.get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def asset_sources(cdk_out: Path) -> dict[str, Path]:
    """Object key in the assets bucket -> staged asset path, from every asset manifest."""
    sources: dict[str, Path] = {}
    for manifest in cdk_out.glob("*.assets.json"):
        files: Mapping[str, Any] = json.loads(manifest.read_text()).get("files", {})
        for asset in files.values():
            path = asset.get("source", {}).get("path")
            for destination in asset.get("destinations", {}).values():
                key = destination.get("objectKey")
                if path and key:
                    sources[str(key)] = cdk_out / str(path)
    return sources


def asset_files(source: Path) -> Iterator[tuple[str, bytes]]:
    """(relative key, content) of every file of a staged asset (a directory or a zip)."""
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            yield path.relative_to(source).as_posix(), path.read_bytes()
    else:
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield info.filename, archive.read(info)


def _substitute(content: bytes, values: Mapping[str, str], *, json_escape: bool) -> bytes:
    """Replace each deploy-time marker by its rendered value, as the deployment Lambda does."""
    if not values:
        return content
    text = content.decode("utf-8")
    for marker, value in values.items():
        text = text.replace(marker, json.dumps(value)[1:-1] if json_escape else value)
    return text.encode("utf-8")


def deployed_files(
    cdk_out: Path, properties: Mapping[str, Any], render: Callable[[Any], str]
) -> Iterator[tuple[str, bytes]]:
    """(object key, content) of every file one bucket deployment puts in place, each deploy-time
    marker replaced by ``render(value)`` (``value``: the marker's CloudFormation expression).

    Raises ``FileNotFoundError`` when a staged asset is not in ``cdk_out``.
    """
    sources = asset_sources(cdk_out)
    prefix = str(properties.get("DestinationBucketKeyPrefix") or "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    all_markers: list[Any] = properties.get("SourceMarkers") or []
    configs: list[Any] = properties.get("SourceMarkersConfig") or []
    for index, object_key in enumerate(properties.get("SourceObjectKeys") or []):
        source = sources.get(str(object_key))
        if source is None or not source.exists():
            raise FileNotFoundError(f"asset {object_key} is not staged in {cdk_out}")
        markers = all_markers[index] if index < len(all_markers) else {}
        config = configs[index] if index < len(configs) else {}
        json_escape = isinstance(config, Mapping) and config.get("jsonEscape") in (True, "true")
        values = {marker: render(value) for marker, value in (markers or {}).items()}
        for relative, content in asset_files(source):
            yield prefix + relative, _substitute(content, values, json_escape=json_escape)


def deploy(s3: Any, template: StackTemplate, resolver: Resolver, logical_id: str) -> list[str]:
    """Put the files of one bucket deployment in its (local) destination bucket; their s3:// URLs.

    Raises ``FileNotFoundError`` when the staged asset is not in the assembly (a template given
    without its ``cdk.out``).
    """
    if template.path is None:
        raise FileNotFoundError(f"{logical_id}: no cloud assembly to find the staged assets in")
    raw = template.resources[logical_id].get("Properties", {})
    props = resolver.resource_properties(logical_id)
    bucket = str(props["DestinationBucketName"])

    def render(value: Any) -> str:
        resolved = resolver.resolve(value, path=f"{logical_id}.SourceMarkers")
        return resolved if isinstance(resolved, str) else json.dumps(resolved)

    written: list[str] = []
    try:
        files = list(
            deployed_files(template.path.parent, {**props, "SourceMarkers": raw.get("SourceMarkers")}, render)
        )
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{logical_id}: {error}") from None
    for key, content in files:
        s3.put_object(Bucket=bucket, Key=key, Body=content)
        written.append(f"s3://{bucket}/{key}")
    return written
