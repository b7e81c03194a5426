"""Everything a request names is checked before anything changes, and a step that fails before the
service changed says so (issue 10: #5, #8, #10). Each test names the failure it proves fixed."""

from __future__ import annotations

from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import ACCOUNT_ID, AppService


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def assert_rejected(world: World, app: AppService, result: Any, path: str) -> None:
    """Refused by Normalize, naming the field; nothing registered, updated, recorded or notified."""
    assert (result.status, result.error) == ("FAILED", "InvalidDeploymentRequest"), result.cause
    assert (result.cause or "").startswith(f"{path}: "), result.cause
    assert result.path == ["Normalize", "ExplainRejection", "Rejected"]
    assert revision(app.running_task_definition()) == "web:1"
    assert app.rollouts() == []
    assert world.client("dynamodb").scan(TableName=world.outputs["DeploymentsTableName"])["Count"] == 0
    assert world.notifications() == []


# --------------------------------------------------------------------------- #10: validation gaps


def test_a_reason_with_a_trailing_newline_is_refused(world: World, app: AppService) -> None:
    """#10: the README refuses strings with a trailing newline; a reason ending in one was accepted."""
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2", reason="hotfix for the login page\n"))

    assert_rejected(world, app, result, "$.reason")


@pytest.mark.parametrize(
    ("field", "arn", "where"),
    [
        ("cluster", f"arn:aws:ecs:eu-west-1:{ACCOUNT_ID}:cluster/techchallenge", "region eu-west-1"),
        ("cluster", "arn:aws:ecs:us-east-1:210987654321:cluster/techchallenge", "account 210987654321"),
        ("service", "arn:aws:ecs:us-east-1:210987654321:service/techchallenge/web", "account 210987654321"),
    ],
)
def test_an_arn_of_another_account_or_region_is_refused(
    world: World, app: AppService, field: str, arn: str, where: str
) -> None:
    """#10: a cluster ARN of another account or region was accepted (and the names in it used here)."""
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2", service={field: arn}))

    assert_rejected(world, app, result, f"$.service.{field}")
    assert where in (result.cause or "")


def test_an_image_from_another_accounts_registry_is_refused(world: World, app: AppService) -> None:
    """#10: imageDetail.json naming another account's registry deployed this account's repository of
    the same name."""
    world.register(app)
    world.push_image(app.repository, "v2")
    uri = world.image_uri(app.repository, "v2").replace(ACCOUNT_ID, "210987654321", 1)
    result = world.deploy({"ImageURI": uri})

    assert_rejected(world, app, result, "$.ImageURI")
    assert "account 210987654321" in (result.cause or "")


# --------------------------------------------------------------------------- #5: what the gates read exists


def test_a_missing_alarm_is_refused_before_the_service_changes(world: World, app: AppService) -> None:
    """#5: a missing alarm was accepted; the service was updated, every gate round failed on it (the
    rollback's too) and a healthy image ended RollbackFailed with a CRITICAL alert."""
    world.push_image(app.repository, "v2")
    alarms = [app.alarm_names[0], "web-latency-typo", app.alarm_names[1]]
    result = world.deploy(app.request("v2", health={"alarm_names": alarms}))

    assert_rejected(world, app, result, "$.health.alarm_names[1]")
    assert result.cause == "$.health.alarm_names[1]: alarm 'web-latency-typo' does not exist in us-east-1"


def test_a_missing_target_group_is_refused_before_the_service_changes(world: World, app: AppService) -> None:
    """#5: a target group ARN that does not exist was accepted, and failed every gate round."""
    world.push_image(app.repository, "v2")
    missing = app.target_group_arn.rsplit("/", 1)[0] + "/0123456789abcdef"
    result = world.deploy(app.request("v2", health={"target_group_arn": missing}))

    assert_rejected(world, app, result, "$.health.target_group_arn")
    assert "does not exist" in (result.cause or "")


def test_a_target_group_of_another_service_is_refused(world: World, app: AppService) -> None:
    """#5: a target group that exists but that the service does not register its tasks in gates on
    targets that are not the service's."""
    other = world.create_service(cluster="other", service="api")
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2", health={"target_group_arn": other.target_group_arn}))

    assert_rejected(world, app, result, "$.health.target_group_arn")
    assert "is not attached to service web" in (result.cause or "")


def test_a_missing_cluster_is_refused_by_name(world: World, app: AppService) -> None:
    """#5 (what else a request names): a cluster that does not exist ended in NotStarted with the raw
    ClusterNotFoundException and its stack trace as the cause."""
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2", service={"cluster": "nope"}))

    assert_rejected(world, app, result, "$.service.cluster")
    assert result.cause == "$.service.cluster: cluster 'nope' not found"
