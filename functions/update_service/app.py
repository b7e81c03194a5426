"""Point the ECS service at a task-definition revision (deploy or rollback)."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.update_service(event)
