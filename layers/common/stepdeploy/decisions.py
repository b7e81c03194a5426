"""Pure decision functions: no I/O, no clock, no boto3. Everything here is unit-tested.

The handlers gather observations through the adapters, hand them to these functions, and act on
the answer. Terminal outcomes are raised as the workflow's named errors.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import (
    AlarmTriggered,
    DeploymentInProgress,
    HealthCheckFailed,
    InvalidDeploymentRequest,
    RolloutFailed,
    RolloutTimedOut,
)
from .models import (
    ApprovalSpec,
    BakeState,
    FollowState,
    HealthPolicy,
    RolloutPolicy,
    RolloutState,
    StrategySpec,
)

# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class DeploymentView:
    """One entry of an ECS service's ``deployments`` list."""

    id: str
    status: str  # PRIMARY | ACTIVE | INACTIVE
    task_definition: str
    rollout_state: str | None  # IN_PROGRESS | COMPLETED | FAILED (None without a circuit breaker)
    rollout_reason: str
    desired: int
    running: int
    failed_tasks: int = 0


@dataclass(frozen=True)
class ServiceView:
    cluster: str
    service: str
    status: str
    task_definition: str
    deployments: tuple[DeploymentView, ...]
    target_groups: tuple[str, ...] = ()  # of its load balancers
    #: deploymentConfiguration.strategy (ROLLING when the service has none)
    strategy: str = "ROLLING"
    #: the load balancer's advancedConfiguration (what ECS needs to shift traffic), empty for a rolling service
    advanced: Mapping[str, str] = field(default_factory=dict)
    #: deploymentConfiguration as DescribeServices returns it (the base a strategy change is applied to)
    deployment_configuration: Mapping[str, Any] = field(default_factory=dict)
    #: the service deployment ECS runs or ran last (currentServiceDeployment)
    current_service_deployment: str | None = None

    @property
    def primary(self) -> DeploymentView | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)


@dataclass(frozen=True)
class HookView:
    id: str
    status: str  # AWAITING_ACTION | IN_PROGRESS | SUCCEEDED | FAILED | TIMED_OUT


@dataclass(frozen=True)
class ServiceDeploymentView:
    """An ECS service deployment (DescribeServiceDeployments), as far as stepdeploy follows it."""

    arn: str
    status: str  # PENDING | IN_PROGRESS | SUCCESSFUL | STOPPED | STOP_REQUESTED | ROLLBACK_*
    reason: str
    stage: str  # lifecycleStage
    target_revision: str
    production_weight: float  # percent of production traffic the target revision is asked to take
    test_weight: float
    hook: HookView | None = None  # the PAUSE hook awaiting stepdeploy's answer, if any
    timed_out: bool = False  # a PAUSE hook TIMED_OUT: nobody answered it in time
    triggered_alarms: tuple[str, ...] = ()  # deployment alarms that made ECS roll it back

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_DEPLOYMENT


#: service deployment states after which ECS changes nothing more
FINISHED_DEPLOYMENT = frozenset({"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"})
#: states of a deployment ECS is taking back (or took back) to the source revision
ROLLING_BACK = frozenset(
    {"STOP_REQUESTED", "STOPPED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL"}
)


@dataclass(frozen=True)
class ProbeResult:
    status: int | None
    body: str
    latency_ms: int
    error: str | None = None


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    detail: str


# --------------------------------------------------------------------------- rollout


def assess_rollout(
    view: ServiceView,
    expected_task_definition: str,
    state: RolloutState,
    policy: RolloutPolicy,
    expected_deployment: str | None = None,
    now: float | None = None,
) -> RolloutState:
    """Decide where a rollout stands after the wait just done. Raises on a terminal failure.

    The services-stable waiter also "succeeds" after a circuit-breaker rollback, so COMPLETED is
    only accepted when the PRIMARY deployment runs the revision that was deployed. A refresh
    (``expected_deployment``: same revision, new tasks) is only the deployment it started: a
    circuit-breaker rollback to the old tasks runs the same revision, but not that deployment.
    The elapsed time is the larger of the counted waits and the clock (``now`` - ``started_at``), so the
    time Lambda and its retries take counts against the deadline too.
    """
    elapsed = _elapsed(state.elapsed_seconds + state.wait_seconds, state.started_at, now)
    polls = state.polls + 1
    primary = view.primary
    if view.status != "ACTIVE":
        raise RolloutFailed(f"service {view.service} is {view.status}")
    if primary is None:
        raise RolloutFailed(f"service {view.service} has no PRIMARY deployment")
    if primary.task_definition != expected_task_definition:
        raise RolloutFailed(
            f"the PRIMARY deployment of {view.service} runs {short_revision(primary.task_definition)}, "
            f"not {short_revision(expected_task_definition)}: the deployment circuit breaker or another "
            "deployment replaced it"
        )
    if expected_deployment is not None and primary.id != expected_deployment:
        raise RolloutFailed(
            f"the PRIMARY deployment of {view.service} is {primary.id}, not the refresh deployment "
            f"{expected_deployment}: the deployment circuit breaker rolled it back to the old tasks, or another "
            "deployment replaced it"
        )
    if primary.rollout_state == "FAILED":
        raise RolloutFailed(
            f"ECS rollout of {short_revision(expected_task_definition)} FAILED after {elapsed}s: "
            f"{primary.rollout_reason or 'no reason given'} ({primary.failed_tasks} failed task(s))"
        )
    detail = f"{primary.running}/{primary.desired} tasks running, {len(view.deployments)} deployment(s)"
    completed = primary.rollout_state == "COMPLETED" or (
        primary.rollout_state is None and len(view.deployments) == 1 and primary.running == primary.desired
    )
    if completed:
        return RolloutState("COMPLETED", elapsed, polls, 0, detail, state.started_at)
    remaining = policy.timeout_seconds - elapsed
    if remaining <= 0:
        raise RolloutTimedOut(
            f"rollout of {short_revision(expected_task_definition)} still IN_PROGRESS after {elapsed}s "
            f"(deadline {policy.timeout_seconds}s): {detail}"
        )
    return RolloutState(
        status="IN_PROGRESS",
        elapsed_seconds=elapsed,
        polls=polls,
        wait_seconds=min(policy.poll_seconds, remaining),
        detail=detail,
        started_at=state.started_at,
    )


def _elapsed(counted: int, started_at: float, now: float | None) -> int:
    """Seconds a loop has run: the waits it counted, or the clock if that says more."""
    if now is None or not started_at:
        return counted
    return max(counted, int(now - started_at))


def first_rollout_state(policy: RolloutPolicy, now: float = 0.0) -> RolloutState:
    """State after UpdateService (at ``now``): wait one poll interval before the first look."""
    return RolloutState(
        status="IN_PROGRESS",
        elapsed_seconds=0,
        polls=0,
        wait_seconds=min(policy.poll_seconds, policy.timeout_seconds),
        started_at=now,
    )


# --------------------------------------------------------------------------- health gates


def body_matches(body: str, expected: str | None, mode: str) -> bool:
    if expected is None:
        return True
    if mode == "exact":
        return body.strip() == expected.strip()
    if mode == "contains":
        return expected in body
    return re.search(expected, body) is not None


def probe_gate(result: ProbeResult, policy: HealthPolicy) -> GateResult:
    if result.error is not None:
        return GateResult("http", False, f"GET {policy.url} failed: {result.error}")
    snippet = result.body.strip().replace("\n", " ")[:120]
    if result.status != policy.expected_status:
        return GateResult(
            "http",
            False,
            f"GET {policy.url} returned HTTP {result.status}, expected {policy.expected_status} (body {snippet!r})",
        )
    if not body_matches(result.body, policy.expected_body, policy.body_match):
        return GateResult(
            "http",
            False,
            f"GET {policy.url} returned HTTP {result.status} with body {snippet!r}, "
            f"expected {policy.body_match} {policy.expected_body!r}",
        )
    if result.latency_ms > policy.max_latency_ms:
        return GateResult(
            "http", False, f"GET {policy.url} took {result.latency_ms} ms, limit {policy.max_latency_ms} ms"
        )
    return GateResult("http", True, f"HTTP {result.status} {snippet!r} in {result.latency_ms} ms")


def target_gate(states: Sequence[tuple[str, str]]) -> GateResult:
    """``states`` is (target id, state) for each registered target. Draining targets are ignored."""
    live = [(t, s) for t, s in states if s != "draining"]
    if not live:
        return GateResult("targets", False, "no registered targets (outside draining)")
    bad = [f"{t}={s}" for t, s in live if s != "healthy"]
    if bad:
        return GateResult("targets", False, f"{len(bad)}/{len(live)} targets not healthy: {', '.join(bad[:5])}")
    return GateResult("targets", True, f"{len(live)}/{len(live)} targets healthy")


def primary_gate(
    view: ServiceView, expected_task_definition: str, expected_deployment: str | None = None
) -> GateResult:
    primary = view.primary
    if primary is None or primary.task_definition != expected_task_definition:
        running = short_revision(primary.task_definition) if primary else "nothing"
        return GateResult(
            "primary", False, f"PRIMARY deployment runs {running}, expected {short_revision(expected_task_definition)}"
        )
    if expected_deployment is not None and primary.id != expected_deployment:
        return GateResult(
            "primary", False, f"PRIMARY deployment is {primary.id}, not the refresh deployment {expected_deployment}"
        )
    return GateResult("primary", True, f"PRIMARY runs {short_revision(expected_task_definition)}")


def alarm_gate(alarm_states: Mapping[str, str], names: Iterable[str]) -> GateResult:
    wanted = list(names)
    missing = [n for n in wanted if n not in alarm_states]
    if missing:
        return GateResult("alarms", False, f"alarm(s) not found: {', '.join(missing)}")
    firing = [n for n in wanted if alarm_states[n] == "ALARM"]
    if firing:
        return GateResult("alarms", False, f"in ALARM: {', '.join(firing)}")
    return GateResult("alarms", True, f"{len(wanted)} alarm(s) not in ALARM")


def advance_bake(
    state: BakeState, gates: Sequence[GateResult], policy: HealthPolicy, revision: str, now: float | None = None
) -> BakeState:
    """Fold one round of gate results into the bake state. Raises the named error on failure.

    - an alarm in ALARM fails at once (``AlarmTriggered``);
    - the PRIMARY deployment not running the revision fails at once (``RolloutFailed``);
    - otherwise ``unhealthy_threshold`` consecutive failing rounds fail (``HealthCheckFailed``);
    - ``healthy_threshold`` consecutive passing rounds pass; ``max_checks`` bounds the window, and so does
      the clock: rounds that took longer than ``max_checks`` x ``interval_seconds`` in all fail it.
    """
    checks = state.checks + 1
    started = state.started_at or (now or 0.0)
    results = [asdict(g) for g in gates]
    by_gate = {g.gate: g for g in gates}
    label = short_revision(revision)
    if "alarms" in by_gate and not by_gate["alarms"].passed:
        raise AlarmTriggered(f"{label}: {by_gate['alarms'].detail} (check {checks})")
    if "primary" in by_gate and not by_gate["primary"].passed:
        raise RolloutFailed(f"{label}: {by_gate['primary'].detail} (check {checks})")
    failed = [g for g in gates if not g.passed]
    if failed:
        failures, passes = state.failures + 1, 0
        if failures >= policy.unhealthy_threshold:
            raise HealthCheckFailed(
                f"{label} failed {failures} consecutive health check(s): " + "; ".join(g.detail for g in failed)
            )
    else:
        failures, passes = 0, state.passes + 1
        if passes >= policy.healthy_threshold:
            return BakeState("PASSED", checks, passes, 0, 0, results, started)
    window = policy.max_checks * policy.interval_seconds
    if now is not None and checks < policy.max_checks and now - started >= window:
        raise HealthCheckFailed(
            f"{label} did not pass {policy.healthy_threshold} consecutive checks within its bake window of "
            f"{window} s (max_checks x interval_seconds; {checks} checks); last: " + "; ".join(g.detail for g in gates)
        )
    if checks >= policy.max_checks:
        raise HealthCheckFailed(
            f"{label} did not pass {policy.healthy_threshold} consecutive checks within {policy.max_checks} "
            f"checks; last: " + "; ".join(g.detail for g in gates)
        )
    return BakeState(
        status="CHECKING",
        checks=checks,
        passes=passes,
        failures=failures,
        wait_seconds=policy.interval_seconds,
        last=results,
        started_at=started,
    )


# --------------------------------------------------------------------------- progressive delivery

#: the stages where stepdeploy's PAUSE hooks stop the deployment, and what the gates there reach
HOOK_STAGES = ("POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT")
#: stages in which the new revision takes production traffic while ECS moves it (gated on every poll)
#: the shortest wait between gate rounds during a traffic shift (keeps the longest shift within the history limit)
SHIFT_MIN_WAIT = 10
SHIFT_STAGES = frozenset({"PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME"})


def deployment_configuration(
    current: Mapping[str, Any], strategy: StrategySpec, hooks: bool = True, alarm_names: Sequence[str] = ()
) -> dict[str, Any]:
    """The service's deploymentConfiguration with ``strategy`` applied: PAUSE hooks at HOOK_STAGES (timeout action
    ROLLBACK, the backstop should stepdeploy stop answering) unless ``hooks`` is false (a rollback shifts at once).
    The health gates' ``alarm_names`` become deployment alarms with rollback: ECS watches them through the bake
    and takes the deployment back itself when one fires (see bake_left_to_ecs). A rollback (``hooks`` false)
    turns deployment alarms off: the alarms the failed revision set off must not take the rollback back."""
    kept = ("deploymentCircuitBreaker", "maximumPercent", "minimumHealthyPercent", "alarms")
    out: dict[str, Any] = {k: current[k] for k in kept if k in current}
    out["strategy"] = strategy.type
    if not strategy.progressive:
        return out
    if alarm_names:
        named = [*((current.get("alarms") or {}).get("alarmNames") or []), *alarm_names]
        out["alarms"] = {"alarmNames": list(dict.fromkeys(named)), "enable": hooks, "rollback": hooks}
    out["bakeTimeInMinutes"] = strategy.bake_minutes if hooks else 0
    if strategy.type == "CANARY":
        out["canaryConfiguration"] = {
            "canaryPercent": strategy.canary_percent,
            "canaryBakeTimeInMinutes": strategy.canary_bake_minutes if hooks else 0,
        }
    if strategy.type == "LINEAR":
        out["linearConfiguration"] = {
            "stepPercent": strategy.step_percent,
            "stepBakeTimeInMinutes": strategy.step_bake_minutes if hooks else 0,
        }
    out["lifecycleHooks"] = (
        [
            {
                "targetType": "PAUSE",
                "lifecycleStages": list(HOOK_STAGES),
                "timeoutConfiguration": {"timeoutInMinutes": strategy.hook_timeout_minutes, "action": "ROLLBACK"},
            }
        ]
        if hooks
        else []
    )
    return out


def strategy_problem(strategy: StrategySpec | None, view: ServiceView) -> str | None:
    """Why the service cannot be deployed with ``strategy`` (None: it can)."""
    if strategy is None:
        if view.strategy != "ROLLING":
            return (
                f"$.strategy: service {view.service} deploys with {view.strategy}; give $.strategy (type and "
                "test_url) so stepdeploy can gate the new revision at its lifecycle hooks"
            )
        return None
    if strategy.progressive:
        missing = [
            k for k in ("alternateTargetGroupArn", "productionListenerRule", "roleArn") if not view.advanced.get(k)
        ]
        if missing:
            return (
                f"$.strategy.type: {strategy.type} needs the service's load balancer advancedConfiguration "
                f"({', '.join(missing)} missing on {view.service})"
            )
        if not view.advanced.get("testListenerRule"):
            return f"$.strategy.test_url: service {view.service} has no test listener rule to reach the new revision"
    return None


def test_token(secret_string: str) -> str:
    """The test listener's token from its secret: JSON ``{"token": ...}`` (stacks/app.yaml TestTrafficSecret)."""
    try:
        token = json.loads(secret_string).get("token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise InvalidDeploymentRequest('$.strategy.test_header_secret_arn: the secret is not JSON {"token": "..."}')
    return token


def follow_deadline(rollout: RolloutPolicy, health: HealthPolicy, strategy: StrategySpec) -> int:
    """Seconds a service deployment may take: the rollout, a gate window at each hook, and the traffic shift."""
    return (
        rollout.timeout_seconds
        + len(HOOK_STAGES) * health.max_checks * health.interval_seconds
        + strategy.shift_seconds()
    )


def follow_poll_limit(rollout: RolloutPolicy, health: HealthPolicy, strategy: StrategySpec) -> int:
    """Polls a service deployment may take (bounds its history events as the deadline bounds its time): the
    rollout's polls, a full gate window at each hook, a gate round per interval of the traffic shift, and spares."""
    return (
        rollout.timeout_seconds // rollout.poll_seconds
        + len(HOOK_STAGES) * health.max_checks
        + strategy.shift_seconds() // shift_wait(health)
        + 10
    )


def bake_left_to_ecs(strategy: StrategySpec, health: HealthPolicy) -> bool:
    """Whether ECS itself guards the deployment bake: the gates' alarms are deployment alarms with rollback
    (deployment_configuration), so an alarm firing during the bake takes the deployment back to blue, which
    still runs. stepdeploy then polls once, when the bake is over, and gates the result there (instead of a
    gate round every interval through the bake); without alarms it gates every interval as before."""
    return bool(health.alarm_names) and strategy.bake_minutes > 0


def after_production_hook_wait(strategy: StrategySpec, health: HealthPolicy) -> int:
    """Seconds to the next poll once the POST_PRODUCTION_TRAFFIC_SHIFT hook is answered CONTINUE: past the end of
    the bake when ECS guards it (bake_left_to_ecs), else the gate interval."""
    if bake_left_to_ecs(strategy, health):
        return 60 * strategy.bake_minutes + SHIFT_MIN_WAIT
    return health.interval_seconds


def shift_wait(health: HealthPolicy) -> int:
    """Seconds between gate rounds while production traffic shifts: the gate interval, at least SHIFT_MIN_WAIT."""
    return max(health.interval_seconds, SHIFT_MIN_WAIT)


def observed(state: FollowState, view: ServiceDeploymentView, now: float) -> FollowState:
    """The follow state once one more poll saw the deployment as ``view`` at ``now``."""
    return replace(
        state,
        started_at=state.started_at or now,
        stage=view.stage,
        polls=state.polls + 1,
        production_weight=view.production_weight,
    )


def follow_phase(view: ServiceDeploymentView, state: FollowState) -> str:
    """What a poll of a followed service deployment does next:

    - ``SUCCEEDED``: ECS finished it and stepdeploy's gates passed on production;
    - ``VERIFY``: ECS finished it but the production gates did not run (gate it before recording success);
    - ``FAILED``: ECS took it back (circuit breaker, alarms, a hook timeout, someone else's rollback);
    - ``HOOK``: paused at one of stepdeploy's hooks: gate, then CONTINUE or ROLLBACK;
    - ``SHIFT``: the new revision takes production traffic while ECS shifts it or bakes: gate every poll;
    - ``WAIT``: nothing to gate yet (scaling up, shifting test traffic).
    """
    if view.status == "SUCCESSFUL":
        return "SUCCEEDED" if HOOK_STAGES[-1] in state.passed else "VERIFY"
    if view.status in ROLLING_BACK or view.status == "ROLLBACK_FAILED":
        return "FAILED"
    if view.hook is not None and view.stage in HOOK_STAGES:
        return "HOOK"
    if view.stage in SHIFT_STAGES and view.production_weight > 0:
        return "SHIFT"
    return "WAIT"


@dataclass(frozen=True)
class TargetGroupStats:
    """One target group's ALB metrics over a window (AWS/ApplicationELB, dimensions LoadBalancer + TargetGroup)."""

    requests: float  # RequestCount, Sum
    errors: float  # HTTPCode_Target_5XX_Count, Sum
    response_time: float | None  # TargetResponseTime, Average (seconds); None without data


#: fewer requests than this on either revision: too few to compare green with blue
COMPARE_MIN_REQUESTS = 20
#: green's 5xx share may exceed blue's by this much (a fraction of its requests) before it is clearly worse
COMPARE_ERROR_MARGIN = 0.02
#: green's average response time may reach this multiple of blue's, plus COMPARE_LATENCY_MARGIN seconds
COMPARE_LATENCY_RATIO = 1.5
COMPARE_LATENCY_MARGIN = 0.1


def compare_gate(green: TargetGroupStats, blue: TargetGroupStats) -> GateResult:
    """Green (the new revision) against blue while both take production traffic: green fails when it is clearly
    worse, i.e. its 5xx share exceeds blue's by more than COMPARE_ERROR_MARGIN, or its average response time
    exceeds COMPARE_LATENCY_RATIO x blue's + COMPARE_LATENCY_MARGIN s. Too few requests to tell: it passes."""
    if min(green.requests, blue.requests) < COMPARE_MIN_REQUESTS:
        return GateResult(
            "green-vs-blue",
            True,
            f"too few requests to compare (green {green.requests:g}, blue {blue.requests:g}; "
            f"at least {COMPARE_MIN_REQUESTS} each)",
        )
    green_rate, blue_rate = green.errors / green.requests, blue.errors / blue.requests
    if green_rate > blue_rate + COMPARE_ERROR_MARGIN:
        return GateResult(
            "green-vs-blue",
            False,
            f"the new revision answered {green_rate:.1%} of {green.requests:g} requests with 5XX, the current "
            f"one {blue_rate:.1%} of {blue.requests:g} (margin {COMPARE_ERROR_MARGIN:.0%})",
        )
    if green.response_time is not None and blue.response_time is not None:
        limit = COMPARE_LATENCY_RATIO * blue.response_time + COMPARE_LATENCY_MARGIN
        if green.response_time > limit:
            return GateResult(
                "green-vs-blue",
                False,
                f"the new revision's average response time {green.response_time * 1000:.0f} ms exceeds "
                f"{COMPARE_LATENCY_RATIO:g} x the current one's {blue.response_time * 1000:.0f} ms + "
                f"{COMPARE_LATENCY_MARGIN * 1000:.0f} ms",
            )
    return GateResult(
        "green-vs-blue", True, f"5XX {green_rate:.1%} vs {blue_rate:.1%}; response time no worse than the current"
    )


def approval_verdict(answer: Any, approval: ApprovalSpec) -> tuple[bool, str]:
    """Whether a held release goes ahead, and who or what decided, from the approval task's result: the output a
    person sent with SendTaskSuccess (``{"approved": true, "by": ...}``; ``"approved": false`` rejects), or the
    error its Catch stored (States.Timeout: ``on_timeout`` decides; SendTaskFailure or a failed request: rejected)."""
    if isinstance(answer, Mapping) and "Error" in answer:
        if answer["Error"] == "States.Timeout":
            verdict = approval.on_timeout == "APPROVE"
            return (
                verdict,
                f"no one answered within {approval.timeout_minutes} min (approval.on_timeout {approval.on_timeout})",
            )
        return (
            False,
            f"the release was not approved ({answer['Error']}: {_plain(answer.get('Cause')) or 'no reason given'})",
        )
    by = str(answer.get("by") or "someone") if isinstance(answer, Mapping) else "someone"
    if isinstance(answer, Mapping) and answer.get("approved") is False:
        reason = answer.get("reason")
        return False, f"rejected by {by}" + (f": {reason}" if reason else "")
    return True, f"approved by {by}"


def fold_shift_round(
    state: BakeState, gates: Sequence[GateResult], policy: HealthPolicy, revision: str, streak: int = 1
) -> BakeState:
    """One gate round while production traffic shifts: ECS decides when it ends, so passing rounds only reset the
    failure count; an alarm fails at once, ``unhealthy_threshold`` consecutive failing checks fail. ``streak``:
    the consecutive failing probes this round took (a failing probe is probed again at once while users take the
    new revision's share: see workflow.follow_gate_round), so one round can hold all of them; a round that
    failed otherwise (a probe that passed on its second try, the comparison) counts once."""
    label = short_revision(revision)
    results = [asdict(g) for g in gates]
    failed = [g for g in gates if not g.passed]
    alarm = next((g for g in failed if g.gate == "alarms"), None)
    if alarm is not None:
        raise AlarmTriggered(f"{label}: {alarm.detail} (while taking production traffic)")
    failures = state.failures + max(streak, 1) if failed else 0
    if failures >= policy.unhealthy_threshold:
        raise HealthCheckFailed(
            f"{label} failed {failures} consecutive health check(s) while taking production traffic: "
            + "; ".join(g.detail for g in failed)
        )
    return BakeState("CHECKING", state.checks + 1, state.passes + (0 if failed else 1), failures, 0, results)


# --------------------------------------------------------------------------- task definitions

#: Keys of DescribeTaskDefinition's output that RegisterTaskDefinition accepts.
REGISTERABLE_KEYS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
)


def choose_container(task_definition: Mapping[str, Any], requested: str | None) -> str:
    names = [c["name"] for c in task_definition.get("containerDefinitions", [])]
    if requested is not None:
        if requested not in names:
            raise InvalidDeploymentRequest(
                f"$.service.container: no container {requested!r} in "
                f"{short_revision(task_definition.get('taskDefinitionArn', ''))}; "
                f"containers: {', '.join(names) or 'none'}"
            )
        return requested
    if len(names) != 1:
        raise InvalidDeploymentRequest(
            f"$.service.container: the task definition has {len(names)} containers ({', '.join(names)}); name one"
        )
    return str(names[0])


def next_task_definition(
    current: Mapping[str, Any], container: str, image_uri: str, tags: Sequence[Mapping[str, str]] = ()
) -> dict[str, Any]:
    """RegisterTaskDefinition input: the current revision with ``container`` pinned to ``image_uri``."""
    spec: dict[str, Any] = {k: json.loads(json.dumps(current[k])) for k in REGISTERABLE_KEYS if k in current}
    found = False
    for definition in spec.get("containerDefinitions", []):
        if definition["name"] == container:
            definition["image"] = image_uri
            found = True
    if not found:
        raise InvalidDeploymentRequest(f"$.service.container: no container {container!r} in the task definition")
    if tags:
        spec["tags"] = [dict(t) for t in tags]
    return spec


def secret_of(value_from: str) -> str:
    """The secret a task definition's ``secrets[].valueFrom`` reads: a Secrets Manager ARN may carry a
    ``:json-key:version-stage:version-id`` suffix (e.g. ``...:secret:rds!cluster-x-AbC123:password::``);
    the secret's own ARN is its first seven ``:`` fields. A name (same-Region secret) is returned as is."""
    parts = value_from.split(":")
    if value_from.startswith("arn:") and len(parts) >= 7 and parts[2] == "secretsmanager":
        return ":".join(parts[:7])
    return value_from


def secret_matches(reference: str, secret_arn: str) -> bool:
    """Does a ``valueFrom`` (or a listed secret) refer to ``secret_arn``? By full ARN, by the ARN without
    the 6-character suffix Secrets Manager appends (a partial ARN), or by name."""
    ref = secret_of(reference)
    if ref == secret_arn:
        return True
    name_with_suffix = secret_arn.split(":", 6)[-1] if secret_arn.count(":") >= 6 else secret_arn
    name = name_with_suffix.rsplit("-", 1)[0] if "-" in name_with_suffix else name_with_suffix
    partial = secret_arn[: len(secret_arn) - len(name_with_suffix)] + name
    return ref in (partial, name)


def secrets_used(task_definition: Mapping[str, Any]) -> list[str]:
    """Every secret the task definition's containers read at start (``secrets[].valueFrom``, normalised)."""
    found: list[str] = []
    for definition in task_definition.get("containerDefinitions", []):
        for item in definition.get("secrets") or []:
            secret = secret_of(str(item.get("valueFrom", "")))
            if secret and secret not in found:
                found.append(secret)
    return found


def container_image(task_definition: Mapping[str, Any], container: str) -> str:
    for definition in task_definition.get("containerDefinitions", []):
        if definition["name"] == container:
            return str(definition["image"])
    return ""


# --------------------------------------------------------------------------- guarantees


def to_epoch(timestamp: str) -> float:
    """ISO-8601 (``...Z`` or ``+00:00``, as ECR events and Step Functions write them) -> epoch seconds."""
    return _dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def digest_of(image_uri: str) -> str | None:
    return image_uri.rsplit("@", 1)[1] if "@" in image_uri else None


def queue_wait(
    waited_seconds: int, poll_seconds: int, timeout_seconds: int, holder: Mapping[str, str], service: str
) -> int:
    """How long to wait before trying the lock again; DeploymentInProgress once the queue timeout passes."""
    if waited_seconds >= timeout_seconds:
        raise DeploymentInProgress(
            f"{service} is being deployed by {holder.get('deployment_id', '?')}; waited {waited_seconds}s "
            f"(queue timeout {timeout_seconds}s). Nothing was changed: retry when it has finished."
        )
    return min(poll_seconds, timeout_seconds - waited_seconds)


def verify_rollback_target(last_verified: str | None, current: str, family_revisions: Sequence[str]) -> str:
    """Where verify mode rolls back to: the last revision stepdeploy verified, else the family's
    newest revision older than the current one, else nowhere (the current one)."""
    if last_verified and last_verified != current:
        return last_verified

    def number(arn: str) -> int:
        return int(arn.rsplit(":", 1)[-1])

    older = [arn for arn in family_revisions if number(arn) < number(current)]
    return max(older, key=number) if older else current


def init_task_verdict(task: Mapping[str, Any], container: str) -> str | None:
    """None when the one-off task's ``container`` stopped with exit code 0; else what went wrong.
    ``task`` is the task description ``ecs:runTask.sync`` returns (PascalCase)."""
    containers = {c.get("Name"): c for c in task.get("Containers", []) if isinstance(c, Mapping)}
    stopped = f"task stopped: {task.get('StopCode', '?')} ({task.get('StoppedReason', 'no reason given')})"
    mine = containers.get(container)
    if mine is None:
        return f"container {container!r} is not in the task; {stopped}"
    code = mine.get("ExitCode")
    if code is None:
        return f"container {container!r} has no exit code ({mine.get('Reason', 'it never ran')}); {stopped}"
    if code != 0:
        return f"container {container!r} exited with code {code}; {stopped}"
    return None


def is_stale(pushed_at: float, last: Mapping[str, str] | None) -> bool:
    """An image pushed before the last deployed one must not replace it."""
    return last is not None and float(last.get("pushed_at", "0")) > pushed_at


# --------------------------------------------------------------------------- reporting


def service_of(service_arn: str) -> tuple[str, str]:
    """(cluster, service) of an ECS service ARN (``arn:...:service/<cluster>/<service>``)."""
    parts = service_arn.split(":", 5)[-1].split("/")
    if len(parts) != 3 or parts[0] != "service":
        raise ValueError(f"not an ECS service ARN with a cluster: {service_arn!r}")
    return parts[1], parts[2]


def short_revision(task_definition_arn: str) -> str:
    """``arn:...:task-definition/web:7`` -> ``web:7``."""
    return task_definition_arn.rsplit("/", 1)[-1] if task_definition_arn else "?"


def describe_failure(error: Mapping[str, Any] | None) -> tuple[str, str]:
    """(error name, human cause) from a Catch's ``{"Error", "Cause"}``.

    Lambda errors carry a JSON cause with ``errorMessage``; service and States.* errors carry text.
    """
    if not error:
        return "DeploymentFailed", "no error details were captured"
    name = str(error.get("Error") or "DeploymentFailed")
    cause = error.get("Cause")
    if name.startswith("States."):  # (a Fail state may not end with a States.* name: it becomes States.Runtime)
        step_name = "StepTimedOut" if name == "States.Timeout" else "StepFailed"
        return step_name, f"{name}: {_plain(cause) or 'no cause given'}"[:32000]
    return name, str(_plain(cause) or name)[:32000]


def _plain(cause: Any) -> Any:
    """A Lambda error's JSON cause -> its errorMessage; anything else as it is."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            return str(parsed["errorMessage"])
    return cause


_ECR_REGISTRY = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)


def out_of_reach(named: Iterable[tuple[str, str | None]], partition: str, region: str, account: str) -> str | None:
    """Why a request cannot be deployed from here: the first ARN (``(path, value)``; names and None
    pass) in another partition, region or account than the function's, or an ECR registry host
    (``<account>.dkr.ecr.<region>.amazonaws.com``) of another account or region. None: all within reach.
    Nothing is checked while the function's account is unknown."""
    if not account:
        return None
    for path, value in named:
        if not value:
            continue
        if value.startswith("arn:"):
            where = value.split(":")[1:5]
            if len(where) == 4 and (where[0], where[2], where[3]) != (partition, region, account):
                return (
                    f"{path}: {value[:200]} is in account {where[3] or '?'}, region {where[2] or '?'}; stepdeploy "
                    f"deploys only in its own account {account} and region {region} ({partition})"
                )
        elif (host := _ECR_REGISTRY.fullmatch(value)) is not None and (host["account"], host["region"]) != (
            account,
            region,
        ):
            return (
                f"{path}: the image is in the ECR registry of account {host['account']}, region {host['region']}; "
                f"stepdeploy deploys images of its own account {account} and region {region} only"
            )
    return None
