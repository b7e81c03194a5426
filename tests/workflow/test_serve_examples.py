"""`make serve` prints commands to try: run each printed line, in order, against the served world over HTTP,
and check that it does what its comment says (the lines come from the function `serve` prints, so they
cannot drift). AWS CLI lines run through boto3 with the CLI's own argument rules (options from the
service model, JSON for structures); `stepdeploy` lines run the command."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import xform_name
from stepdeploy_local import World
from stepdeploy_local.__main__ import Example, samconfig_stack, serve_examples, serve_world
from stepdeploy_local.world import StackApp

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def aws(words: list[str], region: str) -> Any:
    """``aws --endpoint-url URL SERVICE COMMAND --option value...`` as the AWS CLI reads it."""
    assert words[:2] == ["aws", "--endpoint-url"], words
    endpoint, service, command, rest = words[2], words[3], words[4], words[5:]
    client = boto3.client(service, endpoint_url=endpoint, region_name=region, **CREDENTIALS)
    model = client.meta.service_model
    [operation] = [o for o in model.operation_names if xform_name(o, "-") == command]
    members = model.operation_model(operation).input_shape.members
    options = {"--" + xform_name(name, "-"): name for name in members}
    params: dict[str, Any] = {}
    i = 0
    while i < len(rest):
        name = options[rest[i]]
        j = i + 1
        while j < len(rest) and not rest[j].startswith("--"):
            j += 1
        values, shape, i = rest[i + 1 : j], members[name], j
        if shape.type_name == "string":
            [params[name]] = values
        elif shape.type_name == "list" and not values[0].startswith("["):
            params[name] = values
        else:
            [raw] = values
            params[name] = json.loads(raw)
    return getattr(client, xform_name(operation))(**params)


def stepdeploy(words: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("cli", "layers/common")),
        "COLUMNS": "200",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    command = [sys.executable, "-m", "stepdeploy_cli", *words[1:]]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


class Served:
    def __init__(self, world: World, app: StackApp, endpoint: str) -> None:
        self.world, self.app, self.endpoint = world, app, endpoint
        self.sfn = boto3.client("stepfunctions", endpoint_url=endpoint, region_name=world.region, **CREDENTIALS)
        self.seen: set[str] = set()

    def executions(self) -> list[dict[str, Any]]:
        arn = self.world.outputs["DeployStateMachineArn"]
        return list(self.sfn.list_executions(stateMachineArn=arn)["executions"])

    def wait(self, arn: str) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while (out := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"{arn} still running"
            time.sleep(0.1)
        self.seen.add(arn)
        return dict(out)

    def digest(self, tag: str) -> str:
        return self.world.digest_of(self.app.repository, tag)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Served, list[Example]]]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with World(function_log_level="ERROR", server_port=port, stack_name=samconfig_stack()) as world:
        app, target, provisioned = serve_world(world)
        assert provisioned
        yield Served(world, app, endpoint), serve_examples(world, app, target, endpoint, "v2", "v3")


def _executions(s: Served, out: Any) -> None:  # every deployment so far: the provisioning of v1
    assert [e["status"] for e in out["executions"]] == ["SUCCEEDED"]
    s.seen.update(e["executionArn"] for e in out["executions"])


def _deploy(s: Served, out: Any) -> None:  # v2 by hand: it runs
    assert s.wait(out["executionArn"])["status"] == "SUCCEEDED"
    assert s.app.service().running_image().endswith(s.digest("v2"))


def _service(s: Served, out: Any) -> None:  # runs v2, one deployment, COMPLETED
    [svc] = out["services"]
    assert [d["rolloutState"] for d in svc["deployments"]] == ["COMPLETED"]
    td = s.world.client("ecs").describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    assert td["containerDefinitions"][0]["image"].endswith(s.digest("v2"))


def _push(s: Served, out: Any) -> None:  # v3 is broken: it rolls back to v2
    assert out["FailedEntryCount"] == 0
    [started] = [e["executionArn"] for e in s.executions() if e["executionArn"] not in s.seen]
    ended = s.wait(started)
    assert (ended["status"], ended.get("error")) == ("FAILED", "HealthCheckFailed"), ended
    assert "rolled back" in ended["cause"]
    assert s.app.service().running_image().endswith(s.digest("v2"))


def _history(s: Served, out: subprocess.CompletedProcess[str]) -> None:  # v3 ROLLED_BACK, then v2 SUCCEEDED
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if "ROLLED_BACK" in line or "SUCCEEDED" in line]
    assert "v3" in rows[0] and "ROLLED_BACK" in rows[0], out.stdout
    assert "v2" in rows[1] and "SUCCEEDED" in rows[1], out.stdout


def _status(s: Served, out: subprocess.CompletedProcess[str]) -> None:  # v2 runs and is the last verified
    assert out.returncode == 0, out.stderr
    short = s.digest("v2").removeprefix("sha256:")[:12]
    assert "v2" in out.stdout and short in out.stdout and "v3" not in out.stdout, out.stdout
    assert "running (" in out.stdout, out.stdout  # the last verified image is the one running


def _stacks(s: Served, out: Any) -> None:  # stepdeploy's stack outputs: the state machine and the tables
    [stack] = out["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    for name in ("DeployStateMachineArn", "DeploymentsTableName", "RegistryTableName", "ControlTableName"):
        assert outputs[name] == s.world.outputs[name]


def _app_stack(s: Served, out: Any) -> None:  # the application stack stepdeploy provisioned
    [stack] = out["Stacks"]
    # (a BLUE_GREEN stack whose broken release CloudFormation rolled back is UPDATE_ROLLBACK_COMPLETE: stable)
    assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["ServiceName"] == s.app.service().service


CHECKS: dict[str, Callable[[Served, Any], None]] = {
    "executions": _executions,
    "deploy": _deploy,
    "service": _service,
    "push": _push,
    "history": _history,
    "status": _status,
    "stacks": _stacks,
    "app-stack": _app_stack,
}


def test_every_printed_example_has_a_check(served: tuple[Served, list[Example]]) -> None:
    assert [e.key for e in served[1]] == list(CHECKS)


def test_the_printed_examples_do_what_they_say_in_order(served: tuple[Served, list[Example]]) -> None:
    s, examples = served
    for example in examples:
        words = shlex.split(example.line(), comments=True)
        out = stepdeploy(words) if words[0] == "stepdeploy" else aws(words, s.world.region)
        CHECKS[example.key](s, out)
