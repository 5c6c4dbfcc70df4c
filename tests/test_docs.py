"""The repository stands alone: its files point only at documents it contains."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".yaml",
    ".yml",
    ".json",
    ".cfg",
    ".toml",
    ".txt",
    ".html",
    ".js",
    ".css",
    ".sh",
    ".conf",
    ".ini",
}
SKIPPED_FOLDERS = {
    ".git",
    ".venv",
    "build",
    ".ci/work",
    "node_modules",
    ".hypothesis",
    ".pytest_cache",
    "tacro_cds.egg-info",
    "__pycache__",
    "instance",
}
# Names of working notes kept outside the repository; written in pieces so this file does not match.
OUTSIDE_DOCUMENTS = [
    "DATA" + "-PROFILE",
    "CDS-HOOKS" + "-NOTES",
    "clinical" + "-reference",
    "../" + "shared",
    "STYLE" + ".md",
    "tacrolimus-rif" + "-guideline",
]
MARKDOWN_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s#]+)")
# A relative link to a section: [text](page.md#section) or [text](#section) on the same page.
SECTION_LINK = re.compile(r"\]\((?!https?://|mailto:)([^)\s#]*\.md)?#([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _repository_files():
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if any(
            relative == folder or relative.startswith(folder + "/") or f"/{folder}/" in f"/{relative}"
            for folder in SKIPPED_FOLDERS
        ):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in {"Dockerfile", "run"}):
            yield path


def test_no_file_points_outside_the_repository():
    offenders = []
    for path in _repository_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{path.relative_to(ROOT)}: {name}" for name in OUTSIDE_DOCUMENTS if name in text]
    assert offenders == []


README_MAX_LINES = 250
DOCUMENTS = [
    "README.md",
    "CHANGELOG.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md")),
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_relative_links_resolve(document):
    source = ROOT / document
    missing = [
        target
        for target in MARKDOWN_LINK.findall(source.read_text(encoding="utf-8"))
        if not (source.parent / target).exists()
    ]
    assert missing == []


def test_readme_stays_a_short_reference():
    """The README says what the service is, how to run and test it, and where the rest lives; the
    detail belongs in docs/ and the history in git and CHANGELOG.md."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_test_command_is_the_one_ci_runs():
    """.ci/run runs the README's test command verbatim: the two must not drift apart."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = [line for line in ci if line.startswith("python3 -m venv") and "pytest" in line]
    assert len(command) == 1
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert "    " + command[0] in readme


def _anchors(page: Path) -> set[str]:
    """The section anchors a Markdown renderer makes of a page's headings (GitHub's rule: lower case,
    punctuation dropped, spaces as hyphens)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in HEADING.findall(text)}


@pytest.mark.parametrize("document", DOCUMENTS)
def test_section_links_name_a_heading(document):
    source = ROOT / document
    missing = [
        f"{page}#{section}"
        for page, section in SECTION_LINK.findall(source.read_text(encoding="utf-8"))
        if (source.parent / (page or source.name)).exists()
        and section not in _anchors(source.parent / (page or source.name))
    ]
    assert missing == []
