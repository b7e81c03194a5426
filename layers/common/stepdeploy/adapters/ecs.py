"""Amazon ECS: service state, task definitions, service updates."""

from __future__ import annotations

from typing import Any

from ..decisions import DeploymentView, ServiceView
from ..errors import InvalidDeploymentRequest, RolloutFailed
from .clients import client


def describe_service(cluster: str, service: str) -> ServiceView:
    ecs = client("ecs")
    try:
        out = ecs.describe_services(cluster=cluster, services=[service])
    except ecs.exceptions.ClusterNotFoundException as exc:
        raise InvalidDeploymentRequest(f"$.service.cluster: cluster {cluster!r} not found") from exc
    services = out.get("services", [])
    if not services:
        reasons = "; ".join(f"{f.get('arn')}: {f.get('reason')}" for f in out.get("failures", []))
        raise InvalidDeploymentRequest(f"$.service: service {service!r} not found in cluster {cluster!r} ({reasons})")
    raw = services[0]
    deployments = tuple(
        DeploymentView(
            id=d.get("id", ""),
            status=d.get("status", ""),
            task_definition=d.get("taskDefinition", ""),
            rollout_state=d.get("rolloutState"),
            rollout_reason=d.get("rolloutStateReason", ""),
            desired=int(d.get("desiredCount", 0)),
            running=int(d.get("runningCount", 0)),
            failed_tasks=int(d.get("failedTasks", 0)),
        )
        for d in raw.get("deployments", [])
    )
    return ServiceView(
        cluster=cluster,
        service=raw.get("serviceName", service),
        status=raw.get("status", ""),
        task_definition=raw.get("taskDefinition", ""),
        deployments=deployments,
        target_groups=tuple(lb["targetGroupArn"] for lb in raw.get("loadBalancers", []) if lb.get("targetGroupArn")),
    )


def describe_task_definition(arn: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    out = client("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return out["taskDefinition"], list(out.get("tags", []))


def register_task_definition(spec: dict[str, Any]) -> str:
    out = client("ecs").register_task_definition(**spec)
    return str(out["taskDefinition"]["taskDefinitionArn"])


def update_service(cluster: str, service: str, task_definition: str) -> str:
    out = client("ecs").update_service(cluster=cluster, service=service, taskDefinition=task_definition)
    return str(out["service"]["taskDefinition"])


def list_revisions(task_definition_arn: str) -> list[str]:
    """Active revisions of the task definition's family (newest first, at most 100)."""
    family = task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
    out = client("ecs").list_task_definitions(familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=100)
    return [arn for arn in out.get("taskDefinitionArns", []) if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]


def force_new_deployment(cluster: str, service: str, task_definition: str) -> str:
    """UpdateService with forceNewDeployment: new tasks of the same revision (nothing is registered).
    Returns the id of the PRIMARY deployment it started."""
    out = client("ecs").update_service(
        cluster=cluster, service=service, taskDefinition=task_definition, forceNewDeployment=True
    )
    primary = next((d for d in out["service"].get("deployments", []) if d.get("status") == "PRIMARY"), None)
    if primary is None or primary.get("taskDefinition") != task_definition:
        raise RolloutFailed(f"UpdateService (forceNewDeployment) on {service} started no deployment of the revision")
    return str(primary["id"])
