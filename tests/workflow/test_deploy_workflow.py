"""The deploy workflow end to end: the real ASL with the real handlers in the local world.

Each scenario asserts the final execution status, the error name, the revision the service ends
on, and the deployment record.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import AppService, ExecutionResult


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def assert_record(
    world: World, app: AppService, result: ExecutionResult, outcome: str, error: str | None, running: str
) -> dict[str, Any]:
    record = world.record(app, result.name)
    assert record is not None, "no deployment record written"
    assert record["outcome"] == outcome
    assert record.get("error") == error
    assert revision(record["running_task_definition"]) == running
    assert record["deployment_id"] == result.name
    assert record["trigger"] == "manual"
    assert record["started_at"] and record["ended_at"]
    return record


def test_healthy_update_deploys_and_records(world: World, app: AppService) -> None:
    digest = world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))

    assert result.status == "SUCCEEDED", result.cause
    assert revision(app.running_task_definition()) == "web:2"
    assert app.running_image().endswith("@" + digest), "image must be pinned by digest"
    record = assert_record(world, app, result, "SUCCEEDED", None, "web:2")
    assert record["image_digest"] == digest and record["image_tag"] == "v2"
    assert revision(record["previous_task_definition"]) == "web:1"
    assert [g["gate"] for g in record["gate_results"]] == ["http", "targets", "primary", "alarms"]
    assert all(g["passed"] for g in record["gate_results"])
    # the rollout took 120 virtual seconds; the execution reports virtual time, not wall time
    assert result.virtual_seconds >= 120
    assert result.path[:8] == [
        "Normalize",
        "Guard",
        "GuardDecision",
        "RegisterRevision",
        "DatabaseDecision",
        "ApprovalDecision",  # no approval asked for: straight on
        "Deploy",
        "DeployKind",  # a rolling update is polled, then gated
    ]
    assert result.path[-2:] == ["RecordSucceeded", "Deployed"]
    [note] = world.notifications()
    assert note["attributes"]["outcome"] == "SUCCEEDED" and note["attributes"]["severity"] == "INFO"


def test_body_error_is_rolled_back(world: World, app: AppService) -> None:
    """TechChallengeApp answers HTTP 200 'Error: db connection down': only the body tells."""
    world.push_image(app.repository, "v2", "db-down")
    result = world.deploy(app.request("v2"))

    assert result.status == "FAILED"
    assert result.error == "HealthCheckFailed"
    assert "Error: db connection down" in (result.cause or "")
    assert "rolled back to web:1" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"
    assert_record(world, app, result, "ROLLED_BACK", "HealthCheckFailed", "web:1")
    assert "Rollback" in result.path and result.path[-1] == "DeploymentFailed"
    [note] = world.notifications()
    assert note["attributes"]["severity"] == "WARNING"


def test_http_500_is_rolled_back(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "http-500")
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed")
    assert "HTTP 500" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"
    assert_record(world, app, result, "ROLLED_BACK", "HealthCheckFailed", "web:1")


def test_slow_responses_fail_the_latency_gate(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "slow")
    result = world.deploy(app.request("v2", health={"max_latency_ms": 1000}))

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed")
    assert "limit 1000 ms" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"


def test_rollout_failed_by_circuit_breaker_is_rolled_back(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "never-healthy")
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "RolloutFailed")
    assert "circuit breaker" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"
    assert_record(world, app, result, "ROLLED_BACK", "RolloutFailed", "web:1")


def test_rollout_past_deadline_times_out_and_rolls_back(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "stalled")
    result = world.deploy(app.request("v2", rollout={"timeout_seconds": 300, "poll_seconds": 60}))

    assert (result.status, result.error) == ("FAILED", "RolloutTimedOut")
    assert "deadline 300s" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"
    assert_record(world, app, result, "ROLLED_BACK", "RolloutTimedOut", "web:1")
    polls = result.path[: result.path.index("Rollback")].count("CheckRollout")
    assert polls == 5, "bounded: 300 s deadline / 60 s polls"


def test_alarm_in_alarm_during_bake_rolls_back(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "alarming")
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "AlarmTriggered")
    assert "web-target-5xx" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"
    assert_record(world, app, result, "ROLLED_BACK", "AlarmTriggered", "web:1")


def test_task_that_raises_after_the_update_rolls_back(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    world.faults.fail_lambda("CheckRolloutFunction", "KeyError", "'deployments'", times=1)
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "KeyError")
    assert revision(app.running_task_definition()) == "web:1"
    assert_record(world, app, result, "ROLLED_BACK", "KeyError", "web:1")


def test_task_that_raises_before_the_update_changes_nothing(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    world.faults.fail_lambda("RegisterRevisionFunction", "RuntimeError", "boom", times=1)
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "RuntimeError")
    assert "the service was not changed" in (result.cause or "")
    assert "Rollback" not in result.path
    assert revision(app.running_task_definition()) == "web:1"
    assert_record(world, app, result, "FAILED", "RuntimeError", "web:1")


def test_transient_lambda_errors_are_retried(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    world.faults.fail_lambda("UpdateServiceFunction", "Lambda.ServiceException", "throttled", times=2)
    result = world.deploy(app.request("v2"))

    assert result.status == "SUCCEEDED", result.cause
    assert revision(app.running_task_definition()) == "web:2"
    retries = [e for e in result.events if e["type"] == "LambdaFunctionFailed"]
    assert len(retries) == 2
    assert result.state_transitions == len(result.steps) + 2


def test_rollback_that_fails_verification_ends_rollback_failed_and_alerts(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "db-down")
    world.faults.set_image_profile(app.repository, "v1", "db-down")  # the database is down for every image
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "RollbackFailed")
    assert "HealthCheckFailed" in (result.cause or "") and "needs attention" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"
    assert_record(world, app, result, "ROLLBACK_FAILED", "RollbackFailed", "web:1")
    [note] = world.notifications()
    assert note["subject"].startswith("ALERT") and note["attributes"]["severity"] == "CRITICAL"


def test_rollback_update_that_fails_ends_rollback_failed(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "db-down")
    # the deploy's UpdateService succeeds; the rollback's UpdateService fails (not a transient error)
    world.faults.fail_lambda("UpdateServiceFunction", "AccessDeniedException", "not authorized", after=1)
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "RollbackFailed")
    assert "AccessDeniedException: not authorized" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:2", "the rollback never happened"
    assert_record(world, app, result, "ROLLBACK_FAILED", "RollbackFailed", "web:2")
    [note] = world.notifications()
    assert note["attributes"]["severity"] == "CRITICAL"


@pytest.mark.parametrize(
    "bad",
    [
        {"service": {"cluster": "techchallenge", "service": "nope"}},
        {"image": {"repository": "techchallengeapp", "tag": "v404"}},
        {"image": {"repository": "missing-repo", "tag": "v1"}},
        {"service": {"cluster": "techchallenge", "service": "web", "container": "sidecar"}},
        {"health": {"url": "ftp://example.com/"}},
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(world: World, app: AppService, bad: dict[str, Any]) -> None:
    before = world.client("ecs").list_task_definitions()["taskDefinitionArns"]
    result = world.deploy(app.request("v1", **bad))

    assert (result.status, result.error) == ("FAILED", "InvalidDeploymentRequest")
    assert result.cause and result.cause.startswith("$.")
    assert result.path == ["Normalize", "ExplainRejection", "Rejected"]
    assert world.client("ecs").list_task_definitions()["taskDefinitionArns"] == before
    assert revision(app.running_task_definition()) == "web:1"
    table = world.outputs["DeploymentsTableName"]
    assert world.client("dynamodb").scan(TableName=table)["Count"] == 0
    assert world.notifications() == []
