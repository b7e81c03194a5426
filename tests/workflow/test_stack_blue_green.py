"""A stack stepdeploy provisions deploys BLUE_GREEN (or CANARY, LINEAR) through CloudFormation: the stack update
starts the ECS service deployment, and EnsureStack answers its PAUSE hooks with the gates a release gets
(through the test listener before any production traffic, then on production). A gate that fails takes the
deployment back; CloudFormation then rolls the stack back, and the execution ends with the gate's error."""

from __future__ import annotations

from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import StackApp


def provision(world: World, **parameters: Any) -> StackApp:
    world.push_image("techchallengeapp", "v1")
    app = world.stack_app("techchallenge", parameters=parameters)
    result = world.deploy(app.request("v1"))
    assert result.status == "SUCCEEDED", result.cause
    return app


@pytest.fixture
def provisioned(world: World) -> StackApp:
    """A stack with the template's default strategy (BLUE_GREEN)."""
    app = provision(world)
    assert app.outputs()["DeploymentStrategy"] == "BLUE_GREEN"
    return app


def service_deployments(world: World, app: StackApp) -> list[dict[str, Any]]:
    """The service's deployments, newest first."""
    service = app.service()
    ecs = world.client("ecs")
    listed = ecs.list_service_deployments(cluster=service.cluster, service=service.service)["serviceDeployments"]
    arns = [d["serviceDeploymentArn"] for d in listed]
    found = ecs.describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"] if arns else []
    return sorted(found, key=lambda d: d["createdAt"], reverse=True)


def stack_status(world: World, app: StackApp) -> str:
    return str(world.client("cloudformation").describe_stacks(StackName=app.stack_name)["Stacks"][0]["StackStatus"])


def lock_free(world: World, app: StackApp) -> bool:
    item = world.client("dynamodb").get_item(
        TableName=world.outputs["ControlTableName"], Key={"service": {"S": app.key}, "item": {"S": "LOCK"}}
    )
    return "Item" not in item


def assert_settled(world: World, app: StackApp, image_tag: str) -> None:
    """Whatever the ending: the service runs ``image_tag``, nothing is paused or shifting, the lock is free."""
    assert app.service().running_image() == world.image_uri("techchallengeapp", image_tag)
    unfinished = [d["status"] for d in service_deployments(world, app) if d["status"] in ("PENDING", "IN_PROGRESS")]
    assert not unfinished, unfinished
    assert lock_free(world, app)


def test_a_stack_release_is_gated_at_its_hooks_and_succeeds(world: World, provisioned: StackApp) -> None:
    """The stack update's service deployment pauses at POST_TEST_TRAFFIC_SHIFT and POST_PRODUCTION_TRAFFIC_SHIFT:
    EnsureStack gates it and answers CONTINUE (without an answer the hooks would time out into a rollback)."""
    world.push_image("techchallengeapp", "v2")
    result = world.deploy(provisioned.request("v2"))

    assert result.status == "SUCCEEDED", result.cause
    assert stack_status(world, provisioned) == "UPDATE_COMPLETE"
    assert_settled(world, provisioned, "v2")
    latest = service_deployments(world, provisioned)[0]
    assert latest["status"] == "SUCCESSFUL"
    hooks = latest.get("lifecycleHookDetails") or []
    assert not [h for h in hooks if h.get("status") == "TIMED_OUT"], hooks
    traffic = world.user_traffic(provisioned.service())
    assert traffic.failed == 0 and traffic.deployments[-1].to_new_revision > 0


def test_a_broken_stack_release_is_caught_on_the_test_listener_and_rolled_back(
    world: World, provisioned: StackApp
) -> None:
    """db-down answers 200 with a bad body: the gate through the test listener fails before any production
    traffic, the deployment is taken back at its hook, CloudFormation rolls the stack back, and the execution
    ends with the gate's error; no user request reached v2."""
    world.push_image("techchallengeapp", "v2", "db-down")
    result = world.deploy(provisioned.request("v2"))

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed"), result.cause
    cause = result.cause or ""
    assert provisioned.outputs()["TestUrl"] in cause and "UPDATE_ROLLBACK_COMPLETE" in cause, cause
    assert "CheckHealth" in result.path and "RecordRolledBack" in result.path, "v1 is verified after the rollback"
    assert stack_status(world, provisioned) == "UPDATE_ROLLBACK_COMPLETE"
    assert_settled(world, provisioned, "v1")
    assert service_deployments(world, provisioned)[0]["status"] == "ROLLBACK_SUCCESSFUL"
    traffic = world.user_traffic(provisioned.service())
    assert traffic.failed == 0 and traffic.deployments[-1].to_new_revision == 0
    record = world.record(provisioned, result.name)
    assert record is not None and (record["outcome"], record["error"]) == ("ROLLED_BACK", "HealthCheckFailed")
    assert record["running_task_definition"] == provisioned.service().running_task_definition()
    again = world.deploy(provisioned.request("v2"))
    assert (again.status, again.error) == ("FAILED", "PreviouslyFailed"), "it failed its gates: not tried again"
    assert "EnsureStack" not in again.path


def test_a_canary_stack_release_is_gated_at_each_production_step(world: World) -> None:
    """CANARY: the canary share of production takes the new revision while EnsureStack gates it on production."""
    app = provision(world, DeploymentStrategy="CANARY", CanaryPercent=10, CanaryBakeTimeMinutes=1)
    world.push_image("techchallengeapp", "v2")
    result = world.deploy(app.request("v2"))

    assert result.status == "SUCCEEDED", result.cause
    assert_settled(world, app, "v2")
    weights = world.user_traffic(app.service()).deployments[-1]
    assert weights.to_new_revision > 0 and world.user_traffic(app.service()).failed == 0


def awaiting_hook(world: World, app: StackApp) -> dict[str, Any] | None:
    for d in service_deployments(world, app):
        if d["status"] == "IN_PROGRESS" and any(h["status"] == "AWAITING_ACTION" for h in d["lifecycleHookDetails"]):
            return d
    return None


def test_a_stopped_execution_never_leaves_a_stack_update_paused(world: World, provisioned: StackApp) -> None:
    """StopExecution while the service deployment of the stack update waits at a hook: the execution-end handler
    takes it back, CloudFormation rolls the stack back, and v1 serves."""
    world.push_image("techchallengeapp", "v2")
    arn, pause = world.hold_when(
        "WaitStack",
        lambda: world.start_deployment(provisioned.request("v2")),
        lambda: awaiting_hook(world, provisioned) is not None,
    )
    world.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stop it")
    pause.release()
    assert world.wait(arn).status == "ABORTED"
    World.eventually(lambda: stack_status(world, provisioned) == "UPDATE_ROLLBACK_COMPLETE")
    assert_settled(world, provisioned, "v1")


def test_a_secret_rotation_refreshes_a_blue_green_stack_through_its_hooks(world: World, provisioned: StackApp) -> None:
    """A refresh forces new tasks of the same revision: under BLUE_GREEN that is a service deployment with the
    stack's PAUSE hooks, followed and gated like a release (it used to wait for a rolling rollout that never came,
    and time out)."""
    world.register(provisioned)
    [dispatcher] = world.rotate_secret(provisioned.outputs()["DatabaseSecretArn"])
    [refresh] = world.wait(dispatcher).output["dispatch"]["started"]  # type: ignore[index]
    result = world.wait(refresh["execution"])

    assert result.status == "SUCCEEDED", result.cause
    assert "FollowDeployment" in result.path and "WaitRollout" not in result.path
    latest = service_deployments(world, provisioned)[0]
    assert latest["status"] == "SUCCESSFUL"
    assert not [h for h in latest.get("lifecycleHookDetails") or [] if h.get("status") == "TIMED_OUT"]
    assert_settled(world, provisioned, "v1")


def test_a_refresh_follows_the_stack_s_own_bake_time(world: World) -> None:
    """The request a stack's refresh follows with takes the stack's strategy numbers (here a 55-minute bake), not
    the defaults: with the default 5 minutes its follow deadline ran out during ECS's bake and it was rolled back."""
    app = provision(world, DeploymentBakeTimeMinutes=55)
    world.register(app)
    [dispatcher] = world.rotate_secret(app.outputs()["DatabaseSecretArn"])
    [refresh] = world.wait(dispatcher).output["dispatch"]["started"]  # type: ignore[index]
    result = world.wait(refresh["execution"], timeout=120)

    assert result.status == "SUCCEEDED", result.cause
    assert service_deployments(world, app)[0]["status"] == "SUCCESSFUL"


def test_a_stack_update_that_fails_after_its_release_is_rolled_back_through_the_hooks_too(
    world: World, provisioned: StackApp
) -> None:
    """The service deployment succeeds, then a resource that waited for it (the scalable target) fails:
    CloudFormation's rollback moves the service back, a deployment with the same PAUSE hooks, which EnsureStack
    gates and answers too (unanswered, it would time out into ROLLBACK and leave UPDATE_ROLLBACK_FAILED)."""
    world.push_image("techchallengeapp", "v2")
    world.faults.fail_stack_resource("ScalableTarget", "Resource handler returned message: refused (test)")
    result = world.deploy(provisioned.request("v2", stack={"parameters": {"MinCapacity": 3}}))

    assert (result.status, result.error) == ("FAILED", "InfraUpdateFailed"), result.cause
    assert "ScalableTarget" in (result.cause or "") and "UPDATE_ROLLBACK_COMPLETE" in (result.cause or "")
    assert stack_status(world, provisioned) == "UPDATE_ROLLBACK_COMPLETE"
    assert_settled(world, provisioned, "v1")
    release, back = service_deployments(world, provisioned)[1::-1]
    assert (release["status"], back["status"]) == ("SUCCESSFUL", "SUCCESSFUL"), (release, back)
    assert [h["status"] for h in back["lifecycleHookDetails"]].count("TIMED_OUT") == 0


def test_changing_the_strategy_is_an_infrastructure_change_plan_mode_shows(world: World, provisioned: StackApp) -> None:
    """BLUE_GREEN -> CANARY: plan mode lists the service's change and changes nothing; applied, the next release
    moves a canary share of production first."""
    change = {"parameters": {"DeploymentStrategy": "CANARY", "CanaryBakeTimeMinutes": 1}}
    planned = world.deploy(provisioned.request("v1", plan=True, stack=change))
    assert planned.status == "SUCCEEDED" and planned.output is not None, planned.cause
    stack_plan = planned.output["plan"]["stack"]
    assert stack_plan["operation"] == "UPDATE" and "Service" in {c["logical_id"] for c in stack_plan["changes"]}
    assert provisioned.outputs()["DeploymentStrategy"] == "BLUE_GREEN"

    world.push_image("techchallengeapp", "v2")
    result = world.deploy(provisioned.request("v2", stack=change))

    assert result.status == "SUCCEEDED", result.cause
    assert provisioned.outputs()["DeploymentStrategy"] == "CANARY"
    assert service_deployments(world, provisioned)[0]["deploymentConfiguration"]["strategy"] == "CANARY"
    assert_settled(world, provisioned, "v2")


APPROVAL = {"timeout_minutes": 30, "on_timeout": "REJECT"}


def held(world: World, app: StackApp, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Start the release and wait until it is held: its execution and the APPROVAL item an operator reads."""
    arn = world.start_deployment(request)
    table, key = world.outputs["ControlTableName"], {"service": {"S": app.key}, "item": {"S": "APPROVAL"}}

    def item() -> dict[str, Any] | None:
        found = world.client("dynamodb").get_item(TableName=table, Key=key)
        return {k: next(iter(v.values())) for k, v in found["Item"].items()} if "Item" in found else None

    return arn, World.eventually(item, timeout=60)


def test_a_stack_release_is_held_for_approval_at_the_test_traffic_hook(world: World, provisioned: StackApp) -> None:
    """A person holds a stack release where its service deployment passed its gates on the test listener and ECS
    waits at the hook (0 % production); the hold does not count against the stack's deadline."""
    world.push_image("techchallengeapp", "v2")
    arn, item = held(world, provisioned, provisioned.request("v2", approval=APPROVAL))
    assert item["stage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert awaiting_hook(world, provisioned) is not None and stack_status(world, provisioned) == "UPDATE_IN_PROGRESS"
    world.clock.advance(25 * 60)  # a person takes their time
    world.client("stepfunctions").send_task_success(taskToken=item["token"], output='{"approved": true, "by": "alice"}')
    result = world.wait(arn)

    assert result.status == "SUCCEEDED", result.cause
    assert "AwaitStackApproval" in result.path
    assert_settled(world, provisioned, "v2")


def test_a_rejected_stack_release_is_taken_back_and_the_stack_rolled_back(world: World, provisioned: StackApp) -> None:
    world.push_image("techchallengeapp", "v2")
    arn, item = held(world, provisioned, provisioned.request("v2", approval=APPROVAL))
    world.client("stepfunctions").send_task_failure(taskToken=item["token"], error="ApprovalRejected", cause="bob: no")
    result = world.wait(arn)

    assert (result.status, result.error) == ("FAILED", "ApprovalRejected"), result.cause
    assert stack_status(world, provisioned) == "UPDATE_ROLLBACK_COMPLETE"
    assert_settled(world, provisioned, "v1")
    assert world.user_traffic(provisioned.service()).deployments[-1].to_new_revision == 0
    record = world.record(provisioned, result.name)
    assert record is not None and (record["outcome"], record["error"]) == ("ROLLED_BACK", "ApprovalRejected")


def test_approval_is_refused_for_a_rolling_stack_before_anything_changes(world: World) -> None:
    app = provision(world, DeploymentStrategy="ROLLING")
    world.push_image("techchallengeapp", "v2")
    result = world.deploy(app.request("v2", approval=APPROVAL))

    assert (result.status, result.error) == ("FAILED", "InvalidDeploymentRequest"), result.cause
    assert "ROLLING" in (result.cause or "")
    assert stack_status(world, app) in ("CREATE_COMPLETE", "UPDATE_COMPLETE") and "EnsureStack" not in result.path


def test_approval_is_refused_for_a_stack_that_deploys_rolling_before_its_change_set(world: World) -> None:
    """The request names no strategy, but the stack it updates deploys ROLLING: EnsureStack refuses the approval
    before any change set (the update would move the service with nobody asked)."""
    provision(world, DeploymentStrategy="ROLLING")
    app = world.stack_app("techchallenge")  # (the same stack, no parameters in its requests)
    world.push_image("techchallengeapp", "v2")
    result = world.deploy(app.request("v2", approval=APPROVAL))

    assert (result.status, result.error) == ("FAILED", "InvalidDeploymentRequest"), result.cause
    assert "ROLLING" in (result.cause or "") and "EnsureStack" in result.path
    assert stack_status(world, app) in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    assert app.service().running_image() == world.image_uri("techchallengeapp", "v1")
