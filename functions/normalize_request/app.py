"""Turn any trigger (ECR push, CodePipeline, manual, verify) into one validated request. Read-only."""

from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry
from stepdeploy.settings import Settings


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.normalize_request(event, Settings.from_env())
