"""CodePipeline Lambda invoke action: start a deployment and follow it with continuation tokens."""

import os
from typing import Any

from stepdeploy import workflow
from stepdeploy.observability import lambda_entry


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return workflow.pipeline_job(event, os.environ.get("STATE_MACHINE_ARN", ""))
