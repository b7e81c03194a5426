"""`make demo` runs this: v1 -> healthy v2 -> broken v3 rolled back, exit 0 only as expected."""

from __future__ import annotations

import pytest
from stepdeploy_local.__main__ import main


def test_demo_exits_zero_with_expected_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "all outcomes as expected" in out
    rows = [line.split("  ") for line in out.splitlines() if line.startswith(("v2 ", "v3 ", "v4", "v5", "v6", "v7"))]
    table = [cells for row in rows if len(cells := [cell.strip() for cell in row if cell.strip()]) == 8]
    assert [(r[0], r[1], r[2], r[-2], r[-1]) for r in table] == [
        ("v2", "manual", "SUCCEEDED", "web:2", "yes"),
        ("v3", "manual", "FAILED HealthCheckFailed", "web:2", "yes"),
        ("v4", "ecr", "SUCCEEDED", "web:4", "yes"),
        ("v4 again", "ecr", "SKIPPED (AlreadyRunning)", "web:4", "yes"),
        ("v5", "ecr", "SUCCEEDED", "web:5", "yes"),
        ("v6 (queued)", "ecr", "SUCCEEDED", "web:6", "yes"),
        ("v5-hotfix", "ecr", "SKIPPED (StaleImage)", "web:6", "yes"),
        ("v7", "codepipeline", "SUCCEEDED", "web:7", "yes"),
    ]
    assert "[v3]" in out and "Rollback" in out  # live progress, state by state
