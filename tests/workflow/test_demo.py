"""`make demo` runs this: provision from an empty account, deploy, roll back, every trigger, an
infrastructure change planned then applied; exit 0 only as expected."""

from __future__ import annotations

import pytest
from stepdeploy_local.__main__ import main


def test_demo_exits_zero_with_expected_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "all outcomes as expected" in out
    rows = [
        line.split("  ")
        for line in out.splitlines()
        if line.startswith(("v1 ", "v2 ", "v3 ", "v4", "v5", "v6", "v7", "plan", "3 "))
    ]
    table = [cells for row in rows if len(cells := [cell.strip() for cell in row if cell.strip()]) == 10]
    assert [(r[0], r[1], r[2], r[3], r[-2], r[-1]) for r in table] == [
        ("v1 (provision)", "manual", "ROLLING", "SUCCEEDED", "techchallengeapp:1", "yes"),
        ("v2", "manual", "ROLLING", "SUCCEEDED", "techchallengeapp:2", "yes"),
        ("v3", "manual", "ROLLING", "FAILED HealthCheckFailed", "techchallengeapp:4", "yes"),
        ("v4", "ecr", "ROLLING", "SUCCEEDED", "techchallengeapp:5", "yes"),
        ("v4 again", "ecr", "ROLLING", "SKIPPED (AlreadyRunning)", "techchallengeapp:5", "yes"),
        ("v5", "ecr", "ROLLING", "SUCCEEDED", "techchallengeapp:6", "yes"),
        ("v6 (queued)", "ecr", "ROLLING", "SUCCEEDED", "techchallengeapp:7", "yes"),
        ("v5-hotfix", "ecr", "ROLLING", "SKIPPED (StaleImage)", "techchallengeapp:7", "yes"),
        ("v7", "codepipeline", "ROLLING", "SUCCEEDED", "techchallengeapp:8", "yes"),
        ("plan 3 tasks", "manual", "ROLLING", "PLANNED", "techchallengeapp:8", "yes"),
        ("3 tasks", "manual", "ROLLING", "SUCCEEDED", "techchallengeapp:8", "yes"),
        ("v3 (blue_green)", "manual", "BLUE_GREEN", "FAILED HealthCheckFailed", "web-bluegreen:1", "yes"),
        ("v7 (canary)", "manual", "CANARY", "SUCCEEDED", "web-canary:2", "yes"),
    ]
    failed = {r[0]: int(r[4].split(" of ")[0]) for r in table if " of " in r[4]}
    assert failed["v3"] > 0 and failed["v3 (blue_green)"] == 0 and failed["v7 (canary)"] == 0, failed
    rollouts = [f"techchallengeapp:{n}" for n in range(2, 9)]  # v3's rollback is :4 (through the stack)
    assert f"ECS rollouts after provisioning: 7 ({', '.join(rollouts)}): one per release, one per rollback" in out
    assert "change set CREATE: " in out and "change set UPDATE (applied)" in out
    assert "database initialised by a one-off ECS task: updatedb -s" in out
    assert "one-off database initialisations over the whole demo: 1" in out
    assert "[v3]" in out and "Rollback" in out  # live progress, state by state


def test_a_forked_part_of_the_demo_returns_its_result_or_raises_its_error() -> None:
    from stepdeploy_local.__main__ import _forked

    assert _forked(lambda: ("shown", [1, 2]))() == ("shown", [1, 2])
    failing = _forked(lambda: 1 // 0)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        failing()
