"""Poll the ECS rollout once and decide: in progress, completed, failed or timed out."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.check_rollout(event)
