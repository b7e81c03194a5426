"""The generated fault matrix (issue 10, "Deliver 2"): its representative slice.

Cases come from the ASL through each scenario's fault-free path (stepdeploy_local.faultmatrix): a
new Task or Wait state joins without editing this file. The full matrix runs in ``make bench``
(``tools/bench.py --matrix``); here every scenario runs once without faults (which also proves every
Task and Wait state is reached), then one case per fault kind, chosen by ``faultmatrix.slice_of``.
"""

from __future__ import annotations

import pytest
from stepdeploy_local import faultmatrix as fm


@pytest.fixture(scope="module")
def baselines() -> list[tuple[fm.Baseline, fm.Run]]:
    return [fm.baseline(scenario) for scenario in fm.SCENARIOS]


def report(runs: list[fm.Run]) -> str:
    return "\n".join(f"{r.case.id}: {'; '.join(v)}" for r in runs if (v := fm.check(r)))


def test_every_task_and_wait_state_is_reached_by_a_scenario(baselines: list[tuple[fm.Baseline, fm.Run]]) -> None:
    assert fm.uncovered(base for base, _ in baselines) == [], "states no fault-free scenario reaches"


def test_every_scenario_holds_the_invariants_without_faults(baselines: list[tuple[fm.Baseline, fm.Run]]) -> None:
    assert report([run for _, run in baselines]) == ""


def test_an_unanswered_approval_runs_out_on_the_virtual_clock(baselines: list[tuple[fm.Baseline, fm.Run]]) -> None:
    held = [run for base, run in baselines if base.scenario.approval]
    assert held and all(run.result and run.result.status == "SUCCEEDED" for run in held)
    assert all(run.wall_seconds < 60 * fm.UNANSWERED_APPROVAL["timeout_minutes"] for run in held), "waited in wall time"


def test_the_matrix_slice_holds_the_invariants(baselines: list[tuple[fm.Baseline, fm.Run]]) -> None:
    cases = fm.slice_of(case for base, _ in baselines for case in fm.cases(base))
    assert {case.kind for case in cases} == set(fm.KINDS), "one case per fault kind"
    assert report([fm.run_case(case) for case in cases]) == ""
