"""Register a task-definition revision pinned to the new image digest."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.register_revision(event)
