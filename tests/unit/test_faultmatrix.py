"""The fault matrix's generator and invariant checker, on made-up runs (no world)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from stepdeploy_local import faultmatrix as fm
from stepdeploy_local.world import ExecutionResult

OLD, NEW = "arn:aws:ecs:us-east-1:1:task-definition/web:1", "arn:aws:ecs:us-east-1:1:task-definition/web:2"
IMAGE = "repo@sha256:new"
SCENARIO = fm.SCENARIOS[1]  # service-broken


def execution(path: list[str], status: str = "FAILED", error: str | None = "HealthCheckFailed", cause: str = "") -> Any:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    events = [{"type": "TaskStateEntered", "timestamp": t, "stateEnteredEventDetails": {"name": n}} for n in path]
    return ExecutionResult("arn:x:exec", "d-1", status, error, cause, None, {}, events, 1.0, 1.0)


def held(**changes: Any) -> fm.Run:
    """A rolled-back deployment that holds every invariant; ``changes`` break one."""
    result = execution(["Normalize", "Guard", "Rollback", "RecordRolledBack"], cause="... rolled back to web:1")
    run = fm.Run(
        fm.Case(SCENARIO, "CheckHealth", "permanent", "deploy", 1),
        result=result,
        before=OLD,
        image=IMAGE,
        running=OLD,
        running_image="repo@sha256:old",
        records=[{"outcome": "ROLLED_BACK"}],
        notes=[{"attributes": {"severity": "WARNING"}, "message": {}}],
        followup=execution(["Deployed"], "SUCCEEDED", None),
        init_runs=0,
    )
    for key, value in changes.items():
        setattr(run, key, value)
    return run


def test_a_run_that_holds_everything_has_no_violations() -> None:
    assert fm.check(held()) == []


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"result": execution(["Guard"], cause='{"errorType": "KeyError", "stackTrace": []}')}, "raw trace"),
        ({"result": execution(["Guard"], error="States.Runtime")}, "neither a stepdeploy error name"),
        ({"result": execution(["Guard"], error="RuntimeError", cause="")}, "neither a stepdeploy error name"),
        ({"result": execution(["Guard"], "RUNNING", None)}, "did not end"),
        ({"running": NEW}, "did not pass its gates"),
        ({"locks": ["techchallenge/web"]}, "lock is still held"),
        ({"settled": False}, "status-change rule never processed"),
        ({"records": []}, "0 deployment records"),
        ({"records": [{"outcome": "ROLLED_BACK"}] * 2}, "2 deployment records"),
        ({"records": [{"outcome": "SUCCEEDED"}]}, "the record says SUCCEEDED"),
        ({"notes": []}, "0 notifications for 1 record"),
        ({"notes": [{"attributes": {"severity": "INFO"}, "message": {}}]}, "severity INFO, expected WARNING"),
        ({"init_runs": 2}, "database init ran 2 times"),
        ({"followup": execution(["Rejected"], "FAILED", "DeploymentInProgress")}, "follow-up healthy deployment"),
        ({"harness_error": "TimeoutError: stuck"}, "did not run to its end"),
    ],
)
def test_each_broken_invariant_is_named(changes: dict[str, Any], fragment: str) -> None:
    violations = fm.check(held(**changes))
    assert any(fragment in v for v in violations), violations


def test_a_transient_fault_must_end_as_without_it() -> None:
    run = held(case=fm.Case(SCENARIO, "Deploy", "transient", "deploy", 1, expected=("FAILED", "RolloutFailed")))
    assert any("as without the fault it ends FAILED/RolloutFailed" in v for v in fm.check(run))


def test_an_unverified_revision_is_accepted_when_a_person_is_told() -> None:
    cause = "rollback to web:1 then failed. The service needs attention."
    result = execution(["Guard", "Rollback", "RecordRollbackFailed"], error="RollbackFailed", cause=cause)
    notes = [{"attributes": {"severity": "CRITICAL"}, "message": {}}]
    assert fm.check(held(result=result, running=NEW, notes=notes, records=[{"outcome": "ROLLBACK_FAILED"}])) == []
    assert fm.check(held(result=result, running=NEW, records=[{"outcome": "ROLLBACK_FAILED"}])) == [
        "notification severity WARNING, expected CRITICAL"
    ]


def test_an_alert_is_accepted_where_the_record_says_a_person_is_needed_and_only_there() -> None:
    """Found by the full matrix: an abort mid-rollback leaves the revision that ran before, not verified
    again; the product alerts (its record says so), which is not a violation; an alert without a cause
    that says a person is needed still is."""
    result = execution(["Guard", "Rollback", "WaitRollout"], "ABORTED", None)
    alert = [{"attributes": {"severity": "CRITICAL"}, "message": {}}]
    said = [{"outcome": "ABORTED", "cause": "... the rollback to web:1 was in progress ... A person is needed: ..."}]
    assert fm.check(held(result=result, notes=alert, records=said)) == []
    assert fm.check(held(result=result, notes=alert, records=[{"outcome": "ABORTED"}])) == [
        "notification severity CRITICAL, expected WARNING"
    ]


def test_a_follow_up_held_for_an_uncertain_init_is_accepted_only_when_a_person_was_told() -> None:
    """Found by the full matrix (stack-first, InitDatabase timeout): the init may have run, so the next deployment
    stops with DatabaseInitUncertain by design -- a violation only if the case's end did not ask for a person."""
    held_up = execution(["Guard", "ClaimDatabaseInit"], "FAILED", "DatabaseInitUncertain")
    told = execution(["InitDatabase"], error="DatabaseInitFailed", cause="... until a person checks ... needs a person")
    assert all("follow-up" not in v for v in fm.check(held(result=told, followup=held_up)))
    silent = execution(["InitDatabase"], error="DatabaseInitFailed", cause="the init timed out")
    assert any("follow-up healthy deployment" in v for v in fm.check(held(result=silent, followup=held_up)))


def test_the_new_revision_may_serve_once_it_passed_its_gates() -> None:
    assert fm.check(held(running=NEW, verified={NEW})) == []


def test_success_means_the_requested_image_serves() -> None:
    result = execution(["Guard", "RecordSucceeded"], "SUCCEEDED", None)
    ok = {"records": [{"outcome": "SUCCEEDED"}], "notes": [{"attributes": {"severity": "INFO"}, "message": {}}]}
    assert fm.check(held(result=result, running=NEW, running_image=IMAGE, **ok)) == []
    assert any("not the requested" in v for v in fm.check(held(result=result, **ok)))


def test_a_request_that_ended_before_the_service_was_known_needs_no_record() -> None:
    result = execution(["Normalize", "NotStarted"], error="InvalidDeploymentRequest")
    assert fm.check(held(result=result, records=[], notes=[])) == []


def test_the_pipeline_job_is_answered_exactly_once() -> None:
    cont = {"kind": "success", "continuationToken": "t"}
    fail = {"kind": "failure"}
    assert fm.check(held(job={"status": "Failed", "results": [cont, fail]})) == []
    assert any("2 final result" in v for v in fm.check(held(job={"status": "Failed", "results": [fail, fail]})))
    succeeded = {"status": "Succeeded", "results": [{"kind": "success"}]}
    assert any("Succeeded for an execution that ended FAILED" in v for v in fm.check(held(job=succeeded)))


def call(service: str, operation: str) -> fm.Call:
    return fm.Call(service, operation)


def test_arrivals_take_the_first_per_state_and_phase_and_their_calls() -> None:
    path = ["Guard", "Deploy", "WaitRollout", "CheckRollout", "WaitRollout", "CheckRollout", "CheckHealth"]
    path += ["Rollback", "WaitRollout", "CheckRollout", "RecordRolledBack"]
    invocations = [
        ("GuardDeploymentFunction", [call("dynamodb", "PutItem")]),
        ("UpdateServiceFunction", [call("ecs", "UpdateService")]),
        ("CheckRolloutFunction", [call("ecs", "DescribeServices")]),
        ("CheckRolloutFunction", [call("ecs", "DescribeServices")]),
        ("CheckHealthFunction", []),
        ("UpdateServiceFunction", [call("ecs", "DescribeServices"), call("ecs", "UpdateService")]),
        ("CheckRolloutFunction", [call("ecs", "DescribeServices")]),
        ("RecordOutcomeFunction", [call("dynamodb", "PutItem")]),
    ]
    arrivals = fm.arrivals(execution(path), invocations)
    got = [(a.state, a.arrival, a.phase, len(a.calls_before)) for a in arrivals]
    assert got == [
        ("Guard", 1, "deploy", 0),
        ("Deploy", 1, "deploy", 0),
        ("WaitRollout", 1, "deploy", 0),
        ("CheckRollout", 1, "deploy", 0),
        ("CheckHealth", 1, "deploy", 0),
        ("Rollback", 1, "rollback", 0),
        ("WaitRollout", 3, "rollback", 0),
        ("CheckRollout", 3, "rollback", 2),
        ("RecordRolledBack", 1, "rollback", 0),
    ]
    assert arrivals[5].calls == (call("ecs", "DescribeServices"), call("ecs", "UpdateService"))


def test_cases_come_from_the_arrivals_by_state_type() -> None:
    arrivals = (
        fm.Arrival("Guard", "Task", 1, "deploy", (call("ecs", "DescribeServices"), call("dynamodb", "PutItem"))),
        fm.Arrival("InitDatabase", "Task", 1, "deploy"),
        fm.Arrival("WaitRollout", "Wait", 3, "rollback"),
        fm.Arrival("CheckRollout", "Task", 3, "rollback", (call("ecs", "DescribeServices"),), (call("ecs", "X"),) * 0),
    )
    base = fm.Baseline(SCENARIO, (), "FAILED", "HealthCheckFailed", arrivals)
    got = [(c.state, c.kind, c.expected, c.call) for c in fm.cases(base)]
    expected = ("FAILED", "HealthCheckFailed")
    assert got == [
        ("Guard", "transient", expected, None),
        ("Guard", "permanent", None, None),
        ("Guard", "timeout", None, None),
        ("Guard", "api", None, call("ecs", "DescribeServices")),
        ("Guard", "api-landed", None, call("dynamodb", "PutItem")),
        ("InitDatabase", "timeout", None, None),
        ("InitDatabase", "placement", expected, None),
        ("InitDatabase", "placement-permanent", None, None),
        ("WaitRollout", "abort", None, None),
        ("CheckRollout", "transient", expected, None),
        ("CheckRollout", "permanent", None, None),
        ("CheckRollout", "timeout", None, None),
        ("CheckRollout", "api", None, call("ecs", "DescribeServices")),
    ]


def test_every_task_and_wait_state_of_the_asl_counts_for_coverage() -> None:
    states = fm.asl_states()
    expected = sorted(n for n, s in states.items() if s["Type"] in ("Task", "Wait"))
    assert fm.uncovered([]) == expected and "InitDatabase" in expected and "WaitRollout" in expected
    assert fm.task_function(states["Guard"]) == "GuardDeploymentFunction"
    assert fm.task_function(states["InitDatabase"]) is None


def test_the_slice_has_one_case_per_kind_spread_over_scenarios() -> None:
    a, b = fm.SCENARIOS[0], fm.SCENARIOS[1]
    pool = [
        fm.Case(s, st, k, ph, 1) for s in (a, b) for st, ph in (("X", "deploy"), ("Y", "rollback")) for k in fm.KINDS
    ]
    chosen = fm.slice_of(pool, (a, b))
    assert [c.kind for c in chosen] == list(fm.KINDS)
    assert {c.scenario.name for c in chosen} == {a.name, b.name}
    assert chosen[0].phase == "rollback"  # the rollback phase comes first
