"""The local world's fault injection, through the real ASL and handlers: state-level faults (a Lambda
invocation that fails, a Task that times out), AWS API faults inside handlers, and pauses at any state."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from stepdeploy_local import World, template
from stepdeploy_local.workload import profile
from stepdeploy_local.world import AppService


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def errors_of(world: World, logical_id: str) -> list[str | None]:
    return [i.error for i in world.runtime.invocations if i.function == logical_id]


def test_a_transient_lambda_failure_of_a_state_is_retried(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    world.faults.fail_task("CheckHealth", "Lambda.ServiceException", times=1)
    result = world.deploy(app.request("v2"))

    assert result.status == "SUCCEEDED", result.cause
    assert errors_of(world, "CheckHealthFunction")[0] == "Lambda.ServiceException"
    assert errors_of(world, "CheckHealthFunction")[1] is None  # the retry ran the handler
    assert revision(app.running_task_definition()) == "web:2"


def test_failures_that_outlast_the_retries_reach_the_catch(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    world.faults.fail_task("CheckHealth", "Lambda.ServiceException", times=7)  # 1 attempt + 6 retries
    result = world.deploy(app.request("v2"))

    assert result.status == "FAILED"
    assert result.error == "Lambda.ServiceException"
    assert errors_of(world, "CheckHealthFunction")[:7] == ["Lambda.ServiceException"] * 7
    assert "Rollback" in result.path
    assert revision(app.running_task_definition()) == "web:1"


def test_a_task_that_times_out_after_acting_fails_with_states_timeout(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    world.faults.time_out_task("Deploy")
    result = world.deploy(app.request("v2"))

    assert result.status == "FAILED"
    timed_out = [e for e in result.events if e["type"] == "LambdaFunctionTimedOut"]
    assert [e["lambdaFunctionTimedOutEventDetails"]["error"] for e in timed_out] == ["States.Timeout"]
    record = world.record(app, result.name)
    assert record is not None and (record["outcome"], record["error"]) == ("ROLLED_BACK", "StepTimedOut")
    assert (result.error, record["cause"].startswith("States.Timeout")) == ("StepTimedOut", True)
    # the handler ran on: its UpdateService landed, so the Catch's rollback had a rollout to undo
    assert [revision(td) for td in app.rollouts()] == ["web:2", "web:1"]
    assert revision(app.running_task_definition()) == "web:1"


def test_a_write_whose_response_is_lost_lands_and_fails_the_state(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    world.faults.fail_api("dynamodb", "PutItem", state="RecordSucceeded", after_success=True)
    result = world.deploy(app.request("v2"))

    assert result.status == "SUCCEEDED"  # the deployment did; its record step did not (it ends readable)
    assert result.path[-4:] == ["RecordSucceeded", "SucceededUnrecorded", "SummarizeSucceeded", "Deployed"]
    assert result.output is not None and result.output["record"]["unrecorded"] == "ClientError"
    assert result.output["outcome"] == "DEPLOYED" and result.output["revision"] == app.running_task_definition()
    record = world.record(app, result.name)
    assert record is not None and record["outcome"] == "SUCCEEDED"  # the write landed
    assert revision(app.running_task_definition()) == "web:2"


def test_api_faults_are_validated(world: World) -> None:
    with pytest.raises(ValueError, match="unknown AWS service"):
        world.faults.fail_api("dynamo")
    with pytest.raises(ValueError, match="no operation 'Put'"):
        world.faults.fail_api("dynamodb", "Put")
    with pytest.raises(ValueError, match="no state named 'Recorded'"):
        world.faults.fail_api("dynamodb", state="Recorded")
    with pytest.raises(ValueError, match="not a Lambda Task state"):
        world.faults.fail_task("InitDatabase")
    assert world.runtime.api_faults.pending == []


def test_an_execution_stopped_while_paused_before_deploy_changes_nothing(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2")
    pause = world.pause_at("Deploy")
    arn = world.start_deployment(app.request("v2"))
    assert pause.reached() == arn
    time.sleep(0.2)
    world.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stopped in a test")
    result = world.wait(arn)

    assert result.status == "ABORTED"
    assert result.path[-1] == "Deploy"
    assert not any(e["type"] == "TaskStateExited" for e in result.events if "Deploy" in str(e))
    assert errors_of(world, "UpdateServiceFunction") == []  # the state never ran
    assert app.rollouts() == [] and revision(app.running_task_definition()) == "web:1"


def dead_letters(world: World) -> list[dict[str, Any]]:
    sqs, url = world.client("sqs"), world.outputs["EcrPushDeadLetterQueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return list(messages.get("Messages", []))


def test_an_event_whose_delivery_keeps_failing_lands_in_the_dead_letter_queue(world: World, app: AppService) -> None:
    world.register(app)
    world.faults.fail_event_delivery("EcrPush", times=186)  # the target's RetryPolicy: 185 retries
    before = world.clock.time()
    digest, executions = world.ecr_push(app.repository, "v2")

    assert executions == []
    [message] = dead_letters(world)
    assert json.loads(message["Body"])["detail"]["image-digest"] == digest
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    rule = world.rule_name("EcrPush")
    assert attributes == {
        "RULE_ARN": f"arn:aws:events:{world.region}:123456789012:rule/{rule}",
        "TARGET_ARN": world.outputs["DeployStateMachineArn"],
        "ERROR_CODE": "THROTTLING",
        "ERROR_MESSAGE": "injected delivery failure",
        "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
        "RETRY_ATTEMPTS": "185",
    }
    assert world.clock.time() - before > 3600  # exponential back-off on the virtual clock
    assert revision(app.running_task_definition()) == "web:1"


def test_an_event_delivered_on_a_retry_starts_the_deployment(world: World, app: AppService) -> None:
    world.register(app)
    world.faults.fail_event_delivery("EcrPush", times=3)
    _, [arn] = world.ecr_push(app.repository, "v2")

    assert [d for _, d in world.deliveries if d.startswith("FAILED")] == [
        "FAILED THROTTLING: injected delivery failure"
    ] * 3
    assert dead_letters(world) == []
    assert world.wait(arn).status == "SUCCEEDED"
    with pytest.raises(ValueError, match="no single EventBridge rule 'Nope'"):
        world.faults.fail_event_delivery("Nope")


def test_a_flapping_image_alternates_over_virtual_time(world: World, app: AppService) -> None:
    flapping = profile("flapping")
    assert (flapping.at(0).status, flapping.at(15).status, flapping.at(30).status) == (200, 500, 200)
    assert flapping.at(16).targets == "unhealthy" and flapping.at(31).targets == "healthy"


def test_a_flapping_image_never_passes_the_bake_and_is_rolled_back(world: World, app: AppService) -> None:
    world.push_image(app.repository, "v2", "flapping")
    result = world.deploy(app.request("v2"))

    assert result.status == "FAILED"
    assert result.error == "HealthCheckFailed"
    passed = [e for e in result.events if e["type"] == "TaskStateExited" and "CheckHealth" in str(e)]
    assert len(passed) >= 2, "it passed some checks: it is not simply unhealthy"
    assert "consecutive" in (result.cause or "")  # the gates need consecutive rounds, which it never gives
    assert "rolled back to web:1" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"


def _declared_dead_letter_queue(world: World, function: str, event: str) -> str:
    """The URL of the queue template.yaml names as the DeadLetterConfig of a function's EventBridge event."""
    props = template.load()["Resources"][function]["Properties"]["Events"][event]["Properties"]
    arn = props["DeadLetterConfig"]["Arn"]
    return str(world.outputs[f"{arn['Fn::GetAtt'][0]}Url"])


def test_an_execution_end_that_cannot_be_delivered_lands_in_its_dead_letter_queue_and_alarms(
    world: World, app: AppService
) -> None:
    url = _declared_dead_letter_queue(world, "ReleaseLockFunction", "ExecutionEnded")
    queue_name = url.rsplit("/", 1)[-1]
    cw = world.client("cloudwatch")
    [alarm] = [
        a
        for a in cw.describe_alarms()["MetricAlarms"]
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
    ]
    assert alarm["StateValue"] == "OK"
    world.notifications()  # drain

    world.faults.fail_event_delivery("ExecutionEnded", times=186)  # the target's RetryPolicy: 185 retries
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))
    assert result.status == "SUCCEEDED", result.cause

    [state] = cw.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"]
    assert state["StateValue"] == "ALARM"
    alarms = [n["message"] for n in world.notifications() if "AlarmName" in n["message"]]
    assert [(a["AlarmName"], a["NewStateValue"], a["OldStateValue"]) for a in alarms] == [
        (alarm["AlarmName"], "ALARM", "OK")
    ]
    assert "delete the lock item" in alarms[0]["AlarmDescription"]

    messages = world.client("sqs").receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    [message] = messages
    assert json.loads(message["Body"])["detail"]["executionArn"] == result.arn
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert (attributes["ERROR_CODE"], attributes["EXHAUSTED_RETRY_CONDITION"]) == ("THROTTLING", "MaximumRetryAttempts")
    assert attributes["TARGET_ARN"].endswith(world.runtime.by_logical_id("ReleaseLockFunction").name)
