"""The local world as a server on 127.0.0.1: boto3 (or the AWS CLI) drives it from outside."""

from __future__ import annotations

import json
import socket
import time

import boto3
from stepdeploy_local import World


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_external_client_starts_and_inspects_an_execution() -> None:
    port = _free_port()
    with World(function_log_level="ERROR", server_port=port) as world:
        app = world.create_service(tag="v1")
        world.push_image(app.repository, "v2")
        endpoint = f"http://127.0.0.1:{port}"
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=endpoint,
            region_name=world.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        [machine] = sfn.list_state_machines()["stateMachines"]
        arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=json.dumps(app.request("v2")))[
            "executionArn"
        ]
        deadline = time.monotonic() + 60
        while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status == "SUCCEEDED"
        ecs = boto3.client(
            "ecs",
            endpoint_url=endpoint,
            region_name=world.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
        assert svc["taskDefinition"].endswith("web:2")
        assert [d["rolloutState"] for d in svc["deployments"]] == ["COMPLETED"]
