"""The README and ``docs/``: every relative link resolves, and the README stays one page.

A link is checked the way GitHub renders it: ``[text](path#anchor)`` or ``![alt](path)``
outside code, ``path`` relative to the page that holds it, ``#anchor`` one of the target page's
headings turned into GitHub's anchor (lower case, punctuation dropped, spaces as ``-``, repeats
numbered ``-1``, ``-2``, ...). Links to other hosts are not followed (the tests run offline).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks, inline code removed."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, INLINE_CODE.sub("", line)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text: ``Output: `metrics/``` -> ``output-metrics``."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings (code blocks excluded), repeats numbered as GitHub does."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Every relative link of ``page`` that does not resolve, as ``page:line: target (why)``."""
    problems = []
    text = page.read_text(encoding="utf-8")
    for number, line in prose_lines(text):
        for match in LINK.finditer(line):
            target = match.group(1)
            if SCHEME.match(target):
                continue
            where = f"{page.relative_to(root)}:{number}: {target}"
            path_part, _, anchor = target.partition("#")
            resolved = (page.parent / path_part).resolve() if path_part else page
            if not resolved.is_relative_to(root):
                problems.append(f"{where} (outside the repository)")
            elif not resolved.exists():
                problems.append(f"{where} (no such file)")
            elif anchor:
                if resolved.suffix != ".md":
                    problems.append(f"{where} (an anchor into a file that is not Markdown)")
                elif anchor not in anchors(resolved.read_text(encoding="utf-8")):
                    problems.append(f"{where} (no heading with that anchor)")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_is_one_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_the_docs_name_no_file_outside_the_repository() -> None:
    # Design notes and the style guide live outside the repository: a reader cannot open them.
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for name in ("DESIGN.md", "STYLE.md"):
            assert name not in text, f"{page.relative_to(ROOT)} names {name}"


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {
        (ROOT / m.group(1).partition("#")[0]).resolve()
        for _, line in prose_lines(readme)
        for m in LINK.finditer(line)
        if not SCHEME.match(m.group(1))
    }
    # A page is reachable when the README links it, or links a page that links it.
    reachable = set(linked)
    for page in list(linked):
        if page.suffix == ".md" and page.exists():
            text = page.read_text(encoding="utf-8")
            reachable |= {
                (page.parent / m.group(1).partition("#")[0]).resolve()
                for _, line in prose_lines(text)
                for m in LINK.finditer(line)
                if not SCHEME.match(m.group(1)) and m.group(1).partition("#")[0]
            }
    unreached = [str(p.relative_to(ROOT)) for p in pages()[1:] if p.resolve() not in reachable]
    assert unreached == []


# ------------------------------------------------------------------------------------------
# The checker itself, on pages written here: it must catch what it claims to catch.


def test_slug_follows_githubs_rule() -> None:
    # Lower case; backticks, colons, parentheses and dots dropped; each space one hyphen, so
    # "rule (`--nodes auto`)" keeps the space before "--" and gives three hyphens.
    assert slug("The sizing rule (`--nodes auto`)") == "the-sizing-rule---nodes-auto"
    assert slug("Output: `metrics/`") == "output-metrics"
    assert (
        slug("Delivery: report.html and PostgreSQL (RDS)")
        == "delivery-reporthtml-and-postgresql-rds"
    )
    assert slug("4. Submit a job") == "4-submit-a-job"


def test_checker_finds_broken_links_and_ignores_code(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# A\n\n## Options\n\n## Options\n\n```\n# not a heading\n[x](missing-in-code.md)\n```\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# R\n\n"
        "[ok](docs/a.md) [ok](docs/a.md#options) [ok](docs/a.md#options-1) [ok](#r)\n"
        "[gone](docs/b.md)\n"
        "[bad anchor](docs/a.md#not-a-heading)\n"
        "[outside](../elsewhere.md)\n"
        "`[in code](nowhere.md)` [web](https://example.com/x.md)\n"
    )
    (tmp_path.parent / "elsewhere.md").write_text("# E\n")
    problems = broken_links(readme, root=tmp_path)
    assert problems == [
        "README.md:4: docs/b.md (no such file)",
        "README.md:5: docs/a.md#not-a-heading (no heading with that anchor)",
        "README.md:6: ../elsewhere.md (outside the repository)",
    ]
