"""Progressive delivery (issue 11): the strategy input, the deployment configuration stepdeploy asks ECS for, and
what a poll of a followed service deployment does next. Pure logic: no AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepdeploy import decisions
from stepdeploy.decisions import GateResult, HookView, ServiceDeploymentView, ServiceView
from stepdeploy.errors import AlarmTriggered, HealthCheckFailed, InvalidDeploymentRequest
from stepdeploy.models import BakeState, Defaults, DeploymentRequest, FollowState, StrategySpec

BASE: dict[str, Any] = {
    "service": {"cluster": "c", "service": "web"},
    "image": {"repository": "app", "tag": "v2"},
    "health": {"url": "http://alb.example/healthcheck/"},
}
TEST_URL = "http://alb.example:8080/healthcheck/"


def request(**strategy: Any) -> DeploymentRequest:
    return DeploymentRequest.from_input({**BASE, "strategy": strategy}, Defaults())


def test_a_strategy_is_validated_and_round_trips() -> None:
    got = request(type="CANARY", canary_percent=12.5, canary_bake_minutes=3, test_url=TEST_URL)
    assert got.strategy == StrategySpec(type="CANARY", canary_percent=12.5, canary_bake_minutes=3, test_url=TEST_URL)
    assert DeploymentRequest.from_dict(json.loads(json.dumps(got.to_dict()))) == got
    assert DeploymentRequest.from_input(BASE, Defaults()).strategy is None  # the service's own configuration


@pytest.mark.parametrize(
    ("strategy", "field"),
    [
        ({"type": "PURPLE", "test_url": TEST_URL}, "$.strategy.type"),
        ({"type": "BLUE_GREEN"}, "$.strategy.test_url"),  # the gates cannot reach the new revision
        ({"type": "CANARY", "canary_percent": 0.05, "test_url": TEST_URL}, "$.strategy.canary_percent"),
        ({"type": "CANARY", "canary_percent": 10.05, "test_url": TEST_URL}, "$.strategy.canary_percent"),
        ({"type": "LINEAR", "step_percent": 2, "test_url": TEST_URL}, "$.strategy.step_percent"),
        ({"type": "LINEAR", "step_percent": 3, "step_bake_minutes": 5, "test_url": TEST_URL}, "$.strategy"),
        ({"type": "BLUE_GREEN", "hook_timeout_minutes": 30, "test_url": TEST_URL}, "$.strategy.hook_timeout_minutes"),
        ({"type": "BLUE_GREEN", "test_url": TEST_URL, "colour": "blue"}, "$.strategy"),
        ({"type": "BLUE_GREEN", "test_url": TEST_URL, "test_header_secret_arn": "token"}, "$.strategy"),
    ],
)
def test_a_bad_strategy_is_refused_naming_the_field(strategy: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidDeploymentRequest, match=f"^{field.replace('$', '[$]')}"):
        DeploymentRequest.from_input({**BASE, "strategy": strategy}, Defaults())


def test_a_stack_request_takes_its_strategy_from_the_stack_parameters() -> None:
    with pytest.raises(InvalidDeploymentRequest, match="DeploymentStrategy"):
        DeploymentRequest.from_input(
            {"stack": {"name": "shop"}, "image": BASE["image"], "strategy": {"type": "CANARY"}}, Defaults()
        )


def test_the_traffic_shift_is_bounded_by_the_execution() -> None:
    assert StrategySpec(type="LINEAR", step_percent=25, step_bake_minutes=2, bake_minutes=5).shift_seconds() == 660
    assert StrategySpec(type="CANARY", canary_bake_minutes=7, bake_minutes=3).shift_seconds() == 600
    assert StrategySpec(type="ROLLING").shift_seconds() == 0


def test_the_configuration_pauses_at_both_gates_with_rollback_as_the_backstop() -> None:
    current = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}, "maximumPercent": 200, "strategy": "X"}
    got = decisions.deployment_configuration(current, StrategySpec(type="CANARY", canary_percent=10, test_url=TEST_URL))
    assert got["strategy"] == "CANARY" and got["deploymentCircuitBreaker"] == current["deploymentCircuitBreaker"]
    assert got["canaryConfiguration"] == {"canaryPercent": 10, "canaryBakeTimeInMinutes": 5}
    assert "linearConfiguration" not in got
    (hook,) = got["lifecycleHooks"]
    assert hook["targetType"] == "PAUSE"
    assert hook["lifecycleStages"] == ["POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"]
    assert hook["timeoutConfiguration"] == {"timeoutInMinutes": 120, "action": "ROLLBACK"}
    back = decisions.deployment_configuration(current, StrategySpec(type="CANARY", test_url=TEST_URL), hooks=False)
    assert back["lifecycleHooks"] == [] and back["bakeTimeInMinutes"] == 0  # a rollback shifts straight back
    assert decisions.deployment_configuration(current, StrategySpec()) == {
        "deploymentCircuitBreaker": current["deploymentCircuitBreaker"],
        "maximumPercent": 200,
        "strategy": "ROLLING",
    }


def view(strategy: str = "ROLLING", **advanced: str) -> ServiceView:
    return ServiceView("c", "web", "ACTIVE", "td:1", (), strategy=strategy, advanced=advanced)


ADVANCED = {"alternateTargetGroupArn": "tg2", "productionListenerRule": "r1", "testListenerRule": "r2", "roleArn": "x"}


def test_a_strategy_needs_what_ecs_needs_on_the_service() -> None:
    bg = StrategySpec(type="BLUE_GREEN", test_url=TEST_URL)
    assert decisions.strategy_problem(bg, view(**ADVANCED)) is None
    assert "roleArn" in (
        decisions.strategy_problem(bg, view(alternateTargetGroupArn="t", productionListenerRule="r")) or ""
    )
    no_test = {k: v for k, v in ADVANCED.items() if k != "testListenerRule"}
    assert "test listener" in (decisions.strategy_problem(bg, view(**no_test)) or "")
    # a service that already shifts traffic cannot be deployed without saying how to reach the new revision
    assert "$.strategy" in (decisions.strategy_problem(None, view("CANARY", **ADVANCED)) or "")
    assert decisions.strategy_problem(None, view()) is None


def deployment(
    status: str = "IN_PROGRESS", stage: str = "SCALE_UP", weight: float = 0.0, hook: bool = False
) -> ServiceDeploymentView:
    return ServiceDeploymentView(
        "arn:sd", status, "", stage, "arn:rev", weight, 0.0, HookView("h1", "AWAITING_ACTION") if hook else None
    )


@pytest.mark.parametrize(
    ("seen", "passed", "phase"),
    [
        (deployment(), [], "WAIT"),
        (deployment(stage="TEST_TRAFFIC_SHIFT"), [], "WAIT"),
        (deployment(stage="POST_TEST_TRAFFIC_SHIFT", hook=True), [], "HOOK"),
        (deployment(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10.0), ["POST_TEST_TRAFFIC_SHIFT"], "SHIFT"),
        (deployment(stage="PRODUCTION_TRAFFIC_SHIFT", weight=0.0), ["POST_TEST_TRAFFIC_SHIFT"], "WAIT"),
        (deployment(stage="POST_PRODUCTION_TRAFFIC_SHIFT", weight=100.0, hook=True), [], "HOOK"),
        (deployment(stage="BAKE_TIME", weight=100.0), ["POST_PRODUCTION_TRAFFIC_SHIFT"], "SHIFT"),
        (
            deployment("SUCCESSFUL", "CLEAN_UP", 100.0),
            ["POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"],
            "SUCCEEDED",
        ),
        (deployment("SUCCESSFUL", "CLEAN_UP", 100.0), ["POST_TEST_TRAFFIC_SHIFT"], "VERIFY"),
        (deployment("ROLLBACK_IN_PROGRESS"), [], "FAILED"),
        (deployment("ROLLBACK_SUCCESSFUL"), [], "FAILED"),
        (deployment("STOPPED"), [], "FAILED"),
    ],
)
def test_what_a_poll_does_next(seen: ServiceDeploymentView, passed: list[str], phase: str) -> None:
    assert decisions.follow_phase(seen, FollowState(passed=passed)) == phase


def health() -> Any:
    return DeploymentRequest.from_input(BASE, Defaults()).health


def test_a_shift_round_fails_on_an_alarm_at_once_and_on_consecutive_failures() -> None:
    ok, bad = GateResult("http", True, "ok"), GateResult("http", False, "HTTP 500")
    state = decisions.fold_shift_round(BakeState(), [bad], health(), "td:2")
    assert state.failures == 1
    assert decisions.fold_shift_round(state, [ok], health(), "td:2").failures == 0  # a passing round resets
    with pytest.raises(HealthCheckFailed, match="while taking production traffic"):
        decisions.fold_shift_round(state, [bad], health(), "td:2")
    with pytest.raises(AlarmTriggered):
        decisions.fold_shift_round(BakeState(), [GateResult("alarms", False, "web-5xx in ALARM")], health(), "td:2")


def test_probes_failing_in_a_row_fail_a_shift_round_at_once_and_a_single_failure_does_not() -> None:
    """A failing probe at a production step is probed again at once: unhealthy_threshold probes failing in a row
    fail the first round; one that failed once (a transient 5XX) counts as one failing check, as before."""
    bad = GateResult("test-traffic", False, "HTTP 500")
    with pytest.raises(HealthCheckFailed, match="failed 2 consecutive"):
        decisions.fold_shift_round(BakeState(), [bad], health(), "td:2", streak=2)
    assert decisions.fold_shift_round(BakeState(), [bad], health(), "td:2", streak=1).failures == 1
    assert decisions.fold_shift_round(BakeState(), [bad], health(), "td:2", streak=0).failures == 1  # comparison


def test_the_health_alarms_guard_the_bake_as_deployment_alarms_and_a_rollback_turns_them_off() -> None:
    strategy = StrategySpec(type="BLUE_GREEN", bake_minutes=5, test_url=TEST_URL)
    current = {"alarms": {"alarmNames": ["own"], "enable": False, "rollback": False}}
    got = decisions.deployment_configuration(current, strategy, alarm_names=("web-5xx",))
    assert got["alarms"] == {"alarmNames": ["own", "web-5xx"], "enable": True, "rollback": True}
    back = decisions.deployment_configuration(current, strategy, hooks=False, alarm_names=("web-5xx",))
    assert back["alarms"] == {"alarmNames": ["own", "web-5xx"], "enable": False, "rollback": False}
    assert decisions.deployment_configuration(current, strategy)["alarms"] == current["alarms"]  # not stepdeploy's
    watched = DeploymentRequest.from_input(
        {**BASE, "health": {**BASE["health"], "alarm_names": ["web-5xx"]}}, Defaults()
    ).health
    assert decisions.bake_left_to_ecs(strategy, watched)
    assert decisions.after_production_hook_wait(strategy, watched) == 300 + decisions.SHIFT_MIN_WAIT
    assert not decisions.bake_left_to_ecs(strategy, health())  # no alarms: stepdeploy gates every interval
    assert decisions.after_production_hook_wait(strategy, health()) == health().interval_seconds
    assert not decisions.bake_left_to_ecs(StrategySpec(type="BLUE_GREEN", bake_minutes=0, test_url=TEST_URL), watched)


def test_the_poll_limit_covers_a_normal_deployment() -> None:
    req = request(type="LINEAR", step_percent=10, step_bake_minutes=1, bake_minutes=5, test_url=TEST_URL)
    assert req.strategy is not None
    limit = decisions.follow_poll_limit(req.rollout, req.health, req.strategy)
    normal = (
        req.rollout.timeout_seconds // req.rollout.poll_seconds
        + 2 * req.health.max_checks
        + req.strategy.shift_seconds() // decisions.shift_wait(req.health)
    )
    assert limit > normal


@pytest.mark.parametrize("strategy", ["ROLLING", "BLUE_GREEN", "CANARY", "LINEAR"])
def test_a_stack_takes_any_strategy_as_its_parameter(strategy: str) -> None:
    """EnsureStack answers the hooks of a stack update's service deployment: every strategy is accepted."""
    request = DeploymentRequest.from_input(
        {"stack": {"name": "shop", "parameters": {"DeploymentStrategy": strategy}}, "image": BASE["image"]},
        Defaults(),
    )
    assert request.stack is not None and request.stack.parameters["DeploymentStrategy"] == strategy
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$\.stack\.parameters\.DeploymentStrategy"):
        DeploymentRequest.from_input(
            {"stack": {"name": "shop", "parameters": {"DeploymentStrategy": "RED_BLACK"}}, "image": BASE["image"]},
            Defaults(),
        )


def test_the_test_token_comes_from_the_stacks_json_secret() -> None:
    assert decisions.test_token('{"header": "X-Stepdeploy-Test", "token": "abc"}') == "abc"
    for bad in ("abc", "[]", '{"token": ""}'):
        with pytest.raises(InvalidDeploymentRequest, match="test_header_secret_arn"):
            decisions.test_token(bad)


def stats(requests: float, errors: float = 0, response_time: float | None = 0.05) -> decisions.TargetGroupStats:
    return decisions.TargetGroupStats(requests, errors, response_time)


def test_green_clearly_worse_than_blue_fails_the_comparison() -> None:
    errors = decisions.compare_gate(stats(100, errors=10), stats(900, errors=9))  # 10 % vs 1 %
    assert (errors.gate, errors.passed) == ("green-vs-blue", False)
    assert "10.0% of 100 requests with 5XX" in errors.detail and "1.0%" in errors.detail
    slow = decisions.compare_gate(stats(100, response_time=0.5), stats(900, response_time=0.1))  # 500 > 250 ms
    assert not slow.passed and "500 ms" in slow.detail


def test_green_as_good_as_blue_or_too_little_traffic_passes_the_comparison() -> None:
    assert decisions.compare_gate(stats(100, errors=2), stats(900, errors=9)).passed  # 2 % vs 1 %: in the margin
    assert decisions.compare_gate(stats(100, errors=10), stats(900, errors=90)).passed  # as bad as blue: not green's
    assert decisions.compare_gate(stats(100, response_time=0.24), stats(900, response_time=0.1)).passed
    assert decisions.compare_gate(stats(100, response_time=None), stats(900, response_time=0.1)).passed
    few = decisions.compare_gate(stats(19, errors=19), stats(900))
    assert few.passed and "too few requests" in few.detail
    assert decisions.compare_gate(stats(100, errors=50), stats(0)).passed  # nothing on blue to compare with


def test_a_failing_comparison_counts_as_a_failing_shift_round() -> None:
    worse = decisions.compare_gate(stats(100, errors=50), stats(900))
    state = decisions.fold_shift_round(BakeState(), [worse], health(), "td:2")
    with pytest.raises(HealthCheckFailed, match=r"production traffic.*5XX"):
        decisions.fold_shift_round(state, [worse], health(), "td:2")


def test_a_stack_whose_shift_and_bake_outlast_an_execution_is_refused() -> None:
    """The stack's traffic shift and bake are bounded as a request's own strategy is (MAX_SHIFT_SECONDS)."""
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$\.stack\.parameters\.DeploymentBakeTimeMinutes: CANARY"):
        DeploymentRequest.from_input(
            {
                "stack": {"name": "shop", "parameters": {"DeploymentStrategy": "CANARY", "CanaryBakeTimeMinutes": 60}},
                "image": BASE["image"],
            },
            Defaults(),
        )
