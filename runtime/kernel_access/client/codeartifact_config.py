"""Write pip / npm / twine configuration for a CodeArtifact repository, the way
``aws codeartifact login`` does, with a token vended by the kernel.

* pip: ``[global] index-url = https://aws:TOKEN@<endpoint>simple/`` in the user's pip config;
* npm: ``registry=<endpoint>`` and ``//<host>/<path>:_authToken=TOKEN`` in ``~/.npmrc``;
* twine: a ``codeartifact`` section (repository, username ``aws``, password TOKEN) in ``~/.pypirc``,
  added to ``[distutils] index-servers``.

Other settings in those files are kept. Files are written atomically with mode 0600 (they hold a
bearer token). Rendering is separate from writing so ``--dry-run`` can show the result with the
token masked.
"""

from __future__ import annotations

import configparser
import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote, urlsplit

Tool = Literal["pip", "npm", "twine"]
TOOLS: Final[tuple[Tool, ...]] = ("pip", "npm", "twine")
MASK: Final = "****"
_REPOSITORY_FORMAT: Final[dict[Tool, str]] = {"pip": "pypi", "npm": "npm", "twine": "pypi"}
TWINE_SECTION: Final = "codeartifact"


def repository_endpoint(domain: str, owner: str, region: str, tool: Tool, repository: str) -> str:
    """``https://{domain}-{owner}.d.codeartifact.{region}.amazonaws.com/{format}/{repository}/``."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return (
        f"https://{domain}-{owner}.d.codeartifact.{region}.{suffix}/{_REPOSITORY_FORMAT[tool]}/{repository}/"
    )


def default_config_path(tool: Tool, environ: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    if tool == "pip":
        if env.get("PIP_CONFIG_FILE"):
            return Path(env["PIP_CONFIG_FILE"])
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            return Path(env.get("APPDATA", home)) / "pip" / "pip.ini"
        return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / "pip.conf"
    if tool == "npm":
        return Path(env["NPM_CONFIG_USERCONFIG"]) if env.get("NPM_CONFIG_USERCONFIG") else home / ".npmrc"
    return home / ".pypirc"


@dataclass(frozen=True)
class RenderedConfig:
    tool: Tool
    path: Path
    endpoint: str
    content: str
    masked: str


def render(tool: Tool, path: Path, endpoint: str, token: str) -> RenderedConfig:
    """The new content of ``path`` (current content kept, our keys replaced) and its masked twin."""
    if not endpoint.startswith("https://") or not endpoint.endswith("/"):
        raise ValueError("repository endpoint: must be an https:// URL ending in '/'")
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    renderer = {"pip": _render_pip, "npm": _render_npm, "twine": _render_twine}[tool]
    return RenderedConfig(
        tool, path, endpoint, renderer(current, endpoint, token), renderer(current, endpoint, MASK)
    )


def write(rendered: RenderedConfig) -> None:
    """Atomically replace the file with mode 0600 (created in the same directory, then renamed)."""
    directory = rendered.path.parent
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{rendered.path.name}.", dir=directory)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(rendered.content)
        os.replace(temporary, rendered.path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    os.chmod(rendered.path, 0o600)


def _parser(current: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys' case
    parser.read_string(current)
    return parser


def _dump(parser: configparser.RawConfigParser) -> str:
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def _render_pip(current: str, endpoint: str, token: str) -> str:
    parts = urlsplit(endpoint)
    secret = token if token == MASK else quote(token, safe="")
    index_url = f"https://aws:{secret}@{parts.netloc}{parts.path}simple/"
    parser = _parser(current)
    if not parser.has_section("global"):
        parser.add_section("global")
    parser.set("global", "index-url", index_url)
    return _dump(parser)


def _render_npm(current: str, endpoint: str, token: str) -> str:
    parts = urlsplit(endpoint)
    auth_key = f"//{parts.netloc}{parts.path}:_authToken"
    wanted = {"registry": endpoint, auth_key: token}
    lines = []
    for line in current.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in wanted or re.match(rf"^//{re.escape(parts.netloc)}/.*:_authToken$", key):
            continue
        lines.append(line)
    lines.extend(f"{key}={value}" for key, value in wanted.items())
    return "\n".join(lines) + "\n"


def _render_twine(current: str, endpoint: str, token: str) -> str:
    parser = _parser(current)
    if not parser.has_section("distutils"):
        parser.add_section("distutils")
    servers = parser.get("distutils", "index-servers", fallback="").split()
    if TWINE_SECTION not in servers:
        servers.append(TWINE_SECTION)
    parser.set("distutils", "index-servers", "\n" + "\n".join(servers))
    if not parser.has_section(TWINE_SECTION):
        parser.add_section(TWINE_SECTION)
    parser.set(TWINE_SECTION, "repository", endpoint)
    parser.set(TWINE_SECTION, "username", "aws")
    parser.set(TWINE_SECTION, "password", token)
    return _dump(parser)
