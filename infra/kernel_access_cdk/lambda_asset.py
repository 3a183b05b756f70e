"""The Lambda code asset: the installed ``kernel_access`` package and nothing else.

Built from wherever ``kernel_access`` is installed (editable checkout or a wheel in site-packages),
so a partner who ``pip install 'kernel-access[cdk]'`` synthesises the same asset as this repository.
Only ``*.py`` and ``py.typed`` are copied (no ``__pycache__``, tests or infra). The asset hash is our
own SHA-256 over the sorted relative paths and file contents: CDK's default fingerprint would also
see the temporary staging path and file modes, which differ between machines and runs.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aws_cdk import AssetHashType
from aws_cdk import aws_lambda as lambda_

PACKAGE_NAME = "kernel_access"


@dataclass(frozen=True)
class StagedPackage:
    """A directory holding ``kernel_access/`` ready to be zipped, and its content hash."""

    directory: Path
    sha256: str
    files: tuple[str, ...]


def package_directory(package: str = PACKAGE_NAME) -> Path:
    """Directory of the installed package (found through the import system, not the repo layout)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _wanted(relative: Path) -> bool:
    if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
        return False
    return relative.suffix == ".py" or relative.name == "py.typed"


def collect_files(source: Path) -> list[Path]:
    """Relative paths of the files that belong in the asset, sorted (POSIX order)."""
    return sorted(
        (path.relative_to(source) for path in source.rglob("*") if path.is_file()),
        key=lambda p: p.as_posix(),
    )


def stage_package(destination: Path, package: str = PACKAGE_NAME) -> StagedPackage:
    """Copy the package's source files under ``destination/<package>/`` and hash them."""
    source = package_directory(package)
    digest = hashlib.sha256()
    copied: list[str] = []
    for relative in collect_files(source):
        if not _wanted(relative):
            continue
        name = f"{package}/{relative.as_posix()}"
        content = (source / relative).read_bytes()
        # Length-prefixed fields: no two different trees can produce the same byte stream.
        for field in (name.encode(), content):
            digest.update(len(field).to_bytes(8, "big"))
            digest.update(field)
        target = destination / package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        copied.append(name)
    return StagedPackage(destination, digest.hexdigest(), tuple(copied))


@cache
def staged_kernel_access() -> StagedPackage:
    """Stage once per process; every function in the app shares the same asset."""
    directory = Path(tempfile.mkdtemp(prefix="kernel-access-asset-"))
    # CDK copies the directory into the cloud assembly when the asset is created, so the
    # staging directory is only needed while the app is being built.
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return stage_package(directory)


def kernel_access_code() -> lambda_.Code:
    """``lambda_.Code`` for the ``kernel_access`` package with a machine-independent hash."""
    staged = staged_kernel_access()
    return lambda_.Code.from_asset(
        str(staged.directory),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=staged.sha256,
    )
