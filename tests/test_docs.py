"""The README and the pages under docs/ stand alone: every relative link resolves, and no text points
at documents outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import DOCS, REPO

PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _outside_code(text: str) -> str:
    kept, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def _anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a page, and explicit ``<a id="...">`` targets."""
    anchors = set()
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
        anchors.update(re.findall(r'<a id="([^"]+)"></a>', line))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text()
    broken = []
    for target in LINK.findall(_outside_code(text)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (
            anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved.read_text())
        ):
            broken.append(target)
    assert broken == []


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    assert lines[3].startswith("make synth")
    assert lines[4].startswith("make test")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_reference_outside_the_repository(page: Path) -> None:
    found = re.findall(r"DESIGN\.md|\bthe seed\b|\bthe issue\b|\bissue's\b", page.read_text())
    assert found == []
