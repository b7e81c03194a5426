"""Triggers and guarantees end to end: EventBridge -> Step Functions -> real handlers, in the local world."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import AppService, ExecutionResult


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@pytest.fixture
def registered(world: World, app: AppService) -> AppService:
    world.register(app, tag_filter={"mode": "glob", "pattern": "v*"})
    return app


def push(world: World, app: AppService, tag: str, profile: str = "healthy", at: float | None = None) -> list[str]:
    """Push an image and deliver ECR's event through EventBridge; returns the executions started."""
    world.push_image(app.repository, tag, profile)
    return world.put_events(world.ecr_push_event(app.repository, tag, pushed=at))


def control_items(world: World) -> list[dict[str, Any]]:
    return list(world.client("dynamodb").scan(TableName=world.outputs["ControlTableName"])["Items"])


def lock_of(world: World) -> list[dict[str, Any]]:
    return [i for i in control_items(world) if i["item"]["S"] == "LOCK"]


def entered_at(result: ExecutionResult, state: str) -> float:
    """Absolute (virtual-clock) time a state was first entered."""
    return next(
        e["timestamp"].timestamp() for e in result.events if e.get("stateEnteredEventDetails", {}).get("name") == state
    )


def test_ecr_push_deploys_through_eventbridge(world: World, registered: AppService) -> None:
    [arn] = push(world, registered, "v2")
    result = world.wait(arn)

    assert result.status == "SUCCEEDED", result.cause
    assert result.input["source"] == "aws.ecr" and result.input["detail-type"] == "ECR Image Action"
    assert revision(registered.running_task_definition()) == "web:2"
    record = world.record(registered, result.name)
    assert record is not None and record["trigger"] == "ecr" and record["outcome"] == "SUCCEEDED"
    assert lock_of(world) == []  # released


def test_push_of_the_running_digest_is_a_no_op(world: World, registered: AppService) -> None:
    [arn] = world.put_events(world.ecr_push_event(registered.repository, "v1"))
    result = world.wait(arn)

    assert result.status == "SUCCEEDED" and result.path[-2:] == ["RecordSkipped", "Skipped"]
    record = world.record(registered, result.name)
    assert record is not None and record["outcome"] == "SKIPPED" and record["skip_reason"] == "AlreadyRunning"
    assert revision(registered.running_task_definition()) == "web:1"
    assert len(world.client("ecs").list_task_definitions()["taskDefinitionArns"]) == 1


def test_redelivered_event_never_deploys_twice(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v2", "db-down")
    event = world.ecr_push_event(registered.repository, "v2")
    first = world.wait(world.put_events(event)[0])
    assert (first.status, first.error) == ("FAILED", "HealthCheckFailed")

    second = world.wait(world.put_events(event)[0])  # EventBridge delivers at least once

    # refused, not skipped: a skip is never a success for an image that failed (issue 10, failure 3)
    assert (second.status, second.error) == ("FAILED", "PreviouslyFailed") and "RegisterRevision" not in second.path
    record = world.record(registered, second.name)
    assert record is not None and record["outcome"] == "FAILED"
    assert first.name in record["cause"]
    assert revision(registered.running_task_definition()) == "web:1"
    assert len(world.client("ecs").list_task_definitions()["taskDefinitionArns"]) == 2  # only the first registered


def test_concurrent_pushes_are_serialised_and_the_newest_wins(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v2", "healthy")
    world.push_image(registered.repository, "v3", "healthy")
    t = world.clock.time()
    pause = world.pause_at("WaitRollout")  # a is held mid-rollout (holding the lock) until b is queued
    [a] = world.put_events(world.ecr_push_event(registered.repository, "v2", pushed=t))
    assert pause.reached() == a
    [b] = world.put_events(world.ecr_push_event(registered.repository, "v3", pushed=t + 1))
    world.wait_for_state(b, "QueueWait")
    pause.release()
    first, second = world.wait(a), world.wait(b)

    assert first.status == second.status == "SUCCEEDED"
    assert "QueueWait" in second.path, "the second push waited for the lock"
    assert entered_at(second, "RegisterRevision") >= entered_at(first, "RecordSucceeded"), "never two at once"
    assert revision(registered.running_task_definition()) == "web:3"
    assert registered.running_image().endswith(world.digest_of(registered.repository, "v3"))
    assert lock_of(world) == []


def test_stale_push_is_skipped_with_a_reason(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v2")
    world.push_image(registered.repository, "v3")
    t = world.clock.time()
    newer = world.wait(world.put_events(world.ecr_push_event(registered.repository, "v3", pushed=t))[0])
    assert newer.status == "SUCCEEDED"

    older = world.wait(world.put_events(world.ecr_push_event(registered.repository, "v2", pushed=t - 60))[0])

    assert older.status == "SUCCEEDED" and older.path[-2:] == ["RecordSkipped", "Skipped"]
    record = world.record(registered, older.name)
    assert record is not None and record["skip_reason"] == "StaleImage"
    assert "an older push never replaces a newer one" in record["cause"]
    assert revision(registered.running_task_definition()) == "web:2"  # v3's revision, registered first


def test_codepipeline_image_detail_file_deploys(world: World, app: AppService) -> None:
    world.register(app, allow_digest_only=True)
    world.push_image(app.repository, "build-42")
    uri = world.image_uri(app.repository, "build-42")
    result = world.deploy({"ImageURI": uri}, name="pipeline-0f3c9a")

    assert result.status == "SUCCEEDED", result.cause
    assert app.running_image() == uri
    record = world.record(app, result.name)
    assert record is not None and record["trigger"] == "codepipeline"


def test_codepipeline_image_definitions_file_deploys_by_tag(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v7")
    uri = world.client("ecr").describe_repositories(repositoryNames=[registered.repository])["repositories"][0][
        "repositoryUri"
    ]
    result = world.deploy([{"name": "app", "imageUri": f"{uri}:v7"}])

    assert result.status == "SUCCEEDED", result.cause
    assert registered.running_image() == world.image_uri(registered.repository, "v7")


def test_codepipeline_failure_ends_the_execution_failed(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v8", "http-500")
    uri = world.image_uri(registered.repository, "v8")
    result = world.deploy([{"name": "app", "imageUri": uri.replace("@", ":v8@")}])

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed")  # the pipeline action fails
    assert revision(registered.running_task_definition()) == "web:1"


def _pipeline_ecs_deploy(world: World, app: AppService, tag: str) -> str:
    """What CodePipeline's own ECS deploy action does: new revision, UpdateService, rollout completes."""
    ecs = world.client("ecs")
    td = ecs.describe_task_definition(taskDefinition=app.running_task_definition())["taskDefinition"]
    td["containerDefinitions"][0]["image"] = world.image_uri(app.repository, tag)
    keys = (
        "family",
        "containerDefinitions",
        "networkMode",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "executionRoleArn",
    )
    new = ecs.register_task_definition(**{k: td[k] for k in keys})["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=app.cluster, service=app.service, taskDefinition=new)
    return str(new)


def test_verify_after_pipeline_deploy_rolls_back_to_the_last_verified_revision(
    world: World, registered: AppService
) -> None:
    assert world.deploy({"target": "techchallenge/web", "image": {"tag": "v1"}, "redeploy": True}).status == "SUCCEEDED"
    world.push_image(registered.repository, "v2", "db-down")
    _pipeline_ecs_deploy(world, registered, "v2")

    result = world.deploy({"mode": "verify", "target": "techchallenge/web"})

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed")
    assert "rolled back to web:2" in (result.cause or "")  # web:2 = v1, the last revision stepdeploy verified
    assert revision(registered.running_task_definition()) == "web:2"
    assert registered.running_image() == world.image_uri(registered.repository, "v1")
    record = world.record(registered, result.name)
    assert record is not None and record["trigger"] == "verify" and record["outcome"] == "ROLLED_BACK"


def test_verify_of_a_healthy_pipeline_deploy_succeeds(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v2")
    new = _pipeline_ecs_deploy(world, registered, "v2")

    result = world.deploy({"mode": "verify", "target": "techchallenge/web"})

    assert result.status == "SUCCEEDED", result.cause
    assert registered.running_task_definition() == new
    assert "RegisterRevision" not in result.path and "CheckHealth" in result.path


def test_lock_is_released_when_an_execution_is_aborted(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v2")
    pause = world.pause_at("WaitRollout")  # stopped mid-rollout, the lock held
    [arn] = world.put_events(world.ecr_push_event(registered.repository, "v2"))
    assert pause.reached() == arn
    assert len(lock_of(world)) == 1

    world.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stopped by hand")
    deadline = time.monotonic() + 10
    delivered = False
    while not delivered and time.monotonic() < deadline:
        delivered = any(rule.endswith("ExecutionEnded") and "ok" in what for rule, what in world.deliveries)
        time.sleep(0.02)

    assert delivered
    assert lock_of(world) == []  # the status-change rule ran ReleaseLock


def test_queued_deployment_gives_up_with_a_named_error() -> None:
    with World(function_log_level="ERROR", parameters={"QueueTimeoutSeconds": "60"}) as world:
        registered = world.create_service(tag="v1")
        world.register(registered)
        world.push_image(registered.repository, "v2")
        pause = world.pause_at("WaitRollout")  # a holds the lock for as long as b queues
        [a] = world.put_events(world.ecr_push_event(registered.repository, "v2"))
        assert pause.reached() == a
        world.push_image(registered.repository, "v3")
        b = world.deploy({"target": "techchallenge/web", "image": {"tag": "v3"}})

        assert (b.status, b.error) == ("FAILED", "DeploymentInProgress"), (b.path, world.record(registered, b.name))
        assert "waited 60s" in (b.cause or "") and "Nothing was changed" in (b.cause or "")
        assert b.path.count("QueueWait") >= 2 and "RegisterRevision" not in b.path
        pause.release()
        assert world.wait(a).status == "SUCCEEDED"
        assert revision(registered.running_task_definition()) == "web:2"


def _ecr(detail: dict[str, Any], **top: Any) -> dict[str, Any]:
    base = {
        "version": "0",
        "id": "1",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "123456789012",
        "time": "2026-11-28T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
    }
    full = {
        "result": "SUCCESS",
        "repository-name": "techchallengeapp",
        "action-type": "PUSH",
        "image-digest": "sha256:" + "a" * 64,
        "image-tag": "v9",
    }
    return {**base, **top, "detail": {**full, **detail}}


BAD_INPUTS: list[tuple[str, Any, str]] = [
    ("wrong detail-type", _ecr({}, **{"detail-type": "ECR Image Scan"}), "InvalidDeploymentRequest"),
    ("wrong source", _ecr({}, source="aws.s3"), "InvalidDeploymentRequest"),
    ("result FAILURE", _ecr({"result": "FAILURE"}), "InvalidDeploymentRequest"),
    ("DELETE action", _ecr({"action-type": "DELETE"}), "InvalidDeploymentRequest"),
    ("missing digest", _ecr({"image-digest": None}), "InvalidDeploymentRequest"),
    # pushes of unregistered repositories or tags outside the filter end Ignored: test_ignored_pushes.py
    ("input is a JSON string that is not JSON", "{not json", "InvalidDeploymentRequest"),
    ("input is a number", 42, "InvalidDeploymentRequest"),
    ("imagedefinitions missing imageUri", [{"name": "app"}], "InvalidDeploymentRequest"),
    ("imagedefinitions empty", [], "InvalidDeploymentRequest"),
    (
        "imagedefinitions with two images",
        [{"name": "a", "imageUri": "r.io/x:1"}, {"name": "b", "imageUri": "r.io/y:1"}],
        "InvalidDeploymentRequest",
    ),
    ("imageDetail with a bad URI", {"ImageURI": "not an image"}, "InvalidDeploymentRequest"),
    ("target of the wrong type", {"target": 5, "image": {"tag": "v1"}}, "InvalidDeploymentRequest"),
    ("unknown target", {"target": "nobody/home", "image": {"tag": "v1"}}, "UnregisteredRepository"),
    (
        "oversized payload",
        {"target": "techchallenge/web", "image": {"tag": "v1"}, "reason": "x" * 40000},
        "InvalidDeploymentRequest",
    ),
    ("tag that does not exist", {"target": "techchallenge/web", "image": {"tag": "v404"}}, "InvalidDeploymentRequest"),
    (
        "verify with an unknown field",
        {"mode": "verify", "target": "techchallenge/web", "force": True},
        "InvalidDeploymentRequest",
    ),
    ("unknown mode", {"mode": "rollback", "target": "techchallenge/web"}, "InvalidDeploymentRequest"),
    (
        "redeploy not a boolean",
        {"target": "techchallenge/web", "image": {"tag": "v1"}, "redeploy": "yes"},
        "InvalidDeploymentRequest",
    ),
]


@pytest.mark.parametrize(("case", "payload", "error"), BAD_INPUTS, ids=[c for c, _, _ in BAD_INPUTS])
def test_bad_trigger_input_is_rejected_and_touches_nothing(
    world: World, registered: AppService, case: str, payload: Any, error: str
) -> None:
    ecs = world.client("ecs")
    before = ecs.list_task_definitions()["taskDefinitionArns"]
    body = json.dumps(payload)
    result: ExecutionResult = world.deploy(body)

    assert (result.status, result.error) == ("FAILED", error), result.cause
    assert result.cause and len(result.cause) < 2000
    assert result.path[-1] == "Rejected"
    assert control_items(world) == []  # no lock, no dedupe claim
    assert ecs.list_task_definitions()["taskDefinitionArns"] == before
    assert revision(registered.running_task_definition()) == "web:1"
    assert world.client("dynamodb").scan(TableName=world.outputs["DeploymentsTableName"])["Count"] == 0


def test_codepipeline_lambda_action_follows_the_deployment_to_success(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v2")
    job = world.run_pipeline_job(
        {"target": "techchallenge/web", "file": "imageDetail.json"},
        {"imageDetail.json": {"ImageURI": world.image_uri(registered.repository, "v2")}},
    )

    assert job["status"] == "Succeeded", job
    assert len(job["results"]) >= 2  # at least one continuation, then one final result
    assert [r["kind"] for r in job["results"]] == ["success"] * len(job["results"])
    assert all(r["continuationToken"] for r in job["results"][:-1]) and not job["results"][-1]["continuationToken"]
    assert revision(registered.running_task_definition()) == "web:2"


def test_codepipeline_lambda_action_fails_the_job_when_the_deployment_fails(
    world: World, registered: AppService
) -> None:
    world.push_image(registered.repository, "v2", "db-down")
    job = world.run_pipeline_job({"target": "techchallenge/web", "image": {"tag": "v2"}})

    assert job["status"] == "Failed"
    assert job["failure"]["type"] == "JobFailed"
    assert "HealthCheckFailed" in job["failure"]["message"] and "rolled back" in job["failure"]["message"]
    assert revision(registered.running_task_definition()) == "web:1"


@pytest.mark.parametrize(
    ("params", "files", "fragment"),
    [
        ("not json", None, "not valid JSON"),
        ("[1, 2]", None, "must be a JSON object"),
        ("", None, "UserParameters must be a JSON object"),
        ({"target": "techchallenge/web", "colour": "blue"}, None, "unknown key(s) colour"),
        ({"target": "techchallenge/web"}, None, "needs {target, image}"),
        ({"file": "imageDetail.json"}, None, "expected one input artifact"),
        ({"file": "imageDetail.json"}, {"other.json": "{}"}, "not found in the input artifact"),
        ({"file": "imageDetail.json"}, {"imageDetail.json": "{oops"}, "is not valid JSON"),
        (
            {"target": "techchallenge/web", "file": "imagedefinitions.json"},
            {"imagedefinitions.json": "[]"},
            "imagedefinitions.json is empty",
        ),
    ],
)
def test_codepipeline_lambda_action_reports_bad_configuration_and_touches_nothing(
    world: World, registered: AppService, params: Any, files: dict[str, Any] | None, fragment: str
) -> None:
    job = world.run_pipeline_job(params, files)

    assert job["status"] == "Failed" and job["invocations"] == 1
    assert job["failure"]["type"] == "ConfigurationError"
    assert fragment in job["failure"]["message"]
    assert (
        world.client("stepfunctions").list_executions(stateMachineArn=world.outputs["DeployStateMachineArn"])[
            "executions"
        ]
        == []
    )
    assert control_items(world) == []
