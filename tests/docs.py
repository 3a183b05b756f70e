"""The documentation pages under ``docs/``, for tests that keep their examples true."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def doc_page(name: str) -> str:
    """The text of ``docs/<name>``."""
    return (DOCS / name).read_text()


def doc_section(name: str, title: str) -> str:
    """The ``## title`` section of ``docs/<name>``, up to the next second-level heading outside code."""
    lines = doc_page(name).splitlines()
    start = lines.index(f"## {title}")
    body: list[str] = []
    fenced = False
    for line in lines[start + 1 :]:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            break
        body.append(line)
    return "\n".join(body)
