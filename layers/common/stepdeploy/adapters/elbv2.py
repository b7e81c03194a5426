"""Elastic Load Balancing v2: target health of the service's target group."""

from __future__ import annotations

from .clients import client


def target_states(target_group_arn: str) -> list[tuple[str, str]]:
    out = client("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
    return [
        (f"{d['Target']['Id']}:{d['Target'].get('Port', '')}", d["TargetHealth"]["State"])
        for d in out.get("TargetHealthDescriptions", [])
    ]
