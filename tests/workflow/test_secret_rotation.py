"""A rotated database password: the RotationSucceeded event refreshes every service that reads the secret.

ECS injects secrets only when a task starts, and TechChallengeApp opens a connection per request: after
Aurora's managed rotation, tasks started before it answer ``Error: db connection down`` (HTTP 200, so
the ALB health check still passes). The local world models that; these tests run the real ASL and
handlers: rotation -> dispatch -> refresh (forceNewDeployment, same revision) -> healthy again.
"""

from __future__ import annotations

import urllib.request

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import ExecutionResult, StackApp


def body(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def revisions(world: World, family_arn: str) -> list[str]:
    family = family_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
    return list(world.client("ecs").list_task_definitions(familyPrefix=family)["taskDefinitionArns"])


def refreshes(world: World, dispatcher: ExecutionResult) -> list[ExecutionResult]:
    assert dispatcher.status == "SUCCEEDED", dispatcher.cause
    assert dispatcher.path[-1] == "Dispatched"
    assert dispatcher.output is not None
    return [world.wait(s["execution"]) for s in dispatcher.output["dispatch"]["started"]]


@pytest.fixture
def provisioned(world: World) -> StackApp:
    world.push_image("techchallengeapp", "v1")
    app = world.stack_app("techchallenge")
    world.register(app)
    result = world.deploy(app.request("v1"))
    assert result.status == "SUCCEEDED", result.cause
    return app


def test_a_rotation_refreshes_the_service_and_it_is_healthy_again(world: World, provisioned: StackApp) -> None:
    service = provisioned.service()
    secret = provisioned.outputs()["DatabaseSecretArn"]
    running = service.running_task_definition()
    before = revisions(world, running)
    last_before = world.client("dynamodb").scan(TableName=world.outputs["ControlTableName"])["Items"]
    world.clock.advance(7 * 24 * 3600)  # a week later, RDS rotates the managed master password

    [dispatcher] = world.rotate_secret(secret)
    assert body(service.health_url) == "Error: db connection down", "old tasks hold the rotated-out password"
    [refresh] = refreshes(world, world.wait(dispatcher))

    assert refresh.status == "SUCCEEDED", refresh.cause
    assert "PrepareRefresh" in refresh.path and "RegisterRevision" not in refresh.path
    assert "EnsureStack" not in refresh.path, "a refresh never changes the stack"
    assert body(service.health_url) == "OK"
    assert service.running_task_definition() == running, "same revision"
    assert revisions(world, running) == before, "no revision was registered: the stack does not drift"
    ecs = world.client("ecs")
    [deployment] = ecs.describe_services(cluster=service.cluster, services=[service.service])["services"][0][
        "deployments"
    ]
    assert deployment["taskDefinition"] == running and deployment["rolloutState"] == "COMPLETED"
    record = world.record(provisioned, refresh.name)
    assert record is not None
    assert (record["trigger"], record["mode"], record["outcome"]) == ("rotation", "refresh", "SUCCEEDED")
    assert record["secret"] == secret and record["running_task_definition"] == running
    last_after = world.client("dynamodb").scan(TableName=world.outputs["ControlTableName"])["Items"]
    assert [i for i in last_after if i["item"]["S"] == "last"] == [
        i for i in last_before if i["item"]["S"] == "last"
    ], "the last verified deployment (stale-push reference) is unchanged"


def test_without_the_refresh_the_app_stays_down(world: World, provisioned: StackApp) -> None:
    service = provisioned.service()
    world.clock.advance(3600)
    assert world.rotate_secret(provisioned.outputs()["DatabaseSecretArn"], emit=False) == []
    world.clock.advance(7 * 24 * 3600)
    assert body(service.health_url) == "Error: db connection down"
    health = world.client("elbv2").describe_target_health(TargetGroupArn=service.target_group_arn)
    assert {t["TargetHealth"]["State"] for t in health["TargetHealthDescriptions"]} == {"healthy"}, (
        "HTTP 200 with an error body: the ALB still routes to the broken tasks"
    )


def test_a_redelivered_rotation_event_starts_no_second_refresh(world: World, provisioned: StackApp) -> None:
    secret = provisioned.outputs()["DatabaseSecretArn"]
    world.clock.advance(3600)
    [first] = world.rotate_secret(secret)
    [refresh] = refreshes(world, world.wait(first))
    assert refresh.status == "SUCCEEDED", refresh.cause
    entry = world.secret_rotation_event(secret, when=world.rotations[secret])
    [again] = world.put_events(entry)
    second = world.wait(again)
    assert second.output is not None
    [started] = second.output["dispatch"]["started"]
    assert started["execution"] == refresh.arn, "same event, same execution name: nothing ran twice"


def test_a_rotation_of_a_secret_nobody_uses_starts_nothing(world: World, provisioned: StackApp) -> None:
    arn = world.client("secretsmanager").create_secret(Name="other", SecretString='{"password": "x"}')["ARN"]
    [dispatcher] = world.rotate_secret(arn)
    result = world.wait(dispatcher)
    assert result.status == "SUCCEEDED" and result.output is not None
    assert result.output["dispatch"]["started"] == []


def test_a_refresh_that_fails_its_gates_ends_failed_and_calls_a_person(world: World, provisioned: StackApp) -> None:
    service = provisioned.service()
    running = service.running_task_definition()
    image = world.client("ecs").describe_task_definition(taskDefinition=running)["taskDefinition"][
        "containerDefinitions"
    ][0]["image"]
    world.clock.advance(3600)
    world.faults.set_image_profile("techchallengeapp", image.rsplit("@", 1)[-1], "db-down")  # e.g. wrong grants
    [dispatcher] = world.rotate_secret(provisioned.outputs()["DatabaseSecretArn"])
    [refresh] = refreshes(world, world.wait(dispatcher))

    assert refresh.status == "FAILED"
    assert refresh.error == "HealthCheckFailed"
    assert refresh.cause is not None and "needs a person" in refresh.cause
    assert "Rollback" not in refresh.path, "the old password cannot be rolled back to"
    record = world.record(provisioned, refresh.name)
    assert record is not None and record["outcome"] == "FAILED" and record["mode"] == "refresh"
    [note] = [n for n in world.notifications() if n["message"].get("deployment_id") == refresh.name]
    assert note["subject"].startswith("ALERT") and note["attributes"].get("severity") == "CRITICAL"


def test_a_manual_refresh_is_not_skipped_as_already_running(world: World, provisioned: StackApp) -> None:
    result = world.deploy({"mode": "refresh", "target": provisioned.name})
    assert result.status == "SUCCEEDED", result.cause
    assert result.path[-1] == "Deployed"
    record = world.record(provisioned, result.name)
    assert record is not None and (record["trigger"], record["mode"]) == ("manual", "refresh")
