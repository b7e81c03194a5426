"""Deployment records (DynamoDB) and notifications (SNS)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from .clients import client


def _to_dynamo(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def put_record(table: str, record: dict[str, Any]) -> None:
    """Write the record; the (service, deployment_id) key makes a repeated write idempotent."""
    import boto3.dynamodb.types as ddb_types

    serializer = ddb_types.TypeSerializer()
    item = {k: serializer.serialize(v) for k, v in _to_dynamo(record).items() if v is not None}
    client("dynamodb").put_item(TableName=table, Item=item)


def mark_notified(table: str, service: str, deployment_id: str, at: str) -> None:
    """Note on the record that its notification went out (so an execution-end handler that finds the Record
    step failed after everything it does landed -- e.g. a timeout after the publish -- does not notify twice)."""
    client("dynamodb").update_item(
        TableName=table,
        Key={"service": {"S": service}, "deployment_id": {"S": deployment_id}},
        UpdateExpression="SET notified_at = :at",
        ConditionExpression="attribute_exists(deployment_id)",
        ExpressionAttributeValues={":at": {"S": at}},
    )


#: GSI of the deployments table: a service's records by ``started_at`` (the execution's start, ISO 8601)
TIME_INDEX = "by-started"


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    import boto3.dynamodb.types as ddb_types

    deserializer = ddb_types.TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def get_record(table: str, service: str, deployment_id: str) -> dict[str, Any] | None:
    out = client("dynamodb").get_item(
        TableName=table, Key={"service": {"S": service}, "deployment_id": {"S": deployment_id}}, ConsistentRead=True
    )
    return _plain(out["Item"]) if "Item" in out else None


def recent_records(table: str, service: str, limit: int) -> list[dict[str, Any]]:
    """The service's newest ``limit`` records, newest first (GSI ``by-started``: the summary attributes)."""
    out = client("dynamodb").query(
        TableName=table,
        IndexName=TIME_INDEX,
        KeyConditionExpression="service = :s",
        ExpressionAttributeValues={":s": {"S": service}},
        ScanIndexForward=False,
        Limit=limit,
    )
    return [_plain(i) for i in out.get("Items", [])]


def publish(topic_arn: str, subject: str, message: dict[str, Any], severity: str) -> None:
    client("sns").publish(
        TopicArn=topic_arn,
        Subject=subject[:100],
        Message=json.dumps(message, default=str, indent=2),
        MessageAttributes={
            "severity": {"DataType": "String", "StringValue": severity},
            "outcome": {"DataType": "String", "StringValue": str(message.get("outcome", ""))},
        },
    )
