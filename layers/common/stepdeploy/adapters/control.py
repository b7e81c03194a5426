"""Per-service control items (DynamoDB): the deployment lock, dedupe claims, last good deployment.

Keys: ``service`` (``cluster/service``, or ``stack/<name>`` for a request with a stack) and ``item``:
``LOCK``, ``DIGEST#<digest>``, ``LAST``, ``SCHEMA`` (the database initialisation: STARTED, then DONE).
Every write is conditional, so concurrent executions cannot both win.
"""

from __future__ import annotations

from typing import Any

from .clients import client


def _key(service: str, item: str) -> dict[str, Any]:
    return {"service": {"S": service}, "item": {"S": item}}


def _put_unless(
    table: str, item: dict[str, Any], condition: str, values: dict[str, Any], names: dict[str, str] | None = None
) -> dict[str, str] | None:
    """Conditional put. None when written; otherwise the item that stands in the way (consistent read)."""
    ddb = client("dynamodb")
    try:
        ddb.put_item(
            TableName=table,
            Item=item,
            ConditionExpression=condition,
            **({"ExpressionAttributeValues": values} if values else {}),  # (an empty map is refused)
            **({"ExpressionAttributeNames": names} if names else {}),
        )
        return None
    except ddb.exceptions.ConditionalCheckFailedException:
        return _get(table, item["service"]["S"], item["item"]["S"]) or {}


def acquire_lock(
    table: str, service: str, holder: str, deployment_id: str, now: int, lease_seconds: int
) -> dict[str, str] | None:
    """Take the lock, or return the current holder's item when someone else holds a live lease."""
    return _put_unless(
        table,
        {
            **_key(service, "LOCK"),
            "holder": {"S": holder},
            "deployment_id": {"S": deployment_id},
            "acquired_at": {"N": str(now)},
            "lease_expires": {"N": str(now + lease_seconds)},
            "expires_at": {"N": str(now + lease_seconds + 86400)},
        },
        "attribute_not_exists(service) OR holder = :me OR lease_expires < :now",
        {":me": {"S": holder}, ":now": {"N": str(now)}},
    )


def _delete_if(
    table: str, key: dict[str, Any], condition: str, values: dict[str, Any], names: dict[str, str] | None = None
) -> bool:
    """Conditional delete. Whether the item was deleted (False: the condition did not hold)."""
    ddb = client("dynamodb")
    try:
        ddb.delete_item(
            TableName=table,
            Key=key,
            ConditionExpression=condition,
            **({"ExpressionAttributeValues": values} if values else {}),  # (an empty map is refused)
            **({"ExpressionAttributeNames": names} if names else {}),
        )
        return True
    except ddb.exceptions.ConditionalCheckFailedException:
        return False


def _get(table: str, service: str, item: str) -> dict[str, str] | None:
    """One control item (consistent read), its attributes as plain values; None if absent."""
    out = client("dynamodb").get_item(TableName=table, Key=_key(service, item), ConsistentRead=True)
    if "Item" not in out:
        return None
    return {k: next(iter(v.values())) for k, v in out["Item"].items()}


def release_lock(table: str, service: str, holder: str) -> bool:
    """Release the lock if ``holder`` still holds it. Idempotent; returns whether it was released."""
    return _delete_if(table, _key(service, "LOCK"), "holder = :me", {":me": {"S": holder}})


def claim_digest(
    table: str, service: str, digest: str, deployment_id: str, now: int, expires_at: int | None = None
) -> str | None:
    """Claim (service, digest) for this deployment. Returns the earlier claimant, or None if claimed now.
    ``expires_at`` (epoch seconds): when the claim goes with its deployment record (the records' retention)."""
    ttl = {"expires_at": {"N": str(expires_at)}} if expires_at else {}
    prior = _put_unless(
        table,
        {
            **_key(service, f"DIGEST#{digest}"),
            "deployment_id": {"S": deployment_id},
            "claimed_at": {"N": str(now)},
            **ttl,
        },
        "attribute_not_exists(service) OR deployment_id = :me",
        {":me": {"S": deployment_id}},
    )
    return None if prior is None else prior.get("deployment_id", "?")


def get_claim(table: str, service: str, digest: str) -> str | None:
    """The deployment that claimed (service, digest), if any."""
    item = _get(table, service, f"DIGEST#{digest}")
    return None if item is None else item.get("deployment_id")


def release_claim(table: str, service: str, digest: str, deployment_id: str) -> bool:
    """Give up this deployment's claim on (service, digest) (nothing of it ran). Returns whether it held it."""
    return _delete_if(table, _key(service, f"DIGEST#{digest}"), "deployment_id = :me", {":me": {"S": deployment_id}})


def get_last(table: str, service: str) -> dict[str, str] | None:
    return _get(table, service, "LAST")


def get_lock(table: str, service: str) -> dict[str, str] | None:
    """The lock item (holder: an execution ARN, deployment_id, acquired_at, lease_expires), if any."""
    return _get(table, service, "LOCK")


def set_last(
    table: str,
    service: str,
    digest: str,
    pushed_at: str,
    task_definition: str,
    deployment_id: str,
    verified_at: str | None = None,
) -> None:
    """Remember the last verified deployment (stale-image guard, verify-mode rollback target) and when it
    passed its gates (``verified_at``, ISO 8601)."""
    when = {"verified_at": {"S": verified_at}} if verified_at else {}
    client("dynamodb").put_item(
        TableName=table,
        Item={
            **_key(service, "LAST"),
            "digest": {"S": digest},
            "pushed_at": {"S": pushed_at},
            "task_definition": {"S": task_definition},
            "deployment_id": {"S": deployment_id},
            **when,
        },
    )


def get_schema(table: str, service: str) -> dict[str, str] | None:
    """The service's database-initialisation item, if any: ``status`` STARTED (claimed, the one-off task
    about to run or running), RELEASED (claimed, certainly not run: due again) or DONE (an item written
    before claims existed has no status: DONE)."""
    item = _get(table, service, "SCHEMA")
    return None if item is None else {"status": "DONE", **item}


def claim_schema(table: str, service: str, deployment_id: str, command: str, now: int) -> dict[str, str] | None:
    """Claim the initialisation before the one-off task starts (STARTED). None when claimed now (or
    already by this deployment); otherwise the item in the way: the command is destructive, so whoever
    finds a claim it does not own must not run it."""
    return _put_unless(
        table,
        {
            **_key(service, "SCHEMA"),
            "status": {"S": "STARTED"},
            "deployment_id": {"S": deployment_id},
            "command": {"S": command},
            "claimed_at": {"N": str(now)},
        },
        "attribute_not_exists(service) OR #status = :released OR (deployment_id = :me AND #status = :started)",
        {":me": {"S": deployment_id}, ":started": {"S": "STARTED"}, ":released": {"S": "RELEASED"}},
        {"#status": "status"},
    )


def mark_schema_due(table: str, service: str, deployment_id: str) -> None:
    """stepdeploy creates this stack's database: its initialisation is due (RELEASED, as after a claim that
    certainly ran nothing), so a later deployment runs it without asking for consent, even if the creation's
    own deployment ended before the init. Written only if the service has no SCHEMA item yet."""
    _put_unless(
        table,
        {**_key(service, "SCHEMA"), "status": {"S": "RELEASED"}, "deployment_id": {"S": deployment_id}},
        "attribute_not_exists(service)",
        {},
    )


def release_schema_claim(table: str, service: str, deployment_id: str) -> bool:
    """Give up this deployment's STARTED claim: its one-off task certainly did not initialise the schema.
    The item stays, RELEASED: stepdeploy decided to initialise this database (it created it, or the request
    allowed it) and nothing ran, so the next deployment claims it again without asking for consent."""
    return (
        _put_unless(
            table,
            {**_key(service, "SCHEMA"), "status": {"S": "RELEASED"}, "deployment_id": {"S": deployment_id}},
            "deployment_id = :me AND #status = :started",
            {":me": {"S": deployment_id}, ":started": {"S": "STARTED"}},
            {"#status": "status"},
        )
        is None
    )


def set_schema(table: str, service: str, deployment_id: str, task_arn: str, command: str) -> None:
    """Record that the schema was initialised (DONE): the init command is destructive, never run it twice."""
    client("dynamodb").put_item(
        TableName=table,
        Item={
            **_key(service, "SCHEMA"),
            "status": {"S": "DONE"},
            "deployment_id": {"S": deployment_id},
            "task_arn": {"S": task_arn or "-"},
            "command": {"S": command},
        },
    )


HOLDER_INDEX = "by-holder"


def locks_held_by(table: str, holder: str, item: str = "LOCK") -> list[str]:
    """Services whose lock (or another ``item``: APPROVAL) ``holder`` (an execution ARN) holds (GSI ``by-holder``)."""
    out = client("dynamodb").query(
        TableName=table,
        IndexName=HOLDER_INDEX,
        KeyConditionExpression="holder = :h",
        ExpressionAttributeValues={":h": {"S": holder}},
    )
    return [i["service"]["S"] for i in out.get("Items", []) if i.get("item", {}).get("S") == item]


def set_approval(
    table: str, service: str, holder: str, token: str, attributes: dict[str, str], expires_at: int
) -> None:
    """The release this execution (``holder``) holds for a person's answer: its task token and what it is for.
    One per service (the lock admits one deployment); ReleaseLock deletes it when the execution ends."""
    client("dynamodb").put_item(
        TableName=table,
        Item={
            **_key(service, "APPROVAL"),
            "holder": {"S": holder},
            "token": {"S": token},
            **{k: {"S": v} for k, v in attributes.items()},
            "expires_at": {"N": str(expires_at)},  # TTL: an item its execution did not clear
        },
    )


def get_approval(table: str, service: str) -> dict[str, str] | None:
    """The release awaiting a person's answer (holder, token, deployment_id, image, stage, requested_at...)."""
    return _get(table, service, "APPROVAL")


def clear_approval(table: str, service: str, holder: str) -> bool:
    """Forget the approval ``holder`` asked for (its execution ended). Idempotent."""
    return _delete_if(table, _key(service, "APPROVAL"), "holder = :me", {":me": {"S": holder}})
