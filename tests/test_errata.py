"""docs/errata.md is the course's own errata page, and docs/references.md its reference list.

Every errata tag in the course ("ERRATA 4.4", "ERRATA 4.1–4.5", "ERRATA G7", "ERRATA Example 3",
"ERRATA, "Exercises" 3") must resolve to an entry of the page; every entry must name places in the course
that exist, including at least one file that carries its tag; no entry may appear twice. Every paper in
the reference list must be cited, by its first author's surname, in each course file the list names.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ERRATA_PAGE = ROOT / "docs" / "errata.md"
REFERENCES = ROOT / "docs" / "references.md"
SCANNED = ("notebooks", "solutions", "exercises", "course_lib", "tests", "tools")

_ID = r"(?:G\d+|\d+\.\d+)"
_LIST_SEP = r"\s*(?:[–-]|,(?:\s*and)?|;|\s and)\s*"
TAG = re.compile(rf"\bERRATA,?\s+\(?({_ID}(?:{_LIST_SEP}{_ID})*)")
EXAMPLE_TAG = re.compile(r"\bERRATA,?\s+\(?Example (\d+)")
EXERCISE_TAG = re.compile(r"\bERRATA,?\s+\(?\"Exercises\",?\s+(\d+)")
WORD = re.compile(r"\bERRATA\b")

ENTRY = re.compile(r'^### <a id="errata-([^"]+)"></a>(\S+(?: \d+)?) · ', re.M)
EXAMPLE_SECTION = re.compile(r'^## <a id="example-(\d+)"></a>§\d+\.\d+ Example (\d+) · ', re.M)
HEADING = re.compile(r"^#{2,3} ", re.M)
COURSE_PATH = re.compile(r"`((?:notebooks|solutions|exercises|course_lib|tests|tools|docs)/[\w./-]+\.(?:py|ipynb|md))`")
PAPER = re.compile(r"^\* \*\*([^\n]+?) \((\d{4})\)\.\*\*(.*?)(?=^\* |^## |\Z)", re.M | re.S)


def _expand(ids: str) -> list[str]:
    """'7.1–7.4, and 7.5' -> ['7.1', '7.2', '7.3', '7.4', '7.5']; a range stays within one example."""
    out = []
    for part in re.split(r"\s*(?:,(?:\s*and)?|;|\s and)\s*", ids):
        m = re.fullmatch(r"(\d+)\.(\d+)\s*[–-]\s*(\d+)\.(\d+)", part)
        if m is None:
            out.append(part)
            continue
        a, lo, b, hi = map(int, m.groups())
        assert a == b and lo < hi, f"malformed errata range {part!r}"
        out += [f"{a}.{i}" for i in range(lo, hi + 1)]
    return out


def parse_tags(text: str) -> tuple[list[str], int]:
    """The entry keys that ``text`` refers to ('4.4', 'G7', 'Example 3', 'Exercise 3'), and how many
    occurrences of the word ERRATA none of the forms could read.  Comment markers at line starts are
    dropped first, so a tag broken over two ``#`` lines still reads."""
    text = re.sub(r"\n[ \t]*#[ \t]?", "\n", text)
    keys, starts = [], set()
    for m in TAG.finditer(text):
        keys += _expand(m.group(1))
        starts.add(m.start())
    for pattern, name in ((EXAMPLE_TAG, "Example"), (EXERCISE_TAG, "Exercise")):
        for m in pattern.finditer(text):
            keys.append(f"{name} {m.group(1)}")
            starts.add(m.start())
    unread = sum(1 for m in WORD.finditer(text) if m.start() not in starts)
    return keys, unread


def course_tags() -> tuple[dict[str, set[str]], dict[str, int]]:
    """key -> the course files (relative paths) that carry it, and file -> count of unreadable tags."""
    where, unread = defaultdict(set), {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".md") or path == Path(__file__).resolve():
                continue
            keys, bad = parse_tags(path.read_text(encoding="utf-8"))
            rel = path.relative_to(ROOT).as_posix()
            for key in keys:
                where[key].add(rel)
            if bad:
                unread[rel] = bad
    return dict(where), unread


def errata_entries(page: str) -> tuple[dict[str, str], list[str]]:
    """key ('4.4', 'G7', 'Exercise 3', 'Example 3') -> the entry's text, up to the next heading; and the
    problems found on the way (an id given twice, an anchor that differs from its heading's id)."""
    entries, problems = {}, []
    heads = [m.start() for m in HEADING.finditer(page)] + [len(page)]
    for pattern, fmt in ((ENTRY, "{}"), (EXAMPLE_SECTION, "Example {}")):
        for m in pattern.finditer(page):
            anchor, shown = m.group(1), m.group(2)
            if anchor.replace("-", " ") != shown:
                problems.append(f"anchor {anchor!r} does not match heading id {shown!r}")
            key = fmt.format(shown)
            if key in entries:
                problems.append(f"errata entry {key} appears twice")
            entries[key] = page[m.start(): min(h for h in heads if h > m.start())]
    return entries, problems


PAGE = ERRATA_PAGE.read_text(encoding="utf-8")
ENTRIES, PAGE_PROBLEMS = errata_entries(PAGE)
TAGS, UNREAD = course_tags()


def _same_file(named: str, carrier: str) -> bool:
    """A notebook counts by its .py or .ipynb."""
    return Path(named).with_suffix("") == Path(carrier).with_suffix("")


def test_parser_reads_every_form():
    text = ('x (ERRATA 7.1–7.4, and 7.5–7.7 briefly) y ERRATA 8.13, 8.5, 8.11; 8.8 z (ERRATA G7). '
            '(ERRATA, Example 2) (ERRATA, "Exercises", 4) ERRATA ("Exercises" 2) ERRATA 1.1-1.3 '
            'ERRATA 4.4. (ERRATA\n# "Exercises" 5) and ERRATA 9.9')
    keys, unread = parse_tags(text)
    assert keys == ["7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "7.7", "8.13", "8.5", "8.11", "8.8", "G7",
                    "1.1", "1.2", "1.3", "4.4", "9.9", "Example 2", "Exercise 4", "Exercise 2", "Exercise 5"]
    assert unread == 0 and "9.9" not in ENTRIES  # an unknown id is read, and has no entry: its test fails
    assert parse_tags("see the ERRATA page")[1] == 1


def test_the_course_has_tags():
    assert len(TAGS) >= 50 and sum(map(len, TAGS.values())) >= 100


@pytest.mark.parametrize("key", sorted(TAGS))
def test_tag_resolves_to_an_entry(key):
    assert key in ENTRIES, f"'ERRATA {key}' (in {sorted(TAGS[key])}) has no entry in docs/errata.md"


def test_every_errata_word_is_a_readable_tag():
    assert not UNREAD, f"'ERRATA' that points to no entry id: {UNREAD}"


@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_entry_names_existing_places(key):
    text = ENTRIES[key]
    named = COURSE_PATH.findall(text if key.startswith("Example") else text.split("**In the course.**")[-1])
    assert key.startswith("Example") or "**In the course.**" in text, f"entry {key} has no 'In the course'"
    assert named, f"entry {key} names no notebook, exercise, module or test"
    missing = [p for p in named if not (ROOT / p).is_file()]
    assert not missing, f"entry {key} names files that do not exist: {missing}"
    carriers = TAGS.get(key, set())
    assert not carriers or any(_same_file(n, c) for n in named for c in carriers), \
        f"entry {key} names none of the files that carry its tag: {sorted(carriers)}"


def test_entries_are_unique_and_anchored():
    assert not PAGE_PROBLEMS, PAGE_PROBLEMS
    anchors = re.findall(r'<a id="([^"]+)"></a>', PAGE)
    assert len(anchors) == len(set(anchors)), "duplicate anchor in docs/errata.md"
    links = set(re.findall(r"\]\(#([^)]+)\)", PAGE))
    assert links <= set(anchors), f"links to missing anchors: {sorted(links - set(anchors))}"
    assert {f"Example {i}" for i in range(1, 9)} <= set(ENTRIES)


def test_every_path_on_the_page_exists():
    missing = sorted({p for p in COURSE_PATH.findall(PAGE) if not (ROOT / p).is_file()})
    assert not missing, f"docs/errata.md names files that do not exist: {missing}"


PAPERS = PAPER.findall(REFERENCES.read_text(encoding="utf-8"))


def test_references_parse():
    assert len(PAPERS) >= 25


@pytest.mark.parametrize("authors,year,rest", PAPERS, ids=[f"{a.split(',')[0]} {y}" for a, y, _ in PAPERS])
def test_paper_is_cited_where_listed(authors, year, rest):
    surname = re.split(r",| &| et al", authors)[0].strip()
    cited = re.findall(r"`((?:notebooks|solutions|course_lib|tools)/[\w./-]+|README\.md)`", rest)
    assert cited, f"{authors} ({year}) names no course file that cites it"
    for path in cited:
        file = ROOT / path
        assert file.is_file(), f"{authors} ({year}): {path} does not exist"
        assert re.search(rf"\b{re.escape(surname)}\b", file.read_text(encoding="utf-8")), \
            f"{path} does not cite {surname}"
