"""Release the locks of an execution that FAILED, TIMED_OUT or was ABORTED (EventBridge rule)."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.release_lock(event, Settings.from_env())
