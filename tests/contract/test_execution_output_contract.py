"""The short output of an execution that ends SUCCEEDED is built in two places: RecordOutcome
(workflow.execution_summary) and, where that step failed, the Pass states SucceededUnrecorded and
SkippedUnrecorded. Both give the documented keys (workflow.SUMMARY_KEYS); every Succeed state outputs one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stepdeploy import workflow

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "deploy.asl.json"


@pytest.fixture(scope="module")
def states() -> dict[str, Any]:
    return dict(json.loads(ASL.read_text())["States"])


def keys(parameters: dict[str, Any]) -> tuple[str, ...]:
    return tuple(k.removesuffix(".$") for k in parameters)


@pytest.mark.parametrize("unrecorded", ["SucceededUnrecorded", "SkippedUnrecorded"])
def test_an_unrecorded_end_outputs_the_same_summary(states: dict[str, Any], unrecorded: str) -> None:
    summary = states[unrecorded]["Parameters"]["summary"]
    assert keys(summary) == workflow.SUMMARY_KEYS
    assert keys(summary["record"]) == ("service", "deployment_id", "written", "unrecorded")
    summarize = states[states[unrecorded]["Next"]]
    assert summarize["Type"] == "Pass" and summarize["OutputPath"] == "$.result.summary"


def test_every_succeed_state_outputs_a_summary_with_an_outcome(states: dict[str, Any]) -> None:
    succeed = {name for name, s in states.items() if s["Type"] == "Succeed"}
    assert succeed == {"Deployed", "Skipped", "Planned", "Ignored", "Dispatched"}
    for name in succeed:
        before = [s for s in states.values() if s.get("Next") == name]
        assert before, name
        for state in before:
            if state.get("OutputPath") == "$.result.summary":
                continue  # RecordSucceeded/RecordSkipped (execution_summary) or Summarize* (the *Unrecorded summary)
            assert state["Type"] == "Pass" and {"outcome", "record"} <= set(keys(state["Parameters"])), name


def test_the_summary_of_a_skip_names_what_runs_and_why() -> None:
    state = {
        "deployment_id": "d2",
        "intent": {"service_key": "c/s", "target": "team/web", "mode": "deploy"},
        "image": {"repository": "web", "digest": "sha256:aa", "uri": "r/web@sha256:aa", "tag": "v2"},
        "guard": {
            "action": "SKIP",
            "reason": "Duplicate",
            "detail": "sha256:aa was already deployed to c/s by d1",
            "running": {"task_definition": "arn:aws:ecs:r:1:task-definition/web:3", "image": "r/web@sha256:bb"},
        },
    }
    out = workflow.execution_summary("SKIPPED", state)
    assert tuple(out) == workflow.SUMMARY_KEYS
    assert (out["outcome"], out["reason"], out["revision"]) == (
        "SKIPPED",
        "Duplicate",
        "arn:aws:ecs:r:1:task-definition/web:3",
    )
    assert out["running_image"] == "r/web@sha256:bb" and out["target"] == "team/web"
