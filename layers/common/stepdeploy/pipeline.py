"""CodePipeline Lambda invoke action: parse the job, decide what to report. Pure, no I/O.

UserParameters (JSON object) choose what to deploy:

- ``{"target": "techchallenge/web", "file": "imageDetail.json"}``: the image named in a file of the
  input artifact (``imageDetail.json`` or ``imagedefinitions.json``), deployed to the registry target;
- ``{"file": "imagedefinitions.json"}``: the same, target looked up by repository in the registry;
- ``{"target": "...", "image": {"tag": "v2"}}``: a fixed image;
- ``{"mode": "verify", "target": "..."}``: verify what the pipeline's own ECS action deployed.

The first invocation starts an execution and answers with a continuation token; CodePipeline
invokes again with it until the execution ends, then the job succeeds or fails with the cause.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import triggers

MAX_MESSAGE = 5000


class JobConfigurationError(Exception):
    """The job's UserParameters or artifacts are unusable (reported as ConfigurationError)."""


@dataclass(frozen=True)
class Job:
    id: str
    user_parameters: dict[str, Any]
    artifacts: dict[str, tuple[str, str]]  # artifact name -> (bucket, key)
    credentials: Mapping[str, str]
    continuation_token: str | None


def job_id(event: Any) -> str | None:
    job = event.get("CodePipeline.job") if isinstance(event, Mapping) else None
    return str(job["id"]) if isinstance(job, Mapping) and isinstance(job.get("id"), str) else None


def parse_job(event: Mapping[str, Any]) -> Job:
    job = event["CodePipeline.job"]
    data = job.get("data") or {}
    raw = ((data.get("actionConfiguration") or {}).get("configuration") or {}).get("UserParameters")
    if not isinstance(raw, str) or not raw.strip():
        raise JobConfigurationError(
            'UserParameters must be a JSON object, e.g. {"target": "cluster/service", "file": "imageDetail.json"}'
        )
    try:
        params = json.loads(raw)
    except ValueError as exc:
        raise JobConfigurationError(f"UserParameters is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise JobConfigurationError("UserParameters must be a JSON object")
    unknown = set(params) - {"target", "file", "image", "mode", "reason"}
    if unknown:
        raise JobConfigurationError(f"UserParameters: unknown key(s) {', '.join(sorted(unknown))}")
    artifacts = {}
    for artifact in data.get("inputArtifacts") or []:
        s3 = (artifact.get("location") or {}).get("s3Location") or {}
        if s3.get("bucketName") and s3.get("objectKey"):
            artifacts[str(artifact.get("name"))] = (str(s3["bucketName"]), str(s3["objectKey"]))
    return Job(
        id=str(job["id"]),
        user_parameters=params,
        artifacts=artifacts,
        credentials=data.get("artifactCredentials") or {},
        continuation_token=data.get("continuationToken"),
    )


def execution_input(params: Mapping[str, Any], file_content: str | None) -> Any:
    """The state machine input for a job (validated again, fully, by the workflow's Normalize)."""
    if params.get("mode") == "verify":
        return {"mode": "verify", "target": params.get("target"), "trigger": "verify"}
    if "file" in params:
        if file_content is None:
            raise JobConfigurationError(f"file {params['file']!r} not found in the input artifact")
        try:
            content = json.loads(file_content)
        except ValueError as exc:
            raise JobConfigurationError(f"{params['file']} is not valid JSON: {exc}") from exc
        if "target" not in params:
            return content
        intent = triggers.parse(content)  # InvalidDeploymentRequest for a malformed file
        image = {k: v for k, v in (("digest", intent.digest), ("tag", intent.tag)) if v}
        if intent.digest:
            image = {"digest": intent.digest}
        return {
            "target": params["target"],
            "image": image,
            "trigger": "codepipeline",
            **({"reason": params["reason"]} if "reason" in params else {}),
        }
    if "image" in params and "target" in params:
        return {
            "target": params["target"],
            "image": params["image"],
            "trigger": "codepipeline",
            **({"reason": params["reason"]} if "reason" in params else {}),
        }
    raise JobConfigurationError("UserParameters needs {target, image}, {file[, target]} or {mode: verify, target}")


#: a CodePipeline job id (the API's pattern); an execution named ``codepipeline-<job id>`` belongs to the job
JOB_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
EXECUTION_PREFIX = "codepipeline-"


def execution_name(job: str) -> str:
    """Deterministic (a re-invoked job finds its execution; the status-change rule answers the job it
    names when the execution ends)."""
    if not re.fullmatch(JOB_ID, job):
        raise JobConfigurationError(f"job id {job!r} is not a CodePipeline job id")
    return f"{EXECUTION_PREFIX}{job}"


def job_of_execution(name: str) -> str | None:
    """The CodePipeline job an execution was started for (its name), or None."""
    match = re.fullmatch(re.escape(EXECUTION_PREFIX) + f"({JOB_ID})", name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Report:
    kind: str  # continue | success | failure
    message: str
    failure_type: str = "JobFailed"


def report_for(status: str, error: str | None, cause: str | None, execution_arn: str, output: Any = None) -> Report:
    """``output``: the execution's output (its summary when it SUCCEEDED: outcome and detail)."""
    if status == "RUNNING":
        return Report("continue", f"deployment running: {execution_arn}")
    if status == "SUCCEEDED":
        summary = output if isinstance(output, Mapping) else {}
        outcome = str(summary.get("outcome") or "DEPLOYED")
        if outcome == "SKIPPED":
            return Report("success", f"SKIPPED ({summary.get('reason')}): {summary.get('detail')}"[:MAX_MESSAGE])
        detail = f": {summary['detail']}" if summary.get("detail") else ""
        return Report("success", f"{outcome}{detail} ({execution_arn})"[:MAX_MESSAGE])
    return Report("failure", f"deployment {status}: {error}: {cause}"[:MAX_MESSAGE])
