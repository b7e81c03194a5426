"""What an execution that ends SUCCEEDED outputs: a short, documented summary (workflow.SUMMARY_KEYS), never
the whole workflow state; a skip says why and names the revision that runs instead."""

from __future__ import annotations

import json
from typing import Any

from stepdeploy import workflow
from stepdeploy_local import World
from stepdeploy_local.world import AppService, ExecutionResult


def summary(result: ExecutionResult) -> dict[str, Any]:
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output is not None and tuple(result.output) == workflow.SUMMARY_KEYS, result.output
    assert len(json.dumps(result.output)) < 2000, "short: not the workflow state"
    return result.output


def test_a_deployment_outputs_what_runs_now(world: World, app: AppService) -> None:
    digest = world.push_image(app.repository, "v2")

    out = summary(world.deploy(app.request("v2")))

    assert (out["outcome"], out["mode"], out["reason"]) == ("DEPLOYED", "deploy", "")
    assert out["service"] == app.key and out["image"]["tag"] == "v2" and out["image"]["digest"] == digest
    assert out["revision"] == app.running_task_definition() and out["running_image"] == app.running_image()
    assert "passed its health gates" in out["detail"]
    assert out["record"] == {"service": app.key, "deployment_id": out["deployment_id"], "written": True}


def test_a_request_for_the_image_that_runs_says_it_already_runs_and_when_it_was_verified(
    world: World, app: AppService
) -> None:
    world.push_image(app.repository, "v2")
    first = world.deploy(app.request("v2"))
    verified_at = world.record(app, first.name)["ended_at"]  # type: ignore[index]

    out = summary(again := world.deploy(app.request("v2")))

    assert again.path[-1] == "Skipped"
    assert (out["outcome"], out["reason"]) == ("SKIPPED", "AlreadyRunning")
    assert f"already running, verified at {verified_at} by {first.name}" in out["detail"]
    assert out["revision"] == app.running_task_definition()


def test_a_duplicate_request_for_an_older_image_names_the_revision_that_runs_instead(
    world: World, app: AppService
) -> None:
    """'Roll back to v2' without redeploy is a Duplicate: it says so, and that v3 still runs."""
    world.push_image(app.repository, "v2")
    first = world.deploy(app.request("v2"))
    world.push_image(app.repository, "v3")
    assert world.deploy(app.request("v3")).status == "SUCCEEDED"

    out = summary(world.deploy(app.request("v2")))

    assert (out["outcome"], out["reason"]) == ("SKIPPED", "Duplicate") and first.name in out["detail"]
    assert out["image"]["tag"] == "v2"
    assert out["revision"] == app.running_task_definition() and out["revision"].endswith("web:3")
    assert out["running_image"] == world.image_uri(app.repository, "v3")


def test_a_plan_outputs_the_plan_and_records_nothing(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")

    result = world.deploy(app.request("v2", plan=True))

    assert result.status == "SUCCEEDED" and result.output is not None
    assert (result.output["outcome"], result.output["service"], result.output["record"]) == ("PLANNED", app.key, None)
    assert result.output["plan"]["image"] == world.image_uri(app.repository, "v2")
    assert world.record(app, result.name) is None


def test_a_skip_whose_record_step_failed_outputs_the_same_summary(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    assert world.deploy(app.request("v2")).status == "SUCCEEDED"
    world.faults.fail_api("dynamodb", "PutItem", state="RecordSkipped", times=100)

    result = world.deploy(app.request("v2"))

    assert result.path[-3:] == ["SkippedUnrecorded", "SummarizeSkipped", "Skipped"]
    out = summary(result)
    assert (out["outcome"], out["reason"], out["revision"]) == (
        "SKIPPED",
        "AlreadyRunning",
        app.running_task_definition(),
    )
    assert out["record"]["written"] is False and out["record"]["unrecorded"]


def emitted(out: str) -> dict[str, list[float]]:
    """Metric name -> the values the functions emitted (EMF lines on their stdout, i.e. their logs)."""
    found: dict[str, list[float]] = {}
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            emf = json.loads(line)
            for metric in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found.setdefault(metric["Name"], []).extend(emf[metric["Name"]])
    return found


def test_deployments_emit_the_durations_the_dashboard_shows(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    deployed = world.deploy(app.request("v2"))
    world.push_image(app.repository, "v3", "db-down")
    rolled_back = world.deploy(app.request("v3"))
    assert world.deploy(app.request("v2")).path[-1] == "Skipped"
    assert (deployed.status, rolled_back.error) == ("SUCCEEDED", "HealthCheckFailed")

    metrics = emitted("".join(i.logs for i in world.runtime.invocations))  # EMF lines in the functions' logs

    [to_deploy] = metrics["TimeToDeploy"]
    assert 0 < to_deploy <= deployed.virtual_seconds + 1
    [to_detect], [to_restore] = metrics["TimeToDetect"], metrics["TimeToRestore"]
    assert to_detect > 0 and to_restore > 0 and to_detect + to_restore <= rolled_back.virtual_seconds + 1
    assert metrics["DeploymentSkipped"] == [1.0] and len(metrics["DeploymentOutcome"]) == 3
