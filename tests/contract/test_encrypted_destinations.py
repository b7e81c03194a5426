"""Contract: notifications that AWS services send arrive. Every SNS topic or SQS queue that a CloudWatch alarm
(AlarmActions, OKActions, InsufficientDataActions) or an EventBridge rule (target, DeadLetterConfig) sends to is
encrypted with a customer managed key of the same template (rotation on) whose key policy lets the sending
service use it (kms:Decrypt + kms:GenerateDataKey*, with aws:SourceAccount / aws:SourceArn conditions that the
sender's ARN satisfies) and is administered by the account root; and the topic or queue policy allows the
send. AWS managed keys (alias/aws/sns, alias/aws/sqs) cannot be used: their key policies cannot be edited.
Docs: https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html ("Enable compatibility between event
sources from AWS services and encrypted topics"),
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html and
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import pytest
from cfn_policies import ACCOUNT, Template, _arn_of, load_all

SEND = {"AWS::SNS::Topic": "sns:Publish", "AWS::SQS::Queue": "sqs:SendMessage"}
POLICY = {
    "AWS::SNS::Topic": ("AWS::SNS::TopicPolicy", "Topics"),
    "AWS::SQS::Queue": ("AWS::SQS::QueuePolicy", "Queues"),
}


@dataclass(frozen=True)
class Delivery:
    where: str
    service: str  # the sending service principal
    source_arn: str  # the sender's ARN (an alarm or a rule)
    destination: str  # logical id of the topic or queue


def _logical(tpl: Template, node: Any) -> str | None:
    """The logical id of a template resource a Ref / GetAtt points at (None: outside the template)."""
    if isinstance(node, dict) and "Ref" in node and node["Ref"] in tpl.resources:
        return str(node["Ref"])
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        target = node["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def deliveries(tpl: Template) -> list[Delivery]:
    found = []
    for logical, res in tpl.resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::CloudWatch::Alarm":
            source = _arn_of(logical, res["Type"])
            for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                for action in props.get(key, []):
                    found.append(Delivery(f"{tpl.name}/{logical}/{key}", "cloudwatch.amazonaws.com", source, action))
        elif res["Type"] == "AWS::Events::Rule":
            source = _arn_of(logical, res["Type"])
            for target in props.get("Targets", []):
                found.append(Delivery(f"{tpl.name}/{logical}/target", "events.amazonaws.com", source, target["Arn"]))
                if "DeadLetterConfig" in target:
                    dlq = target["DeadLetterConfig"]["Arn"]
                    found.append(Delivery(f"{tpl.name}/{logical}/dead-letter", "events.amazonaws.com", source, dlq))
    return [
        Delivery(d.where, d.service, d.source_arn, dest)
        for d in found
        if (dest := _logical(tpl, d.destination)) and tpl.resources[dest]["Type"] in SEND
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allows(tpl: Template, st: dict[str, Any], service: str, actions: list[str], source_arn: str) -> bool:
    """An Allow statement for this service principal, covering the actions, whose conditions the sender meets."""
    if st.get("Effect") != "Allow" or service not in _list(st.get("Principal", {}).get("Service", [])):
        return False
    granted = [a.lower() for a in _list(st["Action"])]
    if not all(any(fnmatch.fnmatchcase(a.lower(), g) for g in granted) for a in actions):
        return False
    condition = st.get("Condition", {})
    source_keys = set()
    for operator, checks in condition.items():
        for key, expected in checks.items():
            values = [v for e in _list(expected) for v in tpl.values(e)]
            actual = {"aws:sourceaccount": ACCOUNT, "aws:sourcearn": source_arn}.get(key.lower())
            if actual is None:
                continue
            source_keys.add(key.lower())
            match = fnmatch.fnmatchcase if operator in ("ArnLike", "StringLike") else str.__eq__
            if not any(match(actual, v) for v in values):
                return False
    return bool(source_keys)  # a confused-deputy guard is required


def problems(tpl: Template, delivery: Delivery) -> list[str]:
    dest = tpl.resources[delivery.destination]
    found: list[str] = []
    key_ref = dest.get("Properties", {}).get("KmsMasterKeyId")
    key_id = _logical(tpl, key_ref)
    if key_id is None or tpl.resources[key_id]["Type"] != "AWS::KMS::Key":
        found.append(
            f"{delivery.where}: {delivery.destination} is not encrypted with a customer managed key of the "
            f"template (KmsMasterKeyId {key_ref!r}): {delivery.service} cannot use an AWS managed key"
        )
    else:
        key = tpl.resources[key_id]["Properties"]
        statements = _list(key["KeyPolicy"]["Statement"])
        if key.get("EnableKeyRotation") is not True:
            found.append(f"{delivery.where}: key {key_id} has no automatic rotation")
        root = f"arn:aws:iam::{ACCOUNT}:root"
        if not any(
            st.get("Effect") == "Allow"
            and root in [v for p in _list(st.get("Principal", {}).get("AWS", [])) for v in tpl.values(p)]
            and "kms:*" in _list(st["Action"])
            for st in statements
        ):
            found.append(f"{delivery.where}: key {key_id} is not administered by the account root")
        kms_actions = ["kms:Decrypt", "kms:GenerateDataKey"]
        if not any(_allows(tpl, st, delivery.service, kms_actions, delivery.source_arn) for st in statements):
            found.append(
                f"{delivery.where}: key {key_id} does not let {delivery.service} (from "
                f"{delivery.source_arn}, with a source condition) use kms:Decrypt and kms:GenerateDataKey*"
            )
    policy_type, attribute = POLICY[dest["Type"]]
    policies = [
        r["Properties"]["PolicyDocument"]
        for r in tpl.resources.values()
        if r["Type"] == policy_type and delivery.destination in [_logical(tpl, t) for t in r["Properties"][attribute]]
    ]
    send = SEND[dest["Type"]]
    if not any(
        _allows(tpl, st, delivery.service, [send], delivery.source_arn)
        for doc in policies
        for st in _list(doc["Statement"])
    ):
        found.append(f"{delivery.where}: no {policy_type} lets {delivery.service} {send} to {delivery.destination}")
    return found


@pytest.fixture(scope="module")
def templates() -> list[Template]:
    return load_all()


def test_every_alarm_and_rule_destination_can_receive(templates: list[Template]) -> None:
    all_deliveries = [(tpl, d) for tpl in templates for d in deliveries(tpl)]
    kinds = {(d.service, tpl.resources[d.destination]["Type"]) for tpl, d in all_deliveries}
    assert ("cloudwatch.amazonaws.com", "AWS::SNS::Topic") in kinds, "the failed-deployments alarm was found"
    assert ("events.amazonaws.com", "AWS::SQS::Queue") in kinds, "the ECR push dead-letter queue was found"
    assert [p for tpl, d in all_deliveries for p in problems(tpl, d)] == []


def _topic_template(key_policy_statements: list[dict[str, Any]], kms_key: Any, rotation: bool = True) -> Template:
    alarm_arn = {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"}
    publish = {
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": {"Ref": "Topic"},
        "Condition": {"ArnLike": {"aws:SourceArn": alarm_arn}},
    }
    return Template(
        "t",
        {
            "Resources": {
                "Key": {
                    "Type": "AWS::KMS::Key",
                    "Properties": {"EnableKeyRotation": rotation, "KeyPolicy": {"Statement": key_policy_statements}},
                },
                "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": kms_key}},
                "TopicPolicy": {
                    "Type": "AWS::SNS::TopicPolicy",
                    "Properties": {"Topics": [{"Ref": "Topic"}], "PolicyDocument": {"Statement": [publish]}},
                },
                "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmActions": [{"Ref": "Topic"}]}},
            }
        },
    )


ROOT = {
    "Effect": "Allow",
    "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
    "Action": "kms:*",
    "Resource": "*",
}


def _cloudwatch(condition: dict[str, Any] | None, actions: list[str]) -> dict[str, Any]:
    st = {"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": actions, "Resource": "*"}
    return {**st, "Condition": condition} if condition is not None else st


GOOD = _cloudwatch(
    {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}, ["kms:Decrypt", "kms:GenerateDataKey*"]
)


@pytest.mark.parametrize(
    ("tpl", "problem"),
    [
        (_topic_template([ROOT, GOOD], "alias/aws/sns"), "not encrypted with a customer managed key"),
        (_topic_template([ROOT, GOOD], {"Ref": "Key"}, rotation=False), "no automatic rotation"),
        (_topic_template([GOOD], {"Ref": "Key"}), "not administered by the account root"),
        (
            _topic_template([ROOT, _cloudwatch(None, ["kms:Decrypt", "kms:GenerateDataKey*"])], {"Ref": "Key"}),
            "use kms",
        ),
        (
            _topic_template(
                [
                    ROOT,
                    _cloudwatch(
                        {"StringEquals": {"aws:SourceAccount": "999999999999"}}, ["kms:Decrypt", "kms:GenerateDataKey*"]
                    ),
                ],
                {"Ref": "Key"},
            ),
            "use kms",
        ),
        (
            _topic_template(
                [
                    ROOT,
                    _cloudwatch({"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}, ["kms:Decrypt"]),
                ],
                {"Ref": "Key"},
            ),
            "use kms",
        ),
    ],
)
def test_the_check_refuses(tpl: Template, problem: str) -> None:
    [delivery] = deliveries(tpl)
    found = problems(tpl, delivery)
    assert any(problem in p for p in found), found


def test_the_check_accepts_a_usable_key_and_topic_policy() -> None:
    tpl = _topic_template([ROOT, GOOD], {"Ref": "Key"})
    [delivery] = deliveries(tpl)
    assert problems(tpl, delivery) == []


def test_the_check_refuses_a_topic_without_a_policy_for_the_sender() -> None:
    tpl = _topic_template([ROOT, GOOD], {"Ref": "Key"})
    del tpl.resources["TopicPolicy"]
    [delivery] = deliveries(tpl)
    assert any("no AWS::SNS::TopicPolicy" in p for p in problems(tpl, delivery))
