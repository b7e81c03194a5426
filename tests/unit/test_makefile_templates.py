"""make templates: cfn-lint checks each template once; the serverless rules fail only on the scanned templates
(SCAN_REPORT_ONLY: scanned and reported, not failing). The recipe's cfn-lint lines, as make expands them."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVERLESS = "--append-rules cfn_lint_serverless.rules"
TEMPLATES = {"template.yaml", "examples/pipeline/pipeline.yaml", "layers/common/stepdeploy/stacks/app.yaml"}


def cfn_lint_runs(**variables: str) -> list[tuple[bool, bool, set[str]]]:
    """(fails the build, with the serverless rules, templates) of each cfn-lint line of the templates recipe,
    expanded by make from the Makefile's own text (only an echo runs: no target of the Makefile)."""
    recipe = re.search(r"^templates:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert recipe is not None
    lines = [line.strip() for line in recipe.group(1).splitlines() if "cfn-lint" in line]
    show = "show-cfn-lint:\n" + "".join(f"\t@echo '{line}'\n" for line in lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    out = subprocess.run(
        [
            "make",
            "-s",
            "-f",
            "Makefile",
            "--eval",
            show,
            "show-cfn-lint",
            "BIN=bin",
            *(f"{k}={v}" for k, v in variables.items()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    runs = []
    for line in filter(None, (line.strip() for line in out.splitlines())):
        failing = not line.startswith("-")
        runs.append((failing, SERVERLESS in line, {w for w in line.split() if w.endswith(".yaml")}))
    return runs


def test_by_default_one_run_lints_and_scans_every_template() -> None:
    assert cfn_lint_runs() == [(True, True, TEMPLATES)]


def test_a_report_only_template_is_linted_but_its_serverless_findings_do_not_fail() -> None:
    pipeline = "examples/pipeline/pipeline.yaml"
    runs = cfn_lint_runs(SCANNED_TEMPLATES=" ".join(sorted(TEMPLATES - {pipeline})), SCAN_REPORT_ONLY=pipeline)
    failing = [templates for fails, _, templates in runs if fails]
    assert sorted(t for templates in failing for t in templates) == sorted(TEMPLATES)  # each linted once
    assert not any(pipeline in templates for fails, serverless, templates in runs if fails and serverless)
    assert (False, True, {pipeline}) in runs  # reported
