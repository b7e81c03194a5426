"""An execution ended (any status): free its locks, answer its CodePipeline job, record it if it ended
without a record (EventBridge 'Step Functions Execution Status Change' rule)."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.execution_ended(event, Settings.from_env())
