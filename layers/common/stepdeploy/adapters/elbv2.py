"""Elastic Load Balancing v2: the service's target group and its target health."""

from __future__ import annotations

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
