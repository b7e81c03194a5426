"""The guarantees under faults: each test names the failure it proves fixed (issue 10)."""

from __future__ import annotations

from stepdeploy_local import World
from stepdeploy_local.world import AppService


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def test_a_dead_holders_lock_expires_on_the_worlds_clock(world: World, app: AppService) -> None:
    """The lease is read on the clock the waits advance: a lock left by an execution that died
    18000 s ago (virtual) no longer blocks; before, leases were read on wall time and never expired."""
    ddb = world.client("dynamodb")
    now = int(world.clock.time())
    ddb.put_item(
        TableName=world.outputs["ControlTableName"],
        Item={
            "service": {"S": app.key},
            "item": {"S": "LOCK"},
            "holder": {"S": f"arn:aws:states:us-east-1:123456789012:execution:gone:{'x' * 8}"},
            "deployment_id": {"S": "gone"},
            "acquired_at": {"N": str(now)},
            "lease_expires": {"N": str(now + 18000)},
        },
    )
    world.clock.advance(18001)
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))
    assert result.status == "SUCCEEDED", result.cause
    assert revision(app.running_task_definition()) == "web:2"


def schema_items(world: World) -> list[dict[str, str]]:
    items = world.client("dynamodb").scan(TableName=world.outputs["ControlTableName"])["Items"]
    return [{k: next(iter(v.values())) for k, v in i.items()} for i in items if i["item"]["S"] == "SCHEMA"]


def test_the_destructive_init_never_runs_twice_when_recording_it_failed(world: World) -> None:
    """Failure 2: the one-off task exited 0 but recording it failed; the next deployment must not run the
    destructive command again (on AWS that wipes the data) -- it stops and says a person must check."""
    world.push_image("techchallengeapp", "v1")
    app = world.stack_app("techchallenge")
    world.faults.fail_lambda("RecordDatabaseInitFunction", after=1)  # the claim passes, the record fails
    first = world.deploy(app.request("v1"))
    assert first.status == "FAILED" and "InitDatabase" in first.path
    assert [r.exit_code for r in world.one_off_runs] == [0]
    assert [i["status"] for i in schema_items(world)] == ["STARTED"]

    again = world.deploy(app.request("v1"))

    assert (again.status, again.error) == ("FAILED", "DatabaseInitUncertain")
    assert len(world.one_off_runs) == 1, "the destructive init ran a second time"
    assert "InitDatabase" not in again.path
    assert first.name in (again.cause or "") and "a person must check" in (again.cause or "").lower()
    assert "Traceback" not in (again.cause or "") and "stackTrace" not in (again.cause or "")


def test_an_init_that_failed_for_certain_is_retried_and_claimed_again(world: World) -> None:
    """A task that exited non-zero gave its claim up: the next deployment runs the init (once more)."""
    world.push_image("techchallengeapp", "v1", "init-fails")
    app = world.stack_app("techchallenge")
    assert world.deploy(app.request("v1")).error == "DatabaseInitFailed"
    assert [i["status"] for i in schema_items(world)] == ["RELEASED"]  # due again, no consent needed
    world.push_image("techchallengeapp", "v2")
    result = world.deploy(app.request("v2"))
    assert result.status == "SUCCEEDED", result.cause
    assert [r.exit_code for r in world.one_off_runs] == [1, 0]
    assert [i["status"] for i in schema_items(world)] == ["DONE"]


def test_deploying_an_image_that_rolled_back_again_is_refused_not_skipped(world: World, app: AppService) -> None:
    """Failure 3: the repeat of a failed image was a Duplicate skip that ended SUCCEEDED."""
    world.push_image(app.repository, "v2", "db-down")
    failed = world.deploy(app.request("v2"))
    assert (failed.status, failed.error) == ("FAILED", "HealthCheckFailed")

    again = world.deploy(app.request("v2"))

    assert (again.status, again.error) == ("FAILED", "PreviouslyFailed")
    assert failed.name in (again.cause or "") and "ROLLED_BACK" in (again.cause or "")
    assert "the service was not changed" in (again.cause or "")
    assert revision(app.running_task_definition()) == "web:1"
    record = world.record(app, again.name)
    assert record is not None and (record["outcome"], record["error"]) == ("FAILED", "PreviouslyFailed")
    on_purpose = world.deploy(app.request("v2", redeploy=True))
    assert (on_purpose.status, on_purpose.error) == ("FAILED", "HealthCheckFailed"), "redeploy: true tries again"


def test_a_retried_pipeline_action_for_a_failed_image_stays_red(world: World, app: AppService) -> None:
    """Failure 3, through CodePipeline: the retried action must not go green while web:1 runs."""
    world.register(app)
    world.push_image(app.repository, "v2", "db-down")
    params = {"target": app.key, "image": {"tag": "v2"}}
    assert world.run_pipeline_job(params)["status"] == "Failed"

    retried = world.run_pipeline_job(params)

    assert retried["status"] == "Failed", retried
    assert "PreviouslyFailed" in retried["failure"]["message"]
    assert revision(app.running_task_definition()) == "web:1"


def test_an_image_left_running_unverified_is_not_skipped_as_already_running(world: World, app: AppService) -> None:
    """An aborted deployment ran v2 without it passing its gates: deploying v2 again must not end SUCCEEDED
    as AlreadyRunning (nor as a Duplicate)."""
    world.push_image(app.repository, "v2", "db-down")
    pause = world.pause_at("WaitBake")
    arn = world.start_deployment(app.request("v2"))
    assert pause.reached() == arn
    world.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stopped mid-bake")
    world.wait(arn)
    # (the execution-end handler points the service back at web:1; the image stays claimed, never verified)

    again = world.deploy(app.request("v2"))

    assert again.status == "FAILED" and "Skipped" not in again.path, (again.status, again.cause)
    assert again.error == "PreviouslyFailed"


def test_a_failed_record_step_still_records_and_keeps_the_stale_reference(world: World, app: AppService) -> None:
    """Failure 4: RecordSucceeded failing ended FAILED with the raw Lambda error and stack trace, wrote no
    record, and the stale-image guard lost its reference (a late older push then replaced the newer)."""
    world.register(app)
    world.push_image(app.repository, "v1-late")  # pushed first: older than v2
    world.push_image(app.repository, "v2")
    world.faults.fail_lambda("RecordOutcomeFunction")
    before = world.clock.time()
    result = world.deploy(app.request("v2"))

    assert result.status == "SUCCEEDED", result.cause
    assert revision(app.running_task_definition()) == "web:2"
    record = World.eventually(lambda: world.record(app, result.name))
    assert record["outcome"] == "SUCCEEDED"
    notes = World.eventually(lambda: world.notifications() or None)
    assert [n["attributes"]["outcome"] for n in notes] == ["SUCCEEDED"]

    late_event = world.ecr_push_event(
        app.repository, "v1-late", world.digest_of(app.repository, "v1-late"), pushed=before - 1
    )
    [late] = world.put_events(late_event)  # the older image's push event arrives late
    stale = world.wait(late)
    assert stale.status == "SUCCEEDED" and "StaleImage" in str(world.record(app, stale.name))
    assert revision(app.running_task_definition()) == "web:2"


def test_a_failed_rollback_record_step_ends_readable(world: World, app: AppService) -> None:
    """Failure 4, RecordRolledBack: the cause names the failure and the rollback, never a stack trace."""
    world.push_image(app.repository, "v2", "db-down")
    world.faults.fail_lambda("RecordOutcomeFunction")
    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed")
    assert "rolled back" in (result.cause or "") and "stackTrace" not in (result.cause or "")
    record = World.eventually(lambda: world.record(app, result.name))
    assert record["outcome"] == "ROLLED_BACK"
    assert revision(app.running_task_definition()) == "web:1"
