"""boto3 clients, created on first use and reused across warm invocations."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=32)
def client(service: str) -> Any:
    """A boto3 client for ``service``; region and endpoint come from the standard AWS env/config."""
    import boto3  # deferred: keeps module import cheap and free of side effects
    from botocore.config import Config

    return boto3.client(service, config=Config(retries={"mode": "standard", "max_attempts": 3}))  # type: ignore[call-overload]


def reset() -> None:
    """Forget cached clients (after the AWS environment changed, e.g. between local worlds)."""
    client.cache_clear()
