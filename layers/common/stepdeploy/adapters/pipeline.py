"""CodePipeline job results, the job's input artifact (S3, with the job's credentials), executions."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .clients import client


def read_artifact_file(bucket: str, key: str, credentials: Mapping[str, str], name: str) -> str | None:
    """One file from a zipped pipeline artifact, read with the temporary credentials of the job."""
    import boto3

    s3 = boto3.client(
        "s3",
        aws_access_key_id=credentials.get("accessKeyId"),
        aws_secret_access_key=credentials.get("secretAccessKey"),
        aws_session_token=credentials.get("sessionToken"),
    )
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == name]
        return archive.read(names[0]).decode("utf-8") if names else None


def start_execution(state_machine_arn: str, name: str, payload: Any) -> str:
    sfn = client("stepfunctions")
    try:
        return str(
            sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))["executionArn"]
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"


def describe_execution(execution_arn: str) -> dict[str, Any]:
    out = client("stepfunctions").describe_execution(executionArn=execution_arn)
    stopped = out.get("stopDate")
    return {
        "status": out["status"],
        "error": out.get("error"),
        "cause": out.get("cause"),
        "stopped_at": stopped.isoformat() if stopped is not None else None,
        "output": json.loads(out["output"]) if out.get("output") else None,
    }


HISTORY_PAYLOADS = (
    ("stateExitedEventDetails", "output"),
    ("stateEnteredEventDetails", "input"),
    ("executionStartedEventDetails", "input"),
)


def history_payloads(execution_arn: str) -> Iterator[str]:
    """The states' inputs and outputs in the execution's history, newest first."""
    sfn = client("stepfunctions")
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": 100}
    while True:
        out = sfn.get_execution_history(**kwargs)
        for event in out["events"]:
            for details, field in HISTORY_PAYLOADS:
                payload = (event.get(details) or {}).get(field)
                if isinstance(payload, str):
                    yield payload
        if not out.get("nextToken"):
            return
        kwargs["nextToken"] = out["nextToken"]


def _answer(put: Callable[..., Any], **kwargs: Any) -> str:
    """A job takes one final result: once it has one (or outside InProgress), CodePipeline refuses
    another with InvalidJobStateException. Returns "answered", "already answered" or "no such job"."""
    errors = client("codepipeline").exceptions
    try:
        put(**kwargs)
        return "answered"
    except errors.InvalidJobStateException:
        return "already answered"
    except errors.JobNotFoundException:  # (an execution named like a job's by hand)
        return "no such job"


def succeed(job_id: str, summary: str, continuation_token: str | None = None) -> str:
    kwargs: dict[str, Any] = {"jobId": job_id, "executionDetails": {"summary": summary[:2048], "percentComplete": 100}}
    if continuation_token:
        kwargs["continuationToken"] = continuation_token
        kwargs["executionDetails"]["percentComplete"] = 50
    return _answer(client("codepipeline").put_job_success_result, **kwargs)


def fail(job_id: str, message: str, failure_type: str, external_id: str | None = None) -> str:
    details: dict[str, Any] = {"type": failure_type, "message": message[:5000]}
    if external_id:
        details["externalExecutionId"] = external_id
    return _answer(client("codepipeline").put_job_failure_result, jobId=job_id, failureDetails=details)
