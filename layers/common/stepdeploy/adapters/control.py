"""Per-service control items (DynamoDB): the deployment lock, dedupe claims, last good deployment.

Keys: ``service`` (``cluster/service``) and ``item``: ``LOCK``, ``DIGEST#<digest>``, ``LAST``.
Every write is conditional, so concurrent executions cannot both win.
"""

from __future__ import annotations

from typing import Any

from .clients import client


def _key(service: str, item: str) -> dict[str, Any]:
    return {"service": {"S": service}, "item": {"S": item}}


def acquire_lock(
    table: str, service: str, holder: str, deployment_id: str, now: int, lease_seconds: int
) -> dict[str, str] | None:
    """Take the lock, or return the current holder's item when someone else holds a live lease."""
    ddb = client("dynamodb")
    try:
        ddb.put_item(
            TableName=table,
            Item={
                **_key(service, "LOCK"),
                "holder": {"S": holder},
                "deployment_id": {"S": deployment_id},
                "acquired_at": {"N": str(now)},
                "lease_expires": {"N": str(now + lease_seconds)},
                "expires_at": {"N": str(now + lease_seconds + 86400)},
            },
            ConditionExpression="attribute_not_exists(service) OR holder = :me OR lease_expires < :now",
            ExpressionAttributeValues={":me": {"S": holder}, ":now": {"N": str(now)}},
        )
        return None
    except ddb.exceptions.ConditionalCheckFailedException:
        out = ddb.get_item(TableName=table, Key=_key(service, "LOCK"), ConsistentRead=True).get("Item", {})
        return {k: next(iter(v.values())) for k, v in out.items()}


def release_lock(table: str, service: str, holder: str) -> bool:
    """Release the lock if ``holder`` still holds it. Idempotent; returns whether it was released."""
    ddb = client("dynamodb")
    try:
        ddb.delete_item(
            TableName=table,
            Key=_key(service, "LOCK"),
            ConditionExpression="holder = :me",
            ExpressionAttributeValues={":me": {"S": holder}},
        )
        return True
    except ddb.exceptions.ConditionalCheckFailedException:
        return False


def claim_digest(table: str, service: str, digest: str, deployment_id: str, now: int) -> str | None:
    """Claim (service, digest) for this deployment. Returns the earlier claimant, or None if claimed now."""
    ddb = client("dynamodb")
    try:
        ddb.put_item(
            TableName=table,
            Item={
                **_key(service, f"DIGEST#{digest}"),
                "deployment_id": {"S": deployment_id},
                "claimed_at": {"N": str(now)},
            },
            ConditionExpression="attribute_not_exists(service) OR deployment_id = :me",
            ExpressionAttributeValues={":me": {"S": deployment_id}},
        )
        return None
    except ddb.exceptions.ConditionalCheckFailedException:
        out = ddb.get_item(TableName=table, Key=_key(service, f"DIGEST#{digest}"), ConsistentRead=True)
        return str(out.get("Item", {}).get("deployment_id", {}).get("S", "?"))


def get_last(table: str, service: str) -> dict[str, str] | None:
    out = client("dynamodb").get_item(TableName=table, Key=_key(service, "LAST"), ConsistentRead=True)
    if "Item" not in out:
        return None
    return {k: next(iter(v.values())) for k, v in out["Item"].items()}


def set_last(table: str, service: str, digest: str, pushed_at: str, task_definition: str, deployment_id: str) -> None:
    """Remember the last verified deployment (stale-image guard, verify-mode rollback target)."""
    client("dynamodb").put_item(
        TableName=table,
        Item={
            **_key(service, "LAST"),
            "digest": {"S": digest},
            "pushed_at": {"S": pushed_at},
            "task_definition": {"S": task_definition},
            "deployment_id": {"S": deployment_id},
        },
    )


HOLDER_INDEX = "by-holder"


def locks_held_by(table: str, holder: str) -> list[str]:
    """Services whose lock ``holder`` (an execution ARN) holds (GSI ``by-holder``)."""
    out = client("dynamodb").query(
        TableName=table,
        IndexName=HOLDER_INDEX,
        KeyConditionExpression="holder = :h",
        ExpressionAttributeValues={":h": {"S": holder}},
    )
    return [i["service"]["S"] for i in out.get("Items", []) if i.get("item", {}).get("S") == "LOCK"]
