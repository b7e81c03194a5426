"""Record the deployment, notify, and return the error the execution ends with."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.record_outcome(event, Settings.from_env())
