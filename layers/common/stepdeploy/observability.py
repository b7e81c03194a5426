"""The one observability module: structured logs and metrics (Powertools), set up on first use.

Handlers wrap their entry point with :func:`lambda_entry`. Nothing is created at import time:
the Logger is built on the first invocation (it reads the environment). Metrics are emitted as
single EMF records (:func:`count`) so dimensions never leak between invocations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "stepdeploy"
Handler = Callable[[dict[str, Any], Any], Any]


@functools.lru_cache(maxsize=1)
def logger() -> Logger:
    return Logger(service="stepdeploy")


def lambda_entry(handler: Handler) -> Handler:
    """Inject the Lambda context and the deployment id into every log line; log failures."""

    @functools.wraps(handler)
    def wrapper(event: dict[str, Any], context: Any) -> Any:
        log = logger()
        deployment_id = event.get("deployment_id") if isinstance(event, dict) else None
        log.append_keys(deployment_id=deployment_id, function=handler.__module__)
        try:
            return log.inject_lambda_context(handler)(event, context)
        except Exception as exc:
            log.warning("step failed", extra={"error": type(exc).__name__, "cause": str(exc)})
            raise
        finally:
            log.remove_keys(["deployment_id", "function"])

    return wrapper


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """One metric with its own dimensions (flushed immediately, so dimensions never leak)."""
    _emit(name, MetricUnit.Count, value, dimensions)


def seconds(name: str, value: float, **dimensions: str) -> None:
    """One duration, in seconds (flushed immediately, like :func:`count`)."""
    _emit(name, MetricUnit.Seconds, max(value, 0.0), dimensions)


def _emit(name: str, unit: MetricUnit, value: float, dimensions: dict[str, str]) -> None:
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        for key, dim in dimensions.items():
            metric.add_dimension(name=key, value=dim)
