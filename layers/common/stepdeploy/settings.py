"""Function settings, read from the environment when a handler runs (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .models import Defaults

REQUIRED = ("DEPLOYMENTS_TABLE", "NOTIFICATION_TOPIC_ARN", "REGISTRY_TABLE", "CONTROL_TABLE")


@dataclass(frozen=True)
class Settings:
    deployments_table: str
    notification_topic_arn: str
    registry_table: str
    control_table: str
    defaults: Defaults
    queue_timeout_seconds: int = 1800
    queue_poll_seconds: int = 30
    lock_lease_seconds: int = 90000
    #: the role CloudFormation uses for the application stack (empty: the caller's credentials)
    app_stack_role_arn: str = ""
    #: application stacks are named <prefix><stack.name> (the CloudFormation role is scoped to it)
    app_stack_prefix: str = ""
    #: where the function runs (from its ARN: no API call): a request may only name resources there.
    #: Empty when unknown (no function ARN given): then ARNs are not checked against it.
    partition: str = ""
    region: str = ""
    account: str = ""
    #: deployment records (and the digest claims that dedupe against them) expire after this many days;
    #: 0 keeps them (template parameter RecordRetentionDays)
    record_retention_days: int = 90

    def expires_at(self, now: float) -> int | None:
        """The TTL attribute (epoch seconds) of a record or claim written at ``now``; None: kept."""
        return int(now) + self.record_retention_days * 86400 if self.record_retention_days > 0 else None

    def stack_name(self, name: str) -> str:
        """The CloudFormation name of the application stack a request calls ``name``."""
        return self.app_stack_prefix + name

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, function_arn: str = "") -> Settings:
        """``function_arn``: the Lambda context's ``invoked_function_arn`` (its partition, region and
        account are where this deployment system works)."""
        env = os.environ if env is None else env
        missing = [k for k in REQUIRED if not env.get(k)]
        if missing:
            raise RuntimeError(f"function misconfigured: environment variable(s) {', '.join(missing)} not set")
        numbers = {}
        for name, key in (
            ("queue_timeout_seconds", "QUEUE_TIMEOUT_SECONDS"),
            ("queue_poll_seconds", "QUEUE_POLL_SECONDS"),
            ("lock_lease_seconds", "LOCK_LEASE_SECONDS"),
            ("record_retention_days", "RECORD_RETENTION_DAYS"),
        ):
            if env.get(key):
                try:
                    numbers[name] = int(env[key])
                except ValueError as exc:
                    raise RuntimeError(f"function misconfigured: {key} must be an integer") from exc
        partition, region, account = _home(function_arn, env.get("AWS_REGION", ""))
        return cls(
            deployments_table=env["DEPLOYMENTS_TABLE"],
            notification_topic_arn=env["NOTIFICATION_TOPIC_ARN"],
            registry_table=env["REGISTRY_TABLE"],
            control_table=env["CONTROL_TABLE"],
            defaults=Defaults.from_env(env),
            app_stack_role_arn=env.get("APP_STACK_ROLE_ARN", ""),
            app_stack_prefix=env.get("APP_STACK_PREFIX", ""),
            partition=partition,
            region=region,
            account=account,
            **numbers,
        )


def _home(function_arn: str, region: str) -> tuple[str, str, str]:
    """Partition, region and account of ``arn:<partition>:lambda:<region>:<account>:function:<name>``."""
    parts = function_arn.split(":")
    if len(parts) < 5 or parts[0] != "arn":
        return "", region, ""
    return parts[1], parts[3] or region, parts[4]
