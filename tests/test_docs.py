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


@pytest.mark.parametrize(
    "document", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
)
def test_relative_links_resolve(document):
    source = ROOT / document
    missing = [
        target
        for target in MARKDOWN_LINK.findall(source.read_text(encoding="utf-8"))
        if not (source.parent / target).exists()
    ]
    assert missing == []
