"""The repository documents itself: the wire contract is docs/protocol.md, the README links to it,
and no document points at files outside the repository (a clone alone must be readable).

No server is needed: these tests read files only.
"""
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "docs" / "protocol.md"


def documents():
    """README.md, everything under docs/, native/README.md and every tests/*/README.md."""
    docs = [ROOT / "README.md", ROOT / "native" / "README.md"]
    docs += sorted((ROOT / "docs").rglob("*.md"))
    docs += sorted((ROOT / "tests").glob("*/README.md"))
    return [d for d in docs if d.is_file()]


# Paths and names of documents that live outside the repository (the project's shared notes,
# the original contract, its seed documents, a developers' guide that is not in the clone).
OUTSIDE = [
    re.compile(r"\.\./shared"),
    re.compile(r"/work/"),
    re.compile(r"\bshared/"),
    re.compile(r"\bnotes/"),
    re.compile(r"\bseeds/"),
    re.compile(r"\bSPEC\.md\b"),
    re.compile(r"\bSPEC §"),
    re.compile(r"\bDEVELOPERS\.md\b"),
    re.compile(r"shared documents"),
]


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_points_outside_the_repository(doc):
    bad = []
    for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        for pattern in OUTSIDE:
            if pattern.search(line):
                bad.append("%s:%d: %s" % (doc.relative_to(ROOT), n, line.strip()))
    assert not bad, "documents must not point outside the repository:\n" + "\n".join(bad)


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_stay_inside_the_repository_and_exist(doc):
    bad = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # URLs and anchors of the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if ROOT not in path.parents and path != ROOT:
            bad.append("%s: %s leaves the repository" % (doc.relative_to(ROOT), target))
        elif not path.exists():
            bad.append("%s: %s does not exist" % (doc.relative_to(ROOT), target))
    assert not bad, "\n".join(bad)


def test_readme_links_to_the_protocol_document():
    assert PROTOCOL.is_file()
    assert "](docs/protocol.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def protocol_sections():
    """Section numbers of docs/protocol.md: '## 2. …' -> '2', '### 2.3 …' -> '2.3'."""
    found = set()
    for line in PROTOCOL.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", line)
        if m:
            found.add(m.group(1))
    return found


def test_citations_of_protocol_sections_exist():
    """Every `docs/protocol.md §N` cited anywhere in the repository names a section that exists."""
    sections = protocol_sections()
    assert {"2.1", "2.2", "2.3", "2.4", "3", "4.3", "5", "7"} <= sections, sections
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    cite = re.compile(r"docs/protocol\.md §(\d+(?:\.\d+)*)(?:-§(\d+(?:\.\d+)*))?")
    bad = []
    for name in files:
        path = ROOT / name
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for m in cite.finditer(text):
            for number in filter(None, m.groups()):
                if number not in sections:
                    bad.append("%s: §%s" % (name, number))
    assert not bad, "cited sections missing from docs/protocol.md:\n" + "\n".join(bad)
