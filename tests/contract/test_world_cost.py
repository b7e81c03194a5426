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
