"""Dedupe, per-service lock (queued) and stale-image guard: PROCEED, WAIT or SKIP."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.guard_deployment(event, Settings.from_env())
