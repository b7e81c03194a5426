"""End to end: what happens when an execution ends without the workflow's own record (stopped, timed out),
and how a CodePipeline job always gets exactly one result (the execution-status-change rule answers it)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import AppService


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@pytest.fixture
def registered(world: World, app: AppService) -> AppService:
    world.register(app, tag_filter={"mode": "glob", "pattern": "v*"})
    return app


def status_change_handled(world: World, execution_arn: str, timeout: float = 15.0) -> str:
    """Wait until the execution-status-change rule delivered the execution's end to its function."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rule, what in list(world.deliveries):
            if rule.endswith("ExecutionEnded") and execution_arn in what:
                return what
        time.sleep(0.02)
    raise TimeoutError(f"the end of {execution_arn} was not delivered within {timeout}s")


def stop_at(world: World, state: str, request: dict[str, Any]) -> str:
    pause = world.pause_at(state)
    arn = world.start_deployment(request)
    assert pause.reached() == arn
    world.client("stepfunctions").stop_execution(executionArn=arn)
    assert world.wait(arn).status == "ABORTED"
    assert "-> ok" in status_change_handled(world, arn)
    return arn


def final_results(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in job["results"] if r["kind"] == "failure" or not r.get("continuationToken")]


@pytest.mark.parametrize("stopped_at", ["WaitRollout", "WaitBake"])
def test_a_rolling_deployment_stopped_before_its_gates_passed_goes_back_to_the_last_verified(
    world: World, app: AppService, stopped_at: str
) -> None:
    """Abort (StopExecution) mid-rollout or mid-bake: the service is pointed back at the last verified
    revision (as the workflow's own rollback would), and the ABORTED record says so (a warning, not an alert)."""
    world.push_image(app.repository, "v2")
    assert world.deploy(app.request("v2")).status == "SUCCEEDED"  # web:2, verified
    world.push_image(app.repository, "v3", "db-down")
    world.notifications()

    arn = stop_at(world, stopped_at, app.request("v3"))  # the service was moved to web:3, unverified

    assert revision(app.running_task_definition()) == "web:2"
    assert app.running_image().endswith(world.digest_of(app.repository, "v2"))
    record = world.record(app, arn.rsplit(":", 1)[-1])
    assert record is not None and record["outcome"] == "ABORTED", record
    assert record["running_task_definition"].endswith("web:2")
    assert "rolled the service back to web:2, the last verified revision" in record["cause"]
    assert "web:3" in record["cause"] and "A person is needed" not in record["cause"]
    [note] = world.notifications()
    assert note["attributes"]["severity"] == "WARNING" and not note["subject"].startswith("ALERT ")

    again = world.deploy(app.request("v3"))  # the aborted image is not taken as verified, nor skipped
    assert (again.status, again.error) == ("FAILED", "PreviouslyFailed"), again.cause


def test_a_rollback_stopped_midway_is_recorded_as_critical_and_the_next_rolls_back_to_the_last_verified(
    world: World, app: AppService
) -> None:
    """Stopped while its own rollback's rollout ran: nothing verified runs for sure: a person is needed."""
    world.push_image(app.repository, "v2")
    assert world.deploy(app.request("v2")).status == "SUCCEEDED"  # web:2, verified
    world.push_image(app.repository, "v3", "db-down")
    world.notifications()

    at_rollback = world.pause_at("Rollback")  # web:3 failed its gates
    arn = world.start_deployment(app.request("v3"))
    assert at_rollback.reached() == arn
    rolling_back = world.pause_at("WaitRollout", arrival=world.arrivals(arn, "WaitRollout") + 1)
    at_rollback.release()
    assert rolling_back.reached() == arn  # the rollback's UpdateService ran; its rollout is not verified
    world.client("stepfunctions").stop_execution(executionArn=arn)
    assert world.wait(arn).status == "ABORTED"
    assert "-> ok" in status_change_handled(world, arn)

    record = world.record(app, arn.rsplit(":", 1)[-1])
    assert record is not None and record["outcome"] == "ABORTED", record
    assert "A person is needed" in record["cause"] and "the last verified revision is web:2" in record["cause"]
    [note] = world.notifications()
    assert note["attributes"]["severity"] == "CRITICAL" and note["subject"].startswith("ALERT ")

    world.push_image(app.repository, "v4", "db-down")
    result = world.deploy(app.request("v4"))

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed"), result.cause
    assert "rolled back to web:2" in (result.cause or "")  # not to web:3, which never passed its gates
    assert revision(app.running_task_definition()) == "web:2"


def test_a_deployment_stopped_before_it_changed_anything_is_recorded_as_a_warning(
    world: World, app: AppService
) -> None:
    from stepdeploy.adapters import control

    world.push_image(app.repository, "v2")
    holder = "arn:aws:states:us-east-1:123456789012:execution:other:holder"
    assert (
        control.acquire_lock(
            world.outputs["ControlTableName"], app.key, holder, "holder", int(world.clock.time()), 86400
        )
        is None
    )
    world.notifications()

    arn = stop_at(world, "QueueWait", app.request("v2"))  # queued behind the other deployment

    record = world.record(app, arn.rsplit(":", 1)[-1])
    assert record is not None and record["outcome"] == "ABORTED", record
    assert "the service was not changed" in record["cause"]
    [note] = world.notifications()
    assert note["attributes"]["severity"] == "WARNING"
    assert revision(app.running_task_definition()) == "web:1"


def test_an_execution_that_recorded_its_outcome_is_not_recorded_again(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "db-down")
    world.notifications()

    result = world.deploy(app.request("v2"))
    status_change_handled(world, result.arn)

    assert result.error == "HealthCheckFailed"
    record = world.record(app, result.name)
    assert record is not None and record["outcome"] == "ROLLED_BACK"  # the workflow's record stands
    assert [n["message"]["outcome"] for n in world.notifications()] == ["ROLLED_BACK"]


def test_a_rejected_execution_leaves_no_record(world: World, app: AppService) -> None:
    result = world.deploy({"target": "techchallenge/nope", "image": {"tag": "v2"}})
    status_change_handled(world, result.arn)

    assert result.path[-1] == "Rejected"
    assert world.client("dynamodb").scan(TableName=world.outputs["DeploymentsTableName"])["Count"] == 0


@pytest.mark.parametrize(
    ("profile", "status", "execution_status"), [("healthy", "Succeeded", "SUCCEEDED"), ("db-down", "Failed", "FAILED")]
)
def test_a_crashing_continuation_still_gets_exactly_one_result(
    world: World, registered: AppService, profile: str, status: str, execution_status: str
) -> None:
    world.push_image(registered.repository, "v2", profile)
    # the first invocation starts the execution; the continuation runs out of time before it reports
    world.faults.fail_lambda("PipelineJobFunction", "Sandbox.Timedout", "Task timed out after 60.00 seconds", after=1)

    job = world.run_pipeline_job({"target": "techchallenge/web", "image": {"tag": "v2"}})

    assert job["status"] == status, job
    assert job["invocations"] == 2
    [final] = final_results(job)  # answered by the execution-status-change rule, once
    executions = world.client("stepfunctions").list_executions(stateMachineArn=world.outputs["DeployStateMachineArn"])
    [execution] = executions["executions"]
    assert execution["status"] == execution_status and execution["name"] == f"codepipeline-{job['job']}"
    if status == "Failed":
        assert "HealthCheckFailed" in final["failureDetails"]["message"]
        assert "rolled back" in final["failureDetails"]["message"]
    else:
        assert final["executionDetails"]["summary"].startswith("DEPLOYED: ")


def test_the_normal_path_gets_exactly_one_final_result(world: World, registered: AppService) -> None:
    world.push_image(registered.repository, "v2")

    job = world.run_pipeline_job({"target": "techchallenge/web", "image": {"tag": "v2"}})

    assert job["status"] == "Succeeded", job
    [final] = final_results(job)
    assert final is job["results"][-1]
    arn = final["executionDetails"]["summary"].rsplit(" (", 1)[1].rstrip(")")  # "DEPLOYED: <detail> (<arn>)"
    status_change_handled(world, arn)
    assert final_results(job) == [final]  # the rule's answer, if second, was refused as already answered


def test_a_stack_app_stopped_mid_bake_rolls_back_to_the_last_verified_release(world: World) -> None:
    world.push_image("techchallengeapp", "v1")
    stack = world.stack_app("techchallenge", parameters={"DeploymentStrategy": "ROLLING"})  # (gated after the update)
    assert world.deploy(stack.request("v1")).status == "SUCCEEDED"  # provisioned, v1 verified
    world.push_image("techchallengeapp", "v2", "db-down")
    arn = stop_at(world, "WaitBake", stack.request("v2"))  # the stack runs v2, unverified
    record = world.record(stack, arn.rsplit(":", 1)[-1])
    assert record is not None and record["outcome"] == "ABORTED" and "A person is needed" in record["cause"]
    assert stack.service().running_image() == world.image_uri("techchallengeapp", "v2")
    world.push_image("techchallengeapp", "v3", "db-down")

    result = world.deploy(stack.request("v3"), timeout=300)

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed"), result.cause
    assert "rolled back through the stack" in (result.cause or "")
    assert stack.service().running_image() == world.image_uri("techchallengeapp", "v1")  # not v2


def test_a_record_that_landed_before_its_step_failed_is_finished_by_the_execution_end(
    world: World, app: AppService
) -> None:
    """Found by the full fault matrix (RecordSucceeded, api-landed): the record's PutItem landed, its
    response was lost and the step failed; the execution-end handler saw the record and took it for a
    finished one, so nobody was told and the image was never remembered as verified. It finishes what
    the step left: the notification (once, even when the end is delivered twice) and the last verified."""
    world.push_image(app.repository, "v2")
    world.faults.fail_api("dynamodb", "PutItem", state="RecordSucceeded", after_success=True)
    result = world.deploy(app.request("v2"))
    assert result.status == "SUCCEEDED" and "SucceededUnrecorded" in result.path
    status_change_handled(world, result.arn)
    world.redeliver_execution_end(result.arn)  # EventBridge delivers at least once
    assert len([w for r, w in world.deliveries if r.endswith("ExecutionEnded") and result.arn in w]) == 2

    notes = [n["message"] for n in world.notifications() if n["message"].get("deployment_id") == result.name]
    assert [n["outcome"] for n in notes] == ["SUCCEEDED"]
    last = world.client("dynamodb").get_item(
        TableName=world.outputs["ControlTableName"], Key={"service": {"S": app.key}, "item": {"S": "LAST"}}
    )
    assert last["Item"]["deployment_id"]["S"] == result.name


def test_a_record_step_that_timed_out_after_all_it_does_landed_is_not_notified_twice(
    world: World, app: AppService
) -> None:
    """Found by the full fault matrix (RecordSucceeded, timeout): the step wrote the record, notified, and then
    ran past its timeout; the execution-end handler saw the failed step and finished the record again, a second
    SUCCEEDED notification. The record notes when its notification went out (``notified_at``)."""
    world.push_image(app.repository, "v2")
    world.faults.time_out_task("RecordSucceeded")
    result = world.deploy(app.request("v2"))
    assert result.status == "SUCCEEDED" and "SucceededUnrecorded" in result.path
    status_change_handled(world, result.arn)
    notes = [n["message"] for n in world.notifications() if n["message"].get("deployment_id") == result.name]
    assert [n["outcome"] for n in notes] == ["SUCCEEDED"]
    record = world.client("dynamodb").get_item(
        TableName=world.outputs["DeploymentsTableName"],
        Key={"service": {"S": app.key}, "deployment_id": {"S": result.name}},
    )["Item"]
    assert record["recorded_by"]["S"] == "workflow" and "notified_at" in record


def test_a_second_delivery_of_an_abort_does_not_roll_back_a_later_deployment(world: World, app: AppService) -> None:
    """EventBridge delivers at least once: the end of an aborted ROLLING deployment, delivered again after a
    later deployment moved the service on, must not point the service back at the aborted one's last verified
    revision (an older image over a newer one). The rollback happens only while the service runs the aborted
    deployment's revision, and before its lock is released."""
    world.push_image(app.repository, "v2")
    assert world.deploy(app.request("v2")).status == "SUCCEEDED"  # web:2, verified
    world.push_image(app.repository, "v3")
    aborted = stop_at(world, "WaitRollout", app.request("v3"))
    assert revision(app.running_task_definition()) == "web:2"  # rolled back by the end handler
    world.push_image(app.repository, "v4")
    assert world.deploy(app.request("v4")).status == "SUCCEEDED"
    assert revision(app.running_task_definition()) == "web:4"
    world.redeliver_execution_end(aborted)
    assert len([w for r, w in world.deliveries if r.endswith("ExecutionEnded") and aborted in w]) == 2
    assert revision(app.running_task_definition()) == "web:4"
    assert app.running_image().endswith(world.digest_of(app.repository, "v4"))
