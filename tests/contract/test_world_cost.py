"""What each local world costs the suite (it builds hundreds): what a world sets up and tears down that no
test needs must not be built, nor waited for."""

from __future__ import annotations

import time
import urllib.request

from stepdeploy_local import World
from stepdeploy_local.workload import PROFILES, RedirectServer, WorkloadServer


def test_a_listener_answers_and_closes_at_once() -> None:
    listeners = [WorkloadServer(lambda: PROFILES["healthy"], "/health"), RedirectServer("HTTPS", "443", 301)]
    with urllib.request.urlopen(listeners[0].url, timeout=5) as answer:
        assert answer.status == 200
    started = time.monotonic()
    for listener in listeners:
        listener.close()
    assert time.monotonic() - started < 0.4, "each close waited for serve_forever's 0.5 s poll"


def test_a_world_builds_no_default_machine_images() -> None:
    """Nothing in stepdeploy or its stacks launches an EC2 instance (Fargate): moto's default AMIs, built with
    their volumes and snapshots each time an EC2 backend is, would cost ~0.25 s twice per world."""
    with World() as world:
        assert world.client("ec2").describe_images(Owners=["amazon"])["Images"] == []


def test_worlds_one_after_another_share_their_clients_not_their_resources() -> None:
    clients, queues = [], []
    for name in ("first", "second"):
        with World(function_log_level="ERROR") as world:
            sqs = world.client("sqs")
            sqs.create_queue(QueueName=f"only-in-the-{name}-world")
            queues.append([url.rsplit("/", 1)[-1] for url in sqs.list_queues()["QueueUrls"] if "-world" in url])
            clients.append(sqs)
    assert clients[0] is clients[1]  # built once (~5 ms a client, ~15 a world)
    assert queues == [["only-in-the-first-world"], ["only-in-the-second-world"]]


def test_the_product_s_clients_outlive_a_world_only_into_the_same_aws_environment() -> None:
    """A warm Lambda container keeps its boto3 clients; so does the next world when its AWS environment is the
    same and nothing used them in between. Another region, or a use outside the worlds, builds them again."""
    from stepdeploy.adapters import clients

    def product_sqs(region: str = "us-east-1") -> tuple[object, list[str]]:
        with World(region=region, function_log_level="ERROR") as world:
            function = world.runtime.by_logical_id("NormalizeRequestFunction").name
            world.runtime.invoke(function, {"input": {}})  # (a function ran: its AWS_LAMBDA_* variables stay)
            sqs = clients.client("sqs")
            sqs.create_queue(QueueName=f"made-in-{region}")
            return sqs, [url.rsplit("/", 1)[-1] for url in world.client("sqs").list_queues()["QueueUrls"]]

    first, queues = product_sqs()
    second, again = product_sqs()
    assert second is first and "made-in-us-east-1" in queues and again.count("made-in-us-east-1") == 1
    elsewhere, there = product_sqs("eu-west-1")
    assert elsewhere is not first and "made-in-eu-west-1" in there and "made-in-us-east-1" not in there
    back, _ = product_sqs()
    assert back is not first and back is not elsewhere  # left in eu-west-1: built again for us-east-1
    clients.client("sqs")  # used between worlds (another test, the CLI): the next world builds its own
    assert product_sqs()[0] is not back
