"""Function settings, read from the environment when a handler runs (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .models import Defaults


@dataclass(frozen=True)
class Settings:
    deployments_table: str
    notification_topic_arn: str
    defaults: Defaults

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [k for k in ("DEPLOYMENTS_TABLE", "NOTIFICATION_TOPIC_ARN") if not env.get(k)]
        if missing:
            raise RuntimeError(f"function misconfigured: environment variable(s) {', '.join(missing)} not set")
        return cls(
            deployments_table=env["DEPLOYMENTS_TABLE"],
            notification_topic_arn=env["NOTIFICATION_TOPIC_ARN"],
            defaults=Defaults.from_env(env),
        )
