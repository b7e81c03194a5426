"""Every security-scanner waiver of the templates, as one markdown table (resource, check, reason).

A waiver lives on the resource it waives, with its reason:
  checkov:  Metadata: {checkov: {skip: [{id: CKV_AWS_116, comment: <reason>}]}}
  cfn-lint: Metadata: {cfn-lint: {config: {ignore_checks: [ES6000]}}, cfn-lint-waivers: {ES6000: <reason>}}
(cfn-lint's metadata has no place for a reason: ``cfn-lint-waivers`` holds it, one per ignored check).

    python tools/waivers.py [--check] [TEMPLATE ...]      (default: the scanned templates)

--check: exit 1 with the problems if a waiver has no reason, a reason waives nothing, or a template waives a
check for all its resources (template-level Metadata): the scanners would still pass, the waiver would not
be reviewable.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "layers" / "common", ROOT / "local"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from stepdeploy_local import template  # noqa: E402

DEFAULT_TEMPLATES = ("template.yaml", "examples/pipeline/pipeline.yaml", "layers/common/stepdeploy/stacks/app.yaml")
MIN_REASON = 40  # characters: a reason says why this resource is safe as it is, not just "n/a"


@dataclass(frozen=True)
class Waiver:
    template: str
    resource: str
    scanner: str  # checkov | cfn-lint
    check: str
    reason: str


def _cfn_lint_ignores(metadata: dict[str, Any]) -> list[str]:
    return [str(c) for c in metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])]


def waivers(name: str, tpl: dict[str, Any]) -> list[Waiver]:
    found = []
    for logical, res in tpl.get("Resources", {}).items():
        metadata = res.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            found.append(Waiver(name, logical, "checkov", str(skip["id"]), str(skip.get("comment", "")).strip()))
        reasons = metadata.get("cfn-lint-waivers", {})
        for check in _cfn_lint_ignores(metadata):
            found.append(Waiver(name, logical, "cfn-lint", check, str(reasons.get(check, "")).strip()))
    return found


def problems(name: str, tpl: dict[str, Any]) -> list[str]:
    found = [
        f"{w.template} {w.resource}: {w.scanner} {w.check} is waived without a reason of {MIN_REASON}+ characters"
        for w in waivers(name, tpl)
        if len(w.reason) < MIN_REASON
    ]
    for logical, res in tpl.get("Resources", {}).items():
        metadata = res.get("Metadata", {})
        for check in set(metadata.get("cfn-lint-waivers", {})) - set(_cfn_lint_ignores(metadata)):
            found.append(f"{name} {logical}: cfn-lint-waivers gives a reason for {check}, which it does not ignore")
    top = tpl.get("Metadata", {})
    if "checkov" in top or _cfn_lint_ignores(top):
        found.append(f"{name}: template-level waivers apply to every resource; waive on the resource instead")
    return found


def table(rows: list[Waiver]) -> str:
    lines = ["| Template | Resource | Check | Reason |", "|---|---|---|---|"]
    for w in sorted(rows, key=lambda w: (w.template, w.check, w.resource)):
        reason = w.reason.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {w.template} | {w.resource} | {w.scanner} {w.check} | {reason} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("templates", nargs="*", default=list(DEFAULT_TEMPLATES))
    parser.add_argument("--check", action="store_true", help="fail on waivers without a reason")
    args = parser.parse_args(argv)
    rows, issues = [], []
    for name in args.templates:
        tpl = template.load(ROOT / name)
        rows.extend(waivers(name, tpl))
        issues.extend(problems(name, tpl))
    sys.stdout.write(table(rows))
    if args.check and issues:
        sys.stderr.write("\n".join(issues) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
