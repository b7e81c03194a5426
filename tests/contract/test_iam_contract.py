"""Contract: every AWS API the functions call (observed while running the workflow) is allowed by
an IAM statement of that function in template.yaml."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from stepdeploy_local import World, template

IAM_PREFIX = {
    "s3": "s3",
    "ecs": "ecs",
    "ecr": "ecr",
    "elbv2": "elasticloadbalancing",
    "cloudwatch": "cloudwatch",
    "dynamodb": "dynamodb",
    "sns": "sns",
    "stepfunctions": "states",
    "lambda": "lambda",
    "codepipeline": "codepipeline",
    "cloudformation": "cloudformation",
    "events": "events",
    "secretsmanager": "secretsmanager",
}


#: Calls a function makes with credentials other than its role: the CodePipeline job action reads its
#: input artifact with the temporary artifactCredentials that CodePipeline puts in the job.
MADE_WITH_OTHER_CREDENTIALS = {"PipelineJobFunction": {("s3", "GetObject")}}


def _allowed(tpl: dict[str, Any], logical_id: str) -> set[str]:
    actions: set[str] = set()
    for policy in tpl["Resources"][logical_id]["Properties"].get("Policies", []):
        for st in policy.get("Statement", []):
            if st["Effect"] == "Allow":
                acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                actions |= {a.lower() for a in acts}
    return actions


@pytest.fixture(scope="module")
def observed() -> dict[str, set[tuple[str, str]]]:
    calls: dict[str, set[tuple[str, str]]] = {}
    with World(function_log_level="ERROR") as world:
        app = world.create_service(tag="v1")
        world.push_image(app.repository, "v2")
        world.push_image(app.repository, "v3", "db-down")
        assert world.deploy(app.request("v2")).status == "SUCCEEDED"
        assert world.deploy(app.request("v3")).error == "HealthCheckFailed"  # FAILED: ReleaseLock runs
        world.register(app, tag_filter={"mode": "glob", "pattern": "v*"})
        t = world.clock.time()
        world.push_image(app.repository, "v4")
        [arn] = world.put_events(world.ecr_push_event(app.repository, "v4", pushed=t))
        assert world.wait(arn).status == "SUCCEEDED"
        [arn] = world.put_events(world.ecr_push_event(app.repository, "v2", pushed=t - 60))
        assert world.wait(arn).path[-1] == "Skipped"  # stale: the guard releases its lock
        assert world.deploy({"mode": "verify", "target": "techchallenge/web"}).status == "SUCCEEDED"
        world.push_image(app.repository, "v6")
        detail = {"imageDetail.json": {"ImageURI": world.image_uri(app.repository, "v6")}}
        assert (
            world.run_pipeline_job({"target": "techchallenge/web", "file": "imageDetail.json"}, detail)["status"]
            == "Succeeded"
        )
        assert world.run_pipeline_job("not json")["status"] == "Failed"
        world.push_image(app.repository, "v7", "db-down")  # a failed deployment: the status-change rule fails the job
        assert world.run_pipeline_job({"target": "techchallenge/web", "image": {"tag": "v7"}})["status"] == "Failed"
        world.push_image(app.repository, "v5")  # aborted mid-rollout: ReleaseLock frees the lock
        pause = world.pause_at("WaitRollout")
        arn = world.start_deployment(app.request("v5"))
        assert pause.reached() == arn
        world.client("stepfunctions").stop_execution(executionArn=arn)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            c == ("dynamodb", "DeleteItem")
            for i in world.runtime.invocations
            if i.function == "ReleaseLockFunction"
            for c in i.aws_calls
        ):
            time.sleep(0.02)
        # an application stack: planned (change set and its stack shell deleted), provisioned (database
        # initialised), then a failed update (the failure is read from the stack events)
        stack = world.stack_app("observed", repository="observed")
        world.push_image(stack.repository, "s1")
        assert world.deploy(stack.request("s1", plan=True)).path[-1] == "Planned"
        assert world.deploy(stack.request("s1")).status == "SUCCEEDED"
        world.register(stack)  # its database password rotates: the event dispatches a refresh
        [dispatcher] = world.rotate_secret(stack.outputs()["DatabaseSecretArn"])
        [refresh] = world.wait(dispatcher).output["dispatch"]["started"]  # type: ignore[index]
        assert world.wait(refresh["execution"]).status == "SUCCEEDED"
        world.faults.fail_stack_resource("Service", "injected")
        assert (
            world.deploy(stack.request("s1", stack={"parameters": {"HealthCheckGracePeriodSeconds": 90}})).error
            == "InfraUpdateFailed"
        )
        world.faults.slow_stack_operations(3600)  # an update past its deadline is cancelled
        slow = {"parameters": {"HealthCheckGracePeriodSeconds": 120}, "timeout_seconds": 300, "poll_seconds": 60}
        assert world.deploy(stack.request("s1", stack=slow)).error == "InfraUpdateFailed"
        # the database init: a task that exits non-zero gives its claim up; a claim left STARTED (recording
        # its end failed) stops the next deployment, which reads the claim in its way
        world.faults.slow_stack_operations(0)
        failing = world.stack_app("initfails", repository="initfails")
        world.push_image(failing.repository, "i1", "init-fails")
        assert world.deploy(failing.request("i1")).error == "DatabaseInitFailed"
        world.faults.fail_lambda("RecordDatabaseInitFunction", after=1)
        world.push_image(failing.repository, "i2")
        assert world.deploy(failing.request("i2")).status == "FAILED"
        assert world.deploy(failing.request("i2")).error == "DatabaseInitUncertain"
        # progressive delivery: a BLUE_GREEN release, a broken one (the hook answered ROLLBACK), the gate function
        # failing at a hook (the rollback takes the deployment back), and a stop while paused (ReleaseLock does)
        bg = world.create_service(cluster="bg", service="bg", repository="bg", strategy="BLUE_GREEN")
        token = world.client("secretsmanager").create_secret(
            Name="bg-test", SecretString=json.dumps({"token": bg.test_token})
        )
        strategy = {
            "type": "BLUE_GREEN",
            "bake_minutes": 0,
            "test_url": bg.test_url,
            "test_header_secret_arn": token["ARN"],
        }
        for tag, profile in (("b2", "healthy"), ("b3", "db-down"), ("b4", "healthy"), ("b5", "healthy")):
            world.push_image(bg.repository, tag, profile)
        assert world.deploy(bg.request("b2", strategy=strategy)).status == "SUCCEEDED"
        # a canary step: green is compared with blue on the ALB metrics of both target groups
        canary = {**strategy, "type": "CANARY", "canary_percent": 10, "canary_bake_minutes": 1}
        world.push_image(bg.repository, "b2c", "healthy")
        assert world.deploy(bg.request("b2c", strategy=canary)).status == "SUCCEEDED"
        assert world.deploy(bg.request("b3", strategy=strategy)).error == "HealthCheckFailed"
        world.faults.fail_lambda("FollowDeploymentFunction", after=2, times=1)
        assert world.deploy(bg.request("b4", strategy=strategy)).status == "FAILED"
        pause = world.pause_at("WaitDeployment", arrival=3)
        arn = world.start_deployment(bg.request("b5", strategy=strategy))
        pause.reached()
        world.client("stepfunctions").stop_execution(executionArn=arn)
        pause.release()
        world.wait(arn)
        while not any(
            i.function == "ReleaseLockFunction" and ("ecs", "ContinueServiceDeployment") in i.aws_calls
            for i in world.runtime.invocations
        ):
            time.sleep(0.02)
        # an approval pause: the release is held at the test-traffic hook, a person approves it with the token
        # (states:SendTaskSuccess is the operator's call, not the product's)
        world.push_image(bg.repository, "b6")
        arn = world.start_deployment(bg.request("b6", strategy=strategy, approval={"timeout_minutes": 30}))
        key = {"service": {"S": bg.key}, "item": {"S": "APPROVAL"}}
        control = world.outputs["ControlTableName"]
        while "Item" not in (item := world.client("dynamodb").get_item(TableName=control, Key=key)):
            time.sleep(0.02)
        world.client("stepfunctions").send_task_success(taskToken=item["Item"]["token"]["S"], output="{}")
        assert world.wait(arn).status == "SUCCEEDED"
        while "Item" in world.client("dynamodb").get_item(TableName=control, Key=key):  # ReleaseLock clears it
            time.sleep(0.02)
        for inv in world.runtime.invocations:
            calls.setdefault(inv.function, set()).update(inv.aws_calls)
    return calls


def test_every_observed_call_is_allowed(observed: dict[str, set[tuple[str, str]]]) -> None:
    tpl = template.load()
    assert set(observed) == {f.logical_id for f in template.functions(tpl)}, "every function ran"
    missing = []
    for function, calls in observed.items():
        allowed = _allowed(tpl, function)
        for service, operation in sorted(calls - MADE_WITH_OTHER_CREDENTIALS.get(function, set())):
            action = f"{IAM_PREFIX[service]}:{operation}".lower()
            if action not in allowed:
                missing.append(f"{function}: {action}")
    assert missing == []


def test_the_calls_cover_every_adapter_operation(observed: dict[str, set[tuple[str, str]]]) -> None:
    seen = {op for calls in observed.values() for _, op in calls}
    assert seen >= {
        "DescribeRepositories",
        "DescribeImages",
        "DescribeServices",
        "DescribeTaskDefinition",
        "RegisterTaskDefinition",
        "UpdateService",
        "DescribeTargetHealth",
        "DescribeAlarms",
        "PutItem",
        "Publish",
        "DescribeStacks",
        "CreateChangeSet",
        "DescribeChangeSet",
        "ExecuteChangeSet",
        "DeleteChangeSet",
        "DeleteStack",
        "DescribeStackEvents",
        "CancelUpdateStack",
        "Scan",
        "StartExecution",
    }


def test_no_function_is_granted_more_than_it_uses(observed: dict[str, set[tuple[str, str]]]) -> None:
    """Least privilege: an action in a function's policy that the function never calls is a smell.
    Allowed exceptions are listed with their reason."""
    implicit = {
        "RegisterRevisionFunction": {"ecs:tagresource", "iam:passrole"},  # authorised by RegisterTaskDefinition
        "EnsureStackFunction": {
            "iam:passrole",  # CreateChangeSet with RoleARN passes the stack role
            # a CANARY or LINEAR stack's production steps: taken back outside a hook, green compared with blue
            # (tests/workflow/test_stack_blue_green.py; the stack above deploys BLUE_GREEN)
            "ecs:stopservicedeployment",
            "elasticloadbalancing:describerules",
            "elasticloadbalancing:describetargetgroups",
            "cloudwatch:getmetricdata",
        },
        # Publish to the KMS-encrypted topic: SNS uses the key with the publisher's permissions
        "RecordOutcomeFunction": {"kms:decrypt", "kms:generatedatakey"},
        "RequestApprovalFunction": {"kms:decrypt", "kms:generatedatakey"},  # (the same topic)
        # Lambda sends a failed asynchronous invocation to the KMS-encrypted on-failure queue with the role
        "PipelineJobFunction": {"kms:decrypt", "kms:generatedatakey"},
        # take_back() stops a deployment that is shifting production traffic (no hook awaits an answer); the
        # scenario above takes deployments back at a hook (ContinueServiceDeployment): the same code path
        "UpdateServiceFunction": {"ecs:stopservicedeployment"},
        "FollowDeploymentFunction": {"ecs:stopservicedeployment"},  # (tests/workflow/test_progressive_delivery.py)
        "ReleaseLockFunction": {"kms:decrypt", "kms:generatedatakey", "ecs:stopservicedeployment"},
    }
    tpl = template.load()
    for function, calls in observed.items():
        used = {f"{IAM_PREFIX[s]}:{o}".lower() for s, o in calls - MADE_WITH_OTHER_CREDENTIALS.get(function, set())}
        extra = _allowed(tpl, function) - used - implicit.get(function, set())
        assert extra == set(), f"{function} is granted unused actions {extra}"
