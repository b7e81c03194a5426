"""The application stack: its bundled template, parameter rules, outputs, and the pure decisions of
the EnsureStack loop (change set -> execute -> wait, or skip, or plan).

``stacks/app.yaml`` ships in the layer and is sent as ``TemplateBody``. Its parameter rules are
kept in ``stacks/app.parameters.json`` (generated from the template, kept equal by a test) so that a
bad parameter is refused by Normalize, before any lock is taken or any change set exists.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import InfraUpdateFailed, InvalidDeploymentRequest
from .models import (
    INT_RANGES,
    MAX_SHIFT_SECONDS,
    ApprovalSpec,
    HealthPolicy,
    RolloutPolicy,
    StrategySpec,
    carried,
    hook_outlasted,
)

STACKS_DIR = Path(__file__).resolve().parent / "stacks"
TEMPLATE_FILE = STACKS_DIR / "app.yaml"
PARAMETERS_FILE = STACKS_DIR / "app.parameters.json"

#: The parameter that defers the database's deletion protection while stepdeploy creates the stack.
DEFER_PROTECTION = "DeferDatabaseDeletionProtection"

#: Parameters stepdeploy sets itself: the image comes from the deployment, never from the request; the
#: running count belongs to autoscaling after the creation; and the database's deletion protection is
#: deferred while the stack is created (see protection_pending).
RESERVED_PARAMETERS = {
    "ContainerImage": "the image comes from $.image",
    "PreserveDesiredCount": "after the creation, the running count belongs to autoscaling",
    DEFER_PROTECTION: "the database's deletion protection is switched on once the stack's creation succeeded",
}

#: Outputs the deploy steps consume (what a request without a stack names in service/health).
REQUIRED_OUTPUTS = ("ClusterName", "ServiceName", "ContainerName", "HealthCheckUrl", "TargetGroupArn")

NO_CHANGES = ("didn't contain changes", "No updates are to be performed")

STABLE = (
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
)
CHANGE_SET_PENDING = ("CREATE_PENDING", "CREATE_IN_PROGRESS")


@functools.lru_cache(maxsize=1)
def template_body() -> str:
    return TEMPLATE_FILE.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def parameter_spec() -> dict[str, dict[str, Any]]:
    spec: dict[str, dict[str, Any]] = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))
    return spec


def _fail(name: str, message: str) -> InvalidDeploymentRequest:
    return InvalidDeploymentRequest(f"$.stack.parameters.{name}: {message}")


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise _fail(name, f"expected a number, got {text!r}") from exc


#: the stack parameters that shape a BLUE_GREEN, CANARY or LINEAR deployment, as StrategySpec fields
STRATEGY_PARAMETERS: dict[str, tuple[str, type[int] | type[float]]] = {
    "bake_minutes": ("DeploymentBakeTimeMinutes", int),
    "canary_percent": ("CanaryPercent", float),
    "canary_bake_minutes": ("CanaryBakeTimeMinutes", int),
    "step_percent": ("LinearStepPercent", float),
    "step_bake_minutes": ("LinearStepBakeTimeMinutes", int),
    "hook_timeout_minutes": ("LifecycleHookTimeoutMinutes", int),
}


def strategy_fields(parameters: Mapping[str, str]) -> dict[str, Any]:
    """The StrategySpec fields the stack's parameters set (as far as it has them)."""
    return {
        field: kind(float(parameters[name]))
        for field, (name, kind) in STRATEGY_PARAMETERS.items()
        if parameters.get(name) not in (None, "")
    }


#: EnsureStack gates a stack's service deployment at most this often (the stack poll's floor): a poll every gate
#: interval over a stack deadline would outgrow the execution's history (tests/contract/test_execution_bounds.py)
STACK_POLL_FLOOR = INT_RANGES["stack.poll_seconds"][0]


def stack_strategy(
    parameters: Mapping[str, str], before: Mapping[str, str], spec: Mapping[str, Mapping[str, Any]]
) -> StrategySpec:
    """The strategy the stack deploys with once ``parameters`` apply (over the stack's ``before``, over the
    template's defaults)."""
    merged = {name: str(rule["Default"]) for name, rule in spec.items() if "Default" in rule}
    merged.update(before)
    merged.update(parameters)
    return StrategySpec(type=merged.get("DeploymentStrategy", "ROLLING"), **strategy_fields(merged))


def check_approval(
    approval: ApprovalSpec,
    health: HealthPolicy,
    rollout: RolloutPolicy,
    parameters: Mapping[str, str],
    before: Mapping[str, str],
    spec: Mapping[str, Mapping[str, Any]],
) -> None:
    """A stack release is held at its service deployment's POST_TEST_TRAFFIC_SHIFT hook: the stack must deploy
    BLUE_GREEN, CANARY or LINEAR (a ROLLING update moves the service with no pause), and its hook must wait longer
    than the gates and the approval at EnsureStack's cadence. Raises InvalidDeploymentRequest."""
    strategy = stack_strategy(parameters, before, spec)
    if not strategy.progressive:
        raise InvalidDeploymentRequest(
            "$.approval: the stack deploys ROLLING, whose update moves the service with no pause to hold it at; "
            "set stack.parameters.DeploymentStrategy to BLUE_GREEN, CANARY or LINEAR"
        )
    paced = replace(health, interval_seconds=max(health.interval_seconds, STACK_POLL_FLOOR))
    held = hook_outlasted(strategy, approval, paced, replace(rollout, poll_seconds=STACK_POLL_FLOOR))
    if held is not None:
        raise _fail(
            "LifecycleHookTimeoutMinutes",
            f"the hook waits {strategy.hook_timeout_minutes} min, but the gates at the hook and the approval can take "
            f"{held} min: ECS would roll the release back before the answer counts",
        )


def check_deployment_time(
    parameters: Mapping[str, str], before: Mapping[str, str], spec: Mapping[str, Mapping[str, Any]]
) -> None:
    """The stack's traffic shift and bake (``parameters`` over the stack's ``before``, over the template's
    defaults) must end within what an execution can wait, as a request's own strategy must. Raises
    InvalidDeploymentRequest."""
    strategy = stack_strategy(parameters, before, spec)
    if strategy.shift_seconds() > MAX_SHIFT_SECONDS:
        names = ", ".join(name for name, _ in STRATEGY_PARAMETERS.values() if name != "LifecycleHookTimeoutMinutes")
        raise _fail(
            "DeploymentBakeTimeMinutes",
            f"{strategy.type}'s traffic shift and bake take {strategy.shift_seconds()} s; at most "
            f"{MAX_SHIFT_SECONDS} s (every deployment must end within the execution's time limit): see {names}",
        )


def validate_parameters(given: Mapping[str, Any], spec: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Check ``given`` against the template's parameter rules, as CloudFormation would, and return
    the values as the strings CloudFormation takes. Raises InvalidDeploymentRequest."""
    out: dict[str, str] = {}
    for name, raw in given.items():
        if name in RESERVED_PARAMETERS:
            raise _fail(name, f"is set by stepdeploy ({RESERVED_PARAMETERS[name]})")
        rule = spec.get(name)
        if rule is None:
            raise _fail(name, f"the application stack has no such parameter; known: {', '.join(sorted(spec))}")
        kind = rule.get("Type", "String")
        if isinstance(raw, bool) or raw is None or isinstance(raw, dict):
            raise _fail(name, f"expected a {kind} value, got {type(raw).__name__}")
        if isinstance(raw, list):
            if kind != "CommaDelimitedList" or not all(isinstance(i, str) and "," not in i for i in raw):
                raise _fail(name, "a list is only accepted for a CommaDelimitedList of strings without commas")
            text = ",".join(raw)
        elif isinstance(raw, int | float):
            text = str(raw)
        elif isinstance(raw, str):
            text = raw
        else:
            raise _fail(name, f"expected a {kind} value, got {type(raw).__name__}")
        if kind == "Number":
            value = _number(name, text)
            low, high = rule.get("MinValue"), rule.get("MaxValue")
            if low is not None and value < float(low):
                raise _fail(name, f"must be at least {low}, got {text}")
            if high is not None and value > float(high):
                raise _fail(name, f"must be at most {high}, got {text}")
        else:
            low_len, high_len = rule.get("MinLength"), rule.get("MaxLength")
            if low_len is not None and len(text) < int(low_len):
                raise _fail(name, f"must be at least {low_len} characters")
            if high_len is not None and len(text) > int(high_len):
                raise _fail(name, f"must be at most {high_len} characters")
            pattern = rule.get("AllowedPattern")
            if pattern is not None and re.fullmatch(pattern, text) is None:
                hint = rule.get("ConstraintDescription") or f"pattern {pattern}"
                raise _fail(name, f"invalid value {text[:80]!r} ({hint})")
        allowed = rule.get("AllowedValues")
        if allowed is not None and text not in [str(a) for a in allowed]:
            raise _fail(name, f"must be one of {', '.join(str(a) for a in allowed)}, got {text!r}")
        out[name] = text
    return out


# --------------------------------------------------------------------------- change-set names

#: CreateChangeSet's ChangeSetName: ``[a-zA-Z][-a-zA-Z0-9]*``, 1 to 128 characters.
CHANGE_SET_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]*", re.ASCII)
CHANGE_SET_NAME_MAX = 128
#: Room left after :func:`change_set_name` for a suffix (``"-rollback"``).
CHANGE_SET_SUFFIX_ROOM = 16
_CHANGE_SET_PREFIX = "stepdeploy-"
_CHANGE_SET_DIGEST = 12  # hex characters of the deployment id's SHA-256


def change_set_name(deployment_id: str, suffix: str = "") -> str:
    """The change-set name of a deployment: valid for CloudFormation whatever the execution name
    (Step Functions allows ``_``, ``.``, non-ASCII letters...; CodePipeline adds its prefix), and
    unique per deployment id: the id with every run of other characters made ``-``, cut to fit,
    then a digest of the exact id. ``suffix`` (``[-a-zA-Z0-9]``, at most CHANGE_SET_SUFFIX_ROOM
    characters) tells several change sets of one deployment apart; the name without it leaves that
    much room, so ``change_set_name(id) + "-rollback"`` is valid too."""
    if len(suffix) > CHANGE_SET_SUFFIX_ROOM or re.fullmatch(r"[-a-zA-Z0-9]*", suffix, re.ASCII) is None:
        raise ValueError(f"a change-set name suffix is at most {CHANGE_SET_SUFFIX_ROOM} of [-a-zA-Z0-9]: {suffix!r}")
    digest = hashlib.sha256(deployment_id.encode("utf-8", "surrogatepass")).hexdigest()[:_CHANGE_SET_DIGEST]
    room = CHANGE_SET_NAME_MAX - CHANGE_SET_SUFFIX_ROOM - len(_CHANGE_SET_PREFIX) - len(digest) - 1
    body = re.sub(r"[^-a-zA-Z0-9]+", "-", deployment_id, flags=re.ASCII)[:room]
    return f"{_CHANGE_SET_PREFIX}{body}-{digest}{suffix}"


# --------------------------------------------------------------------------- outputs -> request


def outputs_complete(outputs: Mapping[str, str]) -> bool:
    return all(outputs.get(k) for k in REQUIRED_OUTPUTS)


def complete_request(
    request: Mapping[str, Any], outputs: Mapping[str, str], parameters: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The request with ``service`` and ``health`` filled from the stack outputs (configured once), and, for a
    BLUE_GREEN, CANARY or LINEAR stack, its strategy: the test listener, and the numbers its ``parameters`` set."""
    missing = [k for k in REQUIRED_OUTPUTS if not outputs.get(k)]
    if missing:
        raise InfraUpdateFailed(
            f"the application stack has no output(s) {', '.join(missing)}: is it stepdeploy's template?"
        )
    out = json.loads(json.dumps(request))
    out["service"] = {
        "cluster": outputs["ClusterName"],
        "service": outputs["ServiceName"],
        "container": outputs["ContainerName"],
    }
    health = out["health"]
    health["url"] = outputs["HealthCheckUrl"]
    health["target_group_arn"] = outputs["TargetGroupArn"]
    stack_alarms = [a for a in outputs.get("AlarmNames", "").split(",") if a]
    health["alarm_names"] = stack_alarms + [a for a in health.get("alarm_names", []) if a not in stack_alarms]
    strategy = outputs.get("DeploymentStrategy", "ROLLING")
    if strategy != "ROLLING":  # the service's hooks and traffic shift are in the stack; the gates need the test URL
        out["strategy"] = {
            **asdict(StrategySpec(type=strategy, **strategy_fields(parameters or {}))),
            "test_url": outputs.get("TestUrl"),
            "test_header_secret_arn": outputs.get("TestTrafficSecretArn"),
        }
    return dict(out)


def gating_request(request: Mapping[str, Any], view: StackView | None, strategy: str) -> dict[str, Any] | None:
    """The request the gates of a service deployment CloudFormation started run with: ``request`` completed from
    the stack's outputs and parameters, its strategy the deployment's (``strategy``; the outputs may still name the
    one before the update). None when the outputs do not name the URLs yet (the stack is being created)."""
    if view is None or not outputs_complete(view.outputs) or not view.outputs.get("TestUrl"):
        return None
    return complete_request(request, {**view.outputs, "DeploymentStrategy": strategy}, view.parameters)


# --------------------------------------------------------------------------- the EnsureStack loop


@dataclass(frozen=True)
class StackView:
    """What DescribeStacks says (None when the stack does not exist)."""

    name: str
    status: str
    reason: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangeSetView:
    arn: str
    status: str
    execution_status: str
    reason: str
    changes: tuple[dict[str, Any], ...] = ()


@dataclass
class StackState:
    """Progress of the EnsureStack loop (carried between polls in ``$.stack``)."""

    phase: str = "start"  # start | deleting | change_set | executing | cancelling | done
    status: str = "WAITING"  # WAITING | READY | PLANNED
    operation: str = "NONE"  # CREATE | UPDATE | NONE
    change_set: str | None = None
    #: the stack's parameters before this execution's UPDATE (what a rollback through the stack restores)
    previous_parameters: dict[str, str] | None = None
    protecting: bool = False  # the UPDATE that switches on the deletion protection a CREATE deferred
    changes: list[dict[str, Any]] = field(default_factory=list)
    elapsed_seconds: int = 0
    wait_seconds: int = 0
    polls: int = 0
    detail: str = ""
    started_at: float = 0.0  # epoch seconds of the first poll: the deadline counts Lambda time too
    #: the ECS service deployment CloudFormation started (BLUE_GREEN, CANARY, LINEAR), followed as FollowDeployment
    #: follows a release's: its PAUSE hooks are answered with the gates (models.FollowState)
    follow: dict[str, Any] = field(default_factory=dict)
    #: the gate (or ECS) failure that took that deployment back: {"error": <ASL error name>, "cause": ...}
    gate_failure: dict[str, str] = field(default_factory=dict)
    held_seconds: float = 0.0  # time a person held the release (AwaitStackApproval): not counted by the deadline

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> StackState:
        return carried(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_changes(changes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Change-set ``Changes`` as short records: action, logical id, type, replacement."""
    out = []
    for change in changes:
        rc = change.get("ResourceChange") or {}
        item = {
            "action": rc.get("Action", "?"),
            "logical_id": rc.get("LogicalResourceId", "?"),
            "type": rc.get("ResourceType", "?"),
        }
        if rc.get("Replacement"):
            item["replacement"] = rc["Replacement"]
        out.append(item)
    return out


def describe_changes(changes: Sequence[Mapping[str, Any]]) -> str:
    if not changes:
        return "no changes"
    return "; ".join(
        f"{c['action']} {c['logical_id']} ({c['type']})" + (" [replacement]" if c.get("replacement") == "True" else "")
        for c in changes
    )


def is_no_change(change_set: ChangeSetView) -> bool:
    return change_set.status == "FAILED" and any(text in change_set.reason for text in NO_CHANGES)


def _failures(events: Sequence[Mapping[str, Any]], stack_name: str) -> list[Mapping[str, Any]]:
    """Resource ``*_FAILED`` events of the latest operation, newest first (events come newest first)."""
    failures: list[Mapping[str, Any]] = []
    for event in events:
        status = str(event.get("ResourceStatus", ""))
        logical = event.get("LogicalResourceId")
        if logical == stack_name and status in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"):
            break
        if status.endswith("_FAILED") and logical != stack_name:
            failures.append(event)
    return failures


def _describe(event: Mapping[str, Any]) -> str:
    return f"{event.get('LogicalResourceId')} ({event.get('ResourceType')}): {event.get('ResourceStatusReason', '?')}"


def first_failure(events: Sequence[Mapping[str, Any]], stack_name: str) -> str:
    """The root cause of the latest operation: its earliest resource failure (later failures are
    mostly cancellations, or the rollback's own)."""
    failures = _failures(events, stack_name)
    return _describe(failures[-1]) if failures else "no resource reported a failure"


def blocking_failure(events: Sequence[Mapping[str, Any]], stack_name: str) -> str:
    """Why a stack is stuck (e.g. ROLLBACK_FAILED): the latest resource failure, and the root cause."""
    failures = _failures(events, stack_name)
    if not failures:
        return "no resource reported a failure"
    if len(failures) == 1:
        return _describe(failures[0])
    return f"{_describe(failures[0])}; the operation failed first on {_describe(failures[-1])}"


def stuck(status: str) -> bool:
    """A failed state CloudFormation cannot leave by itself: a person fixes the cause, then continues the
    rollback (continue-update-rollback) or deletes the stack."""
    return status.endswith("ROLLBACK_FAILED") or status == "DELETE_FAILED"


def rolled_back(status: str) -> str:
    """How a failed (or cancelled) operation ended, for the error message."""
    if status == "UPDATE_ROLLBACK_COMPLETE":  # (CloudFormation waited for the service to be stable on it again)
        return f"CloudFormation rolled it back ({status}; the service runs the revision it ran before)"
    if status.endswith("ROLLBACK_COMPLETE"):
        return f"CloudFormation rolled it back ({status})"
    if status.endswith("ROLLBACK_FAILED"):
        return (
            f"CloudFormation could not roll it back ({status}): the stack needs a person "
            "(fix the cause, then continue-update-rollback, or delete the stack)"
        )
    return f"the stack ended {status}"


def at_deadline(phase: str, status: str) -> str:
    """What EnsureStack does when the stack deadline passes (``status``: the stack's, now):
    CANCEL an update in progress (CloudFormation rolls it back); WAIT when the update is done and only
    cleans up, or when a cancel is already rolling it back; DISCARD a change set not yet ready; STOP
    otherwise (a creation or someone else's operation goes on, and stepdeploy cannot undo it)."""
    if phase == "cancelling" or (phase == "executing" and status == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"):
        return "WAIT"
    if phase == "executing" and status == "UPDATE_IN_PROGRESS":
        return "CANCEL"
    if phase == "change_set":
        return "DISCARD"
    return "STOP"


def update_parameters(
    kind: str,
    view: StackView | None,
    requested: Mapping[str, str],
    image: str,
    known: Mapping[str, Any],
) -> dict[str, str | None]:
    """The parameters of a change set: on an UPDATE, what the stack has (UsePreviousValue, None here)
    unless requested; the image always; and, after the creation, the running count left to autoscaling."""
    params: dict[str, str | None] = {}
    if view is not None and kind == "UPDATE":
        params = {k: None for k in view.parameters if k in known}
        params["PreserveDesiredCount"] = "true"
    params.update(requested)
    params["ContainerImage"] = image
    params[DEFER_PROTECTION] = defer_protection(kind)
    return params


def rollback_parameters(
    view: StackView, previous: Mapping[str, str] | None, image: str | None, known: Mapping[str, Any]
) -> dict[str, str | None]:
    """The parameters that return the stack to the release before: the stack's parameters before this
    execution's update (when it made one), else the ones it has, with the image that ran before."""
    base = dict(previous) if previous else dict(view.parameters)
    params: dict[str, str | None] = {k: v for k, v in base.items() if k in known}
    params["PreserveDesiredCount"] = "true"
    params[DEFER_PROTECTION] = "false"
    if image:
        params["ContainerImage"] = image
    return params


def defer_protection(operation: str) -> str:
    """The DeferDatabaseDeletionProtection value for a change set: "true" for a CREATE (CloudFormation
    cannot delete a protected cluster, so a failed creation would end ROLLBACK_FAILED, and need a person,
    instead of ROLLBACK_COMPLETE, which the next deployment deletes and creates again), "false" for every
    UPDATE (so an update switches on what a creation deferred)."""
    return "true" if operation == "CREATE" else "false"


def protection_pending(stack: StackView) -> bool:
    """The stack was created with the database's deletion protection deferred, and the protection is
    wanted (DatabaseDeletionProtection): an UPDATE must switch it on before anything else happens."""
    return (
        stack.parameters.get(DEFER_PROTECTION) == "true"
        and stack.parameters.get("DatabaseDeletionProtection", "true") == "true"
    )
