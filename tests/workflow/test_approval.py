"""A person can hold a release (issue 11 point 4): an approval pause answered with the task token the product stores
in the service's APPROVAL control item. ROLLING pauses before UpdateService (nothing changed yet); BLUE_GREEN pauses
at POST_TEST_TRAFFIC_SHIFT once green passed its gates through the test listener (0 % production). Each ending
asserts its invariants: status and error, what runs, the lock released, the record written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import AppService

from tests.workflow.test_progressive_delivery import (
    assert_settled,
    deployments,
    lock_free,
    production_weights,
    progressive,
    records_of,
    revision,
)

APPROVAL = {"timeout_minutes": 30, "on_timeout": "REJECT"}


def approval_item(world: World, app: AppService) -> dict[str, Any] | None:
    out = world.client("dynamodb").get_item(
        TableName=world.outputs["ControlTableName"], Key={"service": {"S": app.key}, "item": {"S": "APPROVAL"}}
    )
    return {k: next(iter(v.values())) for k, v in out["Item"].items()} if "Item" in out else None


def held(world: World, app: AppService, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Start the release and wait until it is held: its execution and the APPROVAL item an operator reads."""
    arn = world.start_deployment(request)
    item = World.eventually(lambda: approval_item(world, app), timeout=60)
    assert item["holder"] == arn
    return arn, item


def test_a_rolling_release_waits_for_approval_and_then_deploys(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    arn, item = held(world, app, app.request("v2", approval=APPROVAL))
    assert item["stage"] == "BEFORE_UPDATE_SERVICE" and item["tag"] == "v2"
    assert revision(app.running_task_definition()) == "web:1"  # nothing changed while held
    notice = World.eventually(
        lambda: [n for n in world.notifications() if n["attributes"]["outcome"] == "AWAITING_APPROVAL"]
    )
    assert notice[0]["message"]["token"] == item["token"] and "send-task-success" in notice[0]["message"]["approve"]
    world.client("stepfunctions").send_task_success(
        taskToken=item["token"], output=json.dumps({"approved": True, "by": "alice"})
    )
    result = world.wait(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert revision(app.running_task_definition()) == "web:2"
    assert World.eventually(lambda: lock_free(world, app))
    assert World.eventually(lambda: approval_item(world, app) is None)


def test_a_rejected_rolling_release_changes_nothing_and_is_recorded(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    arn, item = held(world, app, app.request("v2", approval=APPROVAL))
    world.client("stepfunctions").send_task_failure(
        taskToken=item["token"], error="ApprovalRejected", cause="rejected by bob: the release notes are missing"
    )
    result = world.wait(arn)
    assert result.status == "FAILED" and result.error == "ApprovalRejected", result.cause
    assert "rejected by bob" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1" and app.rollouts() == []
    assert "Deploy" not in result.path
    (record,) = World.eventually(lambda: records_of(world, app))
    assert record["outcome"] == "FAILED" and record["error"] == "ApprovalRejected"
    assert World.eventually(lambda: lock_free(world, app))


@pytest.mark.parametrize(
    ("on_timeout", "status", "running"), [("REJECT", "FAILED", "web:1"), ("APPROVE", "SUCCEEDED", "web:2")]
)
def test_an_unanswered_rolling_release_takes_its_default_action(
    world: World, app: AppService, on_timeout: str, status: str, running: str
) -> None:
    world.push_image(app.repository, "v2")
    arn, item = held(world, app, app.request("v2", approval={"timeout_minutes": 5, "on_timeout": on_timeout}))
    world.clock.advance(5 * 60 + 1)  # no one answers
    result = world.wait(arn)
    assert result.status == status, result.cause
    assert revision(app.running_task_definition()) == running
    if status == "FAILED":
        assert result.error == "ApprovalRejected" and "no one answered within 5 min" in (result.cause or "")
    with pytest.raises(world.client("stepfunctions").exceptions.TaskTimedOut):  # too late: the task closed
        world.client("stepfunctions").send_task_success(taskToken=item["token"], output='{"approved": true}')
    assert World.eventually(lambda: lock_free(world, app))


def test_a_blue_green_release_is_held_at_the_test_traffic_hook_and_continues_when_approved(world: World) -> None:
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    arn, item = held(world, app, app.request("v2", strategy=strategy, approval=APPROVAL))
    assert item["stage"] == "POST_TEST_TRAFFIC_SHIFT"
    (paused,) = [d for d in deployments(world, app) if d["status"] == "IN_PROGRESS"]
    assert paused["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert 100 in production_weights(world, app).values()  # blue still takes all production traffic
    world.clock.advance(25 * 60)  # a person takes their time: it does not count against the deployment deadline
    world.client("stepfunctions").send_task_success(taskToken=item["token"], output='{"approved": true, "by": "alice"}')
    result = world.wait(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert_settled(world, app, "web:2")


def test_a_rejected_blue_green_release_is_taken_back_at_the_hook(world: World) -> None:
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    arn, item = held(world, app, app.request("v2", strategy=strategy, approval=APPROVAL))
    world.client("stepfunctions").send_task_failure(taskToken=item["token"], error="ApprovalRejected", cause="bob: no")
    result = world.wait(arn)
    assert result.status == "FAILED" and result.error == "ApprovalRejected", result.cause
    assert_settled(world, app, "web:1")
    assert world.user_traffic(app).deployments[-1].to_new_revision == 0
    record = World.eventually(lambda: [r for r in records_of(world, app) if r["outcome"] == "ROLLED_BACK"])
    assert record[0]["error"] == "ApprovalRejected"


def test_stopping_a_release_held_for_approval_takes_it_back(world: World) -> None:
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    arn, item = held(world, app, app.request("v2", strategy=strategy, approval=APPROVAL))
    world.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="not today")
    assert world.wait(arn).status == "ABORTED"
    World.eventually(lambda: all(d["status"] != "IN_PROGRESS" for d in deployments(world, app)))
    assert_settled(world, app, "web:1")
    assert World.eventually(lambda: approval_item(world, app) is None)
    with pytest.raises(world.client("stepfunctions").exceptions.TaskTimedOut):
        world.client("stepfunctions").send_task_success(taskToken=item["token"], output="{}")
