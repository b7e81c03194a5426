"""Contract: nothing asynchronous is lost silently. Every EventBridge rule target has a RetryPolicy and a
dead-letter queue; every function invoked asynchronously has an on-failure destination; every SNS
subscription has a redrive policy; every queue is encrypted; every queue that receives dead letters has an
alarm on its visible messages that notifies the notification topic. And every scanner waiver has a reason
(tools/waivers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfn_policies import Template, load_all

ROOT = Path(__file__).resolve().parents[2]
ASYNC_PRINCIPALS = {"events.amazonaws.com", "sns.amazonaws.com", "s3.amazonaws.com", "iot.amazonaws.com"}
# CodePipeline invokes its Lambda action asynchronously; the pipeline's role grants it (no Lambda permission)
INVOKED_BY_CODEPIPELINE = {"template.yaml": {"PipelineJobFunction"}}


def _logical(node: Any) -> str | None:
    if isinstance(node, dict) and "Ref" in node:
        return str(node["Ref"])
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        target = node["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def async_functions(tpl: Template) -> set[str]:
    found = set(INVOKED_BY_CODEPIPELINE.get(tpl.name, set()))
    for res in tpl.resources.values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Lambda::Permission" and props.get("Principal") in ASYNC_PRINCIPALS:
            found.add(str(_logical(props["FunctionName"])))
    return found


def dead_letter_queues(tpl: Template) -> dict[str, str]:
    """Queue logical id -> where it is named as a dead-letter destination."""
    found: dict[str, str] = {}
    for logical, res in tpl.resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Events::Rule":
            for target in props.get("Targets", []):
                found[str(_logical(target.get("DeadLetterConfig", {}).get("Arn")))] = f"{logical} target"
        elif res["Type"] == "AWS::Lambda::EventInvokeConfig":
            on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            found[str(_logical(on_failure))] = f"{logical} on-failure"
        elif res["Type"] == "AWS::SNS::Subscription" and "RedrivePolicy" in props:
            found[str(_logical(props["RedrivePolicy"]["deadLetterTargetArn"]))] = f"{logical} redrive"
    return {q: where for q, where in found.items() if q in tpl.resources}


def problems(tpl: Template) -> list[str]:
    found = []
    r = tpl.resources
    for logical, res in r.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Events::Rule":
            for target in props.get("Targets", []):
                if "RetryPolicy" not in target or "Arn" not in target.get("DeadLetterConfig", {}):
                    found.append(f"{tpl.name} {logical}: target {target.get('Id')} lacks a RetryPolicy or a DLQ")
        if res["Type"] == "AWS::SNS::Subscription" and "RedrivePolicy" not in props:
            found.append(f"{tpl.name} {logical}: subscription without a RedrivePolicy")
        if res["Type"] == "AWS::SQS::Queue" and not (props.get("KmsMasterKeyId") or props.get("SqsManagedSseEnabled")):
            found.append(f"{tpl.name} {logical}: queue not encrypted")
    configs = {
        _logical(res["Properties"]["FunctionName"]): res["Properties"]
        for res in r.values()
        if res["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    for fn in sorted(async_functions(tpl)):
        destination = configs.get(fn, {}).get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if _logical(destination) not in r:
            found.append(f"{tpl.name} {fn}: invoked asynchronously without an on-failure destination")
    topic = "NotificationTopic"
    for queue, where in dead_letter_queues(tpl).items():
        alarms = [
            res
            for res in r.values()
            if res["Type"] == "AWS::CloudWatch::Alarm"
            and res["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and [_logical(d["Value"]) for d in res["Properties"].get("Dimensions", [])] == [queue]
            and res["Properties"].get("ComparisonOperator") == "GreaterThanOrEqualToThreshold"
            and float(res["Properties"].get("Threshold", 99)) <= 1
            and topic in [_logical(a) for a in res["Properties"].get("AlarmActions", [])]
            and res.get("Condition") == r[queue].get("Condition")
        ]
        if not alarms:
            found.append(f"{tpl.name} {queue} ({where}): no alarm on its first message that notifies {topic}")
    return found


@pytest.fixture(scope="module")
def templates() -> list[Template]:
    return load_all()


def test_every_asynchronous_path_has_retries_a_dead_letter_queue_and_an_alarm(templates: list[Template]) -> None:
    [main] = [t for t in templates if t.name == "template.yaml"]
    assert async_functions(main) >= {"ReleaseLockFunction", "PipelineJobFunction"}
    assert set(dead_letter_queues(main)) == {
        "EcrPushDeadLetterQueue",
        "ExecutionEndedDeadLetterQueue",
        "PipelineJobDeadLetterQueue",
        "AlertDeadLetterQueue",
    }
    assert [p for t in templates for p in problems(t)] == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r["ReleaseLockFunctionExecutionEnded"]["Properties"]["Targets"][0].pop("DeadLetterConfig"), "DLQ"),
        (lambda r: r.pop("ReleaseLockFunctionEventInvokeConfig"), "ReleaseLockFunction: invoked asynchronously"),
        (lambda r: r["AlertSubscription"]["Properties"].pop("RedrivePolicy"), "without a RedrivePolicy"),
        (lambda r: r["PipelineJobDeadLetterQueue"]["Properties"].pop("KmsMasterKeyId"), "not encrypted"),
        (lambda r: r.pop("EcrPushDeadLetterAlarm"), "EcrPushDeadLetterQueue ("),
    ],
)
def test_the_check_refuses(templates: list[Template], change: Any, problem: str) -> None:
    import copy

    [main] = [t for t in templates if t.name == "template.yaml"]
    broken = Template(main.name, copy.deepcopy(main.doc))
    change(broken.resources)
    assert any(problem in p for p in problems(broken)), problems(broken)


def test_the_waiver_table_lists_every_waiver_with_its_reason() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "waivers.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| template.yaml |")]
    assert "| template.yaml | ReleaseLockFunction | checkov CKV_AWS_116 |" in out.stdout
    assert any("| cfn-lint ES6000 |" in row for row in rows)
    assert all(len(row.split("|")[4].strip()) >= 40 for row in rows)


def test_the_waiver_check_refuses_a_waiver_without_a_reason(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    import waivers

    tpl = {
        "Resources": {
            "Q": {
                "Type": "AWS::SQS::Queue",
                "Metadata": {
                    "checkov": {"skip": [{"id": "CKV_AWS_27"}]},
                    "cfn-lint": {"config": {"ignore_checks": ["ES6000"]}},
                },
            }
        },
        "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": "x" * 50}]}},
    }
    found = waivers.problems("t.yaml", tpl)
    assert any("Q: checkov CKV_AWS_27 is waived without a reason" in p for p in found)
    assert any("Q: cfn-lint ES6000 is waived without a reason" in p for p in found)
    assert any("template-level waivers" in p for p in found)
