"""Input and output models of the deploy workflow.

Plain dataclasses with explicit validation (pydantic would triple the cold-import time of every
function). ``DeploymentRequest.from_input`` is the one place where workflow input is validated; it
raises :class:`~stepdeploy.errors.InvalidDeploymentRequest` naming the offending field. Every other
model is produced by stepdeploy itself and parsed back with ``from_dict`` between states.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from .errors import InvalidDeploymentRequest

T = TypeVar("T")

#: Step Functions caps a payload at 256 KiB; requests are a few hundred bytes, anything near the
#: cap is a mistake (or an attack) and is refused before it costs anything.
MAX_REQUEST_BYTES = 32 * 1024

#: Longest bake window (``health.max_checks`` x ``health.interval_seconds``): with the other bounds, every
#: execution ends within the state machine's TimeoutSeconds (tests/contract/test_execution_bounds.py).
MAX_BAKE_SECONDS = 3600

#: Allowed ranges of the integer fields (validation and docs/input-schema.json use this table).
INT_RANGES: dict[str, tuple[int, int]] = {
    "health.expected_status": (100, 599),
    "health.probe_timeout_seconds": (1, 30),
    "health.interval_seconds": (5, 300),
    "health.healthy_threshold": (1, 20),
    "health.unhealthy_threshold": (1, 20),
    "health.max_checks": (1, 100),
    "health.max_latency_ms": (1, 30000),
    "rollout.timeout_seconds": (60, 3600),
    "rollout.poll_seconds": (10, 600),
    "stack.timeout_seconds": (300, 7200),
    "stack.poll_seconds": (30, 600),
    "strategy.bake_minutes": (0, 60),
    "strategy.canary_bake_minutes": (0, 60),
    "strategy.step_bake_minutes": (0, 60),
    "strategy.hook_timeout_minutes": (61, 1440),  # above the longest gate window: the timeout is a backstop
    "approval.timeout_minutes": (1, 1440),
}

#: Deployment strategies (ECS ``deploymentConfiguration.strategy``); ROLLING is a rolling update gated after it.
STRATEGIES = ("ROLLING", "BLUE_GREEN", "CANARY", "LINEAR")
#: Allowed ranges of the percentages (ECS: canaryPercent 0.1-100 in steps of 0.1, stepPercent 3-100).
PERCENT_RANGES: dict[str, tuple[float, float]] = {
    "strategy.canary_percent": (0.1, 100.0),
    "strategy.step_percent": (3.0, 100.0),
}
#: Longest production traffic shift plus deployment bake time: with the other bounds, every execution ends within
#: the state machine's TimeoutSeconds (tests/contract/test_execution_bounds.py).
MAX_SHIFT_SECONDS = 3600
#: What an approval pause does when no one answers within its timeout.
APPROVAL_TIMEOUT_ACTIONS = ("REJECT", "APPROVE")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@\-]{1,512}$")

TRIGGERS = ("manual", "ecr", "codepipeline", "verify")
BODY_MATCH_MODES = ("exact", "contains", "regex")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,254}$")
_ARN_OR_NAME = re.compile(r"^(arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:[a-z-]+/[A-Za-z0-9/_\-]+|[A-Za-z0-9_\-]{1,255})$")
_REPOSITORY = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_ALARM = re.compile(r"^[^\x00-\x1f]{1,255}$")
_STACK = re.compile(r"^[a-z][a-z0-9-]{0,31}$")  # prefixed with APP_STACK_PREFIX in CloudFormation
_COMMAND_ARG = re.compile(r"^[^\x00]{1,1024}$")
_TARGET_GROUP_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
#: one line of text: no newline (a trailing one included) or other control character. Written without
#: ``$`` (which also matches before a final newline in Python) so the schema means the same in every engine.
_ONE_LINE = re.compile(r"^(?![\s\S]*[\x00-\x1f\x7f])")
#: free text may span lines, but not end with a line break (a heredoc's or an editor's stray newline)
_NO_TRAILING_NEWLINE = re.compile(r"^(?![\s\S]*[\r\n](?![\s\S]))")
MAX_REASON = 1024


def _fail(path: str, message: str) -> InvalidDeploymentRequest:
    return InvalidDeploymentRequest(f"{path}: {message}")


def load_payload(payload: Any) -> Any:
    """Workflow input as JSON values: text is parsed, and the size limit applies to its bytes as sent
    (or, for already-parsed input, to its JSON encoding). Raises InvalidDeploymentRequest."""
    if isinstance(payload, str | bytes):
        raw = payload.encode() if isinstance(payload, str) else payload
        if len(raw) > MAX_REQUEST_BYTES:
            raise _fail("$", f"request is {len(raw)} bytes; the limit is {MAX_REQUEST_BYTES}")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise _fail("$", f"not valid JSON ({exc})") from exc
    size = len(json.dumps(payload, default=str))
    if size > MAX_REQUEST_BYTES:
        raise _fail("$", f"request is {size} bytes; the limit is {MAX_REQUEST_BYTES}")
    return payload


def check_reason(reason: Any) -> str | None:
    """``reason``: absent, or one line of at most 1024 characters. Raises InvalidDeploymentRequest."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise _fail("$.reason", f"expected a string, got {type(reason).__name__}")
    if len(reason) > MAX_REASON:
        raise _fail("$.reason", f"at most {MAX_REASON} characters")
    if not _ONE_LINE.match(reason):
        raise _fail("$.reason", "must be one line: no newline (a trailing one included) or other control character")
    return reason


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"expected an object, got {type(value).__name__}")
    return value


def _only(value: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(path, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _str(
    value: Mapping[str, Any],
    key: str,
    path: str,
    pattern: re.Pattern[str] | None = None,
    default: str | None = None,
    required: bool = False,
) -> str | None:
    raw = value.get(key)
    if raw is None:  # absent or explicit null: the default applies
        raw = default
    if raw is None:
        if required:
            raise _fail(f"{path}.{key}", "is required")
        return None
    if not isinstance(raw, str):
        raise _fail(f"{path}.{key}", f"expected a string, got {type(raw).__name__}")
    if pattern is not None and not pattern.fullmatch(raw):
        raise _fail(f"{path}.{key}", f"invalid value {raw[:80]!r}")
    return raw


def _flag(value: Mapping[str, Any], key: str, path: str) -> bool:
    """An optional true/false field (absent = false)."""
    raw = value.get(key, False)
    if not isinstance(raw, bool):
        raise _fail(f"{path}.{key}", f"expected true or false, got {type(raw).__name__}")
    return raw


def _int(value: Mapping[str, Any], key: str, path: str, default: int, low: int, high: int) -> int:
    raw = value.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _fail(f"{path}.{key}", f"expected an integer, got {type(raw).__name__}")
    if not low <= raw <= high:
        raise _fail(f"{path}.{key}", f"must be between {low} and {high}, got {raw}")
    return raw


@dataclass(frozen=True)
class Defaults:
    """Deployment defaults, configured per stack (template parameters -> function environment)."""

    expected_status: int = 200
    expected_body: str = "OK"
    body_match: str = "exact"
    probe_timeout_seconds: int = 5
    interval_seconds: int = 15
    healthy_threshold: int = 3
    unhealthy_threshold: int = 2
    max_checks: int = 12
    max_latency_ms: int = 2000
    rollout_timeout_seconds: int = 900
    rollout_poll_seconds: int = 60
    stack_timeout_seconds: int = 3600
    stack_poll_seconds: int = 30
    #: one-off database initialisation command (space-separated; empty = no initialisation)
    init_command: str = "updatedb -s"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Defaults:
        """Read ``DEFAULT_*`` variables; malformed values are a configuration error, not ignored."""
        values: dict[str, Any] = {}
        for name, fld in cls.__dataclass_fields__.items():
            raw = env.get(f"DEFAULT_{name.upper()}")
            if raw is None or raw == "":
                continue
            if isinstance(fld.default, int):
                try:
                    values[name] = int(raw)
                except ValueError as exc:
                    raise ValueError(f"environment DEFAULT_{name.upper()} must be an integer: {raw!r}") from exc
            else:
                values[name] = raw
        return cls(**values)


@dataclass(frozen=True)
class ServiceRef:
    cluster: str
    service: str
    container: str | None = None


@dataclass(frozen=True)
class ImageSpec:
    """What the caller asked for. Resolved to an immutable digest before anything is changed."""

    repository: str
    tag: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class HealthPolicy:
    url: str | None  # None until the stack outputs fill it in
    expected_status: int
    expected_body: str | None
    body_match: str
    probe_timeout_seconds: int
    interval_seconds: int
    healthy_threshold: int
    unhealthy_threshold: int
    max_checks: int
    max_latency_ms: int
    target_group_arn: str | None = None
    alarm_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class RolloutPolicy:
    timeout_seconds: int
    poll_seconds: int


@dataclass(frozen=True)
class StrategySpec:
    """How ECS moves traffic to the new revision, and where stepdeploy's gates reach it before production does.

    ROLLING is today's rolling update (gated once it completed); BLUE_GREEN, CANARY and LINEAR are ECS service
    deployments with PAUSE hooks at POST_TEST_TRAFFIC_SHIFT and POST_PRODUCTION_TRAFFIC_SHIFT that stepdeploy
    answers (CONTINUE when its gates pass, ROLLBACK when they fail); the hook timeout (action ROLLBACK) is the
    backstop should stepdeploy itself stop.
    """

    type: str = "ROLLING"
    bake_minutes: int = 5
    canary_percent: float = 10.0
    canary_bake_minutes: int = 5
    step_percent: float = 25.0
    step_bake_minutes: int = 2
    hook_timeout_minutes: int = 120
    #: the gate's URL through the test listener (green only, no production traffic)
    test_url: str | None = None
    #: Secrets Manager secret holding the token the test listener rule requires in header X-Stepdeploy-Test
    test_header_secret_arn: str | None = None

    @property
    def progressive(self) -> bool:
        return self.type != "ROLLING"

    def shift_seconds(self) -> int:
        """Production traffic shift (canary bake, or every linear step's bake) plus the deployment bake time."""
        if self.type == "CANARY":
            shifting = self.canary_bake_minutes
        elif self.type == "LINEAR":
            shifting = (math.ceil(100 / self.step_percent) - 1) * self.step_bake_minutes
        else:
            shifting = 0
        return 60 * (shifting + self.bake_minutes) if self.progressive else 0


@dataclass(frozen=True)
class ApprovalSpec:
    """A person holds the release: ROLLING pauses before UpdateService (nothing changed yet); BLUE_GREEN, CANARY
    and LINEAR pause at POST_TEST_TRAFFIC_SHIFT once the gates passed on the test listener (0 % production).
    No answer within ``timeout_minutes``: ``on_timeout`` applies."""

    timeout_minutes: int = 60
    on_timeout: str = "REJECT"

    @property
    def timeout_seconds(self) -> int:
        return 60 * self.timeout_minutes


@dataclass(frozen=True)
class StackSpec:
    """The application stack a deployment provisions or updates (stacks/app.yaml)."""

    name: str
    parameters: dict[str, str]
    init_command: tuple[str, ...]
    timeout_seconds: int
    poll_seconds: int
    #: run ``init_command`` against a database this deployment did not create (it may hold data: the
    #: default ``updatedb -s`` drops and re-seeds its table); without it such an init raises DatabaseInitRefused
    allow_destructive_init: bool = False


@dataclass(frozen=True)
class DeploymentRequest:
    #: None until the stack outputs fill it in (a request with ``stack`` names no service)
    service: ServiceRef | None
    image: ImageSpec
    health: HealthPolicy
    rollout: RolloutPolicy
    trigger: str = "manual"
    reason: str | None = None
    stack: StackSpec | None = None
    plan: bool = False
    #: None: the service's own deployment configuration applies (read when the deployment starts)
    strategy: StrategySpec | None = None
    #: None: the release goes ahead without a person's answer
    approval: ApprovalSpec | None = None

    @property
    def target(self) -> ServiceRef:
        """The service (after the stack outputs filled it in, for a request with a stack)."""
        if self.service is None:
            raise ValueError("the request has no service yet: the stack outputs have not been applied")
        return self.service

    @property
    def lock_key(self) -> str:
        """What the lock, dedupe claims and last-deployment items are keyed on."""
        if self.stack is not None:
            return f"stack/{self.stack.name}"
        return f"{self.target.cluster}/{self.target.service}"

    @classmethod
    def from_input(cls, payload: Any, defaults: Defaults) -> DeploymentRequest:
        """Validate raw workflow input. Raises InvalidDeploymentRequest naming the bad field."""
        top = _obj(load_payload(payload), "$")
        _only(
            top,
            "$",
            {"service", "image", "health", "rollout", "trigger", "reason", "stack", "plan", "strategy", "approval"},
        )
        stack = _stack(top.get("stack"), defaults) if top.get("stack") is not None else None
        plan = _flag(top, "plan", "$")

        service: ServiceRef | None = None
        if stack is not None:
            if "service" in top:
                raise _fail("$.service", "comes from the stack outputs (ClusterName, ServiceName, ContainerName)")
        else:
            svc = _obj(top.get("service"), "$.service")
            _only(svc, "$.service", {"cluster", "service", "container"})
            service = ServiceRef(
                cluster=_req(_str(svc, "cluster", "$.service", _ARN_OR_NAME, required=True)),
                service=_req(_str(svc, "service", "$.service", _ARN_OR_NAME, required=True)),
                container=_str(svc, "container", "$.service", _NAME),
            )

        img = _obj(top.get("image"), "$.image")
        _only(img, "$.image", {"repository", "tag", "digest"})
        image = ImageSpec(
            repository=_req(_str(img, "repository", "$.image", _REPOSITORY, required=True)),
            tag=_str(img, "tag", "$.image", _TAG),
            digest=_str(img, "digest", "$.image", _DIGEST),
        )
        if image.tag is None and image.digest is None:
            raise _fail("$.image", "give a tag or a digest (sha256:...)")

        hl = _obj(top.get("health", {} if stack is not None else None), "$.health")
        if stack is not None:
            for key, output in (("url", "HealthCheckUrl"), ("target_group_arn", "TargetGroupArn")):
                if key in hl:
                    raise _fail(f"$.health.{key}", f"comes from the stack output {output}")
        _only(
            hl,
            "$.health",
            {
                "url",
                "expected_status",
                "expected_body",
                "body_match",
                "probe_timeout_seconds",
                "interval_seconds",
                "healthy_threshold",
                "unhealthy_threshold",
                "max_checks",
                "max_latency_ms",
                "target_group_arn",
                "alarm_names",
            },
        )
        alarms_raw = hl.get("alarm_names", [])
        if not isinstance(alarms_raw, list) or not all(isinstance(a, str) and _ALARM.fullmatch(a) for a in alarms_raw):
            raise _fail("$.health.alarm_names", "expected a list of alarm names")
        if len(alarms_raw) > 100:
            raise _fail("$.health.alarm_names", "at most 100 alarms")
        expected_body = hl.get("expected_body", defaults.expected_body)
        if expected_body is not None and (not isinstance(expected_body, str) or len(expected_body) > 4096):
            raise _fail("$.health.expected_body", "expected a string of at most 4096 characters, or null")
        if expected_body is not None and not _NO_TRAILING_NEWLINE.match(expected_body):
            raise _fail("$.health.expected_body", "ends with a line break (the body is compared without it)")
        body_match = _req(_str(hl, "body_match", "$.health", default=defaults.body_match))
        if body_match not in BODY_MATCH_MODES:
            raise _fail("$.health.body_match", f"must be one of {', '.join(BODY_MATCH_MODES)}")
        if body_match == "regex" and expected_body is not None:
            try:
                re.compile(expected_body)
            except re.error as exc:
                raise _fail("$.health.expected_body", f"invalid regular expression: {exc}") from exc
        tg = _str(hl, "target_group_arn", "$.health")
        if tg is not None and not _TARGET_GROUP_ARN.fullmatch(tg):
            raise _fail("$.health.target_group_arn", f"expected an ELBv2 target group ARN, got {tg[:120]!r}")
        health = HealthPolicy(
            url=_str(hl, "url", "$.health", _URL, required=stack is None),
            expected_status=_int(
                hl, "expected_status", "$.health", defaults.expected_status, *INT_RANGES["health.expected_status"]
            ),
            expected_body=expected_body,
            body_match=body_match,
            probe_timeout_seconds=_int(
                hl,
                "probe_timeout_seconds",
                "$.health",
                defaults.probe_timeout_seconds,
                *INT_RANGES["health.probe_timeout_seconds"],
            ),
            interval_seconds=_int(
                hl, "interval_seconds", "$.health", defaults.interval_seconds, *INT_RANGES["health.interval_seconds"]
            ),
            healthy_threshold=_int(
                hl, "healthy_threshold", "$.health", defaults.healthy_threshold, *INT_RANGES["health.healthy_threshold"]
            ),
            unhealthy_threshold=_int(
                hl,
                "unhealthy_threshold",
                "$.health",
                defaults.unhealthy_threshold,
                *INT_RANGES["health.unhealthy_threshold"],
            ),
            max_checks=_int(hl, "max_checks", "$.health", defaults.max_checks, *INT_RANGES["health.max_checks"]),
            max_latency_ms=_int(
                hl, "max_latency_ms", "$.health", defaults.max_latency_ms, *INT_RANGES["health.max_latency_ms"]
            ),
            target_group_arn=tg,
            alarm_names=tuple(alarms_raw),
        )
        if health.max_checks < health.healthy_threshold:
            raise _fail("$.health.max_checks", "must be at least healthy_threshold")
        if health.max_checks * health.interval_seconds > MAX_BAKE_SECONDS:
            raise _fail(
                "$.health.max_checks",
                f"max_checks x interval_seconds is {health.max_checks * health.interval_seconds} s; the bake window "
                f"is at most {MAX_BAKE_SECONDS} s (every deployment must end within the execution's time limit)",
            )

        ro = _obj(top.get("rollout", {}), "$.rollout")
        _only(ro, "$.rollout", {"timeout_seconds", "poll_seconds"})
        rollout = RolloutPolicy(
            timeout_seconds=_int(
                ro,
                "timeout_seconds",
                "$.rollout",
                defaults.rollout_timeout_seconds,
                *INT_RANGES["rollout.timeout_seconds"],
            ),
            poll_seconds=_int(
                ro, "poll_seconds", "$.rollout", defaults.rollout_poll_seconds, *INT_RANGES["rollout.poll_seconds"]
            ),
        )
        trigger = _req(_str(top, "trigger", "$", default="manual"))
        if trigger not in TRIGGERS:
            raise _fail("$.trigger", f"must be one of {', '.join(TRIGGERS)}")
        reason = check_reason(top.get("reason"))
        if stack is not None and "strategy" in top:
            raise _fail(
                "$.strategy", "a stack's strategy is its parameter DeploymentStrategy (an infrastructure change)"
            )
        strategy = None if top.get("strategy") is None else _strategy(top["strategy"])
        approval = None if top.get("approval") is None else _approval(top["approval"])
        _check_approval_fits(approval, strategy, health, rollout, stack)
        return cls(
            service=service,
            image=image,
            health=health,
            rollout=rollout,
            trigger=trigger,
            reason=reason,
            stack=stack,
            plan=plan,
            strategy=strategy,
            approval=approval,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentRequest:
        """Parse a request this code produced earlier (already validated)."""
        h = dict(data["health"])
        h["alarm_names"] = tuple(h.get("alarm_names", ()))
        st = data.get("stack")
        stack = None if st is None else StackSpec(**{**st, "init_command": tuple(st["init_command"])})
        return cls(
            service=ServiceRef(**data["service"]) if data.get("service") else None,
            image=ImageSpec(**data["image"]),
            health=HealthPolicy(**h),
            rollout=RolloutPolicy(**data["rollout"]),
            trigger=data.get("trigger", "manual"),
            reason=data.get("reason"),
            stack=stack,
            plan=bool(data.get("plan", False)),
            strategy=StrategySpec(**data["strategy"]) if data.get("strategy") else None,
            approval=_approval_from_dict(data.get("approval")),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["health"]["alarm_names"] = list(self.health.alarm_names)
        if self.stack is not None:
            out["stack"]["init_command"] = list(self.stack.init_command)
        if self.approval is not None:  # the approval task's TimeoutSecondsPath reads it
            out["approval"]["timeout_seconds"] = self.approval.timeout_seconds
        return out


def _approval_from_dict(data: Mapping[str, Any] | None) -> ApprovalSpec | None:
    if not data:
        return None
    return ApprovalSpec(timeout_minutes=data["timeout_minutes"], on_timeout=data["on_timeout"])


def _approval(value: Any) -> ApprovalSpec:
    """``$.approval``: a person approves or rejects the release (see ApprovalSpec)."""
    ap = _obj(value, "$.approval")
    _only(ap, "$.approval", {"timeout_minutes", "on_timeout"})
    on_timeout = _req(_str(ap, "on_timeout", "$.approval", default=ApprovalSpec.on_timeout))
    if on_timeout not in APPROVAL_TIMEOUT_ACTIONS:
        raise _fail("$.approval.on_timeout", f"must be one of {', '.join(APPROVAL_TIMEOUT_ACTIONS)}")
    low, high = INT_RANGES["approval.timeout_minutes"]
    minutes = _int(ap, "timeout_minutes", "$.approval", ApprovalSpec.timeout_minutes, low, high)
    return ApprovalSpec(timeout_minutes=minutes, on_timeout=on_timeout)


def _check_approval_fits(
    approval: ApprovalSpec | None,
    strategy: StrategySpec | None,
    health: HealthPolicy,
    rollout: RolloutPolicy,
    stack: StackSpec | None,
) -> None:
    """An approval pause must end before what waits on it: for BLUE_GREEN, CANARY and LINEAR the PAUSE hook's own
    timeout (action ROLLBACK) runs from the hook's start, through the gate window and the approval."""
    if approval is None:
        return
    if stack is not None:
        from . import stack as app_stack

        app_stack.check_approval(approval, health, rollout, stack.parameters, {}, app_stack.parameter_spec())
        return
    if strategy is None or not strategy.progressive:
        return
    if (held := hook_outlasted(strategy, approval, health, rollout)) is not None:
        raise _fail(
            "$.approval.timeout_minutes",
            f"the hook waits {strategy.hook_timeout_minutes} min (strategy.hook_timeout_minutes), but the gates at "
            f"the hook and the approval can take {held} min: ECS would roll the release back "
            "before the answer counts; lower the approval timeout or raise hook_timeout_minutes",
        )


def approval_hold_seconds(approval: ApprovalSpec, health: HealthPolicy, rollout: RolloutPolicy) -> int:
    """The longest a deployment stays at its POST_TEST_TRAFFIC_SHIFT hook: a poll to notice it, the gate window,
    the approval, and a poll to answer it."""
    return 2 * rollout.poll_seconds + health.max_checks * health.interval_seconds + approval.timeout_seconds


def hook_outlasted(
    strategy: StrategySpec, approval: ApprovalSpec, health: HealthPolicy, rollout: RolloutPolicy
) -> int | None:
    """The minutes the gates at the hook and the approval can take when the hook's own timeout (action ROLLBACK)
    would end first, so that the answer would come too late; None when the approval fits."""
    held = approval_hold_seconds(approval, health, rollout)
    return math.ceil(held / 60) if strategy.hook_timeout_minutes * 60 <= held else None


def _percent(value: Mapping[str, Any], key: str, default: float) -> float:
    low, high = PERCENT_RANGES[f"strategy.{key}"]
    raw = value.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _fail(f"$.strategy.{key}", f"expected a number, got {type(raw).__name__}")
    if not low <= raw <= high or abs(raw * 10 - round(raw * 10)) > 1e-9:
        raise _fail(f"$.strategy.{key}", f"must be between {low:g} and {high:g} in steps of 0.1, got {raw}")
    return float(raw)


def _strategy(value: Any) -> StrategySpec:
    """``$.strategy``: how traffic moves to the new revision (see StrategySpec)."""
    st = _obj(value, "$.strategy")
    fields_ = {f.name for f in fields(StrategySpec)}
    _only(st, "$.strategy", fields_)
    kind = _req(_str(st, "type", "$.strategy", required=True))
    if kind not in STRATEGIES:
        raise _fail("$.strategy.type", f"must be one of {', '.join(STRATEGIES)}")

    def minutes(key: str) -> int:
        return _int(st, key, "$.strategy", getattr(StrategySpec, key), *INT_RANGES[f"strategy.{key}"])

    spec = StrategySpec(
        type=kind,
        bake_minutes=minutes("bake_minutes"),
        canary_percent=_percent(st, "canary_percent", StrategySpec.canary_percent),
        canary_bake_minutes=minutes("canary_bake_minutes"),
        step_percent=_percent(st, "step_percent", StrategySpec.step_percent),
        step_bake_minutes=minutes("step_bake_minutes"),
        hook_timeout_minutes=minutes("hook_timeout_minutes"),
        test_url=_str(st, "test_url", "$.strategy", _URL),
        test_header_secret_arn=_str(st, "test_header_secret_arn", "$.strategy", _SECRET_ARN),
    )
    if spec.progressive and spec.test_url is None:
        raise _fail(
            "$.strategy.test_url", f"is required for {kind}: the gates reach the new revision through the test listener"
        )
    if spec.shift_seconds() > MAX_SHIFT_SECONDS:
        raise _fail(
            "$.strategy",
            f"traffic shift and bake take {spec.shift_seconds()} s; at most {MAX_SHIFT_SECONDS} s (every deployment "
            "must end within the execution's time limit)",
        )
    return spec


def _stack(value: Any, defaults: Defaults) -> StackSpec:
    from . import stack as app_stack  # the template's parameter rules (read on first use)

    st = _obj(value, "$.stack")
    _only(
        st,
        "$.stack",
        {"name", "parameters", "init_command", "allow_destructive_init", "timeout_seconds", "poll_seconds"},
    )
    params = _obj(st.get("parameters", {}), "$.stack.parameters")
    command_raw = st.get("init_command")
    if command_raw is None:
        command = tuple(defaults.init_command.split())
    elif isinstance(command_raw, list) and all(isinstance(a, str) and _COMMAND_ARG.fullmatch(a) for a in command_raw):
        if len(command_raw) > 64:
            raise _fail("$.stack.init_command", "at most 64 arguments")
        command = tuple(command_raw)
    else:
        raise _fail("$.stack.init_command", "expected a list of strings (an empty list: no database initialisation)")
    parameters = app_stack.validate_parameters(params, app_stack.parameter_spec())
    app_stack.check_deployment_time(parameters, {}, app_stack.parameter_spec())  # (EnsureStack: over the stack's)
    return StackSpec(
        name=_req(_str(st, "name", "$.stack", _STACK, required=True)),
        parameters=parameters,
        init_command=command,
        allow_destructive_init=_flag(st, "allow_destructive_init", "$.stack"),
        timeout_seconds=_int(
            st, "timeout_seconds", "$.stack", defaults.stack_timeout_seconds, *INT_RANGES["stack.timeout_seconds"]
        ),
        poll_seconds=_int(
            st, "poll_seconds", "$.stack", defaults.stack_poll_seconds, *INT_RANGES["stack.poll_seconds"]
        ),
    )


def _req(value: T | None) -> T:
    assert value is not None  # guaranteed by required=True / a default
    return value


@dataclass(frozen=True)
class ResolvedImage:
    repository: str
    digest: str
    uri: str
    tag: str | None = None


@dataclass(frozen=True)
class Revision:
    """The task-definition revisions a deployment moves between."""

    previous: str
    new: str
    container: str
    image: str


def carried(cls: type[T], data: Mapping[str, Any] | None) -> T:
    """A loop's progress from the dict carried between polls in the state: known fields only,
    the defaults for the rest (and for a first poll, which carries nothing)."""
    if not data:
        return cls()
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]  # T is always a dataclass here
    return cls(**{k: data[k] for k in names if k in data})


@dataclass
class BakeState:
    """Progress of the health gates over the bake window (carried between polls in the state)."""

    status: str = "CHECKING"  # CHECKING | PASSED
    checks: int = 0
    passes: int = 0
    failures: int = 0
    wait_seconds: int = 0
    last: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = 0.0  # epoch seconds of the first round: the window is also bounded in time

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BakeState:
        return carried(cls, data)


@dataclass
class RolloutState:
    """Progress of the rollout poll loop (carried between polls in the state)."""

    status: str = "IN_PROGRESS"  # IN_PROGRESS | COMPLETED
    elapsed_seconds: int = 0
    polls: int = 0
    wait_seconds: int = 0
    detail: str = ""
    started_at: float = 0.0  # epoch seconds: the deadline counts the time Lambda and retries took too

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RolloutState:
        return carried(cls, data)


@dataclass
class FollowState:
    """Progress of following an ECS service deployment (BLUE_GREEN, CANARY, LINEAR; carried between polls)."""

    #: FOLLOWING | SUCCEEDED | VERIFY (ECS finished without stepdeploy's production gates) | APPROVAL (hold it)
    status: str = "FOLLOWING"
    deployment: str = ""  # the service deployment ARN
    stage: str = ""  # its lifecycle stage at the last poll
    polls: int = 0
    wait_seconds: int = 0
    started_at: float = 0.0
    gated: str = ""  # the stage the gate rounds in ``bake`` count for
    bake: dict[str, Any] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)  # stages whose gates passed (answered CONTINUE)
    production_weight: float = 0.0  # percent of production traffic on the new revision at the last poll
    #: the approval pause at POST_TEST_TRAFFIC_SHIFT: "" (none yet) | AWAITING (asked) | APPROVED
    approval: str = ""
    approved: str = ""  # who approved (or: no answer, on_timeout APPROVE)
    held_at: float = 0.0  # when the release was held for approval
    held_seconds: float = 0.0  # time held for approval (it does not count against the deadline)
    answer: Any = None  # the approval task's result: the operator's output, or the error its Catch stored

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FollowState:
        return carried(cls, data)
