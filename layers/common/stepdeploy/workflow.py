"""The steps of the deploy workflow: one function per state-machine task.

Each step parses its input, gathers observations through the adapters, asks the pure decisions
what to do, acts, and returns a JSON-ready dict that the state machine stores in its state.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from typing import Any

from . import decisions, observability, pipeline, registry, triggers
from .adapters import cloudwatch, control, ecr, ecs, elbv2, http_probe, records
from .adapters import pipeline as pipeline_io
from .adapters import registry as registry_table
from .errors import InvalidDeploymentRequest, TagFilterMismatch, UnregisteredRepository
from .models import BakeState, DeploymentRequest, HealthPolicy, RolloutPolicy, RolloutState
from .registry import RegistryEntry
from .settings import Settings

OUTCOMES = ("SUCCEEDED", "ROLLED_BACK", "FAILED", "ROLLBACK_FAILED", "SKIPPED")


def _entry_for(intent: triggers.Intent, settings: Settings) -> RegistryEntry:
    if intent.target is not None:
        item = registry_table.get_entry(settings.registry_table, intent.target)
        if item is None:
            raise UnregisteredRepository(f"$.target: {intent.target!r} is not in the stepdeploy registry")
        entry = RegistryEntry.from_item(item)
        if intent.tag is not None and intent.mode == "deploy" and not entry.matches(intent.tag):
            raise TagFilterMismatch(
                f"tag {intent.tag!r} does not match {entry.name}'s filter ({entry.describe_filter()})"
            )
        return entry
    assert intent.repository is not None
    items = registry_table.entries_for_repository(settings.registry_table, intent.repository)
    return registry.select([RegistryEntry.from_item(i) for i in items], intent.repository, intent.tag)


def normalize_request(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Turn any trigger into one validated request; resolve the image; read-only checks.

    Raises InvalidDeploymentRequest, UnregisteredRepository or TagFilterMismatch: nothing is changed.
    """
    intent = triggers.parse(event.get("input"))
    target = intent.target
    if intent.explicit is not None:
        request = DeploymentRequest.from_input(intent.explicit, settings.defaults)
    else:
        entry = _entry_for(intent, settings)
        target = entry.name
        if intent.mode == "verify":
            service = entry.request.get("service", {})
            _, running = _running(str(service.get("cluster")), str(service.get("service")), service.get("container"))
            _, tag, digest = triggers.parse_image_uri(running["image"], "running image")
            image_spec = {"digest": digest} if digest else {"tag": tag}
        else:
            image_spec = {k: v for k, v in (("tag", intent.tag), ("digest", intent.digest)) if v}
        request = entry.build_request(image_spec, intent.trigger, intent.reason, settings.defaults)
        if intent.container is not None:
            if request.service.container not in (None, intent.container):
                raise InvalidDeploymentRequest(
                    f"$[0].name: container {intent.container!r} is not {entry.name}'s container "
                    f"{request.service.container!r}"
                )
            request = replace(request, service=replace(request.service, container=intent.container))
    image = ecr.resolve_image(request.image)
    view, current = _running(request.service.cluster, request.service.service, request.service.container)
    if view.status != "ACTIVE":
        raise InvalidDeploymentRequest(f"$.service: service {view.service} is {view.status}")
    started_at = event.get("started_at")
    when = intent.event_time or started_at
    return {
        "deployment_id": event["deployment_id"],
        "started_at": started_at,
        "request": request.to_dict(),
        "image": asdict(image),
        "intent": {
            "trigger": request.trigger,
            "mode": intent.mode,
            "target": target,
            "redeploy": intent.redeploy,
            "pushed_at": decisions.to_epoch(when) if when else 0.0,
            "service_key": f"{request.service.cluster}/{request.service.service}",
        },
        "current": current,
        "guard": {"action": "START", "waited_seconds": 0, "wait_seconds": 0},
    }


def _running(cluster: str, service: str, container: str | None) -> tuple[decisions.ServiceView, dict[str, Any]]:
    """The service and what it runs now: task definition, container (chosen as requested), image."""
    view = ecs.describe_service(cluster, service)
    task_definition, _ = ecs.describe_task_definition(view.task_definition)
    chosen = decisions.choose_container(task_definition, container)
    image = decisions.container_image(task_definition, chosen)
    return view, {"task_definition": view.task_definition, "container": chosen, "image": image}


def guard_deployment(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Exactly once, one at a time, newest wins: dedupe, per-service lock (queued), stale-image guard."""
    request = DeploymentRequest.from_dict(event["request"])
    intent, image = event["intent"], event["image"]
    key, holder, deployment_id = intent["service_key"], event["execution_arn"], event["deployment_id"]
    previous = event.get("guard") or {}
    waited = int(previous.get("waited_seconds", 0)) + int(previous.get("wait_seconds", 0))
    deploy = intent["mode"] == "deploy"

    def skip(reason: str, detail: str, release: bool) -> dict[str, Any]:
        if release:
            control.release_lock(settings.control_table, key, holder)
        return {"action": "SKIP", "reason": reason, "detail": detail, "waited_seconds": waited, "wait_seconds": 0}

    # checked before the lock (cheap, no write) and again under it (the service may have changed meanwhile)
    if deploy and not intent["redeploy"] and decisions.digest_of(event["current"]["image"]) == image["digest"]:
        return skip("AlreadyRunning", f"{key} already runs {image['digest']}: nothing to do", release=False)
    now = int(time.time())
    holder_item = control.acquire_lock(
        settings.control_table, key, holder, deployment_id, now, settings.lock_lease_seconds
    )
    if holder_item is not None:
        wait = decisions.queue_wait(
            waited, settings.queue_poll_seconds, settings.queue_timeout_seconds, holder_item, key
        )
        return {
            "action": "WAIT",
            "reason": "DeploymentInProgress",
            "detail": f"{key} is locked by {holder_item.get('deployment_id', '?')}",
            "waited_seconds": waited,
            "wait_seconds": wait,
        }
    _, current = _running(request.service.cluster, request.service.service, event["current"]["container"])
    if deploy and not intent["redeploy"]:
        if decisions.digest_of(current["image"]) == image["digest"]:
            return skip("AlreadyRunning", f"{key} already runs {image['digest']}: nothing to do", release=True)
        last = control.get_last(settings.control_table, key) if intent["trigger"] == "ecr" else None
        if last is not None and decisions.is_stale(float(intent["pushed_at"]), last):
            return skip(
                "StaleImage",
                f"{image['digest']} was pushed before {last.get('digest')}, which "
                f"{last.get('deployment_id')} deployed: an older push never replaces a newer one",
                release=True,
            )
        prior = control.claim_digest(settings.control_table, key, image["digest"], deployment_id, now)
        if prior is not None:
            return skip(
                "Duplicate",
                f"{image['digest']} was already deployed to {key} by {prior} "
                "(set redeploy: true to deploy it again on purpose)",
                release=True,
            )
    out: dict[str, Any] = {
        "action": "PROCEED",
        "reason": "",
        "detail": "",
        "waited_seconds": waited,
        "wait_seconds": 0,
        "current": current,
    }
    if not deploy:
        last_verified = (control.get_last(settings.control_table, key) or {}).get("task_definition")
        previous_td = decisions.verify_rollback_target(
            last_verified, current["task_definition"], ecs.list_revisions(current["task_definition"])
        )
        out["revision"] = {
            "previous": previous_td,
            "new": current["task_definition"],
            "container": current["container"],
            "image": current["image"],
        }
        out["active"] = {
            "phase": "deploy",
            "task_definition": current["task_definition"],
            "changed": False,
            "rollout": asdict(RolloutState(wait_seconds=0)),
            "bake": None,
        }
    return out


def release_lock(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """EventBridge 'Step Functions Execution Status Change' (FAILED/TIMED_OUT/ABORTED): free its locks."""
    detail = event.get("detail") or {}
    arn = detail.get("executionArn")
    if not isinstance(arn, str):
        raise ValueError("not a Step Functions execution status change event (no detail.executionArn)")
    released = [
        key
        for key in control.locks_held_by(settings.control_table, arn)
        if control.release_lock(settings.control_table, key, arn)
    ]
    return {"execution": arn, "status": detail.get("status"), "released": released}


def register_revision(event: dict[str, Any]) -> dict[str, Any]:
    """Register the current revision again with the container pinned to the new image digest."""
    current = event["current"]  # as seen under the lock (Guard)
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
    guard = state.get("guard") or {}
    if outcome == "SUCCEEDED":
        error, cause = None, None
    elif outcome == "SKIPPED":
        error, cause = None, f"skipped ({guard.get('reason')}): {guard.get('detail')}"
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
        "running_task_definition": active.get("task_definition") if outcome not in ("FAILED", "SKIPPED") else current,
        "mode": (state.get("intent") or {}).get("mode", "deploy"),
        "skip_reason": guard.get("reason") if outcome == "SKIPPED" else None,
        "outcome": outcome,
        "error": error,
        "cause": cause,
        "gate_results": (active.get("bake") or {}).get("last"),
        "rollout": active.get("rollout"),
        "started_at": state.get("started_at"),
        "ended_at": event.get("ended_at"),
    }
    records.put_record(settings.deployments_table, record)
    intent = state.get("intent") or {}
    key = intent.get("service_key", record["service"])
    if outcome == "SUCCEEDED" and record["image_digest"]:
        control.set_last(
            settings.control_table,
            key,
            str(record["image_digest"]),
            str(intent.get("pushed_at", 0)),
            str(record["running_task_definition"]),
            str(state["deployment_id"]),
        )
    if event.get("execution_arn"):
        control.release_lock(settings.control_table, key, str(event["execution_arn"]))
    severity = {
        "SUCCEEDED": "INFO",
        "SKIPPED": "INFO",
        "ROLLED_BACK": "WARNING",
        "FAILED": "WARNING",
        "ROLLBACK_FAILED": "CRITICAL",
    }[outcome]
    subject = f"stepdeploy {outcome}: {record['service']} {record['image_tag'] or record['image_digest'] or ''}"
    if outcome == "ROLLBACK_FAILED":
        subject = "ALERT " + subject
    records.publish(settings.notification_topic_arn, subject, record, severity)
    observability.count("DeploymentOutcome", outcome=outcome)
    return {"outcome": outcome, "error": error, "cause": cause}


def pipeline_job(event: dict[str, Any], state_machine_arn: str) -> dict[str, Any]:
    """CodePipeline Lambda invoke action. Always ends with PutJobSuccessResult or PutJobFailureResult."""
    job = pipeline.job_id(event)
    if job is None:
        raise ValueError("not a CodePipeline job event (no CodePipeline.job.id)")
    arn: str | None = None
    try:
        if not state_machine_arn:
            raise pipeline.JobConfigurationError("the function has no STATE_MACHINE_ARN")
        parsed = pipeline.parse_job(event)
        if parsed.continuation_token:
            arn = str(json.loads(parsed.continuation_token)["executionArn"])
        else:
            params = parsed.user_parameters
            content = None
            if "file" in params:
                if len(parsed.artifacts) != 1:
                    raise pipeline.JobConfigurationError(
                        f"expected one input artifact holding {params['file']}, got {len(parsed.artifacts)}"
                    )
                bucket, key = next(iter(parsed.artifacts.values()))
                content = pipeline_io.read_artifact_file(bucket, key, parsed.credentials, str(params["file"]))
            payload = pipeline.execution_input(params, content)
            arn = pipeline_io.start_execution(state_machine_arn, pipeline.execution_name(job), payload)
        status = pipeline_io.describe_execution(arn)
        report = pipeline.report_for(status["status"], status["error"], status["cause"], arn)
        if report.kind == "continue":
            pipeline_io.succeed(job, report.message, continuation_token=json.dumps({"executionArn": arn}))
        elif report.kind == "success":
            pipeline_io.succeed(job, report.message)
        else:
            pipeline_io.fail(job, report.message, report.failure_type, arn)
        return {"job": job, "result": report.kind, "execution": arn, "message": report.message}
    except (pipeline.JobConfigurationError, InvalidDeploymentRequest) as exc:
        pipeline_io.fail(job, f"configuration error: {exc}", "ConfigurationError", arn)
        return {"job": job, "result": "failure", "execution": arn, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the pipeline must never hang on a job nobody reports
        pipeline_io.fail(job, f"stepdeploy job action error: {type(exc).__name__}: {exc}", "JobFailed", arn)
        return {"job": job, "result": "failure", "execution": arn, "message": str(exc)}
