"""The steps of the deploy workflow: one function per state-machine task.

Each step parses its input, gathers observations through the adapters, asks the pure decisions
what to do, acts, and returns a JSON-ready dict that the state machine stores in its state.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from . import clock, decisions, observability, pipeline, registry, triggers
from . import stack as app_stack
from .adapters import cloudformation, cloudwatch, control, ecr, ecs, elbv2, http_probe, records, secrets
from .adapters import pipeline as pipeline_io
from .adapters import registry as registry_table
from .errors import (
    WORKFLOW_ERRORS,
    AlarmTriggered,
    ApprovalRejected,
    DatabaseInitFailed,
    DatabaseInitRefused,
    DatabaseInitUncertain,
    DeploymentError,
    HealthCheckFailed,
    HookTimedOut,
    InfraUpdateFailed,
    InvalidDeploymentRequest,
    PreviouslyFailed,
    PushIgnored,
    RolloutFailed,
    RolloutTimedOut,
    StackStuck,
    TagFilterMismatch,
    UnregisteredRepository,
)
from .models import (
    BakeState,
    DeploymentRequest,
    FollowState,
    HealthPolicy,
    RolloutPolicy,
    RolloutState,
    ServiceRef,
    StackSpec,
    StrategySpec,
)
from .registry import RegistryEntry
from .settings import Settings

OUTCOMES = ("SUCCEEDED", "ROLLED_BACK", "FAILED", "ROLLBACK_FAILED", "SKIPPED")
#: outcomes the execution-status-change rule records for an execution that ended without a record
#: ``recorded_by`` of a record the execution-end handler wrote (it writes each record at most once)
RECORDED_AT_END = "execution-end"
ENDED_OUTCOMES = {"ABORTED": "ABORTED", "TIMED_OUT": "TIMED_OUT", "FAILED": "FAILED"}
SEVERITY = {
    "SUCCEEDED": "INFO",
    "SKIPPED": "INFO",
    "ROLLED_BACK": "WARNING",
    "FAILED": "WARNING",
    "ABORTED": "WARNING",
    "TIMED_OUT": "WARNING",
    "ROLLBACK_FAILED": "CRITICAL",
}


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
    entries = [RegistryEntry.from_item(i) for i in items]
    if intent.trigger != "ecr":
        return registry.select(entries, intent.repository, intent.tag)
    # an ECR push of something stepdeploy does not deploy is routine, not a failed deployment
    try:
        entry = registry.select(entries, intent.repository, intent.tag)
    except (UnregisteredRepository, TagFilterMismatch) as exc:
        raise PushIgnored(f"push ignored: {exc}") from exc
    if not entry.deploy_on_push:
        what = f"{intent.repository}:{intent.tag}" if intent.tag else f"{intent.repository}@{intent.digest}"
        raise PushIgnored(
            f"push ignored: {entry.name} has deploy_on_push false (its pipeline deploys it): {what} not deployed"
        )
    return entry


def normalize_request(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Turn any trigger into one validated request; resolve the image; read-only checks.

    Raises InvalidDeploymentRequest, UnregisteredRepository or TagFilterMismatch: nothing is changed.
    An ECR push that no registry entry deploys raises PushIgnored instead (the execution ends SUCCEEDED).
    """
    intent = triggers.parse(event.get("input"))
    if intent.mode == "dispatch":
        return dispatch_refreshes(intent, event, settings)
    _check_within_reach(settings, intent, None)
    target = intent.target
    if intent.explicit is not None:
        request = DeploymentRequest.from_input(intent.explicit, settings.defaults)
    else:
        entry = _entry_for(intent, settings)
        target = entry.name
        if intent.mode in ("verify", "refresh"):
            probe = entry.build_request({"tag": intent.mode}, "verify", None, settings.defaults)
            probe, _ = _with_stack_outputs(probe, settings)
            if probe.service is None:
                raise InvalidDeploymentRequest(
                    f"$.target: {entry.name}'s stack does not exist yet: nothing to {intent.mode}"
                )
            _check_within_reach(settings, intent, probe)
            _, running = _running(probe.target, probe.target.container)
            _, tag, digest = triggers.parse_image_uri(running["image"], "running image")
            image_spec = {"digest": digest} if digest else {"tag": tag}
        else:
            image_spec = {k: v for k, v in (("tag", intent.tag), ("digest", intent.digest)) if v}
        trigger = "manual" if intent.mode == "refresh" else intent.trigger  # (a refresh records its own below)
        request = entry.build_request(
            image_spec, trigger, intent.reason, settings.defaults, intent.plan, intent.overrides
        )
        if intent.mode == "refresh":
            request = replace(request, trigger=intent.trigger)  # manual | rotation
        if intent.container is not None:
            known = request.service.container if request.service is not None else None
            if known not in (None, intent.container) or request.stack is not None:
                raise InvalidDeploymentRequest(
                    f"$[0].name: container {intent.container!r} is not {entry.name}'s container {known!r}"
                )
            request = replace(request, service=replace(request.target, container=intent.container))
    _check_within_reach(settings, intent, request)
    image = ecr.resolve_image(request.image)
    request, stack_view = _with_stack_outputs(request, settings)
    current: dict[str, Any] | None = None
    view: decisions.ServiceView | None = None
    if request.service is not None:
        view, current = _running(request.target, request.target.container)
        if view.status != "ACTIVE":
            raise InvalidDeploymentRequest(f"$.service: service {view.service} is {view.status}")
    _check_gate_settings(request, view, settings)
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
            "plan": request.plan,
            "pushed_at": decisions.to_epoch(when) if when else 0.0,
            "service_key": request.lock_key,
            "stack_status": stack_view.status if stack_view is not None else None,
            **({"secret": intent.secret} if intent.secret else {}),
        },
        "current": current,
        "guard": {"action": "START", "waited_seconds": 0, "wait_seconds": 0},
        **({"stack": app_stack.StackState().to_dict()} if request.stack is not None else {}),
    }


def _check_gate_settings(request: DeploymentRequest, view: decisions.ServiceView | None, settings: Settings) -> None:
    """What the health gates read exists, before anything changes: otherwise the gates fail on the
    setting, and so do the rollback's. The alarms and target group of a stack that does not exist yet
    come from its outputs once CloudFormation created them (then only the request's own alarms are
    known here). Raises InvalidDeploymentRequest."""
    names = request.health.alarm_names
    found = cloudwatch.alarm_states(names) if names else {}
    for i, name in enumerate(names):
        if name not in found:
            where = settings.region or "this region"
            raise InvalidDeploymentRequest(f"$.health.alarm_names[{i}]: alarm {name!r} does not exist in {where}")
    if view is not None:
        problem = decisions.strategy_problem(request.strategy, view)
        if problem is not None:
            raise InvalidDeploymentRequest(problem)
    tg = request.health.target_group_arn
    if tg is None or view is None:
        return
    if not elbv2.target_group_exists(tg):
        raise InvalidDeploymentRequest(f"$.health.target_group_arn: target group {tg} does not exist")
    if tg not in view.target_groups:
        attached = ", ".join(view.target_groups) or "none"
        raise InvalidDeploymentRequest(
            f"$.health.target_group_arn: target group {tg} is not attached to service {view.service} "
            f"(its target groups: {attached})"
        )


def _check_within_reach(settings: Settings, intent: triggers.Intent, request: DeploymentRequest | None) -> None:
    """Refuse what the function's account and region cannot deploy: ARNs (and an image registry)
    elsewhere. Raises InvalidDeploymentRequest."""
    named: list[tuple[str, str | None]] = [("$.secret", intent.secret), intent.registry or ("", None)]
    if request is not None:
        if request.service is not None:
            named += [("$.service.cluster", request.service.cluster), ("$.service.service", request.service.service)]
        named.append(("$.health.target_group_arn", request.health.target_group_arn))
    problem = decisions.out_of_reach(named, settings.partition, settings.region, settings.account)
    if problem is not None:
        raise InvalidDeploymentRequest(problem)


def dispatch_refreshes(intent: triggers.Intent, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A secret rotated: start one refresh execution per registered service whose running task definition
    reads the secret (``secrets[].valueFrom``) or whose stack outputs it as ``DatabaseSecretArn``.

    Execution names derive from the event id and the target, so a redelivered event starts nothing twice
    (StartExecution with the name of a running execution and the same input is idempotent)."""
    secret = intent.secret
    assert secret is not None
    state_machine_arn = event.get("state_machine_arn")
    if not isinstance(state_machine_arn, str):
        raise ValueError("dispatch needs the state machine ARN ($$.StateMachine.Id)")
    event_key = intent.event_id or intent.event_time or event["deployment_id"]
    started: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in sorted(registry_table.all_entries(settings.registry_table), key=lambda i: str(i.get("name"))):
        name = str(item.get("name"))
        try:
            entry = RegistryEntry.from_item(item)
            probe, view = _with_stack_outputs(
                entry.build_request({"tag": "refresh"}, "verify", None, settings.defaults), settings
            )
            if probe.service is None or probe.lock_key in seen:
                continue
            outputs = view.outputs if view is not None else {}
            uses = [s for s in [outputs.get("DatabaseSecretArn", "")] if s]
            _, running = _running(probe.target, probe.target.container)
            task_definition, _ = ecs.describe_task_definition(running["task_definition"])
            uses += decisions.secrets_used(task_definition)
        except InvalidDeploymentRequest as exc:  # one broken entry does not stop the others' refresh
            skipped.append({"target": name, "why": str(exc)})
            continue
        if not any(decisions.secret_matches(ref, secret) for ref in uses):
            continue
        seen.add(probe.lock_key)
        digest = hashlib.sha256(f"{event_key}|{secret}|{entry.name}".encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9_-]", "-", entry.name)[:50]
        execution = f"refresh-{slug}-{digest}"
        payload = {
            "mode": "refresh",
            "target": entry.name,
            "trigger": "rotation",
            "secret": secret,
            "reason": f"secret rotated ({intent.event_time or 'event ' + str(event_key)})"[:1024],
        }
        arn = pipeline_io.start_execution(state_machine_arn, execution, payload)
        started.append({"target": entry.name, "service": probe.lock_key, "execution": arn})
        observability.count("RefreshDispatched")
    return {  # the Guard passes it on (DISPATCHED): this execution deploys nothing itself
        "deployment_id": event["deployment_id"],
        "request": None,
        "image": None,
        "current": None,
        "intent": {"trigger": "rotation", "mode": "dispatch", "secret": secret},
        "guard": {"action": "START", "waited_seconds": 0, "wait_seconds": 0},
        "dispatch": {"secret": secret, "started": started, "skipped": skipped},
    }


def _with_stack_outputs(
    request: DeploymentRequest, settings: Settings
) -> tuple[DeploymentRequest, app_stack.StackView | None]:
    """A request with a stack: service and health filled from the outputs once the stack exists."""
    if request.stack is None:
        return request, None
    view = cloudformation.describe_stack(settings.stack_name(request.stack.name))
    if view is None or not app_stack.outputs_complete(view.outputs):  # (an update in progress keeps them)
        return request, view
    completed = app_stack.complete_request(request.to_dict(), view.outputs, view.parameters)
    return DeploymentRequest.from_dict(completed), view


def _running(service: ServiceRef, container: str | None) -> tuple[decisions.ServiceView, dict[str, Any]]:
    """The service and what it runs now: task definition, container (chosen as requested), image."""
    view = ecs.describe_service(service.cluster, service.service)
    task_definition, _ = ecs.describe_task_definition(view.task_definition)
    chosen = decisions.choose_container(task_definition, container)
    image = decisions.container_image(task_definition, chosen)
    return view, {"task_definition": view.task_definition, "container": chosen, "image": image}


#: the outcome an execution that goes on after the Guard's action ends with when its gates pass
SUCCESS = {"DEPLOY": "DEPLOYED", "VERIFY": "VERIFIED", "REFRESH": "REFRESHED"}


def _guard_result(action: str, waited: int, **extra: Any) -> dict[str, Any]:
    base = {"action": action, "reason": "", "detail": "", "waited_seconds": waited, "wait_seconds": 0}
    return {**base, "image_action": "DEPLOY", "success": SUCCESS.get(action), **extra}


def guard_deployment(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Exactly once, one at a time, newest wins: dedupe, per-service lock (queued), stale-image guard.

    ``stage`` "lock" (first) takes the lock; a request with a stack then goes to EnsureStack
    (action STACK) and comes back for the "image" stage, which decides what the image step does:
    DEPLOY a new revision, VERIFY what runs (after a stack change), or SKIP. Plan mode takes no lock.
    """
    if event["intent"]["mode"] == "dispatch":  # a rotation event: its refresh executions do the work
        return _guard_result("DISPATCHED", 0)
    request = DeploymentRequest.from_dict(event["request"])
    intent, image = event["intent"], event["image"]
    key, holder, deployment_id = intent["service_key"], event["execution_arn"], event["deployment_id"]
    previous = event.get("guard") or {}
    waited = int(previous.get("waited_seconds", 0)) + int(previous.get("wait_seconds", 0))
    deploy = intent["mode"] == "deploy"
    running = event.get("current")

    if request.plan:
        if request.stack is not None:
            return _guard_result("STACK", waited, current=running)
        assert running is not None
        return _guard_result("PLAN", waited, plan=deploy_plan(request, image, running, None))
    if event.get("stage", "lock") == "image":
        return _image_stage(event, request, settings, waited, holder)

    # checked before the lock (cheap, no write) and again under it (the service may have changed meanwhile)
    if (
        deploy
        and request.stack is None
        and not intent["redeploy"]
        and running is not None
        and decisions.digest_of(running["image"]) == image["digest"]
        and _verified(settings, key, image["digest"])
    ):
        detail = _already_running(settings, key, image["digest"], running)
        return _skip(settings, key, holder, waited, "AlreadyRunning", detail, False, running)
    now = int(clock.now())
    holder_item = control.acquire_lock(
        settings.control_table, key, holder, deployment_id, now, settings.lock_lease_seconds
    )
    if holder_item is not None:
        queued_at = float(previous.get("queued_at") or now)
        waited = max(waited, int(now - queued_at))  # (the clock also counts the Guard's own time)
        wait = decisions.queue_wait(
            waited, settings.queue_poll_seconds, settings.queue_timeout_seconds, holder_item, key
        )
        return {
            "action": "WAIT",
            "reason": "DeploymentInProgress",
            "detail": f"{key} is locked by {holder_item.get('deployment_id', '?')}",
            "waited_seconds": waited,
            "wait_seconds": wait,
            "queued_at": queued_at,
        }
    if request.stack is not None and intent["mode"] != "refresh":  # a refresh never changes the stack
        stale = _stale(settings, intent, image, key) if deploy else None
        if stale is not None:
            return _skip(settings, key, holder, waited, "StaleImage", stale, True, running)
        # what runs now, under the lock (the stack may have been busy when Normalize read its outputs):
        # the stack's change set keeps it unless this is a release
        if request.service is None:
            request, _ = _with_stack_outputs(request, settings)
        current = _running(request.target, request.target.container)[1] if request.service is not None else None
        image_action, reason, detail = _stack_image_action(event, settings, current)
        return _guard_result("STACK", waited, current=current, image_action=image_action, reason=reason, detail=detail)
    return _image_stage(event, request, settings, waited, holder)


def _stack_image_action(
    event: dict[str, Any], settings: Settings, current: dict[str, Any] | None
) -> tuple[str, str, str]:
    """Whether the stack's change set releases the image (DEPLOY) or keeps what runs (KEEP, and why)."""
    intent = event["intent"]
    if intent["mode"] != "deploy":
        return "KEEP", "", ""
    if current is None or intent["redeploy"]:
        return "DEPLOY", "", ""
    reason, detail = _why_not_release(event, settings, current, check_stale=False)  # (stale: checked before)
    return ("KEEP" if reason else "DEPLOY"), reason, detail


def _why_not_release(
    event: dict[str, Any], settings: Settings, current: dict[str, Any], check_stale: bool
) -> tuple[str, str]:
    """Under the lock, why this image is not released (the skip reason and its detail), or ("", "").
    The first deployment of a (service, digest) claims it here."""
    intent, image, key = event["intent"], event["image"], event["intent"]["service_key"]
    if decisions.digest_of(current["image"]) == image["digest"] and _verified(settings, key, image["digest"]):
        return "AlreadyRunning", _already_running(settings, key, image["digest"], current)
    if check_stale and (stale := _stale(settings, intent, image, key)) is not None:
        return "StaleImage", stale
    now = clock.now()
    prior = control.claim_digest(
        settings.control_table, key, image["digest"], event["deployment_id"], int(now), settings.expires_at(now)
    )
    if prior is not None:
        _refuse_if_failed(settings, key, image["digest"], prior)
        return "Duplicate", _duplicate(image["digest"], key, prior)
    return "", ""


def _verified(settings: Settings, key: str, digest: str) -> bool:
    """Whether the image that runs passed its gates: the last verified deployment is of it; or, where
    stepdeploy never verified anything, no deployment of it failed (what runs is the service's baseline).
    An image left running by a failed rollback or an aborted deployment is not: it is refused (or
    verified again with redeploy), never skipped as AlreadyRunning."""
    last = control.get_last(settings.control_table, key)
    if last is not None:
        return last.get("digest") == digest
    prior = control.get_claim(settings.control_table, key, digest)
    return prior is None or _outcome_of(settings, key, prior).get("outcome") in ("SUCCEEDED", "SKIPPED")


def _already_running(settings: Settings, key: str, digest: str, running: dict[str, Any]) -> str:
    """Why an image that already runs is not deployed again: when and by whom it was verified."""
    where = f"{key} already runs {digest} ({decisions.short_revision(running['task_definition'])})"
    last = control.get_last(settings.control_table, key) or {}
    if last.get("digest") != digest:
        return f"{where}: already running, the service's baseline (no deployment of it failed): nothing to do"
    when = f" at {last['verified_at']}" if last.get("verified_at") else ""
    return f"{where}: already running, verified{when} by {last.get('deployment_id', '?')}: nothing to do"


def _outcome_of(settings: Settings, key: str, deployment_id: str) -> dict[str, Any]:
    return records.get_record(settings.deployments_table, key, deployment_id) or {}


def _refuse_if_failed(settings: Settings, key: str, digest: str, prior: str) -> None:
    """A repeat of an image whose earlier deployment did not succeed is refused (FAILED), never skipped as
    a success: a retried pipeline action must not go green for an image that failed."""
    record = _outcome_of(settings, key, prior)
    outcome = str(record.get("outcome") or "")
    if outcome in ("SUCCEEDED", "SKIPPED"):
        return
    what = f"ended {outcome} ({record.get('error')})" if outcome else "left no outcome (it was stopped or crashed)"
    raise PreviouslyFailed(
        f"{digest} was deployed to {key} before by {prior}, which {what}: it is not deployed again "
        "(set redeploy: true to try it again on purpose)"
    )


def _duplicate(digest: str, key: str, prior: str) -> str:
    return f"{digest} was already deployed to {key} by {prior} (set redeploy: true to deploy it again on purpose)"


def _skip(
    settings: Settings,
    key: str,
    holder: str,
    waited: int,
    reason: str,
    detail: str,
    release: bool,
    running: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """SKIP, and what runs instead (``running``: its task definition and image, as seen; null when unknown)."""
    if release:
        control.release_lock(settings.control_table, key, holder)
    runs = {"task_definition": (running or {}).get("task_definition"), "image": (running or {}).get("image")}
    return {
        "action": "SKIP",
        "reason": reason,
        "detail": detail,
        "waited_seconds": waited,
        "wait_seconds": 0,
        "running": runs,
    }


def _stale(settings: Settings, intent: dict[str, Any], image: dict[str, Any], key: str) -> str | None:
    last = control.get_last(settings.control_table, key) if intent["trigger"] == "ecr" else None
    if last is not None and decisions.is_stale(float(intent["pushed_at"]), last):
        return (
            f"{image['digest']} was pushed before {last.get('digest')}, which "
            f"{last.get('deployment_id')} deployed: an older push never replaces a newer one"
        )
    return None


def _image_stage(
    event: dict[str, Any], request: DeploymentRequest, settings: Settings, waited: int, holder: str
) -> dict[str, Any]:
    """Under the lock: DEPLOY the image, VERIFY what runs, or SKIP."""
    if request.stack is not None and event["intent"]["mode"] != "refresh":
        return _stack_image_stage(event, request, settings, waited, holder)
    intent = event["intent"]
    key = intent["service_key"]
    deploy = intent["mode"] == "deploy"
    container = (event.get("current") or {}).get("container") or request.target.container
    _, current = _running(request.target, container)
    if intent["mode"] == "refresh":  # same image, same revision, new tasks: never AlreadyRunning/Duplicate
        return _guard_result(
            "REFRESH", waited, current=current, revision=_revision(current, current["task_definition"])
        )
    if deploy and not intent["redeploy"]:
        skip_reason, detail = _why_not_release(event, settings, current, check_stale=True)
        if skip_reason:
            return _skip(settings, key, holder, waited, skip_reason, detail, True, current)
    if deploy:
        return _guard_result("DEPLOY", waited, current=current, rollback_to=_last_verified(settings, key, current))
    last_verified = (control.get_last(settings.control_table, key) or {}).get("task_definition")
    previous_td = decisions.verify_rollback_target(
        last_verified, current["task_definition"], ecs.list_revisions(current["task_definition"])
    )
    return _verify(waited, current, _revision(current, previous_td), changed=False)


def _last_verified(settings: Settings, key: str, current: dict[str, Any]) -> str:
    """Where a failed deployment rolls back to: the last revision stepdeploy verified, when what runs now
    is not it (a deployment stopped mid-bake left an unverified one); else what runs now."""
    last = (control.get_last(settings.control_table, key) or {}).get("task_definition")
    return last or current["task_definition"]


def _stack_image_stage(
    event: dict[str, Any], request: DeploymentRequest, settings: Settings, waited: int, holder: str
) -> dict[str, Any]:
    """After the stack (which owns the task definition): SKIP when nothing changed and the image was
    not released, else VERIFY what runs now, the stack's revision; rollback goes through the stack."""
    key = event["intent"]["service_key"]
    guard, stack_state = event.get("guard") or {}, event.get("stack") or {}
    before = guard["current"] if "current" in guard else event.get("current")  # as seen under the lock
    uninitialised = bool((stack_state.get("database") or {}).get("initialise"))  # a failed init: never verified
    if stack_state.get("operation") == "NONE" and guard.get("reason") and not uninitialised:
        return _skip(settings, key, holder, waited, guard["reason"], guard.get("detail", ""), True, before)
    container = (before or {}).get("container") or request.target.container
    _, now = _running(request.target, container)
    moved = before is not None and before["task_definition"] != now["task_definition"]
    previous, image = now["task_definition"], None  # a first provisioning has nothing to roll back to
    if moved:
        previous, image = before["task_definition"], before["image"]  # type: ignore[index]
    last = (control.get_last(settings.control_table, key) or {}).get("task_definition") if before else None
    if last and last not in (previous, now["task_definition"]):  # what ran before was never verified
        previous = last
        image = decisions.container_image(ecs.describe_task_definition(last)[0], now["container"])
    if image == now["image"]:
        image = None  # the same image: rolling back to it would change nothing
    parameters = stack_state.get("previous_parameters") if before is not None else None
    rollback = {"parameters": parameters, "image": image, "possible": bool(image or parameters)}
    detail = "the stack changed: verifying what runs" if stack_state.get("operation") in ("CREATE", "UPDATE") else ""
    revision = _revision(now, previous, via="stack", rollback=rollback)
    released = event["intent"]["mode"] == "deploy" and guard.get("image_action", "DEPLOY") == "DEPLOY"
    return _verify(
        waited,
        now,
        revision,
        changed=moved or before is None,
        reason=guard.get("reason", ""),
        detail=detail,
        success="DEPLOYED" if released else "VERIFIED",  # (the stack released the image, or kept what runs)
    )


def _revision(current: dict[str, Any], previous: str, **extra: Any) -> dict[str, Any]:
    """``$.revision`` for what runs now (``current``), with the revision a rollback returns to."""
    new = current["task_definition"]
    return {"previous": previous, "new": new, "container": current["container"], "image": current["image"], **extra}


def _verify(
    waited: int, current: dict[str, Any], revision: dict[str, Any], changed: bool, **extra: Any
) -> dict[str, Any]:
    """VERIFY what runs now: its rollout is checked at once, then the gates."""
    active = {
        "phase": "deploy",
        "task_definition": current["task_definition"],
        "changed": changed,
        "rollout": asdict(RolloutState(wait_seconds=0, started_at=clock.now())),
        "bake": None,
    }
    return _guard_result("VERIFY", waited, current=current, revision=revision, active=active, **extra)


def deploy_plan(
    request: DeploymentRequest, image: dict[str, Any], running: dict[str, Any] | None, stack: dict[str, Any] | None
) -> dict[str, Any]:
    """What a deployment would do (plan mode): nothing here changes anything."""
    if running is None:
        action = "create the service with the image (first provisioning)"
    elif decisions.digest_of(running["image"]) == image["digest"]:
        action = "none: the service already runs this image"
    else:
        action = "register a new task-definition revision with the image and update the service"
    out: dict[str, Any] = {
        "service": request.lock_key,
        "image": image["uri"],
        "running": running,
        "image_action": action,
        "gates": {
            "url": request.health.url,
            "target_group_arn": request.health.target_group_arn,
            "alarm_names": list(request.health.alarm_names),
        },
    }
    if stack is not None:
        out["stack"] = stack
    return out


def ensure_stack(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """One step of the EnsureStack loop: change set (CREATE or UPDATE) -> execute -> wait; or skip
    when nothing changed; or, in plan mode, describe the change set and delete it.

    The stack owns the service's task definition: a release is the change set that sets
    ``ContainerImage`` to the new image (with any infrastructure change of the request), so
    CloudFormation makes the one ECS rollout; without a release the image stays what runs.
    With ``rollback`` (``{"parameters", "image"}``) the loop returns the stack to the release before.

    Returns ``$.stack`` with ``status`` WAITING (poll again after ``wait_seconds``), READY (the
    completed request, and whether the database must be initialised) or PLANNED (the plan).
    Raises InfraUpdateFailed: the change set failed, or the update failed and was rolled back;
    DatabaseInitRefused: the init would run against an existing database without the request's consent.
    """
    request = DeploymentRequest.from_dict(event["request"])
    spec = request.stack
    if spec is None:
        raise ValueError("ensure_stack needs a request with a stack")
    state = app_stack.StackState.from_dict(event.get("stack"))
    state.elapsed_seconds += state.wait_seconds
    now = clock.now()
    state.started_at = state.started_at or now
    held = FollowState.from_dict(state.follow)
    if held.status == "APPROVAL":  # back from AwaitStackApproval: the hold does not count against the deadline
        state.held_seconds += now - held.held_at
        state.follow = asdict(replace(held, status="FOLLOWING"))
    # (Lambda time counts too; a person's approval hold does not)
    state.elapsed_seconds = max(state.elapsed_seconds, int(now - state.started_at - state.held_seconds))
    state.polls += 1
    state.wait_seconds = 0
    rollback = event.get("rollback")
    running = event.get("current")
    releasing = event.get("image_action", "DEPLOY") == "DEPLOY" or running is None
    image_uri = event["image"]["uri"] if releasing else running["image"]  # type: ignore[index]
    name = settings.stack_name(spec.name)
    change_set_name = app_stack.change_set_name(event["deployment_id"], "-rollback" if rollback else "")
    known = app_stack.parameter_spec()

    def create(kind: str, view: app_stack.StackView | None) -> None:
        if rollback is not None:
            assert view is not None
            params = app_stack.rollback_parameters(view, rollback.get("parameters"), rollback.get("image"), known)
        else:
            before = view.parameters if view else {}
            app_stack.check_deployment_time(spec.parameters, before, known)
            if request.approval is not None:
                app_stack.check_approval(
                    request.approval, request.health, request.rollout, spec.parameters, before, known
                )
            params = app_stack.update_parameters(kind, view, spec.parameters, image_uri, known)
            if kind == "UPDATE" and view is not None:
                state.previous_parameters = dict(view.parameters)
        suffix = "-protect" if state.protecting else ""
        if kind == "CREATE" and spec.init_command and not request.plan:
            control.mark_schema_due(settings.control_table, request.lock_key, str(event["deployment_id"]))
        state.change_set = cloudformation.create_change_set(
            name, change_set_name + suffix, kind, app_stack.template_body(), params, settings.app_stack_role_arn
        )
        state.phase, state.operation = "change_set", kind

    def protect(view: app_stack.StackView) -> None:
        """The creation succeeded: an UPDATE switches on the deletion protection it deferred (part of
        the CREATE: the operation and its changes stay the creation's)."""
        state.protecting = True
        create("UPDATE", view)
        state.operation = "CREATE"
        state.detail = f"stack {name} created: switching on the database's deletion protection"

    def discard(view: app_stack.StackView | None) -> None:
        if state.change_set:
            cloudformation.delete_change_set(state.change_set)
            state.change_set = None
        if state.operation == "CREATE" and view is not None and view.status == "REVIEW_IN_PROGRESS":
            cloudformation.delete_stack(name, settings.app_stack_role_arn)  # a CREATE change set's shell

    def ready(view: app_stack.StackView) -> dict[str, Any]:
        if rollback is not None:
            return _rolled_back_stack(state, request, view)
        return _ready(state, request, view, settings)

    gate_wait: int | None = None  # the next gate round of a service deployment CloudFormation started
    for _ in range(4):  # phases that can move on without waiting
        view = cloudformation.describe_stack(name)
        status = view.status if view is not None else "ABSENT"
        state.detail = f"stack {name}: {status}"
        if state.phase in ("start", "deleting"):
            if rollback is not None and status not in app_stack.STABLE and not status.endswith("_IN_PROGRESS"):
                raise InfraUpdateFailed(f"stack {name} is {status}: it cannot be rolled back by a change set")
            if view is None or status == "REVIEW_IN_PROGRESS":
                create("CREATE", view)
            elif status == "ROLLBACK_COMPLETE":
                if request.plan:
                    state.operation = "RECREATE"
                    state.detail = f"stack {name} failed its creation earlier: it would be deleted and created again"
                    return _planned(state, request, event, running, name)
                cloudformation.delete_stack(name, settings.app_stack_role_arn)
                state.phase = "deleting"
            elif status.endswith("_IN_PROGRESS"):
                state.detail += " (another operation is running; waiting for it)"
            elif status in app_stack.STABLE:
                if rollback is None:
                    _refuse_destructive_init(spec, request.lock_key, name, settings)
                create("UPDATE", view)
            else:
                blocked = app_stack.blocking_failure(cloudformation.recent_events(name), name)
                raise StackStuck(
                    f"stack {name} is {status}: {blocked}. It needs a person before stepdeploy changes it "
                    "(fix the cause, then continue-update-rollback, or delete the stack); nothing was changed"
                )
        elif state.phase == "change_set":
            assert state.change_set is not None
            change_set = cloudformation.describe_change_set(state.change_set)
            if change_set.status in app_stack.CHANGE_SET_PENDING:
                state.detail = f"change set {change_set.status}"
            elif app_stack.is_no_change(change_set):
                discard(view)
                if not state.protecting:
                    state.operation, state.changes, state.previous_parameters = "NONE", [], None
                if request.plan:
                    return _planned(state, request, event, running, name)
                assert view is not None  # only an UPDATE change set can have no changes: the stack exists
                return ready(view)
            elif change_set.status != "CREATE_COMPLETE":
                discard(view)
                raise InfraUpdateFailed(
                    f"the change set for stack {name} failed: {change_set.reason or change_set.status}"
                )
            else:
                if not state.protecting:
                    state.changes = app_stack.summarize_changes(change_set.changes)
                if request.plan:
                    discard(view)
                    return _planned(state, request, event, running, name)
                cloudformation.execute_change_set(state.change_set)
                state.phase = "executing"
                observability.count("StackOperation", operation="ROLLBACK" if rollback else state.operation)
                continue
        elif state.phase in ("executing", "cancelling"):
            if view is not None and status == "CREATE_COMPLETE" and app_stack.protection_pending(view):
                protect(view)
                continue
            if view is not None and status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                return ready(view)  # (an update may finish before a cancel lands)
            if status.endswith("_IN_PROGRESS"):
                gate_wait = gate_stack_service(state, request, view, name)
            elif state.gate_failure and status.endswith("ROLLBACK_COMPLETE") and view is not None:
                if rollback is not None:  # the rollback's own deployment failed its gates
                    raise _stack_gate_failure(state.gate_failure, name, status)
                return _gated_back(state, request, view, _stack_gate_failure(state.gate_failure, name, status))
            else:
                cause = app_stack.first_failure(cloudformation.recent_events(name), name)
                what = (
                    f"the update of stack {name} did not finish within its {spec.timeout_seconds} s deadline: "
                    "stepdeploy cancelled it, and"
                    if state.phase == "cancelling"
                    else f"stack {name} was created, but the update that switches on its database's deletion "
                    "protection failed (the next deployment's update retries it), and"
                    if state.protecting
                    else f"{state.operation} of stack {name} failed, and"
                )
                failed = StackStuck if app_stack.stuck(status) else InfraUpdateFailed
                raise failed(f"{what} {app_stack.rolled_back(status)}: {cause}")
        break
    if state.elapsed_seconds + spec.poll_seconds > spec.timeout_seconds:
        _at_deadline(state, spec, name, status, discard, view)
    state.wait_seconds = min(spec.poll_seconds, max(gate_wait or spec.poll_seconds, app_stack.STACK_POLL_FLOOR))
    return state.to_dict()


def _gated_back(
    state: app_stack.StackState, request: DeploymentRequest, view: app_stack.StackView, failure: DeploymentError
) -> dict[str, Any]:
    """A gate took the stack update's service deployment back, and CloudFormation rolled the stack back: the
    revision it runs again is verified by the gates like any rollback (ROLLED_BACK, or a person is needed);
    ``failure`` is the error the execution ends with (as a Catch would keep it)."""
    out = _rolled_back_stack(state, request, view)
    out["status"] = "ROLLED_BACK"
    out["detail"] = f"the gates took the update back and CloudFormation rolled the stack back: {failure}"
    return {**out, "failure": {"Error": type(failure).__name__, "Cause": str(failure)}}


def _stack_gate_failure(failure: dict[str, str], name: str, status: str) -> DeploymentError:
    """The error of the gate that took a service deployment of the stack's operation back, once CloudFormation
    has rolled the operation back."""
    error = next(cls for cls in WORKFLOW_ERRORS if cls.__name__ == failure["error"])
    return error(f"{failure['cause']} (stack {name}: {status})")


def _rolled_back_stack(
    state: app_stack.StackState, request: DeploymentRequest, view: app_stack.StackView
) -> dict[str, Any]:
    """The stack is back on the release before: its revision's rollout is then verified like any other."""
    state.phase, state.status = "done", "READY"
    state.detail = f"rolled back through the stack: {len(state.changes)} resource change(s)"
    active = {
        "phase": "rollback",
        "task_definition": view.outputs.get("TaskDefinitionArn", ""),
        "changed": state.operation != "NONE",
        "rollout": asdict(decisions.first_rollout_state(request.rollout, clock.now())),
        "bake": None,
    }
    return {**state.to_dict(), "active": active}


def _at_deadline(
    state: app_stack.StackState,
    spec: StackSpec,
    name: str,
    status: str,
    discard: Callable[[app_stack.StackView | None], None],
    view: app_stack.StackView | None,
) -> None:
    """The stack deadline has passed: cancel an update (and keep polling while CloudFormation rolls it
    back), or stop with InfraUpdateFailed. Waiting past the deadline is bounded at twice the deadline."""
    action = app_stack.at_deadline(state.phase, status)
    late = f"stack {name} did not settle within its {spec.timeout_seconds} s deadline ({status})"
    if action == "CANCEL" and cloudformation.cancel_update_stack(name):
        state.phase = "cancelling"
        state.detail = f"{late}: cancelling the update; CloudFormation rolls it back"
        observability.count("StackOperation", operation="CANCEL")
        return
    if action in ("WAIT", "CANCEL") and state.elapsed_seconds + spec.poll_seconds <= 2 * spec.timeout_seconds:
        return  # (an update with nothing left to cancel has just ended: the next poll sees how)
    if action == "DISCARD":
        discard(view)
        raise InfraUpdateFailed(f"{late}: its change set was not ready, and was deleted; nothing was changed")
    if state.phase == "cancelling":
        raise InfraUpdateFailed(
            f"{late}: the update was cancelled, but CloudFormation had not finished rolling it back after "
            f"{state.elapsed_seconds} s; it goes on in CloudFormation, and the next deployment waits for it"
        )
    if state.phase == "executing":
        raise InfraUpdateFailed(
            f"{late}: the {state.operation} goes on in CloudFormation (it cannot be cancelled); nothing was "
            "deployed, and the next deployment waits for it"
        )
    raise InfraUpdateFailed(f"{late}: another operation on it is still running; nothing was changed")


def _planned(
    state: app_stack.StackState,
    request: DeploymentRequest,
    event: dict[str, Any],
    running: dict[str, Any] | None,
    stack_name: str,
) -> dict[str, Any]:
    state.phase, state.status = "done", "PLANNED"
    stack_plan: dict[str, Any] = {
        "name": stack_name,
        "operation": state.operation,
        "changes": state.changes,
        "summary": app_stack.describe_changes(state.changes),
    }
    if state.operation == "CREATE" and request.stack is not None and request.stack.init_command:
        stack_plan["database_init"] = list(request.stack.init_command)
    return {**state.to_dict(), "plan": deploy_plan(request, event["image"], running, stack_plan)}


def _refuse_destructive_init(spec: StackSpec, key: str, stack_name: str, settings: Settings) -> None:
    """A stack that exists, whose database stepdeploy never initialised (no SCHEMA item: created with
    ``init_command: []``, or by another installation), may hold data: its init (``updatedb -s`` by default
    drops and re-seeds the table) runs only with ``allow_destructive_init``. Raises DatabaseInitRefused
    before anything changes. (A database the deployment creates is empty: its init needs no consent.)"""
    if not spec.init_command or spec.allow_destructive_init:
        return
    if control.get_schema(settings.control_table, key) is not None:
        return  # DONE: nothing runs; STARTED: ClaimDatabaseInit decides (DatabaseInitUncertain)
    raise DatabaseInitRefused(
        f"stack {stack_name} exists but stepdeploy never initialised its database, which may hold data: "
        f"{' '.join(spec.init_command)!r} could wipe it. Set $.stack.init_command to [] if the database is "
        "initialised already, or $.stack.allow_destructive_init to true to run it anyway; nothing was changed"
    )


def _ready(
    state: app_stack.StackState, request: DeploymentRequest, view: app_stack.StackView, settings: Settings
) -> dict[str, Any]:
    """The stack (as just described) is as requested: complete the request from its outputs; decide
    the database init."""
    assert request.stack is not None
    completed = DeploymentRequest.from_dict(
        app_stack.complete_request(request.to_dict(), view.outputs, view.parameters)
    )
    state.phase, state.status = "done", "READY"
    state.detail = f"{state.operation}: {len(state.changes)} resource change(s)"
    out = {**state.to_dict(), "request": completed.to_dict(), "outputs": dict(view.outputs)}
    command = list(request.stack.init_command)
    key = request.lock_key
    schema = control.get_schema(settings.control_table, key) if command else None
    consent = state.operation == "CREATE" or request.stack.allow_destructive_init  # (a new database is empty)
    if command and (schema is None or schema["status"] != "DONE") and (consent or schema is not None):
        # (STARTED: ClaimDatabaseInit decides)
        out["database"] = {  # run with the revision about to run ($.revision.new), before the service moves
            "initialise": True,
            "cluster": completed.target.cluster,
            "container": completed.target.container,
            "command": command,
            "subnets": [s for s in view.outputs.get("PrivateSubnetIds", "").split(",") if s],
            "security_groups": [g for g in view.outputs.get("TaskSecurityGroupId", "").split(",") if g],
        }
    else:
        out["database"] = {"initialise": False}
    return out


#: what EnsureStack does for a service deployment CloudFormation started, per follow phase (the rest: wait)
STACK_FOLLOW_PHASES = ("HOOK", "SHIFT", "FAILED")


def gate_stack_service(
    state: app_stack.StackState, request: DeploymentRequest, view: app_stack.StackView | None, name: str
) -> int | None:
    """While CloudFormation creates, updates or rolls back the stack, answer the PAUSE hooks of the BLUE_GREEN,
    CANARY or LINEAR service deployment it started, with the gates a release gets (as FollowDeployment does):
    CloudFormation waits for the service, and a hook nobody answers times out into a rollback. A failing gate
    takes the deployment back, and CloudFormation then rolls the stack back: the gate's error waits in
    ``state.gate_failure`` (the first one) until the stack has settled. Returns the seconds until the next gate
    round, or None when there is nothing to gate."""
    service_arn = cloudformation.resource_id(name, "Service")
    if service_arn is None:
        return None  # not created yet
    service = ecs.describe_service(*decisions.service_of(service_arn))
    if service.strategy == "ROLLING" or not service.current_service_deployment:
        return None
    deployment = ecs.service_deployment(service.current_service_deployment)
    now = clock.now()
    known = state.follow if state.follow.get("deployment") == deployment.arn else {"deployment": deployment.arn}
    follow = decisions.observed(FollowState.from_dict(known), deployment, now)
    state.follow = asdict(follow)
    phase = decisions.follow_phase(deployment, follow)
    if phase not in STACK_FOLLOW_PHASES or (phase == "FAILED" and state.gate_failure):
        return None
    gating = app_stack.gating_request(request.to_dict(), view, service.strategy)
    if gating is None:  # being created: no user reaches the first revision yet, and VERIFY gates it after
        if deployment.hook is not None:
            ecs.answer_hook(deployment.arn, deployment.hook.id, "CONTINUE")
        return None
    if view is None or view.status != "UPDATE_IN_PROGRESS":  # (a person holds the release, not its rollback)
        gating["approval"] = None
    poll = _Poll(DeploymentRequest.from_dict(gating), deployment, follow, service.task_definition, now)
    try:
        follow = _FOLLOW[phase](poll)
    except (HealthCheckFailed, AlarmTriggered, RolloutFailed, HookTimedOut, ApprovalRejected) as exc:
        failure = {"error": type(exc).__name__, "cause": str(exc)}
        observability.logger().warning("the stack's service deployment is taken back", extra=failure)
        state.gate_failure = state.gate_failure or failure
        return None
    state.follow = asdict(follow)
    return follow.wait_seconds or None


def record_database_init(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The destructive one-off initialisation runs at most once per service:

    - ``claim``: before ``ecs:runTask.sync``, claim it (STARTED). A claim of another deployment means an
      initialisation started and never reported its end: raise DatabaseInitUncertain, a person decides.
    - after the task: its container must have exited 0; then record DONE. Raises DatabaseInitFailed; the
      claim is given up only when the task certainly did not initialise anything (it exited non-zero, or
      ECS refused to start it), so the next deployment tries again; otherwise (a timeout) it stays."""
    database, key, deployment_id = event["database"], event["service_key"], event["deployment_id"]
    command = " ".join(database["command"])
    if event.get("claim"):
        return _claim_database_init(settings, key, deployment_id, command)
    error = event.get("error")
    if error:
        name = str(error.get("Error", ""))
        if name.startswith(("ECS.", "AmazonECS.")):  # the RunTask call (or its placement) failed: no task ran
            control.release_schema_claim(settings.control_table, key, deployment_id)
            detail = "no task was started; the next deployment tries again"
        else:
            detail = (
                "the task may still run, or have run: it will not be run again until a person checks "
                f"(the item service={key}, item=SCHEMA of table {settings.control_table} stays STARTED)"
            )
        raise DatabaseInitFailed(
            f"database initialisation ({command}) did not complete: {name}: {str(error.get('Cause', ''))[:800]}"
            f" -- {detail}"
        )
    task = event.get("task") or {}
    verdict = decisions.init_task_verdict(task, database["container"])
    if verdict is not None:
        control.release_schema_claim(settings.control_table, key, deployment_id)
        raise DatabaseInitFailed(f"database initialisation ({command}) failed: {verdict}")
    task_arn = str(task.get("TaskArn", ""))
    control.set_schema(settings.control_table, key, deployment_id, task_arn, command)
    return {"initialised": True, "task": task_arn}


def _claim_database_init(settings: Settings, key: str, deployment_id: str, command: str) -> dict[str, Any]:
    prior = control.claim_schema(settings.control_table, key, deployment_id, command, int(clock.now()))
    if prior is None:
        return {"claimed": True}
    if prior.get("status") == "DONE":  # (only if another deployment initialised it since EnsureStack looked)
        raise DatabaseInitUncertain(f"the database of {key} was initialised meanwhile by {prior.get('deployment_id')}")
    raise DatabaseInitUncertain(
        f"the database initialisation ({prior.get('command', command)}) of {key} was started by deployment "
        f"{prior.get('deployment_id', '?')}, which never reported how it ended: it may have run. It is "
        "destructive, so stepdeploy does not run it again. A person must check the database: if the schema "
        f"is in place, set status = DONE on the item service={key}, item=SCHEMA of table "
        f"{settings.control_table}; to run the initialisation again, delete that item"
    )


def execution_ended(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """EventBridge 'Step Functions Execution Status Change' (any final status): free the execution's
    locks, give the CodePipeline job that started it its result, and record an execution that ended
    without a deployment record (stopped, timed out, or failed past its Record* states)."""
    detail = event.get("detail") or {}
    arn, status = detail.get("executionArn"), detail.get("status")
    if not isinstance(arn, str) or status not in ("SUCCEEDED", *ENDED_OUTCOMES):
        raise ValueError("not a final Step Functions execution status change event (detail.executionArn, status)")
    state = _last_workflow_state(arn)
    try:  # undo what the execution left moving while it still holds its lock (no other deployment started)
        taken_back = _take_back_ended(state) if status != "SUCCEEDED" else None
        if taken_back is None and status in ("ABORTED", "TIMED_OUT"):
            taken_back, state = _roll_back_ended(state)
    finally:
        released = [
            key
            for key in control.locks_held_by(settings.control_table, arn)
            if control.release_lock(settings.control_table, key, arn)
        ]
        for key in control.locks_held_by(settings.control_table, arn, "APPROVAL"):
            control.clear_approval(settings.control_table, key, arn)  # no one can answer it any more
    job = pipeline.job_of_execution(str(detail.get("name") or arn.rsplit(":", 1)[-1]))
    answer = answer_job(job, arn)[1] if job is not None else None
    recorded = _record_ended(arn, status, state, taken_back, settings)
    return {
        "execution": arn,
        "status": status,
        "released": released,
        "job": answer,
        "recorded": recorded,
        **({"rolled_back": taken_back} if taken_back else {}),
    }


def _take_back_ended(state: dict[str, Any] | None) -> str | None:
    """An execution that ended early never leaves a service deployment paused at a hook or shifting traffic:
    roll it back (traffic returns to the source revision, still running; for one a stack update started,
    CloudFormation then rolls the stack back). Returns its ARN when it did."""
    state = state or {}
    follow = (state.get("active") or {}).get("follow") or (state.get("stack") or {}).get("follow") or {}
    if not follow.get("deployment") or follow.get("status") == "SUCCEEDED":
        return None
    deployment = ecs.service_deployment(str(follow["deployment"]))
    if deployment.status in decisions.ROLLING_BACK or not take_back(deployment):
        return None
    return deployment.arn


def _roll_back_ended(state: dict[str, Any] | None) -> tuple[str | None, dict[str, Any] | None]:
    """A ROLLING deployment stopped (or timed out) after it moved the service and before its new revision
    passed its gates: point the service back at the revision it rolls back to (the last verified one, Guard),
    as its own rollback would. Returns what was done (for the record's cause) and the state as it is now;
    (None, state) when there is nothing to roll back (the stack owns the revision, a refresh, no earlier one)."""
    active = (state or {}).get("active") or {}
    revision = (state or {}).get("revision") or {}
    previous, new = revision.get("previous"), active.get("task_definition")
    if (
        state is None
        or active.get("phase") != "deploy"
        or not active.get("changed")
        or active.get("follow")
        or (active.get("bake") or {}).get("status") == "PASSED"
        or revision.get("via") == "stack"
        or (state.get("intent") or {}).get("mode") == "refresh"
        or not previous
        or previous == new
    ):
        return None, state
    service = (state.get("request") or {}).get("service") or {}
    if ecs.describe_service(str(service["cluster"]), str(service["service"])).task_definition != new:
        return None, state  # the service moved on (a later deployment, or a second delivery of this end)
    ecs.update_service(str(service["cluster"]), str(service["service"]), str(previous))
    done = (
        f"stepdeploy rolled the service back to {decisions.short_revision(str(previous))}, the last verified "
        f"revision (its rollout replaces the tasks of {decisions.short_revision(str(new))}, which never passed "
        "its health gates; no gate follows it)"
    )
    rolled = {**active, "phase": "rollback", "task_definition": previous, "changed": True}
    return done, {**state, "active": rolled}


def _record_ended(
    execution_arn: str, status: str, state: dict[str, Any] | None, taken_back: str | None, settings: Settings
) -> str | None:
    """Record an execution that ended without a record: its last state from the history. None when
    nothing is recorded (rejected before a service was known, a plan, a dispatch, or already recorded).
    A Record* step that failed left its outcome in ``$.result`` (``unrecorded``): it is written as reached."""
    if state is None or not state.get("request") or state["request"].get("plan"):
        return None  # rejected before a service was known, a dispatch, or a plan (plans never record)
    key = _record_key(state)
    result = state.get("result") or {}
    unfinished = bool(result.get("unrecorded")) and result.get("outcome") in OUTCOMES
    written = records.get_record(settings.deployments_table, key, str(state["deployment_id"]))
    done = written is not None and (written.get("recorded_by") == RECORDED_AT_END or written.get("notified_at"))
    if done or (written is not None and not unfinished):
        return None  # recorded and notified: by the workflow (its step may have failed after that) or here
    ended = pipeline_io.describe_execution(execution_arn)
    if unfinished:  # the Record* step failed, before or after its write landed: finish all it does
        reached = str(result["outcome"])
        error, cause = _outcome_cause(reached, state)
        severity = _severity(reached, state)
        _record(reached, error, cause, severity, state, ended["stopped_at"], execution_arn, settings, RECORDED_AT_END)
        return reached
    if status not in ENDED_OUTCOMES:
        return None
    outcome = ENDED_OUTCOMES[status]
    error = ended["error"] or {"ABORTED": "ExecutionAborted", "TIMED_OUT": "ExecutionTimedOut"}.get(outcome, outcome)
    cause, critical = _ended_cause(outcome, error, ended["cause"], state, key, settings, taken_back)
    severity = "CRITICAL" if critical else SEVERITY[outcome]
    _record(outcome, error, cause, severity, state, ended["stopped_at"], execution_arn, settings, RECORDED_AT_END)
    return outcome


def _last_workflow_state(execution_arn: str) -> dict[str, Any] | None:
    """The newest workflow state (after Normalize) in the execution's history, or None."""
    for payload in pipeline_io.history_payloads(execution_arn):
        try:
            value = json.loads(payload)
        except ValueError:
            continue
        if isinstance(value, dict) and "deployment_id" in value and "intent" in value:
            return value
    return None


def _ended_cause(
    outcome: str,
    error: str,
    detail: str | None,
    state: dict[str, Any],
    key: str,
    settings: Settings,
    taken_back: str | None = None,
) -> tuple[str, bool]:
    """What runs now after an execution ended early, and whether it passed its gates (else: critical)."""
    how = {"ABORTED": "the deployment was stopped", "TIMED_OUT": "the deployment timed out"}.get(
        outcome, "the deployment failed without a record"
    )
    if detail or outcome == "FAILED":
        how += f" ({error}: {detail})"
    active = state.get("active") or {}
    if taken_back and not taken_back.startswith("arn:"):  # (a ROLLING service pointed back: _roll_back_ended)
        return f"{how} -- {taken_back}", False
    if taken_back:
        previous = decisions.short_revision(str((state.get("revision") or {}).get("previous") or ""))
        return (
            f"{how} -- stepdeploy rolled back service deployment {taken_back}: production traffic returns to "
            f"{previous}, which served it before and still runs",
            False,
        )
    running = decisions.short_revision(str(active.get("task_definition") or ""))
    passed = (active.get("bake") or {}).get("status") == "PASSED"
    if active.get("phase") == "rollback" and not passed:
        unverified = f"the rollback to {running} was in progress"
    elif active.get("phase") == "deploy" and active.get("changed") and not passed:
        unverified = f"the service was moved to {running}"
    elif not active and (state.get("stack") or {}).get("phase") in ("executing", "cancelling"):
        unverified = "the stack update that moves the service was in progress in CloudFormation (it goes on)"
    elif active.get("changed"):
        return f"{how} -- {running} passed its health gates and keeps running", False
    else:
        return f"{how} -- {_unchanged(state.get('stack'))}", False
    last = (control.get_last(settings.control_table, key) or {}).get("task_definition")
    verified = (
        f"the last verified revision is {decisions.short_revision(last)}: the next deployment rolls back to it"
        if last
        else "stepdeploy has verified no revision of this service yet"
    )
    return (
        f"{how} while {unverified}, which has not passed its health gates. A person is needed: check the "
        f"service now; {verified}",
        True,
    )


def answer_job(job: str, execution_arn: str) -> tuple[pipeline.Report, str]:
    """Report the execution's status to the CodePipeline job: continue while it runs, else its final
    result (the same whichever path answers). Returns the report and whether it was answered now."""
    status = pipeline_io.describe_execution(execution_arn)
    report = pipeline.report_for(status["status"], status["error"], status["cause"], execution_arn, status["output"])
    if report.kind == "continue":
        token = json.dumps({"executionArn": execution_arn})
        return report, pipeline_io.succeed(job, report.message, continuation_token=token)
    if report.kind == "success":
        return report, pipeline_io.succeed(job, report.message)
    return report, pipeline_io.fail(job, report.message, report.failure_type, execution_arn)


def register_revision(event: dict[str, Any]) -> dict[str, Any]:
    """Register the current revision again with the container pinned to the new image digest."""
    current = event["current"]  # as seen under the lock (Guard)
    task_definition, tags = ecs.describe_task_definition(current["task_definition"])
    spec = decisions.next_task_definition(task_definition, current["container"], event["image"]["uri"], tags)
    new_arn = ecs.register_task_definition(spec)
    return {
        "previous": event.get("rollback_to") or current["task_definition"],  # the last verified one (Guard)
        "new": new_arn,
        "container": current["container"],
        "image": event["image"]["uri"],
    }


def update_service(event: dict[str, Any]) -> dict[str, Any]:
    """Point the service at ``task_definition`` (deploy or rollback); start the rollout poll. A BLUE_GREEN, CANARY
    or LINEAR deployment is then followed (``follow``); its rollback takes back what ECS still has in flight."""
    cluster, service, target = event["cluster"], event["service"], event["task_definition"]
    strategy = StrategySpec(**event["strategy"]) if event.get("strategy") else None
    refresh_deployment: str | None = None
    follow: FollowState | None = None
    took_back: str | None = None
    view = ecs.describe_service(cluster, service)
    primary = view.primary
    if event["phase"] == "rollback" and _took_back_in_flight(view):
        changed = True  # ECS returns traffic to the source revision, which is still running: the poll follows it
        took_back = view.current_service_deployment
    elif event.get("mode") == "refresh" and event["phase"] == "deploy":
        # new tasks of the same revision (they read the secrets again); no revision is registered
        refresh_deployment, started = ecs.force_new_deployment(cluster, service, target)
        changed = True
        if strategy is not None and strategy.progressive:  # through the service's hooks and traffic shift
            follow = _followed(started, service, event)
    elif (
        primary is not None
        and primary.task_definition == target
        and primary.rollout_state == "COMPLETED"
        and len(view.deployments) == 1
    ):
        changed = False  # already there (a rollback before the update took effect): nothing to do
    else:
        hooks = event["phase"] == "deploy"  # a rollback shifts straight back: no pause, no bake
        configuration = (
            decisions.deployment_configuration(
                view.deployment_configuration, strategy, hooks, tuple(event.get("alarm_names") or ())
            )
            if strategy
            else None
        )
        arn = ecs.update_service(cluster, service, target, configuration)
        changed = True
        if hooks and strategy is not None and strategy.progressive:
            follow = _followed(arn, service, event)
    policy = RolloutPolicy(**event["rollout"])
    return {
        "phase": event["phase"],
        "task_definition": target,
        "changed": changed,
        "rollout": asdict(decisions.first_rollout_state(policy, clock.now())),
        "bake": None,
        **({"deployment": refresh_deployment} if refresh_deployment else {}),
        **({"follow": asdict(follow)} if follow else {}),
        **({"took_back": took_back} if took_back else {}),
    }


def _followed(arn: str | None, service: str, event: dict[str, Any]) -> FollowState:
    """The follow loop's start for the service deployment UpdateService started."""
    if arn is None:
        raise RolloutFailed(f"UpdateService on {service} reported no service deployment to follow")
    return FollowState(deployment=arn, wait_seconds=event["rollout"]["poll_seconds"], started_at=clock.now())


def _took_back_in_flight(view: decisions.ServiceView) -> bool:
    """Roll back the service deployment ECS still runs (paused at a hook, or shifting traffic); True when ECS is
    taking (or took) it back, so no new deployment is needed."""
    if view.strategy == "ROLLING" or not view.current_service_deployment:
        return False
    return take_back(ecs.service_deployment(view.current_service_deployment))


def take_back(deployment: decisions.ServiceDeploymentView) -> bool:
    """ROLLBACK a deployment that has not finished (at its paused hook, or by StopServiceDeployment).
    Returns True when it is (now) going back to its source revision."""
    if deployment.status in decisions.ROLLING_BACK:
        return True
    if deployment.finished:
        return False
    if deployment.hook is not None:
        ecs.answer_hook(deployment.arn, deployment.hook.id, "ROLLBACK")
    else:
        ecs.roll_back_deployment(deployment.arn)
    return True


def check_rollout(event: dict[str, Any]) -> dict[str, Any]:
    request = DeploymentRequest.from_dict(event["request"])
    active = event["active"]
    if active.get("took_back"):
        _check_taken_back(ecs.service_deployment(active["took_back"]))
    view = ecs.describe_service(request.target.cluster, request.target.service)
    state = decisions.assess_rollout(
        view,
        active["task_definition"],
        RolloutState.from_dict(active["rollout"]),
        request.rollout,
        active.get("deployment"),
        clock.now(),
    )
    return asdict(state)


def _check_taken_back(deployment: decisions.ServiceDeploymentView) -> None:
    """A service deployment ECS took back must get back: ROLLBACK_FAILED means the source revision is not serving."""
    if deployment.status == "ROLLBACK_FAILED":
        raise RolloutFailed(
            f"ECS could not take service deployment {deployment.arn} back (ROLLBACK_FAILED: {deployment.reason})"
        )


def gate_round(request: DeploymentRequest, revision: str, deployment: str | None = None) -> list[decisions.GateResult]:
    """Observe every configured gate once."""
    policy: HealthPolicy = request.health
    assert policy.url is not None  # filled from the stack outputs before any gate runs
    gates = [decisions.probe_gate(http_probe.probe(policy.url, policy.probe_timeout_seconds), policy)]
    view = ecs.describe_service(request.target.cluster, request.target.service)
    if policy.target_group_arn:
        # a blue/green service swaps its target groups on every release: the targets behind both are its tasks
        groups = dict.fromkeys([policy.target_group_arn, view.advanced.get("alternateTargetGroupArn")])
        gates.append(decisions.target_gate([s for g in groups if g for s in elbv2.target_states(g)]))
    gates.append(decisions.primary_gate(view, revision, deployment))
    if policy.alarm_names:
        gates.append(decisions.alarm_gate(cloudwatch.alarm_states(policy.alarm_names), policy.alarm_names))
    return gates


def check_health(event: dict[str, Any]) -> dict[str, Any]:
    request = DeploymentRequest.from_dict(event["request"])
    active = event["active"]
    state = decisions.advance_bake(
        BakeState.from_dict(active.get("bake")),
        gate_round(request, active["task_definition"], active.get("deployment")),
        request.health,
        active["task_definition"],
        clock.now(),
    )
    return asdict(state)


#: the header the test listener rule requires (stacks/app.yaml); its value is a secret
TEST_TRAFFIC_HEADER = "X-Stepdeploy-Test"


def follow_gate_round(request: DeploymentRequest, stage: str, attempts: int = 1) -> list[decisions.GateResult]:
    """Gates on the new revision of a BLUE_GREEN/CANARY/LINEAR deployment: through the test listener (the new
    revision only) always, through production once it takes production traffic, and the alarms. ``attempts``:
    probes of a URL whose probe fails, in a row, at once (see confirmed_round)."""
    return confirmed_round(request, stage, attempts)[0]


def confirmed_round(
    request: DeploymentRequest, stage: str, attempts: int = 1
) -> tuple[list[decisions.GateResult], int]:
    """follow_gate_round, and the longest run of consecutive failing probes of one URL in it: a failing probe is
    probed again at once, up to ``attempts`` probes in all, until one passes. While users take the new revision's
    share of production, confirming a failure at once spares them the gate interval that waiting for the next
    round would cost; a single transient failure passes on its second probe."""
    strategy, policy = request.strategy, request.health
    assert strategy is not None and strategy.test_url is not None  # checked by Normalize
    token = (
        decisions.test_token(secrets.secret_string(strategy.test_header_secret_arn))
        if strategy.test_header_secret_arn
        else None
    )
    headers = {TEST_TRAFFIC_HEADER: token} if token else None
    tested, streak = _probe_in_a_row(replace(policy, url=strategy.test_url), attempts, headers)
    gates = [replace(tested, gate="test-traffic")]
    if stage != decisions.HOOK_STAGES[0]:
        production, in_production = _probe_in_a_row(policy, attempts)
        gates.append(production)
        streak = max(streak, in_production)
    if policy.alarm_names:
        gates.append(decisions.alarm_gate(cloudwatch.alarm_states(policy.alarm_names), policy.alarm_names))
    return gates, streak


def _probe_in_a_row(
    policy: HealthPolicy, attempts: int, headers: dict[str, str] | None = None
) -> tuple[decisions.GateResult, int]:
    """The first probe's gate of ``policy.url``, and how many probes failed in a row (up to ``attempts``)."""
    assert policy.url is not None
    first: decisions.GateResult | None = None
    for failed in range(attempts):
        gate = decisions.probe_gate(http_probe.probe(policy.url, policy.probe_timeout_seconds, headers), policy)
        first = first or gate
        if gate.passed:
            return first, failed
    assert first is not None
    if attempts > 1:
        first = replace(first, detail=f"{first.detail} ({attempts} probes in a row)")
    return first, attempts


#: the window of ALB metrics compared between green and blue at each gate round of a traffic shift
COMPARE_WINDOW_SECONDS = 300


def green_vs_blue(request: DeploymentRequest, now: float) -> decisions.GateResult:
    """Compare the new revision's target group with the current one's on the ALB metrics: the new revision's
    group is the one the test listener rule sends its traffic to."""
    view = ecs.describe_service(request.target.cluster, request.target.service)
    weights = elbv2.forward_weights(view.advanced["testListenerRule"])
    green = max(weights, key=lambda group: weights[group])
    blue = next((group for group in weights if group != green), None)
    balancer = elbv2.load_balancer_of(green)
    if blue is None or balancer is None:
        return decisions.GateResult("green-vs-blue", True, "no second target group behind a load balancer")
    start = now - COMPARE_WINDOW_SECONDS
    return decisions.compare_gate(
        cloudwatch.target_group_stats(balancer, green, start, now),
        cloudwatch.target_group_stats(balancer, blue, start, now),
    )


def follow_deployment(event: dict[str, Any]) -> dict[str, Any]:
    """One poll of a BLUE_GREEN, CANARY or LINEAR service deployment (see decisions.follow_phase). A failing gate
    takes the deployment back (ROLLBACK at the hook, or StopServiceDeployment) and raises its named error."""
    request = DeploymentRequest.from_dict(event["request"])
    active = event["active"]
    state = FollowState.from_dict(active["follow"])
    deployment = ecs.service_deployment(state.deployment)
    now = clock.now()
    if state.status == "APPROVAL":  # back from the approval pause: it does not count against the deadline
        state = replace(state, status="FOLLOWING", held_seconds=state.held_seconds + now - state.held_at)
    state = decisions.observed(state, deployment, now)
    phase = decisions.follow_phase(deployment, state)
    assert request.strategy is not None  # a followed deployment has one
    deadline = decisions.follow_deadline(request.rollout, request.health, request.strategy)
    polls = decisions.follow_poll_limit(request.rollout, request.health, request.strategy)
    elapsed = now - state.started_at - state.held_seconds
    if phase in ("HOOK", "SHIFT", "WAIT") and (elapsed > deadline or state.polls > polls):
        take_back(deployment)
        raise RolloutTimedOut(
            f"service deployment {deployment.arn} still {deployment.status} at {deployment.stage} after "
            f"{int(elapsed)} s and {state.polls} polls (limits {deadline} s, {polls} polls); rolled back"
        )
    return asdict(_FOLLOW[phase](_Poll(request, deployment, state, active["task_definition"], now)))


@dataclass(frozen=True)
class _Poll:
    """What one poll of a followed service deployment acts on (the argument of every _FOLLOW handler)."""

    request: DeploymentRequest
    deployment: decisions.ServiceDeploymentView
    state: FollowState
    revision: str  # the new task definition
    now: float


def _follow_succeeded(poll: _Poll) -> FollowState:
    """ECS finished the deployment after stepdeploy's gates passed on production. When ECS guarded the bake alone
    (decisions.bake_left_to_ecs), one gate round on production closes it: a failing one hands the release to the
    health gates (VERIFY), which roll it back if it does not recover."""
    request = poll.request
    assert request.strategy is not None  # a followed deployment has one
    if decisions.bake_left_to_ecs(request.strategy, request.health):
        gates = follow_gate_round(request, poll.deployment.stage)
        bake = {"status": "CHECKING", "last": [asdict(g) for g in gates]}
        if not all(g.passed for g in gates):
            return replace(poll.state, status="VERIFY", gated="SUCCESSFUL", bake=bake, wait_seconds=0)
        return replace(poll.state, status="SUCCEEDED", gated="SUCCESSFUL", bake=bake, wait_seconds=0)
    return replace(poll.state, status="SUCCEEDED", wait_seconds=0)


def _follow_verify(poll: _Poll) -> FollowState:
    return replace(poll.state, status="VERIFY", wait_seconds=0)


def _follow_failed(poll: _Poll) -> FollowState:
    d = poll.deployment
    how = f"({d.status}{': ' + d.reason if d.reason else ''})"
    if d.triggered_alarms:
        raise AlarmTriggered(
            f"{decisions.short_revision(poll.revision)}: CloudWatch alarm(s) {', '.join(d.triggered_alarms)} went "
            f"into ALARM while it took production traffic: ECS took service deployment {d.arn} back {how}"
        )
    if d.timed_out:
        raise HookTimedOut(
            f"the lifecycle hook of service deployment {d.arn} at {d.stage} timed out before stepdeploy answered it: "
            f"ECS took the deployment back by the hook's timeout action {how}. stepdeploy's polls stalled: check the "
            "FollowDeployment function's errors and throttles"
        )
    raise RolloutFailed(f"ECS took service deployment {d.arn} back {how}")


def _follow_hook(poll: _Poll) -> FollowState:
    request, deployment, state = poll.request, poll.deployment, poll.state
    assert deployment.hook is not None
    if state.approval == "AWAITING":
        return _follow_answer(poll)
    bake = BakeState.from_dict(state.bake if state.gated == deployment.stage else None)
    gates = follow_gate_round(request, deployment.stage)
    try:
        bake = decisions.advance_bake(bake, gates, request.health, poll.revision, poll.now)
    except (HealthCheckFailed, AlarmTriggered, RolloutFailed):
        take_back(deployment)  # ROLLBACK at the hook
        raise
    if bake.status == "PASSED" and _hold_for_approval(request, deployment, state):
        # green passed on the test listener, 0 % production: a person holds it here (AwaitReleaseApproval)
        return replace(
            state, status="APPROVAL", approval="AWAITING", held_at=poll.now, gated="", bake={}, wait_seconds=0
        )
    if bake.status == "PASSED":
        ecs.answer_hook(deployment.arn, deployment.hook.id, "CONTINUE")
        passed = [*state.passed, deployment.stage]
        assert request.strategy is not None  # a followed deployment has one
        wait = (
            decisions.after_production_hook_wait(request.strategy, request.health)
            if deployment.stage == decisions.HOOK_STAGES[-1]
            else request.health.interval_seconds
        )
        return replace(state, gated="", bake={}, passed=passed, wait_seconds=wait)
    return replace(state, gated=deployment.stage, bake=asdict(bake), wait_seconds=bake.wait_seconds)


def _hold_for_approval(
    request: DeploymentRequest, deployment: decisions.ServiceDeploymentView, state: FollowState
) -> bool:
    """Ask a person once per deployment, at the test-traffic hook (green verified, 0 % production)."""
    return request.approval is not None and deployment.stage == decisions.HOOK_STAGES[0] and not state.approval


def _follow_answer(poll: _Poll) -> FollowState:
    """The person's answer (or the approval's timeout) for a release held at its POST_TEST_TRAFFIC_SHIFT hook:
    CONTINUE, or ROLLBACK at the hook and fail with ApprovalRejected."""
    request, deployment, state = poll.request, poll.deployment, poll.state
    assert deployment.hook is not None and request.approval is not None
    approved, detail = decisions.approval_verdict(state.answer, request.approval)
    if not approved:
        take_back(deployment)  # ROLLBACK at the hook: production traffic never left the source revision
        raise ApprovalRejected(f"{detail} -- {decisions.short_revision(poll.revision)} never took production traffic")
    ecs.answer_hook(deployment.arn, deployment.hook.id, "CONTINUE")
    passed = [*state.passed, deployment.stage]
    return replace(
        state, approval="APPROVED", approved=detail, passed=passed, wait_seconds=request.health.interval_seconds
    )


def _follow_shift(poll: _Poll) -> FollowState:
    request, deployment, state = poll.request, poll.deployment, poll.state
    bake = BakeState.from_dict(state.bake if state.gated == "SHIFT" else None)
    attempts = max(request.health.unhealthy_threshold - bake.failures, 1)
    gates, streak = confirmed_round(request, deployment.stage, attempts)
    if deployment.production_weight < 100:  # a canary or linear step: blue takes production traffic too
        gates.append(green_vs_blue(request, poll.now))
    try:
        bake = decisions.fold_shift_round(bake, gates, request.health, poll.revision, streak)
    except (HealthCheckFailed, AlarmTriggered):
        take_back(deployment)  # StopServiceDeployment(ROLLBACK)
        raise
    return replace(state, gated="SHIFT", bake=asdict(bake), wait_seconds=decisions.shift_wait(request.health))


def _follow_wait(poll: _Poll) -> FollowState:
    return replace(poll.state, wait_seconds=poll.request.rollout.poll_seconds)


_FOLLOW: dict[str, Callable[[_Poll], FollowState]] = {
    "SUCCEEDED": _follow_succeeded,
    "VERIFY": _follow_verify,
    "FAILED": _follow_failed,
    "HOOK": _follow_hook,
    "SHIFT": _follow_shift,
    "WAIT": _follow_wait,
}


def request_approval(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Hold the release for a person: store the task token where an operator finds it (the service's APPROVAL
    control item) and announce it on the notification topic with the commands that answer it. The execution
    waits for SendTaskSuccess/SendTaskFailure with that token (or the approval's timeout)."""
    request = DeploymentRequest.from_dict(event["request"])
    assert request.approval is not None  # the state machine asks only for a request with one
    key, image, intent = request.lock_key, event["image"], event["intent"]
    now = int(clock.now())
    attributes = {
        "deployment_id": str(event["deployment_id"]),
        "target": str(intent.get("target") or key),
        "image": str(image.get("uri") or ""),
        "tag": str(image.get("tag") or ""),
        "digest": str(image.get("digest") or ""),
        "stage": str(event["stage"]),
        "trigger": request.trigger,
        "reason": request.reason or "",
        "requested_at": str(now),
        "answer_by": str(now + request.approval.timeout_seconds),
        "on_timeout": request.approval.on_timeout,
    }
    control.set_approval(
        settings.control_table,
        key,
        str(event["execution_arn"]),
        str(event["token"]),
        attributes,
        now + request.approval.timeout_seconds + 86400,
    )
    message = {
        "outcome": "AWAITING_APPROVAL",
        **{k: v for k, v in attributes.items() if v},
        "service": key,
        "execution_arn": event["execution_arn"],
        "approve": f"stepdeploy approve {attributes['target']}  (or: aws stepfunctions send-task-success "
        '--task-token <token> --task-output \'{"approved": true, "by": "<you>"}\')',
        "reject": f"stepdeploy reject {attributes['target']} --reason '...'  (or: aws stepfunctions "
        "send-task-failure --task-token <token> --error ApprovalRejected --cause '<why>')",
        "token": event["token"],
    }
    subject = f"stepdeploy: {attributes['target']} awaits approval ({attributes['tag'] or attributes['digest']})"
    records.publish(settings.notification_topic_arn, subject, message, "INFO")
    return {"requested": True}


def record_outcome(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Write the deployment record, notify, and return the error/cause the execution ends with."""
    outcome = event["outcome"]
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    state = event["state"]
    error, cause = _outcome_cause(outcome, state)
    if (state.get("request") or {}).get("plan"):  # a plan that failed: it changed nothing, so no record either
        return {"outcome": outcome, "error": error, "cause": f"{cause} (plan mode: nothing was recorded)"}
    severity = _severity(outcome, state)
    _record(outcome, error, cause, severity, state, event.get("ended_at"), event.get("execution_arn"), settings)
    result: dict[str, Any] = {"outcome": outcome, "error": error, "cause": cause}
    if outcome in ("SUCCEEDED", "SKIPPED"):  # the execution ends SUCCEEDED: its output is the summary
        result["summary"] = execution_summary(outcome, state)
    return result


#: the keys of an execution's output when it ends SUCCEEDED at Deployed or Skipped (statemachine/deploy.asl.json
#: builds the same keys where the record function failed: SucceededUnrecorded, SkippedUnrecorded)
SUMMARY_KEYS = (
    "outcome",
    "deployment_id",
    "service",
    "target",
    "mode",
    "image",
    "revision",
    "running_image",
    "reason",
    "detail",
    "record",
)


def execution_summary(outcome: str, state: dict[str, Any]) -> dict[str, Any]:
    """The short output of an execution that ends SUCCEEDED: what it did (DEPLOYED, VERIFIED, REFRESHED or
    SKIPPED), the image asked for, the revision and image that run now, why (a skip), and its record."""
    guard, intent, key = state.get("guard") or {}, state.get("intent") or {}, _record_key(state)
    if outcome == "SKIPPED":
        running = guard.get("running") or {}
        revision, running_image = running.get("task_definition"), running.get("image")
        word, detail = "SKIPPED", str(guard.get("detail") or "")
    else:
        revision = (state.get("active") or {}).get("task_definition")
        running_image = (state.get("revision") or {}).get("image") or (state.get("image") or {}).get("uri")
        word = str(guard.get("success") or "DEPLOYED")
        detail = _success_detail(word, decisions.short_revision(str(revision or "")), running_image, guard)
    return {
        "outcome": word,
        "deployment_id": state["deployment_id"],
        "service": key,
        "target": intent.get("target"),
        "mode": intent.get("mode"),
        "image": state.get("image"),
        "revision": revision,
        "running_image": running_image,
        "reason": guard.get("reason") or "",
        "detail": detail,
        "record": {"service": key, "deployment_id": state["deployment_id"], "written": True},
    }


def _success_detail(word: str, revision: str, image: str | None, guard: dict[str, Any]) -> str:
    if word == "REFRESHED":
        return f"new tasks of {revision} ({image}) passed their health gates"
    if word == "VERIFIED":
        why = f" ({guard['reason']}: {guard.get('detail') or ''})" if guard.get("reason") else ""
        return f"{revision} ({image}) passed its health gates; no new image was released{why}"
    return f"{image} runs as {revision} and passed its health gates"


def _severity(outcome: str, state: dict[str, Any]) -> str:
    if outcome == "FAILED" and (state.get("failure") or {}).get("Error") == StackStuck.__name__:
        return "CRITICAL"  # CloudFormation cannot get the stack out of a failed rollback without a person
    refresh = (state.get("intent") or {}).get("mode") == "refresh"
    if refresh and outcome == "FAILED" and state.get("active"):
        return "CRITICAL"  # new tasks failed and the old ones hold a rotated-out password: likely down
    unverified = _created_unverified(state.get("stack")) or _updated_unverified(state.get("stack"))
    if outcome == "FAILED" and not state.get("active") and unverified:
        return "CRITICAL"  # the service runs a revision the stack created or updated, which never passed its gates
    if outcome == "FAILED" and _nothing_to_roll_back_to(state.get("revision") or {}):
        return "CRITICAL"  # what runs failed its gates and stays: found by the full fault matrix (stack-first)
    return SEVERITY[outcome]


def _nothing_to_roll_back_to(revision: dict[str, Any]) -> bool:
    return bool(revision.get("previous")) and revision.get("previous") == revision.get("new")


def _created_unverified(stack_state: dict[str, Any] | None) -> bool:
    """The stack was just created (so its service runs the image), and the image step never verified it."""
    return (stack_state or {}).get("status") == "READY" and (stack_state or {}).get("operation") == "CREATE"


def _updated_unverified(stack_state: dict[str, Any] | None) -> bool:
    """The stack's update replaced the task definition (so the service runs a new revision), and the image step
    never verified it (found by the full fault matrix: stack-broken, GuardImage failing)."""
    state = stack_state or {}
    replaced = any(c.get("type") == "AWS::ECS::TaskDefinition" for c in state.get("changes") or [])
    return state.get("status") == "READY" and state.get("operation") == "UPDATE" and replaced


def _outcome_cause(outcome: str, state: dict[str, Any]) -> tuple[str | None, str | None]:
    """The error and the cause a person reads for an outcome the workflow reached itself."""
    revision = state.get("revision") or {}
    intent = state.get("intent") or {}
    refresh = intent.get("mode") == "refresh"
    failure_name, failure_cause = decisions.describe_failure(state.get("failure"))
    rollback_name, rollback_cause = decisions.describe_failure(state.get("rollback_failure"))
    guard = state.get("guard") or {}
    if outcome == "SUCCEEDED":
        error, cause = None, None
    elif outcome == "SKIPPED":
        error, cause = None, f"skipped ({guard.get('reason')}): {guard.get('detail')}"
    elif outcome == "ROLLBACK_FAILED":
        error = "RollbackFailed"
        target = revision.get("previous", "")
        if revision.get("via") == "stack":
            target = (state.get("active") or {}).get("task_definition") or target
        cause = (
            f"deployment failed ({failure_name}: {failure_cause}); rollback to "
            f"{decisions.short_revision(target)} then failed "
            f"({rollback_name}: {rollback_cause}). The service needs attention."
        )
    elif outcome == "ROLLED_BACK":
        error = failure_name
        restored = (state.get("active") or {}).get("task_definition") or revision.get("previous", "")
        how = " through the stack" if revision.get("via") == "stack" else ""
        cause = (
            f"{failure_cause} -- rolled back{how} to {decisions.short_revision(restored)}, "
            "which passed its health gates"
        )
    elif not state.get("active"):  # failed before the service was touched
        error, cause = failure_name, f"{failure_cause} -- {_unchanged(state.get('stack'))}"
    elif refresh:
        error = failure_name
        cause = (
            f"{failure_cause} -- the refresh (new tasks of {decisions.short_revision(revision.get('new', ''))}, "
            f"{'after the rotation of ' + str(intent.get('secret')) if intent.get('secret') else 'same image'}) "
            "failed its gates. There is nothing to roll back to: tasks started before a rotation hold the old "
            "password, which no longer works. The service needs a person now: check the secret, the database "
            'and its connectivity, then refresh again ({"mode": "refresh", "target": '
            f'"{intent.get("target")}"}})'
        )
    elif _nothing_to_roll_back_to(revision):
        error = failure_name
        cause = (
            f"{failure_cause} -- there is no earlier revision to roll back to: "
            f"{decisions.short_revision(revision['new'])} keeps running, and it has not passed its health gates. "
            "A person is needed: fix forward (deploy a fixed image)"
        )
    else:
        error, cause = failure_name, f"{failure_cause} -- {_unchanged(state.get('stack'))}"
    return error, cause


def _record(
    outcome: str,
    error: str | None,
    cause: str | None,
    severity: str,
    state: dict[str, Any],
    ended_at: Any,
    execution_arn: str | None,
    settings: Settings,
    recorded_by: str = "workflow",
) -> None:
    """Write the deployment record (keyed (service, deployment_id)), free the execution's lock and
    its unused digest claim, remember a verified deployment, notify. ``recorded_by``: the workflow's
    Record* step, or the execution-end handler (RECORDED_AT_END) when the execution ended without it."""
    request = state.get("request") or {}
    revision = state.get("revision") or {}
    current = (state.get("current") or {}).get("task_definition")
    intent = state.get("intent") or {}
    refresh = intent.get("mode") == "refresh"
    guard = state.get("guard") or {}
    active = state.get("active") or {}
    stack_state = state.get("stack") or {}
    record = {
        "service": _record_key(state),
        "deployment_id": state["deployment_id"],
        "trigger": request.get("trigger"),
        "image_repository": (state.get("image") or {}).get("repository"),
        "image_digest": (state.get("image") or {}).get("digest"),
        "image_tag": (state.get("image") or {}).get("tag"),
        "image_uri": (state.get("image") or {}).get("uri"),
        "previous_task_definition": revision.get("previous") or current,
        "new_task_definition": revision.get("new"),
        "running_task_definition": active.get("task_definition") if active and outcome != "SKIPPED" else current,
        "mode": intent.get("mode", "deploy"),
        "secret": intent.get("secret"),
        "skip_reason": guard.get("reason") if outcome == "SKIPPED" else None,
        "outcome": outcome,
        "error": error,
        "cause": cause,
        "gate_results": (active.get("bake") or {}).get("last"),
        "rollout": active.get("rollout"),
        "stack": {
            "name": (request.get("stack") or {}).get("name"),
            "operation": stack_state.get("operation"),
            "changes": stack_state.get("changes"),
        }
        if request.get("stack")
        else None,
        "database_initialised": bool((state.get("database_init") or {}).get("initialised")),
        "started_at": state.get("started_at"),
        "ended_at": ended_at,
        "recorded_by": recorded_by,
        "expires_at": settings.expires_at(clock.now()),  # the table's TTL (RecordRetentionDays)
    }
    records.put_record(settings.deployments_table, record)
    key = intent.get("service_key", record["service"])
    if outcome in ENDED_OUTCOMES and not state.get("active") and record["image_digest"] and not refresh:
        # nothing of this deployment ran: its claim on the digest goes, so the same release can be retried
        control.release_claim(settings.control_table, key, str(record["image_digest"]), str(state["deployment_id"]))
    # a refresh deploys nothing new: the last verified image, its push time and revision stay as they are;
    # nor does a deployment that kept the running image (a Duplicate with an infrastructure change)
    running_digest = decisions.digest_of(str(revision.get("image") or ""))
    runs = running_digest in (None, record["image_digest"])  # (an image by tag alone: it is the one resolved)
    if outcome == "SUCCEEDED" and record["image_digest"] and not refresh and runs:
        control.set_last(
            settings.control_table,
            key,
            str(record["image_digest"]),
            str(intent.get("pushed_at", 0)),
            str(record["running_task_definition"]),
            str(state["deployment_id"]),
            str(ended_at) if ended_at else None,
        )
    if execution_arn:
        control.release_lock(settings.control_table, key, execution_arn)
    subject = f"stepdeploy {outcome}: {record['service']} {record['image_tag'] or record['image_digest'] or ''}"
    if refresh:
        subject = f"stepdeploy refresh {outcome}: {record['service']}"
    if severity == "CRITICAL":
        subject = "ALERT " + subject
    records.publish(settings.notification_topic_arn, subject, record, severity)
    _emit_metrics(outcome, state, ended_at)
    records.mark_notified(settings.deployments_table, record["service"], str(state["deployment_id"]), clock.iso_now())


#: why a deployment is skipped (the guard's reasons; the DeploymentSkipped metric's ``reason`` dimension)
SKIP_REASONS = ("AlreadyRunning", "Duplicate", "StaleImage")


def _emit_metrics(outcome: str, state: dict[str, Any], ended_at: Any) -> None:
    """The metrics of an ended deployment (namespace stepdeploy; the dashboard in template.yaml shows them):
    DeploymentOutcome (outcome), DeploymentSkipped (reason), and, in seconds, TimeToDeploy (start to verified),
    TimeToDetect (start to the rollback's start) and TimeToRestore (the rollback's start to its verified end)."""
    observability.count("DeploymentOutcome", outcome=outcome)
    reason = (state.get("guard") or {}).get("reason")
    if outcome == "SKIPPED" and reason in SKIP_REASONS:
        observability.count("DeploymentSkipped", reason=str(reason))
    started, ended = state.get("started_at"), ended_at
    if not started or not ended:
        return
    start, end = decisions.to_epoch(str(started)), decisions.to_epoch(str(ended))
    active = state.get("active") or {}
    if outcome == "SUCCEEDED" and (state.get("intent") or {}).get("mode") == "deploy":
        observability.seconds("TimeToDeploy", end - start)
    rollback_started = (active.get("rollout") or {}).get("started_at")
    if active.get("phase") == "rollback" and rollback_started and outcome in ("ROLLED_BACK", "ROLLBACK_FAILED"):
        observability.seconds("TimeToDetect", float(rollback_started) - start)
        if outcome == "ROLLED_BACK":
            observability.seconds("TimeToRestore", end - float(rollback_started))


def _record_key(state: dict[str, Any]) -> str:
    service = (state.get("request") or {}).get("service") or {}
    return str((state.get("intent") or {}).get("service_key") or f"{service.get('cluster')}/{service.get('service')}")


def _unchanged(stack_state: dict[str, Any] | None) -> str:
    """What a failure before the image step left behind."""
    operation = (stack_state or {}).get("operation")
    if _created_unverified(stack_state):
        return (
            "the stack was created, and its service runs the image, which has not passed its gates: it needs a "
            "person to deploy it again (the next deployment of the same image initialises the database if it "
            "was not, and verifies it)"
        )
    if _updated_unverified(stack_state):
        return (
            "the stack was updated and its service runs the new task definition revision, which has not passed its "
            "gates. A person is needed: deploy the image again to verify it, or roll back (stepdeploy rollback)"
        )
    if (stack_state or {}).get("status") == "READY" and operation == "UPDATE":
        return "the stack was updated; the image was not deployed"
    if (stack_state or {}).get("phase") in ("executing", "cancelling") and operation == "UPDATE":
        # how the update ended (rolled back, could not be, or still going on) is CloudFormation's, said before
        return "stepdeploy deployed nothing after the stack update (stepdeploy status shows what the service runs)"
    return "the service was not changed"


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
        report, answered = answer_job(job, arn)  # (the status-change rule may have answered it first)
        return {"job": job, "result": report.kind, "execution": arn, "message": report.message, "answered": answered}
    except (pipeline.JobConfigurationError, InvalidDeploymentRequest) as exc:
        pipeline_io.fail(job, f"configuration error: {exc}", "ConfigurationError", arn)
        return {"job": job, "result": "failure", "execution": arn, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the pipeline must never hang on a job nobody reports
        pipeline_io.fail(job, f"stepdeploy job action error: {type(exc).__name__}: {exc}", "JobFailed", arn)
        return {"job": job, "result": "failure", "execution": arn, "message": str(exc)}
