"""The Lambda code asset: the modules of ``kernel_access`` that the Lambda handlers import.

What ships is the *import closure* of the handler modules (``kernel_access/handlers/*.py``),
computed from the source with :mod:`ast` rather than listed by hand: every ``import`` and
``from ... import`` that names a ``kernel_access`` module, at module level or inside a function (the
runtime imports lazily on purpose, to keep cold starts small), followed transitively, plus each
module's parent packages (``__init__.py`` runs before any submodule) and ``py.typed``. Imports under
``if TYPE_CHECKING:`` never run and are not followed. The CLI, the partner client and the local
emulator (which needs moto, PyJWT and cryptography) therefore stay out of the asset, and editing
them neither grows the asset nor changes its hash (which would redeploy both functions).

A closure computed from the source can only be wrong in one direction that matters: a dynamic import
(``importlib.import_module`` with a computed name) would be missed. The runtime has none, and the
test suite runs the handlers under moto and checks that every ``kernel_access`` module they load is
in the asset (and that every module of the asset is loaded).

Built from wherever ``kernel_access`` is installed (editable checkout or a wheel in site-packages),
so a partner who ``pip install 'kernel-access[cdk]'`` synthesises the same asset as this repository.
The asset hash is our own SHA-256 over the sorted relative paths and file contents: CDK's default
fingerprint would also see the temporary staging path and file modes, which differ between machines
and runs.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import importlib.util
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aws_cdk import AssetHashType
from aws_cdk import aws_lambda as lambda_

PACKAGE_NAME = "kernel_access"
#: Subpackage whose modules are the Lambda entry points (``contract`` names handlers in it).
HANDLERS_PACKAGE = "handlers"


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


def _module_name(package: str, relative: Path) -> str:
    """``kernel_access/policy/__init__.py`` -> ``kernel_access.policy``; ``a/b.py`` -> ``package.a.b``."""
    parts = [package, *relative.with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_files(source: Path, package: str) -> dict[str, Path]:
    """Every module of the package by dotted name (no ``__pycache__`` or hidden directories)."""
    modules: dict[str, Path] = {}
    for path in source.rglob("*.py"):
        relative = path.relative_to(source)
        if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
            continue
        modules[_module_name(package, relative)] = relative
    return modules


def _is_type_checking_block(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Dotted names a module may import at run time: ``import a.b`` gives ``a.b``; ``from a import b``
    gives ``a`` and ``a.b`` (``b`` may be a submodule); relative imports are resolved against
    ``module``. Nodes under ``if TYPE_CHECKING:`` are skipped (their ``else`` branch is not)."""
    names: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking_block(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                # A package's own name is the anchor of level 1; a module's is its parent package.
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        pending.extend(ast.iter_child_nodes(node))
    return names


def import_closure(source: Path, roots: Iterable[str], package: str = PACKAGE_NAME) -> set[str]:
    """Dotted names of the package's modules that importing ``roots`` can load, with their parents.

    Only modules of ``package`` are followed; third-party imports (boto3, Powertools) come from the
    Lambda runtime and its layer.
    """
    modules = _module_files(source, package)
    closure: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in closure or name not in modules:
            continue
        closure.add(name)
        parts = name.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        pending.extend(".".join(parts[:end]) for end in range(1, len(parts)))
        relative = modules[name]
        tree = ast.parse((source / relative).read_text(), filename=str(relative))
        imported = _imported_names(tree, name, relative.name == "__init__.py")
        pending.extend(sorted(n for n in imported if n == package or n.startswith(f"{package}.")))
    return closure


def handler_modules(source: Path, package: str = PACKAGE_NAME) -> list[str]:
    """The Lambda entry-point modules: every module of ``<package>.handlers``."""
    directory = source / HANDLERS_PACKAGE
    return sorted(
        f"{package}.{HANDLERS_PACKAGE}.{path.stem}"
        for path in directory.glob("*.py")
        if path.name != "__init__.py"
    )


def collect_files(source: Path, package: str = PACKAGE_NAME) -> list[Path]:
    """Relative paths of the files that belong in the asset, sorted (POSIX order): the modules of
    the handlers' import closure and ``py.typed``."""
    modules = _module_files(source, package)
    closure = import_closure(source, handler_modules(source, package), package)
    wanted = [modules[name] for name in closure]
    if (source / "py.typed").is_file():
        wanted.append(Path("py.typed"))
    return sorted(wanted, key=lambda p: p.as_posix())


def stage_package(destination: Path, package: str = PACKAGE_NAME) -> StagedPackage:
    """Copy the package's source files under ``destination/<package>/`` and hash them."""
    source = package_directory(package)
    digest = hashlib.sha256()
    copied: list[str] = []
    for relative in collect_files(source, package):
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
