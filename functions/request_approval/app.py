"""Hold a release for a person: store the task token where an operator finds it, and announce it."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.request_approval(event, Settings.from_env())
