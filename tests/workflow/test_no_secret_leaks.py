"""No secret value leaks (issue 13): with every function at DEBUG, a stack provisioning, a service deployment that
reads its test listener's token, a failing release that rolls back and a CodePipeline-triggered one run; no secret
value appears in the functions' logs, the executions' input, output and history, the tables' items (deployment
records, locks, the registry), the notifications delivered, or the stepdeploy command's output.

Secrets: the database password (Secrets Manager, set to a random value), the test listener tokens (random), the
CodePipeline jobs' artifact credentials (random per job)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from stepdeploy_local import World
from stepdeploy_local.__main__ import samconfig_stack

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stepdeploy(endpoint: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("cli", "layers/common"))}
    done = subprocess.run(
        [sys.executable, "-m", "stepdeploy_cli", "--endpoint-url", endpoint, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    return done.stdout + done.stderr


@dataclass
class Run:
    world: World
    secrets: dict[str, str] = field(default_factory=dict)  # what -> value
    outcomes: list[str] = field(default_factory=list)
    command_output: str = ""


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    port = _free_port()
    with World(function_log_level="DEBUG", server_port=port, stack_name=samconfig_stack()) as world:
        yield _deployments(world, f"http://127.0.0.1:{port}")


def _deployments(world: World, endpoint: str) -> Run:
    out = Run(world)
    sm = world.client("secretsmanager")
    stack = world.stack_app("techchallenge")
    world.push_image(stack.repository, "v1")
    out.outcomes.append(world.deploy(stack.request("v1")).status)  # provisioning
    outputs = stack.outputs()
    password = "pw-" + secrets.token_urlsafe(24)
    sm.put_secret_value(
        SecretId=outputs["DatabaseSecretArn"], SecretString=json.dumps({"username": "app", "password": password})
    )
    out.secrets["database password"] = password
    out.secrets["stack test token"] = str(
        json.loads(sm.get_secret_value(SecretId=outputs["TestTrafficSecretArn"])["SecretString"])["token"]
    )
    service = world.create_service(cluster="bg", service="bg", repository="bgapp", strategy="BLUE_GREEN")
    assert service.test_url and service.test_token
    out.secrets["service test token"] = service.test_token
    token_secret = sm.create_secret(Name="bg-test-token", SecretString=json.dumps({"token": service.test_token}))
    strategy = {"type": "BLUE_GREEN", "test_url": service.test_url, "test_header_secret_arn": token_secret["ARN"]}
    world.push_image(service.repository, "v2")
    out.outcomes.append(world.deploy(service.request("v2", strategy=strategy)).status)  # service deployment
    world.push_image(stack.repository, "v2", "db-down")
    out.outcomes.append(world.deploy(stack.request("v2")).status)  # fails its gates, rolled back
    world.register(stack, tag_filter={"mode": "glob", "pattern": "v*"})
    world.push_image(stack.repository, "v3")
    job = world.run_pipeline_job(
        {"target": "techchallenge", "file": "imageDetail.json"},
        {"imageDetail.json": {"ImageURI": world.image_uri(stack.repository, "v3")}},
    )
    out.outcomes.append(str(job["status"]))
    for n, credentials in enumerate(world.artifact_credentials):
        out.secrets |= {f"job {n} {key}": value for key, value in credentials.items()}
    out.command_output = "\n".join(
        stepdeploy(endpoint, *args)
        for args in (
            ("status",),
            ("status", "techchallenge"),
            ("history", "techchallenge"),
            ("--output", "json", "history", "techchallenge"),
        )
    )
    return out


def leaked(run: Run, text: str) -> list[str]:
    return [what for what, value in run.secrets.items() if value in text]


def test_the_deployments_ran_as_expected_and_read_the_secrets(run: Run) -> None:
    assert run.outcomes == ["SUCCEEDED", "SUCCEEDED", "FAILED", "Succeeded"]
    assert len(run.secrets) == 3 + 3 * len(run.world.artifact_credentials) and run.world.artifact_credentials
    assert all(len(value) >= 20 for value in run.secrets.values())
    assert logging.getLogger("stepdeploy").level == logging.DEBUG  # the functions' logger ran at DEBUG
    logs = "".join(i.logs for i in run.world.runtime.invocations)
    assert '"level":"WARNING"' in logs  # and its lines were captured (the failing release logged one)


def test_no_secret_in_function_logs(run: Run) -> None:
    logs = "\n".join(i.logs for i in run.world.runtime.invocations)
    assert logs and leaked(run, logs) == []


def test_no_secret_in_execution_input_output_or_history(run: Run) -> None:
    sfn = run.world.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=run.world.outputs["DeployStateMachineArn"])["executions"]
    assert len(executions) >= 4
    for execution in executions:
        arn = execution["executionArn"]
        text = json.dumps(sfn.describe_execution(executionArn=arn), default=str)
        text += json.dumps(sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"], default=str)
        assert leaked(run, text) == [], arn


def test_no_secret_in_any_table(run: Run) -> None:
    ddb = run.world.client("dynamodb")
    for name in ddb.list_tables()["TableNames"]:
        items = ddb.scan(TableName=name)["Items"]
        assert leaked(run, json.dumps(items, default=str)) == [], name


def test_no_secret_in_notifications(run: Run) -> None:
    notifications = run.world.notifications()
    assert notifications
    assert leaked(run, json.dumps(notifications, default=str)) == []


def test_no_secret_in_command_output(run: Run) -> None:
    assert "techchallenge" in run.command_output
    assert leaked(run, run.command_output) == []
