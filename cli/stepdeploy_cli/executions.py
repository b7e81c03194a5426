"""Executions of the deploy state machine as a person reads them: where it is, its gate rounds, how it ended."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .aws import client

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
#: the Succeed state of a release that runs and passed its health gates (statemachine/deploy.asl.json)
DEPLOYED = "Deployed"
PLANNED = "Planned"


def execution_arn(state_machine: str, deployment_id: str) -> str:
    """The ARN of the execution named ``deployment_id`` (the deployment id is the execution name)."""
    if deployment_id.startswith("arn:"):
        return deployment_id
    return state_machine.replace(":stateMachine:", ":execution:") + ":" + deployment_id


def history(arn: str) -> list[dict[str, Any]]:
    sfn, events, token = client("stepfunctions"), [], None
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _exit(event: dict[str, Any], state: str, part: str = "active") -> dict[str, Any] | None:
    """The ``part`` (``active``, ``stack``) of the output of an exit from ``state``, or None."""
    details = event.get("stateExitedEventDetails") or {}
    if details.get("name") != state:
        return None
    try:
        found = json.loads(details.get("output") or "{}").get(part)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _follow(event: dict[str, Any]) -> dict[str, Any]:
    """The followed ECS service deployment (BLUE_GREEN, CANARY, LINEAR) after a FollowDeployment exit
    (``$.active.follow``), or after an EnsureStack exit (``$.stack.follow``: the deployment a stack update started,
    which EnsureStack gates); {} otherwise."""
    found = (_exit(event, "FollowDeployment") or {}).get("follow") or (_exit(event, "EnsureStack", "stack") or {}).get(
        "follow"
    )
    return found if isinstance(found, dict) else {}


def _gates(bake: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"gate": g.get("gate"), "passed": g.get("passed"), "detail": g.get("detail")} for g in bake.get("last", [])]


def _gate_round(event: dict[str, Any]) -> dict[str, Any] | None:
    """A gate round: a CheckHealth exit (its ``$.active.bake``), or a FollowDeployment or EnsureStack exit that ran
    gates on an ECS service deployment (its follow's ``bake``, phase ``follow``, check = the lifecycle stage)."""
    active = _exit(event, "CheckHealth")
    if active is not None:
        bake = active.get("bake") or {}
        phase, check = active.get("phase", "deploy"), bake.get("checks")
    else:
        follow = _follow(event)
        bake = follow.get("bake") or {}
        if not bake.get("last"):
            return None
        phase, check = "follow", follow.get("stage")
    return {
        "phase": phase,
        "check": check,
        "status": bake.get("status"),
        "passes": bake.get("passes"),
        "failures": bake.get("failures"),
        "gates": _gates(bake),
    }


def _traffic(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where the newest followed ECS service deployment was: its lifecycle stage and the share of production
    traffic on the new revision (None: no BLUE_GREEN, CANARY or LINEAR deployment followed)."""
    for event in reversed(events):
        follow = _follow(event)
        if follow.get("stage"):
            return {"stage": follow["stage"], "production_percent": follow.get("production_weight", 0.0)}
    return None


def _outcome(status: str, end_state: str | None, output: dict[str, Any] | None) -> str:
    """The summary's outcome (DEPLOYED, VERIFIED, REFRESHED, SKIPPED, PLANNED, IGNORED, DISPATCHED) of an
    execution that SUCCEEDED; else its status."""
    if status == "SUCCEEDED" and isinstance((output or {}).get("outcome"), str):
        return str((output or {})["outcome"])
    return PLANNED.upper() if end_state == PLANNED else status


def summarize(arn: str) -> dict[str, Any]:
    """Status, the state it is in (or ended in), elapsed time, path, gate rounds, and how it ended."""
    desc = client("stepfunctions").describe_execution(executionArn=arn)
    events = history(arn)
    path = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    rounds = [r for r in (_gate_round(e) for e in events) if r is not None]
    stop = desc.get("stopDate")
    end = stop or (events[-1]["timestamp"] if events else desc["startDate"])
    output = json.loads(desc["output"]) if desc.get("output") else None
    status = str(desc["status"])
    end_state = path[-1] if path and status in TERMINAL else None
    output = output if isinstance(output, dict) else None
    return {
        "deployment": desc["name"],
        "execution": arn,
        "status": status,
        "state": path[-1] if path else None,
        "end_state": end_state,
        "outcome": _outcome(status, end_state, output) if status in TERMINAL else "RUNNING",
        "verified": status == "SUCCEEDED" and end_state == DEPLOYED,
        "error": desc.get("error") or (output or {}).get("reason") or None,
        "cause": desc.get("cause") or (output or {}).get("detail"),
        "summary": output if status == "SUCCEEDED" else None,
        "started": _iso(desc["startDate"]),
        "stopped": _iso(stop),
        "elapsed_seconds": round((end - desc["startDate"]).total_seconds(), 1),
        "transitions": len(path),
        "path": path,
        "gate_rounds": rounds,
        "traffic": _traffic(events),
        "input": json.loads(desc.get("input") or "null"),
    }


def follow(arn: str, on_update: Callable[[dict[str, Any]], None], timeout: float, poll: float = 0.5) -> dict[str, Any]:
    """Poll the execution until it ends (or ``timeout`` seconds of wall time), reporting each new view."""
    deadline = time.monotonic() + timeout
    while True:
        view = summarize(arn)
        on_update(view)
        if view["status"] in TERMINAL or time.monotonic() > deadline:
            return view
        time.sleep(poll)
