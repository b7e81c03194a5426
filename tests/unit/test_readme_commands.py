"""The README's `make <target>` commands exist in the Makefile (a README that promises a missing
target is how `make bench` once went unnoticed)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_make_target_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    named = set(re.findall(r"`make ([a-z]+)", readme)) | set(re.findall(r"^make ([a-z]+)", readme, re.M))
    defined = set(re.findall(r"^([a-z]+):", makefile, re.M))
    assert {"demo", "test", "bench", "serve"} <= named
    assert named - defined == set()


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_file_the_readme_links_exists_and_every_doc_is_linked() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme))
    assert linked, "the README links its documentation"
    assert sorted(p for p in linked if not (ROOT / p).exists()) == []
    docs = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert docs - linked == set(), "a document the README does not link"
