"""The application stack's pure logic: parameter rules, outputs -> request, change sets, failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepdeploy import decisions
from stepdeploy import stack as app_stack
from stepdeploy.errors import InfraUpdateFailed, InvalidDeploymentRequest
from stepdeploy.models import Defaults, DeploymentRequest
from stepdeploy_local import template

SPEC = app_stack.parameter_spec()
IMAGE = {"repository": "techchallengeapp", "tag": "v1"}


def test_the_parameter_rules_file_is_generated_from_the_template() -> None:
    assert json.loads(json.dumps(template.parameter_spec())) == SPEC


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"DesiredCount": 3}, {"DesiredCount": "3"}),
        ({"DesiredCount": "4", "NatGatewayMode": "per-az"}, {"DesiredCount": "4", "NatGatewayMode": "per-az"}),
        ({"ContainerCommand": ["serve", "--verbose"]}, {"ContainerCommand": "serve,--verbose"}),
        ({"TaskCpu": "512", "TaskMemory": 1024}, {"TaskCpu": "512", "TaskMemory": "1024"}),
        ({}, {}),
    ],
)
def test_valid_parameters_become_cloudformation_strings(given: dict[str, Any], expected: dict[str, str]) -> None:
    assert app_stack.validate_parameters(given, SPEC) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"ContainerImage": "x:1"}, "$.stack.parameters.ContainerImage: is set by stepdeploy"),
        (
            {"DeferDatabaseDeletionProtection": "true"},
            "$.stack.parameters.DeferDatabaseDeletionProtection: is set by stepdeploy",
        ),
        ({"DesiredCounts": 2}, "$.stack.parameters.DesiredCounts: the application stack has no such parameter"),
        ({"DesiredCount": 0}, "$.stack.parameters.DesiredCount: must be at least 1, got 0"),
        ({"DesiredCount": "many"}, "$.stack.parameters.DesiredCount: expected a number, got 'many'"),
        ({"DesiredCount": True}, "$.stack.parameters.DesiredCount: expected a Number value, got bool"),
        ({"NatGatewayMode": "double"}, "$.stack.parameters.NatGatewayMode: must be one of single, per-az"),
        ({"ApplicationName": "Bad_Name"}, "$.stack.parameters.ApplicationName: invalid value 'Bad_Name'"),
        ({"CpuTargetUtilization": 99}, "$.stack.parameters.CpuTargetUtilization: must be at most 95, got 99"),
        ({"TaskCpu": ["256"]}, "$.stack.parameters.TaskCpu: a list is only accepted for a CommaDelimitedList"),
    ],
)
def test_invalid_parameters_are_refused_by_name(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidDeploymentRequest) as caught:
        app_stack.validate_parameters(given, SPEC)
    assert str(caught.value).startswith(message)


def test_a_request_with_a_stack_names_no_service_and_takes_defaults() -> None:
    request = DeploymentRequest.from_input({"stack": {"name": "techchallenge"}, "image": IMAGE}, Defaults())
    assert request.service is None and request.health.url is None
    assert request.stack is not None
    assert request.stack.init_command == ("updatedb", "-s")
    assert (request.stack.timeout_seconds, request.stack.poll_seconds) == (3600, 30)
    assert request.lock_key == "stack/techchallenge"
    assert DeploymentRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"stack": {"name": "t"}, "service": {"cluster": "c", "service": "s"}},
            "$.service: comes from the stack outputs",
        ),
        ({"stack": {"name": "t"}, "health": {"url": "http://x/"}}, "$.health.url: comes from the stack output"),
        ({"stack": {"name": "Bad Name"}}, "$.stack.name: invalid value"),
        ({"stack": {"name": "t", "init_command": "updatedb -s"}}, "$.stack.init_command: expected a list"),
        ({"stack": {"name": "t", "timeout_seconds": 10}}, "$.stack.timeout_seconds: must be between 300 and 7200"),
        ({"stack": {"name": "t", "parameters": {"Nope": 1}}}, "$.stack.parameters.Nope:"),
        ({"stack": {"name": "t", "region": "x"}}, "$.stack: unknown field(s) region"),
        ({"stack": {"name": "t"}, "plan": "yes"}, "$.plan: expected true or false"),
    ],
)
def test_bad_stack_requests_name_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidDeploymentRequest) as caught:
        DeploymentRequest.from_input({"image": IMAGE, **body}, Defaults())
    assert str(caught.value).startswith(message)


def test_an_empty_init_command_means_no_database_initialisation() -> None:
    request = DeploymentRequest.from_input({"stack": {"name": "t", "init_command": []}, "image": IMAGE}, Defaults())
    assert request.stack is not None and request.stack.init_command == ()


OUTPUTS = {
    "ClusterName": "app-cluster",
    "ServiceName": "app-web",
    "ContainerName": "app",
    "HealthCheckUrl": "http://alb-1.elb.amazonaws.com/healthcheck/",
    "TargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/app/abc",
    "AlarmNames": "app-5xx,app-unhealthy",
}


def test_outputs_fill_service_and_gates_and_keep_extra_alarms() -> None:
    request = DeploymentRequest.from_input(
        {"stack": {"name": "t"}, "image": IMAGE, "health": {"alarm_names": ["my-slo", "app-5xx"]}}, Defaults()
    )
    done = DeploymentRequest.from_dict(app_stack.complete_request(request.to_dict(), OUTPUTS))
    assert done.target.cluster == "app-cluster" and done.target.service == "app-web"
    assert done.target.container == "app"
    assert done.health.url == OUTPUTS["HealthCheckUrl"]
    assert done.health.target_group_arn == OUTPUTS["TargetGroupArn"]
    assert done.health.alarm_names == ("app-5xx", "app-unhealthy", "my-slo")


def test_missing_outputs_are_an_infrastructure_failure() -> None:
    request = DeploymentRequest.from_input({"stack": {"name": "t"}, "image": IMAGE}, Defaults())
    with pytest.raises(InfraUpdateFailed, match="no output"):
        app_stack.complete_request(request.to_dict(), {"ClusterName": "c"})


def test_change_sets_are_summarised_and_no_change_is_recognised() -> None:
    changes = [
        {"Type": "Resource", "ResourceChange": {"Action": "Modify", "LogicalResourceId": "Service",
                                                "ResourceType": "AWS::ECS::Service", "Replacement": "False"}},
        {"Type": "Resource", "ResourceChange": {"Action": "Add", "LogicalResourceId": "Alarm",
                                                "ResourceType": "AWS::CloudWatch::Alarm"}},
    ]  # fmt: skip
    summary = app_stack.summarize_changes(changes)
    assert summary == [
        {"action": "Modify", "logical_id": "Service", "type": "AWS::ECS::Service", "replacement": "False"},
        {"action": "Add", "logical_id": "Alarm", "type": "AWS::CloudWatch::Alarm"},
    ]
    assert (
        app_stack.describe_changes(summary) == "Modify Service (AWS::ECS::Service); Add Alarm (AWS::CloudWatch::Alarm)"
    )
    none = app_stack.ChangeSetView(
        "arn", "FAILED", "UNAVAILABLE", "The submitted information didn't contain changes. Submit different information"
    )
    assert app_stack.is_no_change(none)
    assert not app_stack.is_no_change(app_stack.ChangeSetView("arn", "FAILED", "UNAVAILABLE", "Template error"))


def test_the_root_cause_is_the_first_failure_of_the_latest_operation() -> None:
    events = [  # newest first, as DescribeStackEvents returns them
        {"LogicalResourceId": "s", "ResourceStatus": "UPDATE_ROLLBACK_COMPLETE"},
        {"LogicalResourceId": "Alarm", "ResourceStatus": "UPDATE_FAILED", "ResourceType": "AWS::CloudWatch::Alarm",
         "ResourceStatusReason": "Resource update cancelled"},
        {"LogicalResourceId": "Service", "ResourceStatus": "UPDATE_FAILED", "ResourceType": "AWS::ECS::Service",
         "ResourceStatusReason": "Invalid desired count"},
        {"LogicalResourceId": "s", "ResourceStatus": "UPDATE_IN_PROGRESS"},
        {"LogicalResourceId": "Old", "ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": "earlier"},
    ]  # fmt: skip
    assert app_stack.first_failure(events, "s") == "Service (AWS::ECS::Service): Invalid desired count"
    assert app_stack.first_failure(events[:1], "s") == "no resource reported a failure"


KNOWN = {"ContainerImage": {}, "DesiredCount": {}, "PreserveDesiredCount": {}, "TaskCpu": {}}


def test_a_create_sets_the_image_and_the_requested_parameters_only() -> None:
    params = app_stack.update_parameters("CREATE", None, {"TaskCpu": "512"}, "repo@sha256:new", KNOWN)
    assert params == {"TaskCpu": "512", "ContainerImage": "repo@sha256:new", app_stack.DEFER_PROTECTION: "true"}


def test_an_update_keeps_what_the_stack_has_and_leaves_the_count_to_autoscaling() -> None:
    view = app_stack.StackView(
        "s", "UPDATE_COMPLETE", parameters={"ContainerImage": "repo@sha256:old", "DesiredCount": "2", "Gone": "x"}
    )
    params = app_stack.update_parameters("UPDATE", view, {}, "repo@sha256:old", KNOWN)
    assert params == {
        "ContainerImage": "repo@sha256:old",
        "DesiredCount": None,
        "PreserveDesiredCount": "true",
        app_stack.DEFER_PROTECTION: "false",
    }


def test_a_rollback_restores_the_parameters_before_with_the_image_before() -> None:
    view = app_stack.StackView("s", "UPDATE_COMPLETE", parameters={"ContainerImage": "new", "TaskCpu": "1024"})
    before = {"ContainerImage": "old", "TaskCpu": "512", "PreserveDesiredCount": "false"}
    assert app_stack.rollback_parameters(view, before, "older", KNOWN) == {
        "ContainerImage": "older",
        "TaskCpu": "512",
        "PreserveDesiredCount": "true",
        app_stack.DEFER_PROTECTION: "false",
    }
    assert app_stack.rollback_parameters(view, None, "old", KNOWN) == {
        "ContainerImage": "old",
        "TaskCpu": "1024",
        "PreserveDesiredCount": "true",
        app_stack.DEFER_PROTECTION: "false",
    }


def test_a_creation_defers_the_deletion_protection_and_every_update_switches_it_on() -> None:
    assert (app_stack.defer_protection("CREATE"), app_stack.defer_protection("UPDATE")) == ("true", "false")

    def created(**parameters: str) -> app_stack.StackView:
        return app_stack.StackView("s", "CREATE_COMPLETE", parameters=parameters)

    assert app_stack.protection_pending(
        created(DatabaseDeletionProtection="true", DeferDatabaseDeletionProtection="true")
    )
    assert not app_stack.protection_pending(
        created(DatabaseDeletionProtection="false", DeferDatabaseDeletionProtection="true")
    ), "no protection wanted: nothing to switch on"
    assert not app_stack.protection_pending(
        created(DatabaseDeletionProtection="true", DeferDatabaseDeletionProtection="false")
    ), "already on"
    assert not app_stack.protection_pending(created(DatabaseDeletionProtection="true")), "a stack from before"


@pytest.mark.parametrize(
    ("task", "verdict"),
    [
        ({"Containers": [{"Name": "app", "ExitCode": 0}]}, None),
        (
            {"Containers": [{"Name": "app", "ExitCode": 1}], "StopCode": "EssentialContainerExited",
             "StoppedReason": "Essential container in task exited"},
            "container 'app' exited with code 1; task stopped: EssentialContainerExited "
            "(Essential container in task exited)",
        ),
        (
            {"Containers": [{"Name": "app", "Reason": "CannotPullContainerError"}], "StopCode": "TaskFailedToStart"},
            "container 'app' has no exit code (CannotPullContainerError); task stopped: TaskFailedToStart "
            "(no reason given)",
        ),
        ({"Containers": [{"Name": "sidecar", "ExitCode": 0}]}, "container 'app' is not in the task; task stopped: ?"),
    ],
)  # fmt: skip
def test_the_init_task_verdict(task: dict[str, Any], verdict: str | None) -> None:
    result = decisions.init_task_verdict(task, "app")
    if verdict is None:
        assert result is None
    else:
        assert result is not None and result.startswith(verdict)


def test_a_stuck_stack_names_what_blocks_it_and_the_root_cause() -> None:
    events = [
        {"LogicalResourceId": "s", "ResourceStatus": "ROLLBACK_FAILED"},
        {"LogicalResourceId": "Db", "ResourceStatus": "DELETE_FAILED", "ResourceType": "AWS::RDS::DBCluster",
         "ResourceStatusReason": "Cannot delete protected Cluster"},
        {"LogicalResourceId": "s", "ResourceStatus": "ROLLBACK_IN_PROGRESS"},
        {"LogicalResourceId": "Service", "ResourceStatus": "CREATE_FAILED", "ResourceType": "AWS::ECS::Service",
         "ResourceStatusReason": "no free IPs"},
        {"LogicalResourceId": "s", "ResourceStatus": "CREATE_IN_PROGRESS"},
    ]  # fmt: skip
    assert app_stack.blocking_failure(events, "s") == (
        "Db (AWS::RDS::DBCluster): Cannot delete protected Cluster; "
        "the operation failed first on Service (AWS::ECS::Service): no free IPs"
    )
    assert app_stack.blocking_failure(events[3:], "s") == "Service (AWS::ECS::Service): no free IPs"
    assert app_stack.blocking_failure(events[:1], "s") == "no resource reported a failure"


@pytest.mark.parametrize(
    ("phase", "status", "action"),
    [
        ("executing", "UPDATE_IN_PROGRESS", "CANCEL"),  # CloudFormation can roll an update back
        ("executing", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "WAIT"),  # done: only the clean-up is left
        ("cancelling", "UPDATE_ROLLBACK_IN_PROGRESS", "WAIT"),  # a cancel is rolling it back
        ("executing", "CREATE_IN_PROGRESS", "STOP"),  # a creation cannot be cancelled
        ("change_set", "UPDATE_COMPLETE", "DISCARD"),  # the change set never became ready
        ("start", "UPDATE_IN_PROGRESS", "STOP"),  # someone else's operation: not ours to cancel
        ("deleting", "DELETE_IN_PROGRESS", "STOP"),
    ],
)
def test_what_happens_at_the_stack_deadline(phase: str, status: str, action: str) -> None:
    assert app_stack.at_deadline(phase, status) == action


def test_how_a_failed_operation_ended_is_said_plainly() -> None:
    assert app_stack.rolled_back("UPDATE_ROLLBACK_COMPLETE") == (
        "CloudFormation rolled it back (UPDATE_ROLLBACK_COMPLETE; the service runs the revision it ran before)"
    )
    assert app_stack.rolled_back("ROLLBACK_COMPLETE") == "CloudFormation rolled it back (ROLLBACK_COMPLETE)"
    stuck = app_stack.rolled_back("UPDATE_ROLLBACK_FAILED")
    assert "could not roll it back (UPDATE_ROLLBACK_FAILED)" in stuck and "continue-update-rollback" in stuck
    assert stuck.startswith("CloudFormation could not"), "callers already say '..., and'"
    assert app_stack.rolled_back("DELETE_FAILED") == "the stack ended DELETE_FAILED"


# --------------------------------------------------------------------------- change-set names

AWKWARD_CHARACTERS = "aZ09-_.:/+=@ ü東\u00e9\u0661\u00b2\u200b\ud83d\ude80\t"  # ASCII-unsafe letters and digits too


def _awkward_names(count: int, seed: int = 20260101) -> list[str]:
    """Execution-name-like ids, reproducibly random, over characters CloudFormation refuses."""
    import random

    rng = random.Random(seed)
    names = [
        "",
        "_",
        "-",
        "1-starts-with-a-digit",
        "release_2026.01.05",
        "stepdeploy-dev-4f1c_9b.2",
        "a" * 80,
        "b" * 200,
        "ü" * 80,
        "x-0d4e2ca9e9cb",
    ]
    names += ["".join(rng.choice(AWKWARD_CHARACTERS) for _ in range(rng.randint(1, 90))) for _ in range(count)]
    return names


def test_change_set_names_are_valid_for_any_execution_name() -> None:
    for deployment_id in _awkward_names(3000):
        for suffix in ("", "-rollback"):
            name = app_stack.change_set_name(deployment_id, suffix)
            assert app_stack.CHANGE_SET_NAME.fullmatch(name), (deployment_id, name)
            assert name.isascii() and len(name) <= app_stack.CHANGE_SET_NAME_MAX, (deployment_id, name)
            assert name.endswith(suffix)
        # the caller may append a suffix of its own and stay within the limit
        assert len(app_stack.change_set_name(deployment_id) + "-rollback") <= app_stack.CHANGE_SET_NAME_MAX


def test_change_set_names_are_unique_per_deployment_and_stable() -> None:
    ids = set(_awkward_names(3000))
    names = {app_stack.change_set_name(i) for i in ids}
    assert len(names) == len(ids)
    # ids that sanitise alike still differ: the digest is of the exact id
    assert app_stack.change_set_name("a_b") != app_stack.change_set_name("a.b") != app_stack.change_set_name("a-b")
    assert app_stack.change_set_name("r_1.2") == app_stack.change_set_name("r_1.2")
    assert app_stack.change_set_name("c" * 300) != app_stack.change_set_name("c" * 301)  # cut alike, digest differs
    assert app_stack.change_set_name("r_1") + "-rollback" == app_stack.change_set_name("r_1", "-rollback")


def test_a_change_set_name_keeps_a_readable_execution_name() -> None:
    name = app_stack.change_set_name("codepipeline-release_2026.01.05")
    assert name.startswith("stepdeploy-codepipeline-release-2026-01-05-")
    uuid = "6f1c9a2e-2b7d-4c1e-9f3a-0d4e2ca9e9cb"
    assert app_stack.change_set_name(uuid).startswith(f"stepdeploy-{uuid}-")


@pytest.mark.parametrize("suffix", ["_repin", "-répin", "x" * 17, "-re.pin"])
def test_a_change_set_name_suffix_must_be_valid(suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        app_stack.change_set_name("d-1", suffix)
