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
