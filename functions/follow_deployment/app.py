"""Follow a BLUE_GREEN, CANARY or LINEAR service deployment one poll: gate it, CONTINUE or ROLLBACK."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.follow_deployment(event)
