"""Deployment records are kept RecordRetentionDays (DynamoDB TTL on expires_at), and so are the image claims
that dedupe against them: a claim never outlives the record that says how its deployment ended."""

from __future__ import annotations

from typing import Any

import pytest
from stepdeploy.settings import Settings
from stepdeploy_local import World, template
from stepdeploy_local.world import AppService

ENV = {"DEPLOYMENTS_TABLE": "d", "NOTIFICATION_TOPIC_ARN": "t", "REGISTRY_TABLE": "r", "CONTROL_TABLE": "c"}
DAY = 86400


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return template.load()


def test_the_records_expire_on_the_attribute_the_code_writes(tpl: dict[str, Any]) -> None:
    resources, parameter = tpl["Resources"], tpl["Parameters"]["RecordRetentionDays"]
    for table in ("DeploymentsTable", "ControlTable"):
        ttl = resources[table]["Properties"]["TimeToLiveSpecification"]
        assert ttl == {"AttributeName": "expires_at", "Enabled": True}, table
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 90, 0)
    env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    assert env["RECORD_RETENTION_DAYS"] == {"Ref": "RecordRetentionDays"}


def test_retention_is_read_from_the_environment_and_0_keeps_records() -> None:
    assert Settings.from_env(ENV).expires_at(1000) == 1000 + 90 * DAY
    assert Settings.from_env({**ENV, "RECORD_RETENTION_DAYS": "7"}).expires_at(1000) == 1000 + 7 * DAY
    assert Settings.from_env({**ENV, "RECORD_RETENTION_DAYS": "0"}).expires_at(1000) is None
    with pytest.raises(RuntimeError, match="RECORD_RETENTION_DAYS must be an integer"):
        Settings.from_env({**ENV, "RECORD_RETENTION_DAYS": "ninety"})


def test_a_record_and_its_claim_expire_after_the_retention(world: World, app: AppService) -> None:
    digest = world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))
    ddb = world.client("dynamodb")
    for table in ("DeploymentsTableName", "ControlTableName"):
        described = ddb.describe_time_to_live(TableName=world.outputs[table])["TimeToLiveDescription"]
        assert described["AttributeName"] == "expires_at" and described["TimeToLiveStatus"] == "ENABLED"

    record = world.record(app, result.name)
    claim = ddb.get_item(
        TableName=world.outputs["ControlTableName"],
        Key={"service": {"S": app.key}, "item": {"S": f"DIGEST#{digest}"}},
    )["Item"]

    now = world.clock.time()
    assert record is not None and abs(int(record["expires_at"]) - (now + 90 * DAY)) < 3600
    assert abs(int(claim["expires_at"]["N"]) - (now + 90 * DAY)) < 3600
    last = ddb.get_item(
        TableName=world.outputs["ControlTableName"], Key={"service": {"S": app.key}, "item": {"S": "LAST"}}
    )["Item"]
    assert "expires_at" not in last and last["verified_at"]["S"] == record["ended_at"]  # kept, with its time
