"""Unit tests of the pure decision functions (stepdeploy.decisions): no AWS, no clock."""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import asdict, replace
from typing import Any

import pytest
from stepdeploy import decisions
from stepdeploy.decisions import (
    REGISTERABLE_KEYS,
    DeploymentView,
    GateResult,
    ProbeResult,
    ServiceView,
    advance_bake,
    alarm_gate,
    assess_rollout,
    body_matches,
    choose_container,
    container_image,
    describe_failure,
    first_rollout_state,
    next_task_definition,
    primary_gate,
    probe_gate,
    short_revision,
    target_gate,
    verify_rollback_target,
)
from stepdeploy.errors import (
    AlarmTriggered,
    HealthCheckFailed,
    InvalidDeploymentRequest,
    RolloutFailed,
    RolloutTimedOut,
)
from stepdeploy.models import BakeState, HealthPolicy, RolloutPolicy, RolloutState

TD_PREFIX = "arn:aws:ecs:eu-west-1:123456789012:task-definition/"
TD_OLD = TD_PREFIX + "web:7"
TD_NEW = TD_PREFIX + "web:8"
URL = "http://web.example.com/healthcheck/"


def deployment(
    status: str = "PRIMARY",
    task_definition: str = TD_NEW,
    rollout_state: str | None = "IN_PROGRESS",
    reason: str = "",
    desired: int = 2,
    running: int = 1,
    failed_tasks: int = 0,
    id: str = "ecs-svc/1111",  # noqa: A002 - mirrors the dataclass field
) -> DeploymentView:
    return DeploymentView(
        id=id,
        status=status,
        task_definition=task_definition,
        rollout_state=rollout_state,
        rollout_reason=reason,
        desired=desired,
        running=running,
        failed_tasks=failed_tasks,
    )


OLD_ACTIVE = deployment(status="ACTIVE", task_definition=TD_OLD, rollout_state="COMPLETED", running=1, id="ecs-svc/0")


def service(*deployments: DeploymentView, status: str = "ACTIVE") -> ServiceView:
    primary = next((d for d in deployments if d.status == "PRIMARY"), None)
    return ServiceView(
        cluster="prod",
        service="web",
        status=status,
        task_definition=primary.task_definition if primary else TD_OLD,
        deployments=tuple(deployments),
    )


def health(**overrides: Any) -> HealthPolicy:
    values: dict[str, Any] = {
        "url": URL,
        "expected_status": 200,
        "expected_body": "OK",
        "body_match": "exact",
        "probe_timeout_seconds": 5,
        "interval_seconds": 15,
        "healthy_threshold": 3,
        "unhealthy_threshold": 2,
        "max_checks": 12,
        "max_latency_ms": 2000,
    }
    values.update(overrides)
    return HealthPolicy(**values)


POLICY = RolloutPolicy(timeout_seconds=900, poll_seconds=30)


# --------------------------------------------------------------------------- assess_rollout


def test_rollout_completed_when_primary_runs_expected_revision() -> None:
    view = service(deployment(rollout_state="COMPLETED", running=2))
    state = RolloutState(elapsed_seconds=60, polls=2, wait_seconds=30)

    out = assess_rollout(view, TD_NEW, state, POLICY)

    assert out == RolloutState(
        status="COMPLETED", elapsed_seconds=90, polls=3, wait_seconds=0, detail="2/2 tasks running, 1 deployment(s)"
    )


def test_rollout_completed_while_old_deployment_still_listed() -> None:
    view = service(deployment(rollout_state="COMPLETED", running=2), OLD_ACTIVE)

    out = assess_rollout(view, TD_NEW, RolloutState(wait_seconds=30), POLICY)

    assert out.status == "COMPLETED"
    assert out.detail == "2/2 tasks running, 2 deployment(s)"


def test_rollout_in_progress_waits_one_poll_and_accumulates_elapsed() -> None:
    view = service(deployment(rollout_state="IN_PROGRESS", running=1), OLD_ACTIVE)
    state = RolloutState(status="IN_PROGRESS", elapsed_seconds=30, polls=1, wait_seconds=30)

    out = assess_rollout(view, TD_NEW, state, POLICY)

    assert out == RolloutState(
        status="IN_PROGRESS",
        elapsed_seconds=60,
        polls=2,
        wait_seconds=30,
        detail="1/2 tasks running, 2 deployment(s)",
    )
    # the input state is not modified
    assert state == RolloutState(status="IN_PROGRESS", elapsed_seconds=30, polls=1, wait_seconds=30)


def test_rollout_wait_is_clamped_to_remaining_time() -> None:
    view = service(deployment(rollout_state="IN_PROGRESS"))
    state = RolloutState(elapsed_seconds=60, polls=2, wait_seconds=30)

    out = assess_rollout(view, TD_NEW, state, RolloutPolicy(timeout_seconds=100, poll_seconds=30))

    assert (out.elapsed_seconds, out.wait_seconds) == (90, 10)


def test_rollout_poll_loop_times_out_exactly_at_deadline() -> None:
    policy = RolloutPolicy(timeout_seconds=100, poll_seconds=30)
    view = service(deployment(rollout_state="IN_PROGRESS"), OLD_ACTIVE)
    state = first_rollout_state(policy)
    seen: list[tuple[int, int, int]] = []

    with pytest.raises(RolloutTimedOut) as caught:
        for _ in range(10):
            state = assess_rollout(view, TD_NEW, state, policy)
            seen.append((state.elapsed_seconds, state.wait_seconds, state.polls))

    assert seen == [(30, 30, 1), (60, 30, 2), (90, 10, 3)]
    message = str(caught.value)
    assert "web:8 still IN_PROGRESS after 100s (deadline 100s)" in message
    assert "1/2 tasks running, 2 deployment(s)" in message


def test_rollout_timed_out_when_elapsed_passes_deadline() -> None:
    state = RolloutState(elapsed_seconds=880, polls=30, wait_seconds=30)

    with pytest.raises(RolloutTimedOut, match=r"after 910s \(deadline 900s\)"):
        assess_rollout(service(deployment()), TD_NEW, state, POLICY)


def test_rollout_not_timed_out_one_second_before_deadline() -> None:
    state = RolloutState(elapsed_seconds=869, polls=29, wait_seconds=30)

    out = assess_rollout(service(deployment()), TD_NEW, state, POLICY)

    assert (out.status, out.elapsed_seconds, out.wait_seconds) == ("IN_PROGRESS", 899, 1)


def test_rollout_completion_seen_at_deadline_still_completes() -> None:
    state = RolloutState(elapsed_seconds=870, polls=29, wait_seconds=30)

    out = assess_rollout(service(deployment(rollout_state="COMPLETED", running=2)), TD_NEW, state, POLICY)

    assert (out.status, out.elapsed_seconds) == ("COMPLETED", 900)


def test_rollout_failed_state_raises_with_reason() -> None:
    view = service(
        deployment(
            rollout_state="FAILED",
            reason="ECS deployment circuit breaker: tasks failed to start.",
            running=0,
            failed_tasks=3,
        ),
        OLD_ACTIVE,
    )

    with pytest.raises(RolloutFailed) as caught:
        assess_rollout(view, TD_NEW, RolloutState(elapsed_seconds=120, wait_seconds=30), POLICY)

    assert str(caught.value) == (
        "ECS rollout of web:8 FAILED after 150s: ECS deployment circuit breaker: tasks failed to start. "
        "(3 failed task(s))"
    )


def test_rollout_failed_without_reason() -> None:
    view = service(deployment(rollout_state="FAILED", reason=""))

    with pytest.raises(RolloutFailed, match="no reason given"):
        assess_rollout(view, TD_NEW, RolloutState(), POLICY)


def test_rollout_failed_when_primary_runs_another_revision() -> None:
    # circuit-breaker rollback: the old revision is PRIMARY again and reports COMPLETED
    view = service(
        deployment(task_definition=TD_OLD, rollout_state="COMPLETED", running=2, id="ecs-svc/2"),
        deployment(status="ACTIVE", rollout_state="FAILED", running=0),
    )

    with pytest.raises(RolloutFailed) as caught:
        assess_rollout(view, TD_NEW, RolloutState(wait_seconds=30), POLICY)

    message = str(caught.value)
    assert message.startswith("the PRIMARY deployment of web runs web:7, not web:8")
    assert "circuit breaker" in message


def test_rollout_failed_without_primary() -> None:
    view = service(deployment(status="ACTIVE"), OLD_ACTIVE)

    with pytest.raises(RolloutFailed, match=r"^service web has no PRIMARY deployment$"):
        assess_rollout(view, TD_NEW, RolloutState(), POLICY)


def test_rollout_failed_without_any_deployment() -> None:
    with pytest.raises(RolloutFailed, match="no PRIMARY deployment"):
        assess_rollout(service(), TD_NEW, RolloutState(), POLICY)


@pytest.mark.parametrize("status", ["DRAINING", "INACTIVE"])
def test_rollout_failed_when_service_not_active(status: str) -> None:
    view = service(deployment(rollout_state="COMPLETED", running=2), status=status)

    with pytest.raises(RolloutFailed, match=rf"^service web is {status}$"):
        assess_rollout(view, TD_NEW, RolloutState(), POLICY)


def test_no_circuit_breaker_single_deployment_at_desired_count_is_completed() -> None:
    view = service(deployment(rollout_state=None, desired=2, running=2))

    out = assess_rollout(view, TD_NEW, RolloutState(elapsed_seconds=30, polls=1, wait_seconds=30), POLICY)

    assert out == RolloutState(
        status="COMPLETED", elapsed_seconds=60, polls=2, wait_seconds=0, detail="2/2 tasks running, 1 deployment(s)"
    )


@pytest.mark.parametrize(
    "deployments",
    [
        pytest.param((deployment(rollout_state=None, running=1),), id="below-desired"),
        pytest.param(
            (deployment(rollout_state=None, running=2), replace(OLD_ACTIVE, rollout_state=None)),
            id="old-deployment-still-present",
        ),
    ],
)
def test_no_circuit_breaker_not_yet_completed(deployments: tuple[DeploymentView, ...]) -> None:
    out = assess_rollout(service(*deployments), TD_NEW, RolloutState(wait_seconds=30), POLICY)

    assert (out.status, out.wait_seconds) == ("IN_PROGRESS", 30)


@pytest.mark.parametrize(
    ("policy", "wait"),
    [
        (RolloutPolicy(timeout_seconds=900, poll_seconds=30), 30),
        (RolloutPolicy(timeout_seconds=60, poll_seconds=600), 60),
    ],
)
def test_first_rollout_state(policy: RolloutPolicy, wait: int) -> None:
    assert first_rollout_state(policy) == RolloutState(
        status="IN_PROGRESS", elapsed_seconds=0, polls=0, wait_seconds=wait, detail=""
    )


# --------------------------------------------------------------------------- body_matches


@pytest.mark.parametrize(
    ("body", "expected", "mode", "result"),
    [
        ("OK", "OK", "exact", True),
        ("OK\n", "OK", "exact", True),
        ("  OK \r\n", "OK", "exact", True),
        ("OK", " OK\n", "exact", True),
        ("ok", "OK", "exact", False),
        ("OK then", "OK", "exact", False),
        ("Error: db connection down", "OK", "exact", False),
        ("", "OK", "exact", False),
        ("status: OK (db up)", "OK", "contains", True),
        ("status: ok", "OK", "contains", False),
        ("Error: db connection down", "OK", "contains", False),
        ("OK 1.2.3", r"^OK \d+\.\d+", "regex", True),
        ("version 1.2.3 OK", r"^OK", "regex", False),
        ('{"status":"UP"}', r'"status"\s*:\s*"UP"', "regex", True),
        ("anything at all", None, "exact", True),
        ("", None, "contains", True),
        ("", None, "regex", True),
    ],
)
def test_body_matches(body: str, expected: str | None, mode: str, result: bool) -> None:
    assert body_matches(body, expected, mode) is result


# --------------------------------------------------------------------------- probe_gate


def test_probe_gate_passes() -> None:
    gate = probe_gate(ProbeResult(status=200, body="OK\n", latency_ms=120), health())

    assert gate == GateResult("http", True, "HTTP 200 'OK' in 120 ms")


def test_probe_gate_status_mismatch() -> None:
    gate = probe_gate(ProbeResult(status=503, body="Service Unavailable", latency_ms=40), health())

    assert gate == GateResult("http", False, f"GET {URL} returned HTTP 503, expected 200 (body 'Service Unavailable')")


def test_probe_gate_status_checked_before_body() -> None:
    gate = probe_gate(ProbeResult(status=500, body="OK", latency_ms=40), health())

    assert not gate.passed
    assert "returned HTTP 500, expected 200" in gate.detail


def test_probe_gate_techchallengeapp_200_with_error_body_fails() -> None:
    # TechChallengeApp answers 200 on /healthcheck/ even when the database is down
    gate = probe_gate(ProbeResult(status=200, body="Error: db connection down", latency_ms=15), health())

    assert gate.passed is False
    assert gate.gate == "http"
    assert gate.detail == f"GET {URL} returned HTTP 200 with body 'Error: db connection down', expected exact 'OK'"


def test_probe_gate_body_mismatch_contains_mode() -> None:
    gate = probe_gate(
        ProbeResult(status=200, body="degraded", latency_ms=15), health(expected_body="healthy", body_match="contains")
    )

    assert not gate.passed
    assert gate.detail.endswith("expected contains 'healthy'")


def test_probe_gate_without_expected_body_ignores_body() -> None:
    gate = probe_gate(ProbeResult(status=200, body="<html>whatever</html>", latency_ms=15), health(expected_body=None))

    assert gate.passed is True


def test_probe_gate_latency_over_limit_fails() -> None:
    gate = probe_gate(ProbeResult(status=200, body="OK", latency_ms=2001), health())

    assert gate == GateResult("http", False, f"GET {URL} took 2001 ms, limit 2000 ms")


def test_probe_gate_latency_at_limit_passes() -> None:
    assert probe_gate(ProbeResult(status=200, body="OK", latency_ms=2000), health()).passed is True


def test_probe_gate_connection_error_fails() -> None:
    gate = probe_gate(ProbeResult(status=None, body="", latency_ms=5000, error="timed out after 5s"), health())

    assert gate == GateResult("http", False, f"GET {URL} failed: timed out after 5s")


def test_probe_gate_error_wins_over_good_response() -> None:
    gate = probe_gate(ProbeResult(status=200, body="OK", latency_ms=1, error="connection reset"), health())

    assert gate.passed is False
    assert gate.detail.endswith("failed: connection reset")


def test_probe_gate_snippet_is_one_line_and_bounded() -> None:
    body = "line one\nline two\n" + "x" * 500
    gate = probe_gate(ProbeResult(status=502, body=body, latency_ms=1), health())

    snippet = ("line one line two " + "x" * 500)[:120]
    assert gate.detail.endswith(f"(body {snippet!r})")
    assert "\n" not in gate.detail


# --------------------------------------------------------------------------- target_gate


def test_target_gate_all_healthy() -> None:
    assert target_gate([("10.0.1.5", "healthy"), ("10.0.2.7", "healthy")]) == GateResult(
        "targets", True, "2/2 targets healthy"
    )


def test_target_gate_one_unhealthy_fails() -> None:
    gate = target_gate([("10.0.1.5", "healthy"), ("10.0.2.7", "unhealthy")])

    assert gate == GateResult("targets", False, "1/2 targets not healthy: 10.0.2.7=unhealthy")


@pytest.mark.parametrize("state", ["initial", "unused", "unavailable"])
def test_target_gate_non_healthy_states_fail(state: str) -> None:
    gate = target_gate([("10.0.1.5", "healthy"), ("10.0.2.7", state)])

    assert gate.passed is False
    assert f"10.0.2.7={state}" in gate.detail


def test_target_gate_draining_is_ignored() -> None:
    gate = target_gate([("10.0.1.5", "healthy"), ("10.0.9.9", "draining")])

    assert gate == GateResult("targets", True, "1/1 targets healthy")


@pytest.mark.parametrize("states", [[], [("10.0.9.9", "draining")]], ids=["none", "only-draining"])
def test_target_gate_no_targets_fails(states: list[tuple[str, str]]) -> None:
    assert target_gate(states) == GateResult("targets", False, "no registered targets (outside draining)")


def test_target_gate_lists_at_most_five_bad_targets() -> None:
    gate = target_gate([(f"10.0.0.{i}", "unhealthy") for i in range(7)])

    assert gate.detail.startswith("7/7 targets not healthy: ")
    assert "10.0.0.4=unhealthy" in gate.detail
    assert "10.0.0.5" not in gate.detail


# --------------------------------------------------------------------------- primary_gate


def test_primary_gate() -> None:
    assert primary_gate(service(deployment()), TD_NEW) == GateResult("primary", True, "PRIMARY runs web:8")
    assert primary_gate(service(deployment(task_definition=TD_OLD)), TD_NEW) == GateResult(
        "primary", False, "PRIMARY deployment runs web:7, expected web:8"
    )
    assert primary_gate(service(OLD_ACTIVE), TD_NEW) == GateResult(
        "primary", False, "PRIMARY deployment runs nothing, expected web:8"
    )


# --------------------------------------------------------------------------- alarm_gate


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_alarm_gate_non_alarm_states_pass(state: str) -> None:
    gate = alarm_gate({"web-5xx": state, "web-latency": "OK"}, ["web-5xx", "web-latency"])

    assert gate == GateResult("alarms", True, "2 alarm(s) not in ALARM")


def test_alarm_gate_alarm_fails() -> None:
    gate = alarm_gate({"web-5xx": "ALARM", "web-latency": "OK"}, ("web-5xx", "web-latency"))

    assert gate == GateResult("alarms", False, "in ALARM: web-5xx")


def test_alarm_gate_missing_alarm_fails() -> None:
    gate = alarm_gate({"web-5xx": "OK"}, ["web-5xx", "web-typo"])

    assert gate == GateResult("alarms", False, "alarm(s) not found: web-typo")


def test_alarm_gate_ignores_alarms_not_asked_for() -> None:
    gate = alarm_gate({"web-5xx": "OK", "other-team": "ALARM"}, iter(["web-5xx"]))

    assert gate == GateResult("alarms", True, "1 alarm(s) not in ALARM")


def test_alarm_gate_without_alarms_passes() -> None:
    assert alarm_gate({}, []) == GateResult("alarms", True, "0 alarm(s) not in ALARM")


# --------------------------------------------------------------------------- advance_bake

HTTP_OK = GateResult("http", True, "HTTP 200 'OK' in 12 ms")
HTTP_BAD = GateResult("http", False, f"GET {URL} returned HTTP 200 with body 'Error: db connection down'")
TARGETS_OK = GateResult("targets", True, "2/2 targets healthy")
TARGETS_BAD = GateResult("targets", False, "1/2 targets not healthy: 10.0.2.7=unhealthy")
PRIMARY_OK = GateResult("primary", True, "PRIMARY runs web:8")
PRIMARY_BAD = GateResult("primary", False, "PRIMARY deployment runs web:7, expected web:8")
ALARMS_OK = GateResult("alarms", True, "1 alarm(s) not in ALARM")
ALARMS_BAD = GateResult("alarms", False, "in ALARM: web-5xx")

PASSING = [HTTP_OK, TARGETS_OK, PRIMARY_OK, ALARMS_OK]
FAILING = [HTTP_BAD, TARGETS_OK, PRIMARY_OK, ALARMS_OK]


def bake(rounds: list[list[GateResult]], policy: HealthPolicy, state: BakeState | None = None) -> list[BakeState]:
    states: list[BakeState] = []
    current = state or BakeState()
    for gates in rounds:
        current = advance_bake(current, gates, policy, TD_NEW)
        states.append(current)
    return states


def test_bake_passes_after_healthy_threshold_consecutive_passes() -> None:
    states = bake([PASSING] * 3, health(healthy_threshold=3, interval_seconds=20))

    assert [(s.status, s.checks, s.passes, s.wait_seconds) for s in states] == [
        ("CHECKING", 1, 1, 20),
        ("CHECKING", 2, 2, 20),
        ("PASSED", 3, 3, 0),
    ]
    assert states[-1].failures == 0
    assert states[-1].last == [asdict(g) for g in PASSING]


def test_bake_wait_equals_interval_while_checking() -> None:
    policy = health(interval_seconds=45, unhealthy_threshold=3)

    states = bake([PASSING, FAILING, PASSING], policy)

    assert [s.status for s in states] == ["CHECKING"] * 3
    assert [s.wait_seconds for s in states] == [45, 45, 45]


def test_bake_failure_resets_the_pass_streak() -> None:
    states = bake([PASSING, PASSING, FAILING, PASSING, PASSING, PASSING], health(healthy_threshold=3))

    assert [(s.status, s.passes, s.failures) for s in states] == [
        ("CHECKING", 1, 0),
        ("CHECKING", 2, 0),
        ("CHECKING", 0, 1),
        ("CHECKING", 1, 0),
        ("CHECKING", 2, 0),
        ("PASSED", 3, 0),
    ]
    assert states[-1].checks == 6


def test_bake_pass_resets_the_failure_streak() -> None:
    states = bake([FAILING, PASSING, FAILING], health(unhealthy_threshold=2))

    assert [(s.passes, s.failures) for s in states] == [(0, 1), (1, 0), (0, 1)]


def test_bake_unhealthy_threshold_consecutive_failures_raise() -> None:
    policy = health(unhealthy_threshold=2)
    first = advance_bake(BakeState(), FAILING, policy, TD_NEW)
    assert (first.status, first.failures) == ("CHECKING", 1)

    with pytest.raises(HealthCheckFailed) as caught:
        advance_bake(first, [HTTP_BAD, TARGETS_BAD, PRIMARY_OK, ALARMS_OK], policy, TD_NEW)

    assert str(caught.value) == (f"web:8 failed 2 consecutive health check(s): {HTTP_BAD.detail}; {TARGETS_BAD.detail}")


def test_bake_unhealthy_threshold_of_one_fails_on_first_failure() -> None:
    with pytest.raises(HealthCheckFailed, match="db connection down"):
        advance_bake(BakeState(), FAILING, health(unhealthy_threshold=1), TD_NEW)


def test_bake_alarm_fails_at_once() -> None:
    with pytest.raises(AlarmTriggered) as caught:
        advance_bake(BakeState(), [HTTP_OK, TARGETS_OK, PRIMARY_OK, ALARMS_BAD], health(unhealthy_threshold=5), TD_NEW)

    assert str(caught.value) == "web:8: in ALARM: web-5xx (check 1)"


def test_bake_alarm_takes_precedence_over_primary() -> None:
    with pytest.raises(AlarmTriggered):
        advance_bake(BakeState(checks=3), [HTTP_OK, PRIMARY_BAD, ALARMS_BAD], health(), TD_NEW)


def test_bake_primary_failing_is_rollout_failed_at_once() -> None:
    with pytest.raises(RolloutFailed) as caught:
        advance_bake(BakeState(checks=4, passes=2), [HTTP_OK, PRIMARY_BAD], health(unhealthy_threshold=5), TD_NEW)

    assert str(caught.value) == "web:8: PRIMARY deployment runs web:7, expected web:8 (check 5)"


def test_bake_max_checks_bounds_the_window() -> None:
    policy = health(healthy_threshold=3, unhealthy_threshold=5, max_checks=4)
    states = bake([PASSING, PASSING, FAILING], policy)
    assert states[-1].checks == 3

    with pytest.raises(HealthCheckFailed) as caught:
        advance_bake(states[-1], PASSING, policy, TD_NEW)

    assert str(caught.value) == (
        "web:8 did not pass 3 consecutive checks within 4 checks; last: " + "; ".join(g.detail for g in PASSING)
    )


def test_bake_passing_on_the_last_allowed_check_passes() -> None:
    policy = health(healthy_threshold=2, unhealthy_threshold=5, max_checks=3)

    states = bake([FAILING, PASSING, PASSING], policy)

    assert (states[-1].status, states[-1].checks) == ("PASSED", 3)


def test_bake_does_not_mutate_the_input_state() -> None:
    state = BakeState(checks=1, passes=1, wait_seconds=15, last=[asdict(HTTP_OK)])
    before = copy.deepcopy(state)

    advance_bake(state, FAILING, health(), TD_NEW)

    assert state == before


def test_bake_state_survives_json_between_polls() -> None:
    policy = health(healthy_threshold=2)
    state = advance_bake(BakeState(), PASSING, policy, TD_NEW)

    carried = BakeState.from_dict(json.loads(json.dumps(asdict(state))))
    final = advance_bake(carried, PASSING, policy, TD_NEW)

    assert (final.status, final.checks, final.passes) == ("PASSED", 2, 2)


# --------------------------------------------------------------------------- task definitions


def described_task_definition() -> dict[str, Any]:
    """DescribeTaskDefinition's ``taskDefinition`` for web:7 (two containers)."""
    return {
        "taskDefinitionArn": TD_OLD,
        "family": "web",
        "revision": 7,
        "status": "ACTIVE",
        "taskRoleArn": "arn:aws:iam::123456789012:role/web-task",
        "executionRoleArn": "arn:aws:iam::123456789012:role/web-exec",
        "networkMode": "awsvpc",
        "containerDefinitions": [
            {
                "name": "web",
                "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/techchallengeapp@sha256:" + "a" * 64,
                "essential": True,
                "portMappings": [{"containerPort": 3000, "protocol": "tcp"}],
                "environment": [{"name": "VTT_LISTENHOST", "value": "0.0.0.0"}],
            },
            {
                "name": "envoy",
                "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.27",
                "essential": False,
            },
        ],
        "volumes": [],
        "placementConstraints": [],
        "requiresCompatibilities": ["FARGATE"],
        "compatibilities": ["EC2", "FARGATE"],
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.task-iam-role"}],
        "cpu": "256",
        "memory": "512",
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "registeredAt": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC),
        "registeredBy": "arn:aws:sts::123456789012:assumed-role/deployer/session",
        "deregisteredAt": dt.datetime(2024, 5, 2, 12, 0, tzinfo=dt.UTC),
    }


NEW_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/techchallengeapp@sha256:" + "b" * 64


def test_next_task_definition_copies_only_registerable_keys() -> None:
    spec = next_task_definition(described_task_definition(), "web", NEW_IMAGE)

    assert set(spec) == {
        "family",
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "containerDefinitions",
        "volumes",
        "placementConstraints",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "runtimePlatform",
    }
    for dropped in (
        "taskDefinitionArn",
        "revision",
        "status",
        "compatibilities",
        "requiresAttributes",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
    ):
        assert dropped not in spec
        assert dropped not in REGISTERABLE_KEYS
    assert (spec["family"], spec["cpu"], spec["memory"]) == ("web", "256", "512")
    assert spec["runtimePlatform"] == {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"}


def test_next_task_definition_replaces_only_the_named_container_image() -> None:
    current = described_task_definition()

    spec = next_task_definition(current, "web", NEW_IMAGE)

    web, envoy = spec["containerDefinitions"]
    assert web["image"] == NEW_IMAGE
    assert envoy["image"] == "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.27"
    # everything else about the container is kept
    expected_web = {**current["containerDefinitions"][0], "image": NEW_IMAGE}
    assert web == expected_web
    assert envoy == current["containerDefinitions"][1]


def test_next_task_definition_does_not_mutate_input() -> None:
    current = described_task_definition()
    before = copy.deepcopy(current)

    spec = next_task_definition(current, "envoy", "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.28")
    spec["containerDefinitions"][0]["environment"].append({"name": "X", "value": "1"})
    spec["requiresCompatibilities"].append("EC2")

    assert current == before


def test_next_task_definition_carries_tags() -> None:
    tags = [{"key": "stepdeploy:execution", "value": "exec-123"}, {"key": "stepdeploy:trigger", "value": "ecr"}]

    spec = next_task_definition(described_task_definition(), "web", NEW_IMAGE, tags)

    assert spec["tags"] == tags
    assert spec["tags"] is not tags
    assert all(type(t) is dict for t in spec["tags"])


def test_next_task_definition_without_tags_has_no_tags_key() -> None:
    assert "tags" not in next_task_definition(described_task_definition(), "web", NEW_IMAGE)


def test_next_task_definition_unknown_container_raises() -> None:
    with pytest.raises(InvalidDeploymentRequest) as caught:
        next_task_definition(described_task_definition(), "api", NEW_IMAGE)

    assert str(caught.value) == "$.service.container: no container 'api' in the task definition"


def test_choose_container_named() -> None:
    assert choose_container(described_task_definition(), "envoy") == "envoy"


def test_choose_container_named_unknown_raises() -> None:
    with pytest.raises(InvalidDeploymentRequest) as caught:
        choose_container(described_task_definition(), "api")

    assert str(caught.value) == "$.service.container: no container 'api' in web:7; containers: web, envoy"


def test_choose_container_single_without_name() -> None:
    td = described_task_definition()
    td["containerDefinitions"] = td["containerDefinitions"][:1]

    assert choose_container(td, None) == "web"


def test_choose_container_multiple_without_name_raises() -> None:
    with pytest.raises(InvalidDeploymentRequest) as caught:
        choose_container(described_task_definition(), None)

    assert str(caught.value) == "$.service.container: the task definition has 2 containers (web, envoy); name one"


def test_choose_container_without_containers_raises() -> None:
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$\.service\.container: the task definition has 0"):
        choose_container({"taskDefinitionArn": TD_OLD}, None)


def test_container_image() -> None:
    td = described_task_definition()

    assert container_image(td, "envoy") == "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.27"
    assert container_image(td, "web").endswith("@sha256:" + "a" * 64)
    assert container_image(td, "api") == ""
    assert container_image({}, "web") == ""


@pytest.mark.parametrize(
    ("arn", "short"),
    [(TD_OLD, "web:7"), ("web:12", "web:12"), ("", "?")],
)
def test_short_revision(arn: str, short: str) -> None:
    assert short_revision(arn) == short


# --------------------------------------------------------------------------- describe_failure


def test_describe_failure_lambda_json_cause() -> None:
    cause = json.dumps(
        {
            "errorMessage": "web:8 failed 2 consecutive health check(s): body 'Error'",
            "errorType": "HealthCheckFailed",
            "stackTrace": ["  File ..."],
        }
    )

    assert describe_failure({"Error": "HealthCheckFailed", "Cause": cause}) == (
        "HealthCheckFailed",
        "web:8 failed 2 consecutive health check(s): body 'Error'",
    )


@pytest.mark.parametrize(
    "cause",
    [
        "The service did not stabilize within the timeout.",
        '{"message": "no errorMessage key"}',
        '["a", "list"]',
        "42",
    ],
)
def test_describe_failure_non_lambda_cause_is_kept(cause: str) -> None:
    assert describe_failure({"Error": "Lambda.Unknown", "Cause": cause}) == ("Lambda.Unknown", cause)


def test_a_states_error_is_named_for_a_fail_state() -> None:
    """A Fail state may not end with a States.* name (it would end States.Runtime): the step's name says
    what happened, the original name leads the cause."""
    cause = "The service did not stabilize within the timeout."
    assert describe_failure({"Error": "States.Timeout", "Cause": cause}) == (
        "StepTimedOut",
        f"States.Timeout: {cause}",
    )


@pytest.mark.parametrize("error", [None, {}])
def test_describe_failure_without_details(error: dict[str, Any] | None) -> None:
    assert describe_failure(error) == ("DeploymentFailed", "no error details were captured")


def test_describe_failure_missing_parts() -> None:
    assert describe_failure({"Error": "States.TaskFailed"}) == ("StepFailed", "States.TaskFailed: no cause given")
    assert describe_failure({"Error": "Lambda.Unknown"}) == ("Lambda.Unknown", "Lambda.Unknown")
    assert describe_failure({"Cause": "boom"}) == ("DeploymentFailed", "boom")
    assert describe_failure({"Error": None, "Cause": None}) == ("DeploymentFailed", "DeploymentFailed")


def test_describe_failure_truncates_cause() -> None:
    name, cause = describe_failure({"Error": "RolloutFailed", "Cause": "x" * 40000})

    assert name == "RolloutFailed"
    assert cause == "x" * 32000


def test_verify_rollback_target_prefers_the_last_verified_revision() -> None:
    fam = [
        "arn:aws:ecs:r:1:task-definition/web:5",
        "arn:aws:ecs:r:1:task-definition/web:4",
        "arn:aws:ecs:r:1:task-definition/web:2",
    ]
    cur = "arn:aws:ecs:r:1:task-definition/web:5"
    assert verify_rollback_target("arn:aws:ecs:r:1:task-definition/web:2", cur, fam).endswith("web:2")
    assert verify_rollback_target(None, cur, fam).endswith("web:4")  # newest older revision
    assert verify_rollback_target(cur, cur, fam).endswith("web:4")  # last verified is the current one
    assert verify_rollback_target(None, "arn:aws:ecs:r:1:task-definition/web:2", fam).endswith("web:2")  # none older


SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-4f2a9d1e-Xy12Ab"


@pytest.mark.parametrize(
    "reference",
    [
        SECRET,
        f"{SECRET}:password::",  # ECS valueFrom with a JSON key (the application stack's VTT_DBPASSWORD)
        f"{SECRET}:password:AWSCURRENT:",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-4f2a9d1e",  # partial ARN
        "rds!cluster-4f2a9d1e",  # a same-Region secret by name
    ],
)
def test_a_reference_to_the_rotated_secret_matches(reference: str) -> None:
    assert decisions.secret_matches(reference, SECRET)


@pytest.mark.parametrize(
    "reference",
    [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-other-Xy12Ab:password::",
        "arn:aws:ssm:us-east-1:123456789012:parameter/rds!cluster-4f2a9d1e",
        "rds!cluster",
    ],
)
def test_another_secret_does_not_match(reference: str) -> None:
    assert not decisions.secret_matches(reference, SECRET)


def test_secrets_used_lists_each_secret_once() -> None:
    td = {
        "containerDefinitions": [
            {"name": "app", "secrets": [{"name": "P", "valueFrom": f"{SECRET}:password::"}]},
            {"name": "side", "secrets": [{"name": "U", "valueFrom": f"{SECRET}:username::"}]},
            {"name": "plain"},
        ]
    }
    assert decisions.secrets_used(td) == [SECRET]


def test_a_refresh_rollout_is_only_the_deployment_it_started() -> None:
    td = "arn:aws:ecs:us-east-1:1:task-definition/web:3"
    rolled_back = decisions.ServiceView(
        "c", "web", "ACTIVE", td, (decisions.DeploymentView("ecs-svc/2", "PRIMARY", td, "COMPLETED", "", 2, 2),)
    )
    policy = POLICY
    assert decisions.assess_rollout(rolled_back, td, RolloutState(), policy).status == "COMPLETED"
    with pytest.raises(RolloutFailed, match="not the refresh deployment ecs-svc/9"):
        decisions.assess_rollout(rolled_back, td, RolloutState(), policy, "ecs-svc/9")
    assert not decisions.primary_gate(rolled_back, td, "ecs-svc/9").passed
    assert decisions.primary_gate(rolled_back, td, "ecs-svc/2").passed


# --------------------------------------------------------------------------- within reach (issue 10 #10)

HOME = ("aws", "us-east-1", "123456789012")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("arn:aws:ecs:eu-west-1:123456789012:cluster/prod", "region eu-west-1"),
        ("arn:aws:ecs:us-east-1:210987654321:cluster/prod", "account 210987654321"),
        ("arn:aws-cn:ecs:us-east-1:123456789012:cluster/prod", "(aws)"),
        ("210987654321.dkr.ecr.us-east-1.amazonaws.com", "registry of account 210987654321"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "region eu-west-1"),
    ],
)
def test_out_of_reach_names_the_field_and_where_it_is(value: str, fragment: str) -> None:
    problem = decisions.out_of_reach([("$.x", "prod"), ("$.service.cluster", value)], *HOME)

    assert problem is not None and problem.startswith("$.service.cluster: ") and fragment in problem


def test_names_own_arns_and_own_registry_are_within_reach() -> None:
    named: list[tuple[str, str | None]] = [
        ("$.service.cluster", "prod"),
        ("$.service.service", "arn:aws:ecs:us-east-1:123456789012:service/prod/web"),
        ("$.health.target_group_arn", None),
        ("$.ImageURI", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
        ("$.ImageURI", "registry.example.com:5000"),
    ]
    assert decisions.out_of_reach(named, *HOME) is None
    assert decisions.out_of_reach([("$.c", "arn:aws:ecs:eu-west-1:1:cluster/x")], "", "", "") is None
