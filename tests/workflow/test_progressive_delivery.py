"""Progressive delivery end to end (issue 11): BLUE_GREEN, CANARY and LINEAR releases through the real ASL, gated
through the test listener before any production traffic and at every production step, rolled back by ECS when a
gate fails, and never left paused. Each fault asserts the invariants: final status and error, the revision serving
production, the lock released, the record written, no deployment left paused."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.traffic import DEFAULT_RATE
from stepdeploy_local.workload import PROFILES
from stepdeploy_local.world import AppService

STRATEGIES = {
    "BLUE_GREEN": {"type": "BLUE_GREEN", "bake_minutes": 1},
    "CANARY": {"type": "CANARY", "canary_percent": 10, "canary_bake_minutes": 2, "bake_minutes": 1},
    "LINEAR": {"type": "LINEAR", "step_percent": 50, "step_bake_minutes": 1, "bake_minutes": 1},
}


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def progressive(world: World, kind: str) -> tuple[AppService, dict[str, Any]]:
    """A service that deploys ``kind``, and the request's strategy (test URL, the token's secret)."""
    app = world.create_service(tag="v1", strategy=kind)
    assert app.test_url and app.test_token
    secret = world.client("secretsmanager").create_secret(
        Name=f"{app.service}-test-token", SecretString=json.dumps({"token": app.test_token})
    )
    return app, {**STRATEGIES[kind], "test_url": app.test_url, "test_header_secret_arn": secret["ARN"]}


def deployments(world: World, app: AppService) -> list[dict[str, Any]]:
    ecs = world.client("ecs")
    arns = [
        d["serviceDeploymentArn"]
        for d in ecs.list_service_deployments(cluster=app.cluster, service=app.service)["serviceDeployments"]
    ]
    return ecs.describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"] if arns else []


def production_weights(world: World, app: AppService) -> dict[str, int]:
    """Target group -> weight of the production listener rule (what users reach)."""
    service = world.client("ecs").describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    rule = service["loadBalancers"][0]["advancedConfiguration"]["productionListenerRule"]
    (found,) = world.client("elbv2").describe_rules(RuleArns=[rule])["Rules"]
    forward = next(a for a in found["Actions"] if a["Type"] == "forward")
    return {g["TargetGroupArn"]: g.get("Weight", 0) for g in forward["ForwardConfig"]["TargetGroups"]}


def records_of(world: World, app: AppService) -> list[dict[str, Any]]:
    items = world.client("dynamodb").scan(TableName=world.outputs["DeploymentsTableName"])["Items"]
    plain = [{k: next(iter(v.values())) for k, v in item.items()} for item in items]
    return [r for r in plain if r["service"] == app.key]


def lock_free(world: World, app: AppService) -> bool:
    item = world.client("dynamodb").get_item(
        TableName=world.outputs["ControlTableName"], Key={"service": {"S": app.key}, "item": {"S": "LOCK"}}
    )
    return "Item" not in item


def assert_settled(world: World, app: AppService, task_definition: str) -> None:
    """The invariants after any ending: the service runs ``task_definition``, no deployment is paused or
    shifting, one target group takes all production traffic, the lock is free."""
    assert revision(app.running_task_definition()) == task_definition
    unfinished = [d for d in deployments(world, app) if d["status"] in ("PENDING", "IN_PROGRESS")]
    assert not unfinished, unfinished
    assert sorted(production_weights(world, app).values()) == [0, 100]
    assert World.eventually(lambda: lock_free(world, app))


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_a_healthy_release_succeeds_once_ecs_reports_it_successful(world: World, kind: str) -> None:
    app, strategy = progressive(world, kind)
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2", strategy=strategy))
    assert result.status == "SUCCEEDED", result.cause
    assert_settled(world, app, "web:2")
    (latest, *_) = sorted(deployments(world, app), key=lambda d: d["createdAt"], reverse=True)
    assert latest["status"] == "SUCCESSFUL"
    assert "FollowDeployment" in result.path and "WaitRollout" not in result.path
    traffic = world.user_traffic(app)
    assert traffic.failed == 0 and traffic.deployments[-1].to_new_revision > 0
    assert [r["outcome"] for r in records_of(world, app)] == ["SUCCEEDED"]


def test_a_broken_image_fails_no_user_request_under_blue_green(world: World) -> None:
    """db-down answers 200 with a bad body: caught through the test listener, before any production traffic;
    ECS takes it back (traffic never left blue) and the gates verify blue."""
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2", "db-down")
    result = world.deploy(app.request("v2", strategy=strategy))
    assert result.status == "FAILED" and result.error == "HealthCheckFailed", result.cause
    assert_settled(world, app, "web:1")
    traffic = world.user_traffic(app)
    assert traffic.failed == 0
    assert traffic.deployments[-1].to_new_revision == 0
    assert "RecordRolledBack" in result.path


def current_stage(world: World, app: AppService) -> tuple[str, float]:
    (latest, *_) = sorted(deployments(world, app), key=lambda d: d["createdAt"], reverse=True)
    weight = (latest.get("targetServiceRevision") or {}).get("requestedProductionTrafficWeight") or 0.0
    return latest.get("lifecycleStage", ""), float(weight)


def at_a_canary_step(world: World, app: AppService) -> Callable[[], bool]:
    """Is the latest deployment at a production step short of 100 % (the canary's share)?"""

    def check() -> bool:
        stage, weight = current_stage(world, app)
        return stage == "PRODUCTION_TRAFFIC_SHIFT" and 0 < weight < 100

    return check


def test_a_canary_that_fails_on_production_is_taken_back(world: World) -> None:
    """An image that passes on test traffic and starts failing once it takes its canary share of production:
    the gates at the canary step fail, StopServiceDeployment(ROLLBACK) returns all traffic to blue."""
    app, strategy = progressive(world, "CANARY")
    world.push_image(app.repository, "v2")
    start = lambda: world.start_deployment(app.request("v2", strategy=strategy))  # noqa: E731
    arn, pause = world.hold_when("FollowDeployment", start, at_a_canary_step(world, app))
    world.faults.set_image_profile(app.repository, "v2", "http-500")
    pause.release()
    result = world.wait(arn)
    assert result.status == "FAILED", result.cause
    assert result.error in ("HealthCheckFailed", "AlarmTriggered"), result.cause
    assert "production traffic" in (result.cause or "")
    assert_settled(world, app, "web:1")
    traffic = world.user_traffic(app).deployments[-1]
    assert traffic.to_new_revision > 0  # the canary share saw it
    # its failing probes are probed again at once: the first round on production takes it back, so users lose
    # at most the canary share of one gate interval
    assert traffic.failed <= 0.10 * DEFAULT_RATE * 15, traffic


def test_the_circuit_breaker_before_the_first_pause_ends_rolled_back(world: World) -> None:
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2", "never-healthy")
    result = world.deploy(app.request("v2", strategy=strategy))
    assert result.status == "FAILED" and result.error == "RolloutFailed", result.cause
    assert_settled(world, app, "web:1")


def test_a_stopped_execution_never_leaves_a_deployment_paused(world: World) -> None:
    """StopExecution while ECS waits at the test-traffic hook: the execution-end handler rolls it back and
    records ABORTED, not critical (blue still serves)."""
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    pause = world.pause_at("WaitDeployment", arrival=3)
    arn = world.start_deployment(app.request("v2", strategy=strategy))
    pause.reached()
    paused = [d for d in deployments(world, app) if d["status"] == "IN_PROGRESS"]
    assert paused, "the deployment should be in flight"
    world.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stop it")
    pause.release()
    assert world.wait(arn).status == "ABORTED"
    # the execution-end handler (EventBridge) runs after the execution ended
    World.eventually(lambda: all(d["status"] != "IN_PROGRESS" for d in deployments(world, app)))
    assert_settled(world, app, "web:1")
    (record,) = World.eventually(lambda: [r for r in records_of(world, app) if r["outcome"] == "ABORTED"])
    assert "rolled back service deployment" in record["cause"] and "A person is needed" not in record["cause"]


def test_the_gate_function_failing_during_a_pause_rolls_back(world: World) -> None:
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    world.faults.fail_lambda("FollowDeploymentFunction", after=1, times=10)
    result = world.deploy(app.request("v2", strategy=strategy))
    assert result.status == "FAILED", result.cause
    assert "Traceback" not in (result.cause or "")
    assert_settled(world, app, "web:1")


def test_a_strategy_the_service_cannot_run_is_refused_before_anything_changes(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    result = world.deploy(
        app.request("v2", strategy={"type": "BLUE_GREEN", "test_url": "http://alb.example:8080/healthcheck/"})
    )
    assert result.status == "FAILED" and result.error == "InvalidDeploymentRequest", result.cause
    assert "advancedConfiguration" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"


def test_a_broken_release_after_a_swap_of_target_groups_is_rolled_back_and_verified(world: World) -> None:
    """After a BLUE_GREEN release, blue's tasks sit in the alternate target group: the rollback's verification
    must read the targets there (it read only the configured group and ended RollbackFailed)."""
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    world.push_image(app.repository, "v3", "db-down")
    assert world.deploy(app.request("v2", strategy=strategy)).status == "SUCCEEDED"
    result = world.deploy(app.request("v3", strategy=strategy))
    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed"), result.cause
    assert "RecordRolledBack" in result.path
    assert_settled(world, app, "web:2")
    assert world.user_traffic(app).failed == 0


def awaiting_hook(world: World, app: AppService) -> dict[str, Any] | None:
    """The service deployment paused at a hook that awaits stepdeploy's answer, if any."""
    for d in deployments(world, app):
        if d["status"] == "IN_PROGRESS" and any(h["status"] == "AWAITING_ACTION" for h in d["lifecycleHookDetails"]):
            return d
    return None


def held_at_hook(world: World, app: AppService, request: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """Start ``request`` and hold its execution before the FollowDeployment poll that finds the service deployment
    paused at a hook: (execution ARN, the held pause, the paused deployment)."""
    arn, pause = world.hold_when(
        "FollowDeployment", lambda: world.start_deployment(request), lambda: awaiting_hook(world, app) is not None
    )
    paused = awaiting_hook(world, app)
    assert paused is not None
    return arn, pause, paused


def test_a_hook_that_times_out_while_stepdeploy_stalls_ends_failed_on_blue(world: World) -> None:
    """stepdeploy stalls (its follow loop held) past the hook's timeout: ECS rolls back by itself; stepdeploy
    notices on its next poll, verifies blue, ends FAILED with HookTimedOut and a record, never SUCCEEDED."""
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    request = app.request("v2", strategy={**strategy, "hook_timeout_minutes": 61})
    arn, stalled, paused = held_at_hook(world, app, request)
    assert paused["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    world.clock.advance(61 * 60 + 1)
    stalled.release()
    result = world.wait(arn)
    assert (result.status, result.error) == ("FAILED", "HookTimedOut"), result.cause
    assert "timed out" in (result.cause or "") and "POST_TEST_TRAFFIC_SHIFT" in (result.cause or "")
    assert "RecordRolledBack" in result.path
    assert_settled(world, app, "web:1")
    (latest, *_) = sorted(deployments(world, app), key=lambda d: d["createdAt"], reverse=True)
    assert latest["status"] == "ROLLBACK_SUCCESSFUL"
    assert [h["status"] for h in latest["lifecycleHookDetails"]] == ["TIMED_OUT"]
    (record,) = records_of(world, app)
    assert (record["outcome"], record["error"]) == ("ROLLED_BACK", "HookTimedOut")
    assert world.user_traffic(app).failed == 0


def test_a_release_queued_behind_a_paused_one_waits_and_never_touches_its_deployment(world: World) -> None:
    """A second execution for the service while the first is paused at its test-traffic hook: it queues on the
    lock (the first's deployment stays paused, untouched), and deploys once the first has ended."""
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    world.push_image(app.repository, "v3")
    first_held, pause, paused = held_at_hook(world, app, app.request("v2", strategy=strategy))
    queued = world.pause_at("QueueWait", arrival=2)
    second = world.start_deployment(app.request("v3", strategy=strategy))
    assert queued.reached() == second
    still = awaiting_hook(world, app)  # the second never answered nor stopped the first's deployment
    assert still is not None and still["serviceDeploymentArn"] == paused["serviceDeploymentArn"]
    assert still["lifecycleHookDetails"] == paused["lifecycleHookDetails"]
    assert [d["serviceDeploymentArn"] for d in deployments(world, app)] == [paused["serviceDeploymentArn"]]
    queued.release()
    pause.release()
    first = world.wait(first_held)
    assert first.status == "SUCCEEDED", first.cause
    then = world.wait(second)
    assert then.status == "SUCCEEDED", then.cause
    assert "QueueWait" in then.path and "QueueWait" not in first.path
    assert_settled(world, app, "web:3")
    by_arn = {d["serviceDeploymentArn"]: d for d in deployments(world, app)}
    assert by_arn[paused["serviceDeploymentArn"]]["status"] == "SUCCESSFUL"
    assert [d["status"] for d in by_arn.values()] == ["SUCCESSFUL", "SUCCESSFUL"]
    assert [r["outcome"] for r in records_of(world, app)] == ["SUCCEEDED", "SUCCEEDED"]


def test_an_ecs_rollback_that_fails_ends_rollback_failed_and_asks_for_a_person(world: World) -> None:
    """The gates fail on test traffic and stepdeploy answers ROLLBACK, but ECS's rollback fails (ROLLBACK_FAILED,
    the source revision's tasks gone): stepdeploy ends FAILED RollbackFailed with ECS's reason, a CRITICAL record,
    the lock released, and no deployment left in flight."""
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2", "db-down")
    reason = "Rollback failed: tasks of the source service revision failed to start (CannotPullContainerError)."
    world.faults.fail_service_rollback(app, reason)
    result = world.deploy(app.request("v2", strategy=strategy))
    assert (result.status, result.error) == ("FAILED", "RollbackFailed"), result.cause
    cause = result.cause or ""
    assert "HealthCheckFailed" in cause and "ROLLBACK_FAILED" in cause and reason in cause, cause
    assert "needs attention" in cause
    assert "RecordRollbackFailed" in result.path and "RecordRolledBack" not in result.path
    (latest, *_) = sorted(deployments(world, app), key=lambda d: d["createdAt"], reverse=True)
    assert latest["status"] == "ROLLBACK_FAILED"
    assert not [d for d in deployments(world, app) if d["status"] in ("PENDING", "IN_PROGRESS")]
    assert sorted(production_weights(world, app).values()) == [0, 100]
    assert revision(app.running_task_definition()) == "web:1"
    assert World.eventually(lambda: lock_free(world, app))
    (record,) = records_of(world, app)
    assert (record["outcome"], record["error"]) == ("ROLLBACK_FAILED", "RollbackFailed")
    [note] = world.notifications()
    assert note["subject"].startswith("ALERT") and note["attributes"]["severity"] == "CRITICAL"


def compared(result: Any) -> list[str]:
    """What the green-vs-blue comparison said at each gate round of a traffic shift, in order."""
    out = []
    for event in result.events:
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") != "FollowDeployment":
            continue
        bake = json.loads(details["output"])["active"]["follow"].get("bake") or {}
        out += [g["detail"] for g in bake.get("last") or [] if g["gate"] == "green-vs-blue"]
    return out


def test_a_canary_that_fails_a_share_of_requests_is_rolled_back_by_the_comparison(world: World) -> None:
    """An image that answers every 10th request with HTTP 500: its health probes (a few requests) pass, but
    during the canary step the ALB metrics of its target group show a 10 % 5XX share against blue's 0 %: the
    comparison fails two rounds in a row, StopServiceDeployment(ROLLBACK) returns all traffic to blue."""
    app, strategy = progressive(world, "CANARY")
    world.push_image(app.repository, "v2", "errors-10pct")
    result = world.deploy(app.request("v2", strategy=strategy))
    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed"), result.cause
    cause = result.cause or ""
    assert "while taking production traffic" in cause, cause
    shares = re.search(r"the new revision answered ([\d.]+)% of (\d+) requests with 5XX, the current one 0\.0%", cause)
    assert shares is not None, cause
    assert 5 <= float(shares[1]) <= 15 and int(shares[2]) >= 20, cause  # about its 10 %, on enough requests
    assert "RecordRolledBack" in result.path
    assert_settled(world, app, "web:1")
    (latest, *_) = sorted(deployments(world, app), key=lambda d: d["createdAt"], reverse=True)
    assert latest["status"] == "ROLLBACK_SUCCESSFUL"
    (record,) = records_of(world, app)
    assert (record["outcome"], record["error"]) == ("ROLLED_BACK", "HealthCheckFailed")
    traffic = world.user_traffic(app).deployments[-1]
    assert 0 < traffic.failed < traffic.to_new_revision  # users saw the canary share's errors, and only those


def test_a_canary_slower_than_blue_is_rolled_back_by_the_comparison(world: World) -> None:
    """An image that answers correctly in 400 ms, under the probes' latency limit (2000 ms): its target group's
    TargetResponseTime against blue's fails the comparison at the canary step."""
    app, strategy = progressive(world, "CANARY")
    world.push_image(app.repository, "v2", "sluggish")
    result = world.deploy(app.request("v2", strategy=strategy))
    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed"), result.cause
    assert "average response time 400 ms exceeds 1.5 x the current one's 0 ms" in (result.cause or ""), result.cause
    assert "RecordRolledBack" in result.path
    assert_settled(world, app, "web:1")
    (record,) = records_of(world, app)
    assert (record["outcome"], record["error"]) == ("ROLLED_BACK", "HealthCheckFailed")
    assert world.user_traffic(app).failed == 0  # slow, not wrong: no user request failed


def test_a_healthy_canary_passes_the_comparison_on_real_datapoints(world: World) -> None:
    """With the ALB metrics modelled, a healthy canary is compared with blue on enough requests (not "too few")
    and still succeeds."""
    app, strategy = progressive(world, "CANARY")
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2", strategy=strategy))
    assert result.status == "SUCCEEDED", result.cause
    assert_settled(world, app, "web:2")
    details = compared(result)
    assert details, "the comparison never ran"
    assert any(d.startswith("5XX 0.0% vs 0.0%") for d in details), details
    assert [r["outcome"] for r in records_of(world, app)] == ["SUCCEEDED"]


def start_in_the_bake(world: World, app: AppService, strategy: dict[str, Any], act: Callable[[], None]) -> str:
    """Start a release and hold it once ECS bakes it (100 % production on green, blue still running): run ``act``
    there, then let it go on. Returns the execution ARN."""
    arn, pause = world.hold_when(
        "WaitDeployment",
        lambda: world.start_deployment(app.request("v2", strategy=strategy)),
        lambda: current_stage(world, app) == ("BAKE_TIME", 100.0),
    )
    act()
    pause.release()
    return arn


def test_a_revision_that_sets_off_an_alarm_during_the_bake_is_rolled_back_by_ecs(world: World) -> None:
    """The health alarms are deployment alarms with rollback: one firing during the bake makes ECS take the
    deployment back to blue at once (no stepdeploy poll in between); the poll at the bake's end finds it rolled
    back and ends FAILED AlarmTriggered, blue verified."""
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    cw = world.client("cloudwatch")
    alarm = app.alarm_names[0]

    def fire() -> None:
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5XX from the new revision")
        deployments(world, app)  # ECS watches its alarms (the local world reads them on any ECS call)
        cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="blue serves again")

    result = world.wait(start_in_the_bake(world, app, strategy, fire))
    assert (result.status, result.error) == ("FAILED", "AlarmTriggered"), result.cause
    assert alarm in (result.cause or "") and "ECS took service deployment" in (result.cause or "")
    (latest, *_) = sorted(deployments(world, app), key=lambda d: d["createdAt"], reverse=True)
    assert latest["status"] == "ROLLBACK_SUCCESSFUL" and latest["alarms"]["triggeredAlarmNames"] == [alarm]
    assert "RecordRolledBack" in result.path
    assert_settled(world, app, "web:1")
    (record,) = records_of(world, app)
    assert (record["outcome"], record["error"]) == ("ROLLED_BACK", "AlarmTriggered")


def test_a_revision_that_turns_bad_during_the_bake_without_an_alarm_is_rolled_back_at_its_end(world: World) -> None:
    """A fault no alarm sees (HTTP 200, a bad body) arising during the bake: the gate round at the bake's end
    fails, the health gates confirm it and roll the release back to the previous revision."""
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")

    def break_it() -> None:
        world.faults.set_image_profile(app.repository, "v2", "db-down")

    result = world.wait(start_in_the_bake(world, app, strategy, break_it))
    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed"), result.cause
    assert "db connection down" in (result.cause or "")
    assert "CheckHealth" in result.path and "RecordRolledBack" in result.path
    assert_settled(world, app, "web:1")
    (record,) = records_of(world, app)
    assert (record["outcome"], record["error"]) == ("ROLLED_BACK", "HealthCheckFailed")


def test_a_single_failed_probe_at_a_canary_step_does_not_roll_back_a_healthy_canary(world: World) -> None:
    """At the canary step, the probe through the test listener fails once (a transient 5XX) and passes when probed
    again at once: the round counts one failing check, not the unhealthy_threshold, and the canary goes on."""
    app, strategy = progressive(world, "CANARY")
    world.push_image(app.repository, "v2")
    blip = PROFILES["healthy"].with_changes(name="blip", error_every=2)  # every 2nd request it answers fails
    start = lambda: world.start_deployment(app.request("v2", strategy=strategy))  # noqa: E731
    arn, pause = world.hold_when("FollowDeployment", start, at_a_canary_step(world, app))
    world.faults.set_image_profile(app.repository, "v2", blip)
    request = urllib.request.Request(strategy["test_url"], headers={"X-Stepdeploy-Test": app.test_token})
    with urllib.request.urlopen(request, timeout=5) as answer:  # the 1st request: the gate's probe is 2nd
        assert answer.status == 200
    blipped = world.pause_at("FollowDeployment", world.arrivals(arn, "FollowDeployment") + 1)  # (armed first)
    pause.release()
    try:
        blipped.reached()
    except TimeoutError:
        ended = world.wait(arn)
        pytest.fail(f"one failed probe took the canary back: {ended.status} {ended.error}: {ended.cause}")
    world.faults.set_image_profile(app.repository, "v2", "healthy")
    blipped.release()
    result = world.wait(arn)
    assert result.status == "SUCCEEDED", result.cause
    rounds = [
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in result.events
        if e.get("stateExitedEventDetails", {}).get("name") == "FollowDeployment"
    ]
    failed = [
        g["detail"]
        for r in rounds
        for g in (r["active"]["follow"].get("bake") or {}).get("last") or []
        if not g["passed"]
    ]
    assert any("HTTP 500" in d for d in failed), failed  # the blip was seen, and did not roll back
    assert_settled(world, app, "web:2")
