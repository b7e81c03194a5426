"""Registry targets and what runs for them now: the registry, control and records tables, ECS and ECR."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepdeploy import triggers
from stepdeploy.adapters import control, records
from stepdeploy.adapters import registry as registry_table
from stepdeploy.errors import InvalidDeploymentRequest
from stepdeploy.models import Defaults, DeploymentRequest
from stepdeploy.registry import RegistryEntry, validate_entry

from . import executions
from .aws import Stepdeploy, client
from .errors import InvalidRegistryEntry, NothingToDo, UnknownTarget


@dataclass(frozen=True)
class Target:
    """A registry entry and the key its records, lock and last verified deployment are kept under."""

    entry: RegistryEntry
    key: str

    @property
    def name(self) -> str:
        return self.entry.name


def _target(item: dict[str, Any]) -> Target:
    try:
        entry = validate_entry(item, Defaults())
        key = entry.build_request({"digest": "sha256:" + "0" * 64}, "manual", None, Defaults()).lock_key
    except InvalidDeploymentRequest as exc:
        raise InvalidRegistryEntry(str(exc)) from exc
    return Target(entry, key)


def target(sd: Stepdeploy, name: str) -> Target:
    item = registry_table.get_entry(sd.registry_table, name)
    if item is None:
        known = ", ".join(sorted(str(i.get("name")) for i in registry_table.all_entries(sd.registry_table)))
        raise UnknownTarget(f"{name!r} is not in the stepdeploy registry (registered: {known or 'none'})")
    return _target(item)


def all_targets(sd: Stepdeploy) -> list[Target]:
    return [_target(i) for i in sorted(registry_table.all_entries(sd.registry_table), key=lambda i: str(i["name"]))]


def register(sd: Stepdeploy, item: dict[str, Any]) -> Target:
    """Validate with the workflow's own rules, then write. A bad entry is refused and nothing is written."""
    found = _target(item)
    registry_table.put_entry(sd.registry_table, item)
    return found


def unregister(sd: Stepdeploy, name: str) -> None:
    if not registry_table.delete_entry(sd.registry_table, name):
        raise UnknownTarget(f"{name!r} is not in the stepdeploy registry: nothing removed")


# ---------------------------------------------------------------------------- what runs


def _service_of(sd: Stepdeploy, t: Target) -> tuple[str, str, str | None] | None:
    """(cluster, service, container) of the target: from its entry, or its application stack's outputs."""
    request = t.entry.request
    if "service" in request:
        svc = request["service"]
        return str(svc["cluster"]), str(svc["service"]), svc.get("container")
    cfn = client("cloudformation")
    try:
        stack = cfn.describe_stacks(StackName=sd.app_stack(str(request["stack"]["name"])))["Stacks"][0]
    except cfn.exceptions.ClientError:
        return None  # not provisioned yet
    out = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if "ClusterName" not in out:
        return None
    return out["ClusterName"], out["ServiceName"], out.get("ContainerName")


def _tags_of(repository: str, digest: str | None) -> list[str]:
    if not digest:
        return []
    try:
        images = client("ecr").describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])
    except client("ecr").exceptions.ClientError:
        return []
    return [str(t) for d in images["imageDetails"] for t in d.get("imageTags", [])]


def running(sd: Stepdeploy, t: Target) -> dict[str, Any] | None:
    """The revision and image the service runs now (None: no service yet)."""
    where = _service_of(sd, t)
    if where is None:
        return None
    cluster, service, container = where
    ecs = client("ecs")
    svc = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    defs = td["containerDefinitions"]
    image = str(next((c["image"] for c in defs if c["name"] == container), defs[0]["image"]))
    digest = image.rsplit("@", 1)[1] if "@" in image else None
    return {
        "cluster": cluster,
        "service": service,
        "revision": svc["taskDefinition"].rsplit("/", 1)[-1],
        "image": image,
        "digest": digest,
        "tags": _tags_of(t.entry.repository, digest),
        "rollouts": [d.get("rolloutState") for d in svc.get("deployments", [])],
    }


def _matches(t: Target, payload: Any) -> bool:
    """Whether an execution's input is for this target (parsed as the workflow parses it)."""
    try:
        intent = triggers.parse(payload)
        if intent.target is not None:
            return intent.target == t.name
        if intent.explicit is not None:
            return DeploymentRequest.from_input(intent.explicit, Defaults()).lock_key == t.key
    except InvalidDeploymentRequest:
        return False
    return intent.repository == t.entry.repository and t.entry.matches(intent.tag)


def running_executions(sd: Stepdeploy, t: Target) -> list[str]:
    """ARNs of the RUNNING executions for the target, oldest first."""
    sfn = client("stepfunctions")
    found = []
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=sd.state_machine, statusFilter="RUNNING")
    for page in pages:
        for ex in page["executions"]:
            desc = sfn.describe_execution(executionArn=ex["executionArn"])
            if _matches(t, json.loads(desc.get("input") or "null")):
                found.append((desc["startDate"], ex["executionArn"]))
    return [arn for _, arn in sorted(found)]


def in_progress(sd: Stepdeploy, t: Target) -> str:
    """The execution deploying to the target now: the lock holder, else the oldest running one for it."""
    lock = control.get_lock(sd.control_table, t.key)
    arns = running_executions(sd, t)
    if lock and lock.get("holder") in arns:
        return str(lock["holder"])
    if arns:
        return arns[0]
    raise NothingToDo(f"no deployment of {t.name} is running")


def status(sd: Stepdeploy, t: Target) -> dict[str, Any]:
    lock = control.get_lock(sd.control_table, t.key)
    arns = running_executions(sd, t)
    holder = lock.get("holder") if lock else None
    progress = None
    if holder in arns:
        view = executions.summarize(str(holder))
        progress = {k: view[k] for k in ("deployment", "execution", "state", "elapsed_seconds")}
        held = control.get_approval(sd.control_table, t.key)
        if held is not None and held.get("holder") == holder:
            progress["awaiting_approval"] = {
                k: held.get(k) for k in ("stage", "requested_at", "answer_by", "on_timeout")
            }
    last = control.get_last(sd.control_table, t.key)
    now = running(sd, t)
    return {
        "target": t.name,
        "key": t.key,
        "repository": t.entry.repository,
        "running": now,
        "last_verified": _last_verified(last, now) if last else None,
        "in_progress": progress,
        "lock": {"holder": holder, "deployment": lock.get("deployment_id")} if lock else None,
        "queue": [arn.rsplit(":", 1)[-1] for arn in arns if arn != holder],
    }


def _last_verified(last: dict[str, Any], now: dict[str, Any] | None) -> dict[str, Any]:
    """The last verified deployment, and whether the service runs its image now: the image decides, not the revision
    number (a CloudFormation rollback registers a new revision of the same image)."""
    digest = last.get("digest")
    return {
        "deployment": last.get("deployment_id"),
        "digest": digest,
        "revision": str(last.get("task_definition", "")).rsplit("/", 1)[-1],
        "running": bool(now and digest and now.get("digest") == digest),
    }


# ---------------------------------------------------------------------------- approvals


def held_release(sd: Stepdeploy, t: Target, deployment: str | None = None) -> dict[str, Any]:
    """The release the target holds for a person's answer (its APPROVAL control item), if its execution still runs."""
    item = control.get_approval(sd.control_table, t.key)
    if item is None or not _runs(item["holder"]):
        raise NothingToDo(f"no release of {t.name} awaits approval")
    if deployment is not None and item.get("deployment_id") != deployment:
        raise NothingToDo(f"{t.name} holds deployment {item.get('deployment_id')}, not {deployment}: nothing answered")
    return item


def _runs(execution: str) -> bool:
    sfn = client("stepfunctions")
    try:
        return bool(sfn.describe_execution(executionArn=execution)["status"] == "RUNNING")
    except sfn.exceptions.ExecutionDoesNotExist:
        return False  # an item its execution did not clear, kept until its TTL


def answer(held: dict[str, Any], send: Callable[[str], None]) -> None:
    """Send the answer with the held release's task token; a token the execution no longer waits on is refused."""
    sfn = client("stepfunctions")
    try:
        send(str(held["token"]))
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken) as exc:
        raise NothingToDo(
            f"deployment {held['deployment_id']} no longer awaits approval ({exc.response['Error']['Code']}): "
            "its approval timed out or its execution ended"
        ) from exc


def caller() -> str:
    """Who answers: the caller's AWS identity (the ARN CloudTrail also records for the answer)."""
    return str(client("sts").get_caller_identity()["Arn"])


# ---------------------------------------------------------------------------- history


def recent(sd: Stepdeploy, t: Target, limit: int) -> list[dict[str, Any]]:
    return records.recent_records(sd.deployments_table, t.key, limit)


def record(sd: Stepdeploy, t: Target, deployment_id: str) -> dict[str, Any]:
    found = records.get_record(sd.deployments_table, t.key, deployment_id)
    if found is None:
        raise NothingToDo(f"no deployment {deployment_id!r} of {t.name} is recorded")
    return found


def rollback_digest(sd: Stepdeploy, t: Target, to: str | None) -> tuple[str, str]:
    """(digest, why) of the image a rollback deploys: the named one, or the newest verified deployment's
    image that is not the one running now."""
    if to and to.startswith("sha256:"):
        return to, f"image {to}"
    if to:
        found = record(sd, t, to)
        if not found.get("image_digest"):
            raise NothingToDo(f"deployment {to} of {t.name} has no image")
        return str(found["image_digest"]), f"the image of deployment {to}"
    now = (running(sd, t) or {}).get("digest")
    for item in recent(sd, t, 100):
        if item.get("outcome") == "SUCCEEDED" and item.get("mode", "deploy") == "deploy":
            digest = item.get("image_digest")
            if digest and digest != now:
                return str(
                    digest
                ), f"the last verified image before the running one (deployment {item['deployment_id']})"
    raise NothingToDo(
        f"{t.name} has no verified deployment of another image than the one running: nothing to roll back to"
    )
