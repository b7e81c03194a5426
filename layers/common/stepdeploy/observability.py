"""The one observability module: structured logs and metrics (Powertools), set up on first use.

Handlers wrap their entry point with :func:`lambda_entry`. Nothing is created at import time:
the Logger and Metrics objects are built on the first invocation (they read the environment).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = "stepdeploy"
Handler = Callable[[dict[str, Any], Any], Any]


@functools.lru_cache(maxsize=1)
def logger() -> Logger:
    return Logger(service="stepdeploy")


@functools.lru_cache(maxsize=1)
def metrics() -> Metrics:
    return Metrics(namespace=NAMESPACE, service="stepdeploy")


def lambda_entry(handler: Handler) -> Handler:
    """Inject the Lambda context and the deployment id into every log line; flush metrics."""

    @functools.wraps(handler)
    def wrapper(event: dict[str, Any], context: Any) -> Any:
        log = logger()
        deployment_id = event.get("deployment_id") if isinstance(event, dict) else None
        log.append_keys(deployment_id=deployment_id, function=handler.__module__)
        try:
            return metrics().log_metrics(log.inject_lambda_context(handler))(event, context)
        except Exception as exc:  # noqa: BLE001 - logged, then re-raised for the state machine's Catch
            log.warning("step failed", extra={"error": type(exc).__name__, "cause": str(exc)})
            raise
        finally:
            log.remove_keys(["deployment_id", "function"])

    return wrapper


def count(name: str, value: float = 1, **dimensions: str) -> None:
    m = metrics()
    for key, dim in dimensions.items():
        m.add_dimension(name=key, value=dim)
    m.add_metric(name=name, unit=MetricUnit.Count, value=value)


def seconds(name: str, value: float) -> None:
    metrics().add_metric(name=name, unit=MetricUnit.Seconds, value=value)
