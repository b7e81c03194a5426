"""The stepdeploy command against the local world served over HTTP (a subprocess per command, as a user runs it).

One served world per module: its stack answers describe-stacks under samconfig.toml's stack name, so the
command finds the state machine and tables from the stack outputs with no --stack.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stepdeploy_local import World
from stepdeploy_local.__main__ import samconfig_stack
from stepdeploy_local.world import AppService

ROOT = Path(__file__).resolve().parents[2]
TARGET = "techchallenge/web"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[World, AppService, str]]:
    port = _free_port()
    with World(function_log_level="ERROR", server_port=port, stack_name=samconfig_stack()) as world:
        app = world.create_service(tag="v1")
        world.register(app, name=TARGET, tag_filter={"mode": "glob", "pattern": "v*"})
        yield world, app, f"http://127.0.0.1:{port}"


def stepdeploy(endpoint: str, *args: str, json_output: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("cli", "layers/common")),
        "COLUMNS": "200",
    }
    output = ["--output", "json"] if json_output else []
    return subprocess.run(
        [sys.executable, "-m", "stepdeploy_cli", "--endpoint-url", endpoint, *output, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_deploy_healthy_exits_0_and_the_service_runs_it(served: tuple[World, AppService, str]) -> None:
    world, app, endpoint = served
    digest = world.push_image(app.repository, "v2", "healthy")
    out = ok(stepdeploy(endpoint, "deploy", TARGET, "--tag", "v2", "--wait"))
    assert out["verified"] and out["outcome"] == "DEPLOYED" and out["end_state"] == "Deployed"
    assert out["summary"]["revision"] == app.running_task_definition() and out["summary"]["reason"] == ""
    assert out["gate_rounds"] and all(g["passed"] for g in out["gate_rounds"][-1]["gates"])
    assert app.running_image().endswith(digest)


def test_deploy_broken_exits_nonzero_with_the_cause(served: tuple[World, AppService, str]) -> None:
    world, app, endpoint = served
    before = app.running_image()
    world.push_image(app.repository, "v3", "db-down")
    result = stepdeploy(endpoint, "deploy", TARGET, "--tag", "v3", "--wait", json_output=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HealthCheckFailed" in result.stderr and "rolled back" in result.stderr
    assert app.running_image() == before


def test_deploy_of_what_runs_is_not_a_success(served: tuple[World, AppService, str]) -> None:
    endpoint = served[2]
    result = stepdeploy(endpoint, "deploy", TARGET, "--tag", "v2", "--wait")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["outcome"] == "SKIPPED" and out["error"] == "AlreadyRunning" and "already running" in out["cause"]


def test_status_shows_what_runs_and_the_last_verified(served: tuple[World, AppService, str]) -> None:
    world, app, endpoint = served
    [status] = ok(stepdeploy(endpoint, "status", TARGET))
    v2 = world.digest_of(app.repository, "v2")
    assert status["running"]["digest"] == v2 and status["running"]["tags"] == ["v2"]
    assert status["last_verified"]["digest"] == v2
    assert status["in_progress"] is None and status["lock"] is None and status["queue"] == []
    table = stepdeploy(endpoint, "status", json_output=False)
    assert table.returncode == 0 and TARGET in table.stdout and "v2" in table.stdout


def test_history_is_newest_first_and_shows_one(served: tuple[World, AppService, str]) -> None:
    endpoint = served[2]
    rows = ok(stepdeploy(endpoint, "history", TARGET))
    assert [r["outcome"] for r in rows[:3]] == ["SKIPPED", "ROLLED_BACK", "SUCCEEDED"]
    assert [r["image"] for r in rows[:3]] == ["v2", "v3", "v2"]
    assert [r["when"] for r in rows] == sorted((r["when"] for r in rows), reverse=True)
    one = ok(stepdeploy(endpoint, "history", TARGET, rows[1]["deployment"]))
    assert one["error"] == "HealthCheckFailed" and "rolled back" in one["cause"]
    assert "Rollback" in one["path"] and any(r["phase"] == "rollback" for r in one["gate_rounds"])


def test_rollback_changes_the_running_image(served: tuple[World, AppService, str]) -> None:
    world, app, endpoint = served
    v2 = world.digest_of(app.repository, "v2")
    v4 = world.push_image(app.repository, "v4", "healthy")
    ok(stepdeploy(endpoint, "deploy", TARGET, "--tag", "v4", "--wait"))
    assert app.running_image().endswith(v4)
    out = ok(stepdeploy(endpoint, "rollback", TARGET, "--wait"))
    assert out["verified"] and out["input"]["image"] == {"digest": v2} and out["input"]["redeploy"] is True
    assert app.running_image().endswith(v2)


def test_register_refuses_a_bad_entry_and_writes_nothing(served: tuple[World, AppService, str], tmp_path: Path) -> None:
    _, app, endpoint = served
    bad = {
        "name": "techchallenge/bad",
        "repository": app.repository,
        "tag_filter": {"mode": "glob", "pattern": "x*"},
        "request": {**app.target(), "health": {"url": "http://x/", "max_checks": 0}},
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = stepdeploy(endpoint, "register", str(path))
    assert result.returncode == 1
    refused = json.loads(result.stdout)
    assert refused["error"] == "InvalidRegistryEntry" and "max_checks" in refused["cause"]
    assert [s["target"] for s in ok(stepdeploy(endpoint, "services"))] == [TARGET]
    good = {**bad, "request": app.target()}
    path.write_text(json.dumps(good))
    assert ok(stepdeploy(endpoint, "register", str(path)))["registered"] == "techchallenge/bad"
    assert ok(stepdeploy(endpoint, "unregister", "techchallenge/bad")) == {"unregistered": "techchallenge/bad"}
    assert [s["target"] for s in ok(stepdeploy(endpoint, "services"))] == [TARGET]


def test_abort_stops_the_deployment_and_reports_the_record(served: tuple[World, AppService, str]) -> None:
    world, app, endpoint = served
    world.push_image(app.repository, "v5", "healthy")
    pause = world.pause_at("WaitRollout")
    started = ok(stepdeploy(endpoint, "deploy", TARGET, "--tag", "v5"))
    pause.reached()
    [status] = ok(stepdeploy(endpoint, "status", TARGET))
    assert status["in_progress"]["deployment"] == started["deployment"]
    out = ok(stepdeploy(endpoint, "abort", TARGET))
    assert out["deployment"] == started["deployment"] and out["status"] == "ABORTED"
    assert out["recorded"]["outcome"] == "ABORTED"


def held(endpoint: str) -> dict[str, Any]:
    """TARGET's status once its deployment in progress awaits a person's answer."""
    deadline = time.monotonic() + 60
    while True:
        [status] = ok(stepdeploy(endpoint, "status", TARGET))
        if (status["in_progress"] or {}).get("awaiting_approval"):
            return dict(status)
        assert time.monotonic() < deadline, f"no release held: {status}"
        time.sleep(0.2)


def test_approve_lets_a_held_release_go_ahead(served: tuple[World, AppService, str]) -> None:
    world, app, endpoint = served
    before = app.running_image()
    v6 = world.push_image(app.repository, "v6", "healthy")
    started = ok(stepdeploy(endpoint, "deploy", TARGET, "--tag", "v6", "--approval-timeout", "30"))
    status = held(endpoint)
    assert status["in_progress"]["deployment"] == started["deployment"] and app.running_image() == before
    assert status["in_progress"]["awaiting_approval"]["on_timeout"] == "REJECT"
    table = stepdeploy(endpoint, "status", TARGET, json_output=False)
    assert "awaits" in table.stdout  # (the cell wraps: "awaits approval (stepdeploy approve|reject ...)")
    other = stepdeploy(endpoint, "approve", TARGET, "--deployment", "someone-else")
    assert other.returncode == 1 and json.loads(other.stdout)["error"] == "NothingToDo"
    answered = ok(stepdeploy(endpoint, "approve", TARGET, "--by", "alice"))
    assert answered == {"approved": started["deployment"], "target": TARGET, "image": "v6"}
    out = ok(stepdeploy(endpoint, "watch", started["deployment"]))
    assert out["verified"] and app.running_image().endswith(v6)
    nothing = stepdeploy(endpoint, "approve", TARGET)
    assert nothing.returncode == 1 and "no release of techchallenge/web awaits approval" in nothing.stdout


def test_reject_ends_a_held_release_with_production_unchanged(served: tuple[World, AppService, str]) -> None:
    world, app, endpoint = served
    before = app.running_image()
    world.push_image(app.repository, "v7", "healthy")
    started = ok(stepdeploy(endpoint, "deploy", TARGET, "--tag", "v7", "--approval-timeout", "30"))
    held(endpoint)
    ok(stepdeploy(endpoint, "reject", TARGET, "--by", "bob", "--reason", "release notes missing"))
    watched = stepdeploy(endpoint, "watch", started["deployment"])
    assert watched.returncode == 1
    out = json.loads(watched.stdout)
    assert out["error"] == "ApprovalRejected" and "rejected by bob: release notes missing" in out["cause"]
    assert app.running_image() == before
    [status] = ok(stepdeploy(endpoint, "status", TARGET))
    assert status["in_progress"] is None and status["last_verified"]["running"] is True
