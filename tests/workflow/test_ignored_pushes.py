"""Pushes stepdeploy does not deploy end SUCCEEDED in ``Ignored`` at once: no failed execution (the
FailedDeploymentsAlarm counts ExecutionsFailed), no record, no lock; a pipeline's push is not deployed twice."""

from __future__ import annotations

from typing import Any
from unittest.mock import ANY

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import AppService, ExecutionResult, PipelineBuild

#: Normalize, then the two Pass states that build the short output (docs: execution output)
IGNORED = ["Normalize", "ExplainIgnored", "SummarizeIgnored", "Ignored"]
COMMIT_TAGS = {"mode": "regex", "pattern": "[0-9a-f]{7}"}


def records(world: World) -> list[dict[str, Any]]:
    return list(world.client("dynamodb").scan(TableName=world.outputs["DeploymentsTableName"])["Items"])


def control_items(world: World) -> list[dict[str, Any]]:
    return list(world.client("dynamodb").scan(TableName=world.outputs["ControlTableName"])["Items"])


def executions(world: World) -> list[str]:
    sfn = world.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=world.outputs["DeployStateMachineArn"])["executions"]
    return [str(e["executionArn"]) for e in listed]


def assert_ignored(world: World, result: ExecutionResult, reason: str) -> None:
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.path == IGNORED
    assert result.state_transitions == 4  # Normalize, the two Pass states of its short output, Ignored
    assert result.output == {"outcome": "IGNORED", "reason": "PushIgnored", "detail": ANY, "record": None}
    assert reason in result.output["detail"] and "Traceback" not in result.output["detail"]
    assert records(world) == [] and control_items(world) == []
    ended = [d for d in world.deliveries if d[0].endswith("ExecutionEnded")]
    assert all('"status": "SUCCEEDED"' in what for _, what in ended)  # no FAILED status change


@pytest.mark.parametrize(
    ("repository", "tag", "registration", "reason"),
    [
        ("someone-elses-app", "v2", {}, "is not in the stepdeploy registry"),
        ("techchallengeapp", "latest", {"tag_filter": {"mode": "glob", "pattern": "v*"}}, "matches no registry filter"),
        ("techchallengeapp", "v2", {"deploy_on_push": False}, "deploy_on_push false"),
    ],
    ids=["unregistered repository", "tag outside the filter", "entry deployed by its pipeline"],
)
def test_push_stepdeploy_does_not_deploy_ends_ignored_not_failed(
    world: World, app: AppService, repository: str, tag: str, registration: dict[str, Any], reason: str
) -> None:
    world.register(app, **registration)
    before = app.running_task_definition()

    _, [arn] = world.ecr_push(repository, tag)
    result = world.wait(arn)

    assert_ignored(world, result, reason)
    assert app.running_task_definition() == before


def test_push_without_a_tag_that_the_entry_does_not_allow_is_ignored(world: World, app: AppService) -> None:
    world.register(app, allow_digest_only=False)
    digest = world.push_image(app.repository, "v2")
    [arn] = world.put_events(world.ecr_push_event(app.repository, None, digest))

    assert_ignored(world, world.wait(arn), "a push without a tag")


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        ({"target": "nobody/home", "image": {"tag": "v2"}}, "UnregisteredRepository"),
        ({"target": "techchallenge/web", "image": {"tag": "latest"}}, "TagFilterMismatch"),
        ({"ImageURI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/someone-elses-app:v2"}, "UnregisteredRepository"),
    ],
    ids=["manual unknown target", "manual tag outside the filter", "pipeline file of an unregistered repository"],
)
def test_explicit_request_stepdeploy_cannot_deploy_still_fails_with_the_named_error(
    world: World, app: AppService, request_body: dict[str, Any], error: str
) -> None:
    world.register(app, tag_filter={"mode": "glob", "pattern": "v*"})
    world.push_image(app.repository, "latest")
    world.push_image("someone-elses-app", "v2")

    result = world.deploy(request_body)

    assert (result.status, result.error) == ("FAILED", error), result.cause
    assert result.path[-1] == "Rejected"
    assert records(world) == [] and control_items(world) == []


def test_entry_deployed_by_its_pipeline_still_deploys_a_manual_request(world: World, app: AppService) -> None:
    world.register(app, deploy_on_push=False)
    _, [pushed] = world.ecr_push(app.repository, "v2")
    assert world.wait(pushed).path == IGNORED

    result = world.deploy({"target": "techchallenge/web", "image": {"tag": "v2"}})

    assert result.status == "SUCCEEDED", result.cause
    assert app.running_image() == world.image_uri(app.repository, "v2")


def test_pipeline_release_is_started_once_the_push_is_ignored(world: World, app: AppService) -> None:
    """examples/pipeline: the build pushes (ECR's event reaches the rule), then the deploy action starts
    stepdeploy with imageDetail.json. Only the pipeline's execution deploys the digest."""
    world.register(app, tag_filter=COMMIT_TAGS, allow_digest_only=True, deploy_on_push=False)

    job = world.run_pipeline_job(
        {"target": "techchallenge/web", "file": "imageDetail.json"},
        build=PipelineBuild(app.repository, "3f9c2ab"),
    )

    assert job["status"] == "Succeeded", job
    assert job["build"]["pushed"] is True
    [from_push] = job["build"]["executions"]
    pushed = world.wait(from_push)
    assert pushed.path == IGNORED and pushed.state_transitions == 4
    [pipeline_run] = [arn for arn in executions(world) if arn != from_push]
    deployed = world.wait(pipeline_run)
    assert deployed.status == "SUCCEEDED" and "RegisterRevision" in deployed.path
    assert deployed.name.startswith("codepipeline-")
    assert app.running_image() == job["build"]["image_uri"]
    [record] = records(world)  # one release, one deployment record
    assert record["deployment_id"]["S"] == deployed.name and record["trigger"]["S"] == "codepipeline"
    assert record["outcome"]["S"] == "SUCCEEDED"
