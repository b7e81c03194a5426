"""The steps of the deploy workflow: one function per state-machine task.

Each step parses its input, gathers observations through the adapters, asks the pure decisions
what to do, acts, and returns a JSON-ready dict that the state machine stores in its state.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from . import decisions, observability
from .adapters import cloudwatch, ecr, ecs, elbv2, http_probe, records
from .errors import InvalidDeploymentRequest
from .models import BakeState, DeploymentRequest, HealthPolicy, RolloutPolicy, RolloutState
from .settings import Settings

OUTCOMES = ("SUCCEEDED", "ROLLED_BACK", "FAILED", "ROLLBACK_FAILED")


def validate_request(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Validate the input and check, read-only, that the service, container and image exist."""
    request = DeploymentRequest.from_input(event.get("input"), settings.defaults)
    image = ecr.resolve_image(request.image)
    view = ecs.describe_service(request.service.cluster, request.service.service)
    if view.status != "ACTIVE":
        raise InvalidDeploymentRequest(f"$.service: service {view.service} is {view.status}")
    task_definition, _ = ecs.describe_task_definition(view.task_definition)
    container = decisions.choose_container(task_definition, request.service.container)
    return {
        "deployment_id": event["deployment_id"],
        "started_at": event.get("started_at"),
        "request": request.to_dict(),
        "image": asdict(image),
        "current": {
            "task_definition": view.task_definition,
            "container": container,
            "image": decisions.container_image(task_definition, container),
        },
    }


def register_revision(event: dict[str, Any]) -> dict[str, Any]:
    """Register the current revision again with the container pinned to the new image digest."""
    current = event["current"]
    task_definition, tags = ecs.describe_task_definition(current["task_definition"])
    spec = decisions.next_task_definition(task_definition, current["container"], event["image"]["uri"], tags)
    new_arn = ecs.register_task_definition(spec)
    return {
        "previous": current["task_definition"],
        "new": new_arn,
        "container": current["container"],
        "image": event["image"]["uri"],
    }


def update_service(event: dict[str, Any]) -> dict[str, Any]:
    """Point the service at ``task_definition`` (deploy or rollback); start the rollout poll."""
    cluster, service, target = event["cluster"], event["service"], event["task_definition"]
    view = ecs.describe_service(cluster, service)
    primary = view.primary
    if (
        primary is not None
        and primary.task_definition == target
        and primary.rollout_state == "COMPLETED"
        and len(view.deployments) == 1
    ):
        changed = False  # already there (a rollback before the update took effect): nothing to do
    else:
        ecs.update_service(cluster, service, target)
        changed = True
    policy = RolloutPolicy(**event["rollout"])
    return {
        "phase": event["phase"],
        "task_definition": target,
        "changed": changed,
        "rollout": asdict(decisions.first_rollout_state(policy)),
        "bake": None,
    }


def check_rollout(event: dict[str, Any]) -> dict[str, Any]:
    request = DeploymentRequest.from_dict(event["request"])
    active = event["active"]
    view = ecs.describe_service(request.service.cluster, request.service.service)
    state = decisions.assess_rollout(
        view, active["task_definition"], RolloutState.from_dict(active["rollout"]), request.rollout
    )
    return asdict(state)


def gate_round(request: DeploymentRequest, revision: str) -> list[decisions.GateResult]:
    """Observe every configured gate once."""
    policy: HealthPolicy = request.health
    gates = [decisions.probe_gate(http_probe.probe(policy.url, policy.probe_timeout_seconds), policy)]
    if policy.target_group_arn:
        gates.append(decisions.target_gate(elbv2.target_states(policy.target_group_arn)))
    gates.append(
        decisions.primary_gate(ecs.describe_service(request.service.cluster, request.service.service), revision)
    )
    if policy.alarm_names:
        gates.append(decisions.alarm_gate(cloudwatch.alarm_states(policy.alarm_names), policy.alarm_names))
    return gates


def check_health(event: dict[str, Any]) -> dict[str, Any]:
    request = DeploymentRequest.from_dict(event["request"])
    active = event["active"]
    state = decisions.advance_bake(
        BakeState.from_dict(active.get("bake")),
        gate_round(request, active["task_definition"]),
        request.health,
        active["task_definition"],
    )
    return asdict(state)


def record_outcome(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Write the deployment record, notify, and return the error/cause the execution ends with."""
    outcome = event["outcome"]
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    state = event["state"]
    request = state.get("request") or {}
    revision = state.get("revision") or {}
    current = (state.get("current") or {}).get("task_definition")
    failure_name, failure_cause = decisions.describe_failure(state.get("failure"))
    rollback_name, rollback_cause = decisions.describe_failure(state.get("rollback_failure"))
    if outcome == "SUCCEEDED":
        error, cause = None, None
    elif outcome == "ROLLBACK_FAILED":
        error = "RollbackFailed"
        cause = (
            f"deployment failed ({failure_name}: {failure_cause}); rollback to "
            f"{decisions.short_revision(revision.get('previous', ''))} then failed "
            f"({rollback_name}: {rollback_cause}). The service needs attention."
        )
    elif outcome == "ROLLED_BACK":
        error = failure_name
        cause = (
            f"{failure_cause} -- rolled back to {decisions.short_revision(revision.get('previous', ''))}, "
            "which passed its health gates"
        )
    else:
        error, cause = failure_name, f"{failure_cause} -- the service was not changed"
    active = state.get("active") or {}
    service = request.get("service", {})
    record = {
        "service": f"{service.get('cluster')}/{service.get('service')}",
        "deployment_id": state["deployment_id"],
        "trigger": request.get("trigger"),
        "image_repository": (state.get("image") or {}).get("repository"),
        "image_digest": (state.get("image") or {}).get("digest"),
        "image_tag": (state.get("image") or {}).get("tag"),
        "image_uri": (state.get("image") or {}).get("uri"),
        "previous_task_definition": revision.get("previous") or current,
        "new_task_definition": revision.get("new"),
        "running_task_definition": active.get("task_definition") if outcome != "FAILED" else current,
        "outcome": outcome,
        "error": error,
        "cause": cause,
        "gate_results": (active.get("bake") or {}).get("last"),
        "rollout": active.get("rollout"),
        "started_at": state.get("started_at"),
        "ended_at": event.get("ended_at"),
    }
    records.put_record(settings.deployments_table, record)
    severity = {"SUCCEEDED": "INFO", "ROLLED_BACK": "WARNING", "FAILED": "WARNING", "ROLLBACK_FAILED": "CRITICAL"}[
        outcome
    ]
    subject = f"stepdeploy {outcome}: {record['service']} {record['image_tag'] or record['image_digest'] or ''}"
    if outcome == "ROLLBACK_FAILED":
        subject = "ALERT " + subject
    records.publish(settings.notification_topic_arn, subject, record, severity)
    observability.count("DeploymentOutcome", outcome=outcome)
    return {"outcome": outcome, "error": error, "cause": cause}
