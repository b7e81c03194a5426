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


def get_record(table: str, service: str, deployment_id: str) -> dict[str, Any] | None:
    import boto3.dynamodb.types as ddb_types

    out = client("dynamodb").get_item(
        TableName=table, Key={"service": {"S": service}, "deployment_id": {"S": deployment_id}}, ConsistentRead=True
    )
    if "Item" not in out:
        return None
    deserializer = ddb_types.TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in out["Item"].items()}


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
