"""`make demo` runs this: v1 -> healthy v2 -> broken v3 rolled back, exit 0 only as expected."""

from __future__ import annotations

import pytest
from stepdeploy_local.__main__ import main


def test_demo_exits_zero_with_expected_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "all outcomes as expected" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("techchallengeapp:")]
    assert [(r[0], r[1], r[2], r[-2], r[-1]) for r in rows] == [
        ("techchallengeapp:v2", "SUCCEEDED", "-", "web:2", "yes"),
        ("techchallengeapp:v3", "FAILED", "HealthCheckFailed", "web:2", "yes"),
    ]
    assert "[v3]" in out and "Rollback" in out  # live progress, state by state
