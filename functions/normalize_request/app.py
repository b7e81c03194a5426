"""Turn any trigger (ECR push, CodePipeline, manual, verify) into one validated request. Read-only."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # the function's ARN says which account and region it deploys in: requests naming others are refused
    return workflow.normalize_request(event, Settings.from_env(function_arn=context.invoked_function_arn))
