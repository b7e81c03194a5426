"""Elastic Load Balancing v2: the service's target group and its target health."""

from __future__ import annotations

from typing import Any

from .clients import client


def target_group_exists(target_group_arn: str) -> bool:
    elbv2 = client("elbv2")
    try:
        elbv2.describe_target_groups(TargetGroupArns=[target_group_arn])
    except elbv2.exceptions.TargetGroupNotFoundException:
        return False
    return True


def target_states(target_group_arn: str) -> list[tuple[str, str]]:
    out = client("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
    return [
        (f"{d['Target']['Id']}:{d['Target'].get('Port', '')}", d["TargetHealth"]["State"])
        for d in out.get("TargetHealthDescriptions", [])
    ]


def forward_weights(rule_arn: str) -> dict[str, int]:
    """Target group ARN -> weight of the listener rule's forward action."""
    (rule,) = client("elbv2").describe_rules(RuleArns=[rule_arn])["Rules"]
    forward: dict[str, Any] = next((a for a in rule.get("Actions", []) if a.get("Type") == "forward"), {})
    groups = (forward.get("ForwardConfig") or {}).get("TargetGroups", [])
    return {g["TargetGroupArn"]: int(g.get("Weight", 0)) for g in groups}


def load_balancer_of(target_group_arn: str) -> str | None:
    (group,) = client("elbv2").describe_target_groups(TargetGroupArns=[target_group_arn])["TargetGroups"]
    return next(iter(group.get("LoadBalancerArns") or []), None)
