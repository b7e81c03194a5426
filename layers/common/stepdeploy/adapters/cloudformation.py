"""AWS CloudFormation: the application stack, its change sets and events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..stack import ChangeSetView, StackView
from .clients import client

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]


def describe_stack(name: str) -> StackView | None:
    """The stack, or None when it does not exist (or was deleted)."""
    cfn = client("cloudformation")
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    if not stacks or stacks[0].get("StackStatus") == "DELETE_COMPLETE":
        return None
    raw = stacks[0]
    return StackView(
        name=name,
        status=raw["StackStatus"],
        reason=raw.get("StackStatusReason", ""),
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in raw.get("Parameters", [])},
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in raw.get("Outputs", [])},
    )


def resource_id(name: str, logical_id: str) -> str | None:
    """The physical id of the stack's resource ``logical_id`` (None before CloudFormation created it)."""
    cfn = client("cloudformation")
    try:
        detail = cfn.describe_stack_resource(StackName=name, LogicalResourceId=logical_id)["StackResourceDetail"]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return detail.get("PhysicalResourceId") or None


def create_change_set(
    stack_name: str,
    change_set_name: str,
    change_set_type: str,
    template_body: str,
    parameters: Mapping[str, str | None],
    role_arn: str,
) -> str:
    """``parameters``: a value, or None for UsePreviousValue. Returns the change set ARN.

    No stack tags: CloudFormation propagates stack tags to every taggable resource, so a tag that
    changed per deployment would update (or replace) them all."""
    params: list[dict[str, Any]] = [
        {"ParameterKey": k, "UsePreviousValue": True} if v is None else {"ParameterKey": k, "ParameterValue": v}
        for k, v in sorted(parameters.items())
    ]
    kwargs: dict[str, Any] = {
        "StackName": stack_name,
        "ChangeSetName": change_set_name,
        "ChangeSetType": change_set_type,
        "TemplateBody": template_body,
        "Parameters": params,
        "Capabilities": CAPABILITIES,
    }
    if role_arn:
        kwargs["RoleARN"] = role_arn
    return str(client("cloudformation").create_change_set(**kwargs)["Id"])


def describe_change_set(arn: str) -> ChangeSetView:
    cfn = client("cloudformation")
    out = cfn.describe_change_set(ChangeSetName=arn)
    changes = list(out.get("Changes", []))
    token = out.get("NextToken")
    while token:
        page = cfn.describe_change_set(ChangeSetName=arn, NextToken=token)
        changes.extend(page.get("Changes", []))
        token = page.get("NextToken")
    return ChangeSetView(
        arn=arn,
        status=out.get("Status", ""),
        execution_status=out.get("ExecutionStatus", ""),
        reason=out.get("StatusReason", ""),
        changes=tuple(changes),
    )


def execute_change_set(arn: str) -> None:
    client("cloudformation").execute_change_set(ChangeSetName=arn)


def cancel_update_stack(name: str) -> bool:
    """Cancel the update in progress (CloudFormation rolls the stack back). False when there was no
    update left to cancel (it finished, or failed, in the meantime)."""
    cfn = client("cloudformation")
    try:
        cfn.cancel_update_stack(StackName=name)
    except cfn.exceptions.ClientError as exc:
        if "CancelUpdateStack cannot be called" in str(exc):
            return False
        raise
    return True


def delete_change_set(arn: str) -> None:
    client("cloudformation").delete_change_set(ChangeSetName=arn)


def delete_stack(name: str, role_arn: str) -> None:
    kwargs: dict[str, Any] = {"StackName": name}
    if role_arn:
        kwargs["RoleARN"] = role_arn
    client("cloudformation").delete_stack(**kwargs)


def recent_events(name: str, limit: int = 200) -> list[dict[str, Any]]:
    """The stack's events, newest first (at most ``limit``)."""
    cfn = client("cloudformation")
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StackName": name}
    while len(events) < limit:
        page = cfn.describe_stack_events(**kwargs)
        events.extend(page.get("StackEvents", []))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return events[:limit]
