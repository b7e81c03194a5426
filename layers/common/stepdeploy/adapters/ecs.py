"""Amazon ECS: service state, task definitions, service updates."""

from __future__ import annotations

from typing import Any

from ..decisions import DeploymentView, HookView, ServiceDeploymentView, ServiceView
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
    balancers = raw.get("loadBalancers", [])
    configuration = raw.get("deploymentConfiguration", {})
    return ServiceView(
        cluster=cluster,
        service=raw.get("serviceName", service),
        status=raw.get("status", ""),
        task_definition=raw.get("taskDefinition", ""),
        deployments=deployments,
        target_groups=tuple(lb["targetGroupArn"] for lb in balancers if lb.get("targetGroupArn")),
        strategy=configuration.get("strategy", "ROLLING"),
        advanced=next((lb["advancedConfiguration"] for lb in balancers if lb.get("advancedConfiguration")), {}),
        deployment_configuration=configuration,
        current_service_deployment=raw.get("currentServiceDeployment"),
    )


def describe_task_definition(arn: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    out = client("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return out["taskDefinition"], list(out.get("tags", []))


def register_task_definition(spec: dict[str, Any]) -> str:
    out = client("ecs").register_task_definition(**spec)
    return str(out["taskDefinition"]["taskDefinitionArn"])


def update_service(
    cluster: str, service: str, task_definition: str, deployment_configuration: dict[str, Any] | None = None
) -> str | None:
    """UpdateService to ``task_definition`` (with a deployment configuration when one is given).
    Returns the service deployment it started (None if ECS reports none)."""
    extra = {} if deployment_configuration is None else {"deploymentConfiguration": deployment_configuration}
    out = client("ecs").update_service(cluster=cluster, service=service, taskDefinition=task_definition, **extra)
    arn = out["service"].get("currentServiceDeployment")
    return str(arn) if arn else None


def service_deployment(arn: str) -> ServiceDeploymentView:
    """DescribeServiceDeployments for one deployment (status, stage, the hook awaiting action, weights)."""
    ecs = client("ecs")
    out = ecs.describe_service_deployments(serviceDeploymentArns=[arn])
    found = out.get("serviceDeployments", [])
    if not found:
        reasons = "; ".join(f.get("reason", "") for f in out.get("failures", []))
        raise RolloutFailed(f"service deployment {arn} not found ({reasons or 'no detail'})")
    raw = found[0]
    target = raw.get("targetServiceRevision") or {}
    hook = next((h for h in raw.get("lifecycleHookDetails", []) if h.get("status") == "AWAITING_ACTION"), None)
    return ServiceDeploymentView(
        arn=arn,
        status=raw.get("status", ""),
        reason=raw.get("statusReason", ""),
        stage=raw.get("lifecycleStage", ""),
        target_revision=target.get("arn", ""),
        production_weight=float(target.get("requestedProductionTrafficWeight") or 0.0),
        test_weight=float(target.get("requestedTestTrafficWeight") or 0.0),
        hook=None if hook is None else HookView(id=hook["hookId"], status=hook["status"]),
        timed_out=any(h.get("status") == "TIMED_OUT" for h in raw.get("lifecycleHookDetails", [])),
        triggered_alarms=tuple((raw.get("alarms") or {}).get("triggeredAlarmNames") or ()),
    )


def answer_hook(arn: str, hook_id: str, action: str) -> None:
    """ContinueServiceDeployment: CONTINUE or ROLLBACK a deployment paused at a PAUSE hook."""
    client("ecs").continue_service_deployment(serviceDeploymentArn=arn, hookId=hook_id, action=action)


def roll_back_deployment(arn: str) -> None:
    """StopServiceDeployment(ROLLBACK): traffic returns to the source revision, which is still running."""
    client("ecs").stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")


def list_revisions(task_definition_arn: str) -> list[str]:
    """Active revisions of the task definition's family (newest first, at most 100)."""
    family = task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
    out = client("ecs").list_task_definitions(familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=100)
    return [arn for arn in out.get("taskDefinitionArns", []) if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]


def force_new_deployment(cluster: str, service: str, task_definition: str) -> tuple[str, str | None]:
    """UpdateService with forceNewDeployment: new tasks of the same revision (nothing is registered).
    Returns the id of the PRIMARY deployment it started, and the service deployment (None if ECS reports none;
    for a BLUE_GREEN, CANARY or LINEAR service it walks the lifecycle stages and pauses at its hooks)."""
    out = client("ecs").update_service(
        cluster=cluster, service=service, taskDefinition=task_definition, forceNewDeployment=True
    )
    primary = next((d for d in out["service"].get("deployments", []) if d.get("status") == "PRIMARY"), None)
    if primary is None or primary.get("taskDefinition") != task_definition:
        raise RolloutFailed(f"UpdateService (forceNewDeployment) on {service} started no deployment of the revision")
    arn = out["service"].get("currentServiceDeployment")
    return str(primary["id"]), str(arn) if arn else None
