"""Validate the workflow input and check, read-only, that the service and image exist."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.validate_request(event, Settings.from_env())
