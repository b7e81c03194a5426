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


# --------------------------------------------------------------------------- #8: failures before any change


def assert_clean_cause(result: Any, error: str) -> None:
    """FAILED with the error's name and a cause a person can read: no raw JSON, no stack trace."""
    assert (result.status, result.error) == ("FAILED", error), result.cause
    cause = result.cause or ""
    assert cause.endswith("the service was not changed"), cause
    assert "stackTrace" not in cause and '{"errorMessage"' not in cause and "Traceback" not in cause, cause


def lock_item(world: World, app: AppService) -> dict[str, Any] | None:
    key = {"service": {"S": app.key}, "item": {"S": "LOCK"}}
    out = world.client("dynamodb").get_item(TableName=world.outputs["ControlTableName"], Key=key, ConsistentRead=True)
    return out.get("Item")


def test_an_exception_inside_normalize_ends_failed_with_a_readable_cause(
    world: World, app: AppService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#8: an unexpected error in Normalize ended with its raw Lambda JSON (and stack trace) as the cause."""
    from stepdeploy import workflow

    def broken(spec: Any) -> Any:
        raise KeyError("repositoryUri")

    monkeypatch.setattr(workflow.ecr, "resolve_image", broken)
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))

    assert_clean_cause(result, "KeyError")
    assert result.cause.startswith("'repositoryUri' -- Normalize failed"), result.cause  # type: ignore[union-attr]
    assert "no service to record it against" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1"
    assert world.notifications() == []


def test_a_lambda_service_error_in_normalize_after_its_retries_ends_failed_cleanly(
    world: World, app: AppService
) -> None:
    """#8: Lambda.ServiceException on every attempt (1 + 6 retries) surfaced as raw JSON."""
    world.faults.fail_lambda("NormalizeRequestFunction", "Lambda.ServiceException", "Rate exceeded", times=7)
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))

    assert_clean_cause(result, "Lambda.ServiceException")
    assert result.cause.startswith("Rate exceeded -- "), result.cause  # type: ignore[union-attr]
    assert revision(app.running_task_definition()) == "web:1"


def test_a_plain_text_cause_from_normalize_is_kept_readable(
    world: World, app: AppService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#8: when Lambda itself fails (no function ran) the Cause is plain text, which
    States.StringToJson cannot parse: the execution still ends FAILED with a readable cause."""
    from stepdeploy_local import compat

    invoke = compat.HOOKS.invoke_lambda
    assert invoke is not None

    def lambda_down(fn: Any, event: Any) -> Any:
        if "NormalizeRequest" in fn.function_name:
            raise RuntimeError("Lambda is unavailable")
        return invoke(fn, event)

    monkeypatch.setattr(compat.HOOKS, "invoke_lambda", lambda_down)
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))

    assert result.status == "FAILED" and result.error, result
    assert "NotStartedWithCause" in result.path  # the text path (no JSON to parse)
    assert_clean_cause(result, result.error)
    assert revision(app.running_task_definition()) == "web:1"


def test_a_normalize_timeout_ends_step_timed_out_not_a_reserved_name(world: World, app: AppService) -> None:
    """Found by the full fault matrix: a Normalize timeout handed States.Timeout to the Fail state, a name
    reserved for Step Functions (the execution died with States.Runtime instead of a readable cause)."""
    world.faults.time_out_task("Normalize")
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "StepTimedOut"), result
    assert_clean_cause(result, "StepTimedOut")
    assert revision(app.running_task_definition()) == "web:1"


def test_a_guard_failure_after_the_lock_is_recorded_and_frees_the_lock(
    world: World, app: AppService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#8: an unexpected error in Guard (here its DynamoDB claim, after it took the lock) ended with raw
    JSON and no record; now it is recorded FAILED, says the service was not changed, and frees the lock."""
    from stepdeploy import workflow

    def throttled(*args: Any) -> Any:
        raise RuntimeError("ProvisionedThroughputExceededException: the claim could not be written")

    monkeypatch.setattr(workflow.control, "claim_digest", throttled)
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))

    assert_clean_cause(result, "RuntimeError")
    assert result.path[:2] == ["Normalize", "Guard"] and "RecordNotChanged" in result.path
    assert revision(app.running_task_definition()) == "web:1"
    record = world.record(app, result.name)
    assert record is not None and (record["outcome"], record["error"]) == ("FAILED", "RuntimeError")
    assert lock_item(world, app) is None
    [note] = world.notifications()
    assert note["attributes"]["severity"] == "WARNING"

    monkeypatch.undo()
    retry = world.deploy(app.request("v2"))
    assert retry.status == "SUCCEEDED", retry.cause
    assert revision(app.running_task_definition()) == "web:2"


def test_a_lambda_error_in_guard_after_its_retries_is_recorded(world: World, app: AppService) -> None:
    """#8: Lambda.ServiceException on every Guard attempt ended with raw JSON and no record."""
    world.faults.fail_lambda("GuardDeploymentFunction", "Lambda.ServiceException", "Rate exceeded", times=7)
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))

    assert_clean_cause(result, "Lambda.ServiceException")
    record = world.record(app, result.name)
    assert record is not None and record["outcome"] == "FAILED"
    assert lock_item(world, app) is None
