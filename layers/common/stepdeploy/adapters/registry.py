"""The registry table: entries by target name, and by repository (GSI ``by-repository``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from .clients import client

REPOSITORY_INDEX = "by-repository"


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB item -> plain JSON types (numbers come back as Decimal: integral ones become int)."""
    import boto3.dynamodb.types as ddb_types

    deserializer = ddb_types.TypeDeserializer()
    raw = {k: deserializer.deserialize(v) for k, v in item.items()}
    plain: dict[str, Any] = json.loads(json.dumps(raw, default=_number))
    return plain


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"unexpected {type(value).__name__} in a registry item")


def get_entry(table: str, name: str) -> dict[str, Any] | None:
    out = client("dynamodb").get_item(TableName=table, Key={"name": {"S": name}}, ConsistentRead=True)
    return _plain(out["Item"]) if "Item" in out else None


def entries_for_repository(table: str, repository: str) -> list[dict[str, Any]]:
    paginator = client("dynamodb").get_paginator("query")
    items: list[dict[str, Any]] = []
    for page in paginator.paginate(
        TableName=table,
        IndexName=REPOSITORY_INDEX,
        KeyConditionExpression="repository = :r",
        ExpressionAttributeValues={":r": {"S": repository}},
    ):
        items.extend(_plain(i) for i in page.get("Items", []))
    return items


def put_entry(table: str, entry: dict[str, Any]) -> None:
    import boto3.dynamodb.types as ddb_types

    serializer = ddb_types.TypeSerializer()
    plain = json.loads(json.dumps(entry), parse_float=Decimal)
    client("dynamodb").put_item(TableName=table, Item={k: serializer.serialize(v) for k, v in plain.items()})


def delete_entry(table: str, name: str) -> bool:
    """Remove the entry ``name``. Whether it existed."""
    out = client("dynamodb").delete_item(TableName=table, Key={"name": {"S": name}}, ReturnValues="ALL_OLD")
    return "Attributes" in out


def all_entries(table: str) -> list[dict[str, Any]]:
    """Every registry entry (a rotated secret may be used by any of them)."""
    paginator = client("dynamodb").get_paginator("scan")
    items: list[dict[str, Any]] = []
    for page in paginator.paginate(TableName=table, ConsistentRead=True):
        items.extend(_plain(i) for i in page.get("Items", []))
    return items
