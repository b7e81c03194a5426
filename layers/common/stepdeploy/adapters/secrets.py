"""AWS Secrets Manager: the token the test listener rule requires (never logged or returned)."""

from __future__ import annotations

from .clients import client


def secret_string(arn: str) -> str:
    return str(client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
