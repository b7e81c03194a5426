"""Contract: statemachine/deploy.asl.json <-> template.yaml <-> stepdeploy.errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from stepdeploy.errors import ERROR_NAMES
from stepdeploy_local import template

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachine" / "deploy.asl.json"
LAMBDA_TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
}
BOUNDED_TASKS = {
    "CheckRollout",
    "FollowDeployment",
    "CheckHealth",
    "Guard",
    "EnsureStack",
    "RollbackStack",
}  # raise past a deadline, max_checks, queue timeout


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads(ASL_PATH.read_text())


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return template.load()


def _next_states(state: dict[str, Any]) -> set[str]:
    out = {state["Next"]} if "Next" in state else set()
    out |= {c["Next"] for c in state.get("Choices", [])}
    if "Default" in state:
        out.add(state["Default"])
    out |= {c["Next"] for c in state.get("Catch", [])}
    return out


def _substituted() -> str:
    return re.sub(r"\$\{(\w+)\}", r"arn:aws:lambda:us-east-1:123456789012:function:\1", ASL_PATH.read_text())


def test_definition_parses_with_the_step_functions_interpreter(asl: dict[str, Any]) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    program, _ = AmazonStateLanguageParser.parse(_substituted())
    assert program is not None
    with pytest.raises(Exception, match="No Resource"):  # the parser really validates
        AmazonStateLanguageParser.parse(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Task", "End": True}}}))


def test_definition_passes_cfn_lint_state_machine_schema(asl: dict[str, Any], tmp_path: Path) -> None:
    """cfn-lint does not look behind DefinitionUri, so lint the definition inlined in a template."""
    from cfnlint.api import lint_all

    subs = re.findall(r"\$\{(\w+)\}", ASL_PATH.read_text())
    doc = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "states.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                },
            },
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Definition": asl,
                    "DefinitionSubstitutions": {s: f"arn:aws:lambda:us-east-1:123456789012:function:{s}" for s in subs},
                },
            },
        },
    }
    matches = lint_all(json.dumps(doc))
    assert [str(m) for m in matches if m.rule.id[0] in "EW"] == []


def test_every_state_is_reachable_and_every_target_exists(asl: dict[str, Any]) -> None:
    states = asl["States"]
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        assert name in states, f"transition to unknown state {name}"
        seen.add(name)
        todo.extend(_next_states(states[name]))
    assert seen == set(states), f"unreachable: {set(states) - seen}"


def test_error_vocabulary_matches_the_code(asl: dict[str, Any]) -> None:
    named: set[str] = set()
    for state in asl["States"].values():
        for rule in state.get("Retry", []) + state.get("Catch", []):
            named |= set(rule["ErrorEquals"])
        if state["Type"] == "Fail" and "Error" in state:
            named.add(state["Error"])
    ours = {n for n in named if not n.startswith(("States.", "Lambda.", "ECS.", "AmazonECS."))}  # service errors
    assert ours == set(ERROR_NAMES)


def test_every_task_retries_transient_lambda_errors_and_catches_everything(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] != "Task":
            continue
        retried = set().union(*(set(r["ErrorEquals"]) for r in state.get("Retry", [])))
        if state["Resource"].startswith("arn:aws:states:::ecs:"):  # a service integration: its own errors
            assert {"ECS.AmazonECSException"} <= retried, name
            if state["Resource"].endswith(".sync"):  # RunTask placement failures (Failures non-empty)
                assert "AmazonECS.Unknown" in retried, name
        else:
            assert retried >= LAMBDA_TRANSIENT, name
        for r in state["Retry"]:
            assert r["MaxAttempts"] <= 6 and r["BackoffRate"] >= 2, name
        assert state["Catch"] and state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name
        # an approval waits as long as its request says (TimeoutSecondsPath, bounded by the input's range)
        assert state.get("TimeoutSeconds") or state.get("TimeoutSecondsPath"), f"{name} has no TimeoutSeconds"


def test_no_unbounded_loop(asl: dict[str, Any]) -> None:
    """Removing the bounded tasks must leave the state graph acyclic, so every loop passes a bound."""
    graph = {n: _next_states(s) - BOUNDED_TASKS for n, s in asl["States"].items() if n not in BOUNDED_TASKS}
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> None:
        assert node not in visiting, f"cycle through {node} without a bounded task"
        if node in done:
            return
        visiting.add(node)
        for nxt in graph.get(node, ()):
            visit(nxt)
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node)
    assert asl["TimeoutSeconds"] <= 48 * 3600  # a day for the deployment, a day for a person's approval


def test_substitutions_match_the_template_functions(asl: dict[str, Any], tpl: dict[str, Any]) -> None:
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL_PATH.read_text()))
    [machine] = [r for r in tpl["Resources"].values() if r["Type"] == "AWS::Serverless::StateMachine"]
    subs = machine["Properties"]["DefinitionSubstitutions"]
    assert set(subs) == placeholders
    functions = {f.logical_id for f in template.functions(tpl)}
    for key, value in subs.items():
        assert value == {"Fn::GetAtt": [key.removesuffix("Arn"), "Arn"]}
        assert key.removesuffix("Arn") in functions
    invoked = {
        p["LambdaInvokePolicy"]["FunctionName"]["Ref"]
        for p in machine["Properties"]["Policies"]
        if "LambdaInvokePolicy" in p
    }
    used = {key.removesuffix("Arn") for key in subs}
    assert invoked == used, "the state machine may invoke exactly the functions its definition uses"


def test_one_function_directory_per_template_function(tpl: dict[str, Any]) -> None:
    declared = {f.code_dir for f in template.functions(tpl)}
    on_disk = {p.parent.resolve() for p in (ROOT / "functions").glob("*/app.py")}
    assert declared == on_disk
    for f in template.functions(tpl):
        assert f.handler == "app.lambda_handler" and f.runtime == "python3.11"
