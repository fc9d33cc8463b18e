"""The repository's documentation stands on its own: its links resolve, and nothing cites a file outside it.

Every relative Markdown link in README.md, docs/, examples/, bench/ and deploy/ must name a file
of the repository, and a ``#fragment`` into a Markdown file must name one of its headings. No
file under src/, tests/, docs/, examples/, bench/ or README.md may cite reference notes kept
outside the repository, by name or by section number: code and tests cite docs/protocol.md and
docs/architecture.md by heading instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MARKDOWN_DIRS = ("docs", "examples", "bench", "deploy")
CITING_DIRS = ("src", "tests", "docs", "examples", "bench")
TEXT_SUFFIXES = frozenset({".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".yaml", ".yml", ".js", ".html"})
SKIPPED_PARTS = frozenset({"node_modules", ".venv", "__pycache__", ".git"})

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

_FOREIGN_CITATION = re.compile(
    r"(?:PROTOCOL|ARCHITECTURE|SERVER_API)\.md"  # the reference notes, by name
    r"|(?:\.\.|/work)/shared\b"  # the directory they are kept in
    r"|\u00a7\s?\d"  # their numbered sections
)


def _files(dirs: tuple[str, ...], suffixes: frozenset[str]) -> Iterator[Path]:
    for name in dirs:
        for path in sorted((ROOT / name).rglob("*")):
            parts = path.relative_to(ROOT).parts
            skipped = SKIPPED_PARTS.intersection(parts) or any(part.endswith(".egg-info") for part in parts)
            if path.is_file() and path.suffix in suffixes and not skipped:
                yield path


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *_files(MARKDOWN_DIRS, frozenset({".md"}))]


def _citing_files() -> list[Path]:
    return [ROOT / "README.md", *_files(CITING_DIRS, TEXT_SUFFIXES)]


def _prose(markdown: str) -> str:
    """The Markdown without fenced code blocks and code spans, where brackets are no links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", markdown))


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def _anchors(markdown_file: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_FENCE.sub("", markdown_file.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(markdown_file: Path) -> list[str]:
    """The links of ``markdown_file`` that name a missing file or a missing heading."""
    broken: list[str] = []
    for target in _LINK.findall(_prose(markdown_file.read_text(encoding="utf-8"))):
        if _SCHEME.match(target):
            continue  # a URL: not this test's business
        path_part, _, fragment = target.partition("#")
        linked = (markdown_file.parent / path_part).resolve() if path_part else markdown_file
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif path_part and not linked.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif fragment and linked.suffix == ".md" and fragment not in _anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.relative_to(ROOT)}")
    return broken


def foreign_citations(path: Path) -> list[str]:
    """The lines of ``path`` that cite reference notes kept outside the repository."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return [
        f"{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        if _FOREIGN_CITATION.search(line)
    ]


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("markdown_file", _markdown_files(), ids=_relative)
def test_markdown_links_resolve_to_files_and_headings_in_the_repository(markdown_file: Path) -> None:
    """Every relative link of a Markdown file names an existing file (and heading) of the repository."""
    assert broken_links(markdown_file) == []


@pytest.mark.parametrize("path", _citing_files(), ids=_relative)
def test_files_cite_no_reference_notes_outside_the_repository(path: Path) -> None:
    """No source, test or document cites PROTOCOL/ARCHITECTURE/SERVER_API notes or their sections."""
    assert foreign_citations(path) == []


def test_broken_links_reports_missing_files_and_headings(tmp_path: Path) -> None:
    """The link check itself finds a missing file and a missing heading, and ignores code and URLs."""
    page = ROOT / "docs" / "protocol.md"
    sample = tmp_path / "sample.md"
    sample.write_text(
        "# Title\n\n"
        f"[ok]({page}#close-codes) [self](#title) [web](https://example.com/x.md)\n"
        f"[gone](missing.md) [heading]({page}#no-such-heading)\n"
        "`[code](ignored.md)`\n\n```\n[block](ignored-too.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(sample) == [
        "missing.md: no such file",
        f"{page}#no-such-heading: no heading #no-such-heading in docs/protocol.md",
    ]


def test_foreign_citations_finds_names_directories_and_section_numbers(tmp_path: Path) -> None:
    """The citation check finds each form a citation of the outside notes takes."""
    sample = tmp_path / "sample.py"
    names = ("PROTOCOL", "ARCHITECTURE", "SERVER_API")
    outside = "/".join(("..", "shared", "notes"))
    lines = [f"see {name}.md" for name in names] + [outside, "as in \u00a7 7", "docs/protocol.md"]
    sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [hit.split(":")[0] for hit in foreign_citations(sample)] == ["1", "2", "3", "4", "5"]
