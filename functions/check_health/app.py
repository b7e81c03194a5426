"""Run one round of health gates over the bake window."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.check_health(event)
