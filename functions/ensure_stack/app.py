"""Provision or update the application stack: change set -> execute -> wait (or skip, or plan)."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.ensure_stack(event, Settings.from_env())
