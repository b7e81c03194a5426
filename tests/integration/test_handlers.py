"""Each handler with its adapters under moto, invoked through the local Lambda runtime
(the function's environment from template.yaml, a real context object)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import AppService


def invoke(world: World, logical_id: str, event: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    fn = world.runtime.by_logical_id(logical_id)
    payload, errored, _ = world.runtime.invoke(fn.name, event)
    return errored, json.loads(payload)


def ok(world: World, logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
    errored, body = invoke(world, logical_id, event)
    assert not errored, body
    return body


@pytest.fixture
def validated(world: World, app: AppService) -> dict[str, Any]:
    world.push_image(app.repository, "v2")
    return ok(
        world,
        "NormalizeRequestFunction",
        {"input": app.request("v2"), "deployment_id": "d-1", "started_at": "2026-01-01T00:00:00Z"},
    )


def test_validate_resolves_digest_and_current_revision(
    world: World, app: AppService, validated: dict[str, Any]
) -> None:
    digest = world.digest_of(app.repository, "v2")
    assert validated["image"]["digest"] == digest
    assert validated["image"]["uri"].endswith(f"/techchallengeapp@{digest}")
    assert validated["current"] == {
        "task_definition": app.running_task_definition(),
        "container": "app",
        "image": world.image_uri(app.repository, "v1"),
    }
    assert validated["request"]["health"]["expected_body"] == "OK"  # template default reached the function
    assert validated["request"]["rollout"]["timeout_seconds"] == 900


def test_validate_reports_missing_service_by_field(world: World, app: AppService) -> None:
    errored, body = invoke(
        world,
        "NormalizeRequestFunction",
        {"input": app.request("v1", service={"service": "ghost"}), "deployment_id": "d"},
    )
    assert errored and body["errorType"] == "InvalidDeploymentRequest"
    assert "service 'ghost' not found" in body["errorMessage"]


def test_register_revision_pins_the_digest_and_keeps_the_rest(world: World, validated: dict[str, Any]) -> None:
    out = ok(world, "RegisterRevisionFunction", validated)
    ecs = world.client("ecs")
    old = ecs.describe_task_definition(taskDefinition=out["previous"])["taskDefinition"]
    new = ecs.describe_task_definition(taskDefinition=out["new"])["taskDefinition"]
    assert new["revision"] == old["revision"] + 1 and new["family"] == old["family"]
    assert new["containerDefinitions"][0]["image"] == validated["image"]["uri"]
    for key in ("command", "portMappings", "environment"):
        assert new["containerDefinitions"][0][key] == old["containerDefinitions"][0][key]
    assert (new["cpu"], new["memory"], new["networkMode"]) == (old["cpu"], old["memory"], old["networkMode"])


def test_update_service_starts_rollout_and_is_idempotent_for_rollback(
    world: World, app: AppService, validated: dict[str, Any]
) -> None:
    revision = ok(world, "RegisterRevisionFunction", validated)
    rollout = validated["request"]["rollout"]
    base = {"cluster": app.cluster, "service": app.service, "rollout": rollout, "deployment_id": "d-1"}
    out = ok(world, "UpdateServiceFunction", {**base, "task_definition": revision["new"], "phase": "deploy"})
    assert out["changed"] is True and out["phase"] == "deploy"
    assert out["rollout"] == {
        "status": "IN_PROGRESS",
        "elapsed_seconds": 0,
        "polls": 0,
        "wait_seconds": 60,
        "detail": "",
        "started_at": pytest.approx(world.clock.time(), abs=5),  # the deadline counts clock time too
    }
    assert app.running_task_definition() == revision["new"]
    world.clock.advance(200)
    back = ok(world, "UpdateServiceFunction", {**base, "task_definition": revision["new"], "phase": "rollback"})
    assert back["changed"] is False  # already running and COMPLETED: nothing to do


def test_check_rollout_in_progress_then_completed(world: World, app: AppService, validated: dict[str, Any]) -> None:
    revision = ok(world, "RegisterRevisionFunction", validated)
    base = {"cluster": app.cluster, "service": app.service, "rollout": validated["request"]["rollout"]}
    active = ok(world, "UpdateServiceFunction", {**base, "task_definition": revision["new"], "phase": "deploy"})
    event = {"request": validated["request"], "active": active}
    first = ok(world, "CheckRolloutFunction", event)
    assert first["status"] == "IN_PROGRESS" and first["elapsed_seconds"] == 60 and first["polls"] == 1
    world.clock.advance(120)
    second = ok(world, "CheckRolloutFunction", {**event, "active": {**active, "rollout": first}})
    assert second["status"] == "COMPLETED" and second["elapsed_seconds"] == 120


def test_check_health_counts_consecutive_passes(world: World, app: AppService, validated: dict[str, Any]) -> None:
    active: dict[str, Any] = {"phase": "deploy", "task_definition": app.running_task_definition(), "bake": None}
    for expected in (1, 2):
        bake = ok(world, "CheckHealthFunction", {"request": validated["request"], "active": active})
        assert (bake["status"], bake["passes"], bake["wait_seconds"]) == ("CHECKING", expected, 15)
        active["bake"] = bake
    bake = ok(world, "CheckHealthFunction", {"request": validated["request"], "active": active})
    assert bake["status"] == "PASSED"
    assert {g["gate"]: g["passed"] for g in bake["last"]} == {
        "http": True,
        "targets": True,
        "primary": True,
        "alarms": True,
    }


def test_check_health_raises_named_error_on_body_mismatch(
    world: World, app: AppService, validated: dict[str, Any]
) -> None:
    world.faults.set_image_profile(app.repository, "v1", "db-down")
    active: dict[str, Any] = {
        "phase": "deploy",
        "task_definition": app.running_task_definition(),
        "bake": {"status": "CHECKING", "checks": 1, "passes": 0, "failures": 1},
    }
    errored, body = invoke(world, "CheckHealthFunction", {"request": validated["request"], "active": active})
    assert errored and body["errorType"] == "HealthCheckFailed"
    assert "'Error: db connection down'" in body["errorMessage"]


def test_record_outcome_writes_record_and_notifies(world: World, app: AppService, validated: dict[str, Any]) -> None:
    state = {
        **validated,
        "revision": {"previous": "p:1", "new": "n:2"},
        "active": {"phase": "deploy", "task_definition": "n:2", "bake": {"last": []}},
    }
    out = ok(
        world,
        "RecordOutcomeFunction",
        {"outcome": "SUCCEEDED", "state": state, "ended_at": "2026-01-01T00:05:00Z", "deployment_id": "d-1"},
    )
    assert {k: out[k] for k in ("outcome", "error", "cause")} == {"outcome": "SUCCEEDED", "error": None, "cause": None}
    assert out["summary"]["outcome"] == "DEPLOYED" and out["summary"]["revision"] == "n:2"
    assert out["summary"]["detail"].startswith(f"{state['image']['uri']} runs as n:2")
    record = world.record(app, "d-1")
    assert record is not None and record["outcome"] == "SUCCEEDED" and record["new_task_definition"] == "n:2"
    [note] = world.notifications()
    assert note["message"]["deployment_id"] == "d-1"


def test_record_outcome_turns_a_lambda_cause_into_a_sentence(world: World, validated: dict[str, Any]) -> None:
    failure = {"Error": "HealthCheckFailed", "Cause": json.dumps({"errorMessage": "web:2 failed", "errorType": "x"})}
    state = {
        **validated,
        "revision": {"previous": "arn:task-definition/web:1", "new": "arn:task-definition/web:2"},
        "failure": failure,
        "active": {"phase": "rollback", "task_definition": "arn:task-definition/web:1"},
    }
    out = ok(
        world,
        "RecordOutcomeFunction",
        {"outcome": "ROLLED_BACK", "state": state, "ended_at": "2026-01-01T00:05:00Z", "deployment_id": "d-2"},
    )
    assert out["error"] == "HealthCheckFailed"
    assert out["cause"] == "web:2 failed -- rolled back to web:1, which passed its health gates"


def test_functions_fail_clearly_when_misconfigured(world: World) -> None:
    fn = world.runtime.by_logical_id("RecordOutcomeFunction")
    del fn.environment["DEPLOYMENTS_TABLE"]
    errored, body = invoke(world, "RecordOutcomeFunction", {"outcome": "SUCCEEDED", "state": {}})
    assert errored and "DEPLOYMENTS_TABLE" in body["errorMessage"]
