"""The README's sections, for tests that keep its examples true (the README is the documentation)."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(title: str) -> str:
    """The text of the ``## title`` section, up to the next second-level heading outside code."""
    lines = README.read_text().splitlines()
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
