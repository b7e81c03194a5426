"""ECS blue/green, canary and linear service deployments, over the world's virtual clock.

moto 5.2.5 knows nothing of ``deploymentConfiguration.strategy``: this module is the world's model of
what ECS does for a service whose strategy is BLUE_GREEN, CANARY or LINEAR
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html):

- every UpdateService that changes the revision starts a *service deployment* (ARN
  ``service-deployment/<cluster>/<service>/<id>``) from the blue revision to a green one (ARN
  ``service-revision/<cluster>/<service>/<id>``), which walks the lifecycle stages RECONCILE_SERVICE,
  PRE_SCALE_UP, SCALE_UP (green tasks start in the image's ``rollout_seconds``; a ``fail`` image trips
  the circuit breaker, a ``stall`` image never finishes), POST_SCALE_UP, TEST_TRAFFIC_SHIFT (the test
  listener rule sends 100 % to green), POST_TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT (all at once;
  CANARY: canaryPercent, canaryBakeTime, then 100 %; LINEAR: +stepPercent every stepBakeTime),
  POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME (blue still runs) and CLEAN_UP, then SUCCESSFUL;
- a PAUSE hook stops the deployment at its stage (AWAITING_ACTION, ``expiresAt`` = entered + timeout)
  until ContinueServiceDeployment, or its timeout action at ``expiresAt`` (the hook is TIMED_OUT); at
  PRODUCTION_TRAFFIC_SHIFT it pauses after each traffic step;
- a rollback (ContinueServiceDeployment ROLLBACK, StopServiceDeployment ROLLBACK, the circuit breaker,
  a hook timing out with ROLLBACK) puts production and test traffic back on blue at once:
  ROLLBACK_IN_PROGRESS, then ROLLBACK_SUCCESSFUL :data:`ROLLBACK_SECONDS` later, green tasks stopped;
  a rollback made to fail (:meth:`DeploymentModel.fail_next_rollback`) ends ROLLBACK_FAILED instead, the
  source revision's tasks stopped too (they could not be brought back): nothing serves;
- after SUCCESSFUL, green is the new blue: the next deployment's green goes to the other target group;
- deployment alarms (``deploymentConfiguration.alarms`` with ``enable`` and ``rollback``): from the first
  production traffic shift to the end of BAKE_TIME, a named CloudWatch alarm in ALARM rolls the deployment
  back (the alarms are read whenever the model advances, i.e. on every ECS call; DescribeServiceDeployments
  shows ``alarms`` MONITORING, TRIGGERED with ``triggeredAlarmNames``, MONITORING_COMPLETE or DISABLED);
- the listener rules' forward weights are set in moto's ELBv2 backend (DescribeRules shows them), and
  each target group's health shows the tasks of the revision behind it;
- the "ECS Deployment State Change" and "ECS Hook State Change" events go to the default bus.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import clock
from .model import container_image
from .workload import ImageProfile

STRATEGIES = ("ROLLING", "BLUE_GREEN", "CANARY", "LINEAR")
PROGRESSIVE = ("BLUE_GREEN", "CANARY", "LINEAR")
HOOK_STAGES = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
)
#: virtual seconds from ROLLBACK_IN_PROGRESS to ROLLBACK_SUCCESSFUL (a listener change: blue still runs)
ROLLBACK_SECONDS = 5.0
#: defaults ECS applies (design.md §8)
DEFAULT_CANARY = {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 10}
DEFAULT_LINEAR = {"stepPercent": 10.0, "stepBakeTimeInMinutes": 6}
TERMINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")


def _invalid(message: str) -> Exception:
    from moto.ecs.exceptions import InvalidParameterException

    return InvalidParameterException(message)


# ----------------------------------------------------------------------------------- validation


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _invalid(f"{name} must be a number, got {value!r}.") from None


def _in_range(value: Any, name: str, low: float, high: float) -> float:
    number = _number(value, name)
    if not low <= number <= high:
        raise _invalid(f"{name} must be between {low:g} and {high:g}, got {number:g}.")
    return number


def validate(config: dict[str, Any] | None, load_balancers: list[dict[str, Any]] | None) -> None:
    """Refuse a deploymentConfiguration ECS refuses (InvalidParameterException), as a service would have it
    after the call (``load_balancers`` its load balancers then)."""
    config = config or {}
    strategy = config.get("strategy", "ROLLING")
    if strategy not in STRATEGIES:
        raise _invalid(f"Invalid deployment strategy {strategy!r}: must be one of {', '.join(STRATEGIES)}.")
    if "bakeTimeInMinutes" in config:
        _in_range(config["bakeTimeInMinutes"], "bakeTimeInMinutes", 0, 1440)
    canary = config.get("canaryConfiguration") or {}
    if "canaryPercent" in canary:
        percent = _in_range(canary["canaryPercent"], "canaryPercent", 0.1, 100)
        if abs(percent * 10 - round(percent * 10)) > 1e-9:
            raise _invalid(f"canaryPercent must be a multiple of 0.1, got {percent:g}.")
    if "canaryBakeTimeInMinutes" in canary:
        _in_range(canary["canaryBakeTimeInMinutes"], "canaryBakeTimeInMinutes", 0, 1440)
    linear = config.get("linearConfiguration") or {}
    if "stepPercent" in linear:
        _in_range(linear["stepPercent"], "stepPercent", 3, 100)
    if "stepBakeTimeInMinutes" in linear:
        _in_range(linear["stepBakeTimeInMinutes"], "stepBakeTimeInMinutes", 0, 1440)
    for hook in config.get("lifecycleHooks") or []:
        _validate_hook(hook)
    if strategy in PROGRESSIVE:
        _validate_load_balancers(strategy, load_balancers or [])


def _validate_hook(hook: dict[str, Any]) -> None:
    target = hook.get("targetType", "AWS_LAMBDA")
    if target == "AWS_LAMBDA":
        raise _invalid("The local world does not run AWS_LAMBDA lifecycle hooks; use targetType PAUSE.")
    if target != "PAUSE":
        raise _invalid(f"Invalid lifecycle hook targetType {target!r}: must be AWS_LAMBDA or PAUSE.")
    stages = hook.get("lifecycleStages") or []
    if not stages:
        raise _invalid("A lifecycle hook must name at least one lifecycleStages value.")
    for stage in stages:
        if stage not in HOOK_STAGES:
            raise _invalid(f"Invalid lifecycle stage {stage!r}: must be one of {', '.join(HOOK_STAGES)}.")
    timeout = hook.get("timeoutConfiguration") or {}
    if "timeoutInMinutes" in timeout:
        _in_range(timeout["timeoutInMinutes"], "timeoutInMinutes", 1, 20160)
    if timeout.get("action", "ROLLBACK") not in ("ROLLBACK", "CONTINUE"):
        raise _invalid(f"Invalid timeout action {timeout.get('action')!r}: must be ROLLBACK or CONTINUE.")


def _validate_load_balancers(strategy: str, load_balancers: list[dict[str, Any]]) -> None:
    advanced: list[dict[str, Any]] = [
        lb["advancedConfiguration"] for lb in load_balancers if lb.get("advancedConfiguration")
    ]
    if not advanced:
        raise _invalid(
            f"The {strategy} deployment strategy requires a load balancer with advancedConfiguration "
            "(alternateTargetGroupArn, productionListenerRule and roleArn)."
        )
    for item in advanced:
        missing = [k for k in ("alternateTargetGroupArn", "productionListenerRule", "roleArn") if not item.get(k)]
        if missing:
            raise _invalid(f"advancedConfiguration is missing {', '.join(missing)}, required for {strategy}.")


# ----------------------------------------------------------------------------------- the model


@dataclass
class Revision:
    arn: str
    task_definition: str
    image: str
    target_group: str
    created: float
    running: int = 0


@dataclass
class Hook:
    hook_id: str
    stage: str
    timeout_action: str
    expires: float
    status: str = "AWAITING_ACTION"


@dataclass
class Step:
    stage: str
    duration: float = 0.0  # after the stage's work and hooks
    production: float | None = None  # green's production percent from this step
    test: float | None = None


@dataclass
class ServiceDeployment:
    arn: str
    strategy: str
    source: Revision | None
    target: Revision
    config: dict[str, Any]
    steps: list[Step]
    created: float
    status: str = "IN_PROGRESS"
    reason: str = "ECS deployment in progress."
    index: int = 0
    phase: str = "enter"  # enter | hooks | wait
    since: float = 0.0  # virtual time the phase began
    production: float = 0.0  # green's share of production / test traffic, in percent
    test: float = 0.0
    hooks: list[Hook] = field(default_factory=list)
    finished: float | None = None
    rollback: dict[str, Any] | None = None
    #: (virtual time, green's production percent) from creation on
    weights: list[tuple[float, float]] = field(default_factory=list)
    triggered: list[str] = field(default_factory=list)  # deployment alarms that rolled it back

    @property
    def stage(self) -> str:
        return self.steps[min(self.index, len(self.steps) - 1)].stage


@dataclass
class ProgressiveService:
    cluster: str
    name: str
    arn: str
    cluster_arn: str
    container: str
    desired: int
    blue: Revision
    target_groups: tuple[str, str]  # (targetGroupArn, alternateTargetGroupArn)
    production_rule: str
    test_rule: str | None
    deployments: list[ServiceDeployment] = field(default_factory=list)  # oldest first
    revisions: dict[str, Revision] = field(default_factory=dict)


class WeightedRoundRobin:
    """Smooth weighted round robin (deterministic): each key is picked in proportion to its weight."""

    def __init__(self) -> None:
        self._current: dict[str, float] = {}
        self._lock = threading.Lock()

    def pick(self, weights: dict[str, float]) -> str | None:
        live = {k: w for k, w in weights.items() if w > 0}
        if not live:
            return None
        with self._lock:
            for key in list(self._current):
                if key not in live:
                    del self._current[key]
            if len(live) == 1:  # most requests: the general case below without its sum and max (same arithmetic,
                # so the same float rounding of the key's current weight)
                ((only, weight),) = live.items()
                self._current[only] = self._current.get(only, 0.0) + weight - weight
                return only
            total = sum(live.values())
            for key, weight in live.items():
                self._current[key] = self._current.get(key, 0.0) + weight
            chosen = max(live, key=lambda k: (self._current[k], k))
            self._current[chosen] -= total
            return chosen


class DeploymentModel:
    """The services whose strategy is BLUE_GREEN, CANARY or LINEAR, and their service deployments."""

    def __init__(
        self,
        profile_of: Callable[[str], ImageProfile],
        account_id: str,
        region: str,
        emit: Callable[[str, dict[str, Any], list[str]], None],
        stale_credentials: Callable[[str, float], bool] | None = None,
    ) -> None:
        self._profile_of = profile_of
        self._emit = emit
        self._stale = stale_credentials or (lambda task_definition, started: False)
        self.account_id, self.region = account_id, region
        self._services: dict[tuple[str, str], ProgressiveService] = {}
        self._by_deployment: dict[str, ProgressiveService] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._events: list[tuple[str, dict[str, Any], list[str]]] = []
        self._failing_rollbacks: dict[tuple[str, str], str] = {}
        self.listeners = {"production": WeightedRoundRobin(), "test": WeightedRoundRobin()}

    # ------------------------------------------------------------------ registration

    def find(self, cluster: str, name: str) -> ProgressiveService | None:
        return self._services.get((cluster, name))

    def adopt(self, backend: Any, service: Any, container: str) -> ProgressiveService:
        """Model a service that runs its current revision (blue) behind its primary target group."""
        with self._lock:
            binding = next(lb for lb in service.load_balancers if lb.get("advancedConfiguration"))
            advanced = binding["advancedConfiguration"]
            now = clock.current().time()
            td = service.task_definition
            blue = Revision(
                self._revision_arn(service), td, container_image(backend, td, container), binding["targetGroupArn"], now
            )
            blue.running = service.desired_count
            svc = ProgressiveService(
                cluster=service.cluster_name,
                name=service.name,
                arn=service.arn,
                cluster_arn=service.cluster_arn,
                container=container,
                desired=service.desired_count,
                blue=blue,
                target_groups=(binding["targetGroupArn"], advanced["alternateTargetGroupArn"]),
                production_rule=advanced["productionListenerRule"],
                test_rule=advanced.get("testListenerRule"),
            )
            svc.revisions[blue.arn] = blue
            self._services[(svc.cluster, svc.name)] = svc
            self._set_rules(svc, None)
            self._write_back(service, svc)
            return svc

    def fail_next_rollback(self, cluster: str, name: str, reason: str) -> None:
        """The next rollback of a deployment of this service ends ROLLBACK_FAILED with ``reason``."""
        with self._lock:
            self._failing_rollbacks[(cluster, name)] = reason

    def forget(self, cluster: str, name: str) -> None:
        with self._lock:
            self._services.pop((cluster, name), None)

    def _revision_arn(self, service: Any) -> str:
        return (
            f"arn:aws:ecs:{self.region}:{self.account_id}:service-revision/"
            f"{service.cluster_name}/{service.name}/{next(self._ids):019d}"
        )

    def _deployment_arn(self, svc: ProgressiveService) -> str:
        suffix = secrets.token_urlsafe(15).replace("-", "a").replace("_", "b")[:21]
        return f"arn:aws:ecs:{self.region}:{self.account_id}:service-deployment/{svc.cluster}/{svc.name}/{suffix}"

    # ------------------------------------------------------------------ UpdateService

    def service_updated(self, backend: Any, service: Any, force: bool) -> None:
        with self._lock:
            svc = self._services[(service.cluster_name, service.name)]
            svc.desired = service.desired_count
            self._advance_all(svc)
            current = self._current(svc)
            if current is not None:
                if service.task_definition == current.target.task_definition and not force:
                    self._write_back(service, svc)
                    return
                self._start_rollback(svc, current, clock.current().time(), "A newer service deployment started.")
                self._advance_all(svc)
            if service.task_definition != svc.blue.task_definition or force:
                self._start(backend, service, svc)
            self._write_back(service, svc)
        self._flush()

    def _start(self, backend: Any, service: Any, svc: ProgressiveService) -> None:
        now = clock.current().time()
        config = dict(service.deployment_configuration or {})
        green_tg = svc.target_groups[1] if svc.blue.target_group == svc.target_groups[0] else svc.target_groups[0]
        td = service.task_definition
        green = Revision(self._revision_arn(service), td, container_image(backend, td, svc.container), green_tg, now)
        svc.revisions[green.arn] = green
        deployment = ServiceDeployment(
            arn=self._deployment_arn(svc),
            strategy=config.get("strategy", "BLUE_GREEN"),
            source=svc.blue,
            target=green,
            config=config,
            steps=_plan(config, self._profile_of(green.image)),
            created=now,
            since=now,
        )
        deployment.weights.append((now, 0.0))
        svc.deployments.append(deployment)
        self._by_deployment[deployment.arn] = svc
        self._deployment_event(svc, deployment, "SERVICE_DEPLOYMENT_IN_PROGRESS", now)

    # ------------------------------------------------------------------ advancing over virtual time

    @staticmethod
    def _current(svc: ProgressiveService) -> ServiceDeployment | None:
        return next((d for d in reversed(svc.deployments) if d.status not in TERMINAL), None)

    def _advance_all(self, svc: ProgressiveService) -> None:
        now = clock.current().time()
        for deployment in svc.deployments:
            self._advance(svc, deployment, now)

    def _advance(self, svc: ProgressiveService, d: ServiceDeployment, now: float) -> None:
        while d.status not in TERMINAL:
            if d.status == "ROLLBACK_IN_PROGRESS":
                if now - d.since < ROLLBACK_SECONDS:
                    return
                self._finish_rollback(svc, d, d.since + ROLLBACK_SECONDS)
                continue
            if d.index >= len(d.steps):
                self._succeed(svc, d, d.since)
                continue
            step = d.steps[d.index]
            if d.phase == "enter":
                self._enter(svc, d, step, d.since)
                continue
            done = self._hooks_done(svc, d, now) if d.phase == "hooks" else self._waited(svc, d, step, now)
            if not done and not self._alarmed(svc, d, step, now):
                return  # the step still runs at ``now`` (alarms are read as they are now, for that step only)

    def _alarmed(self, svc: ProgressiveService, d: ServiceDeployment, step: Step, now: float) -> bool:
        """Deployment alarms with rollback, watched while green takes production traffic (through BAKE_TIME):
        one in ALARM rolls the deployment back now. True when it did."""
        alarms = d.config.get("alarms") or {}
        if not (alarms.get("enable") and alarms.get("rollback")) or d.production <= 0 or step.stage == "CLEAN_UP":
            return False
        from moto.cloudwatch.models import cloudwatch_backends

        known = cloudwatch_backends[self.account_id][self.region].alarms
        firing = [n for n in alarms.get("alarmNames") or [] if n in known and known[n].state_value == "ALARM"]
        if not firing:
            return False
        d.triggered = firing
        self._start_rollback(svc, d, now, f"CloudWatch alarm(s) {', '.join(firing)} in ALARM: rolling back.", True)
        return True

    def _enter(self, svc: ProgressiveService, d: ServiceDeployment, step: Step, at: float) -> None:
        if step.test is not None:
            d.test = step.test
        if step.production is not None:
            d.production = step.production
            d.weights.append((at, d.production))
        if step.test is not None or step.production is not None:
            self._set_rules(svc, d)
        d.hooks.extend(
            Hook(
                hook_id="ecs-pause-" + secrets.token_urlsafe(32)[:43],
                stage=step.stage,
                timeout_action=(hook.get("timeoutConfiguration") or {}).get("action", "ROLLBACK"),
                expires=at + 60 * float((hook.get("timeoutConfiguration") or {}).get("timeoutInMinutes", 60)),
            )
            for hook in d.config.get("lifecycleHooks") or []
            if step.stage in (hook.get("lifecycleStages") or [])
        )
        for hook in d.hooks:
            if hook.status == "AWAITING_ACTION" and hook.stage == step.stage:
                self._hook_event(svc, d, hook, at)
        d.phase = "hooks"

    def _hooks_done(self, svc: ProgressiveService, d: ServiceDeployment, now: float) -> bool:
        waiting = [h for h in d.hooks if h.status == "AWAITING_ACTION"]
        for hook in sorted(waiting, key=lambda h: h.expires):
            if now < hook.expires:
                return False
            hook.status = "TIMED_OUT"
            if hook.timeout_action == "ROLLBACK":
                reason = f"Lifecycle hook {hook.hook_id} at {hook.stage} timed out; its timeout action is ROLLBACK."
                self._start_rollback(svc, d, hook.expires, reason)
                return True
            d.since = max(d.since, hook.expires)
        d.phase = "wait"
        return True

    def _waited(self, svc: ProgressiveService, d: ServiceDeployment, step: Step, now: float) -> bool:
        if step.stage == "SCALE_UP":
            return self._scaled(svc, d, step, now)
        if now - d.since < step.duration:
            return False
        d.since += step.duration
        d.index, d.phase = d.index + 1, "enter"
        return True

    def _scaled(self, svc: ProgressiveService, d: ServiceDeployment, step: Step, now: float) -> bool:
        prof = self._profile_of(d.target.image)
        age = now - d.since
        if prof.rollout == "fail" and age >= step.duration:
            d.target.running = 0
            reason = (
                "ECS deployment circuit breaker: tasks failed to start or failed ELB health checks. "
                "Rolling back to the last completed deployment."
            )
            self._start_rollback(svc, d, d.since + step.duration, reason, failed=True)
            return True
        if prof.rollout == "stall" or age < step.duration:
            fraction = min(age / max(step.duration, 1), 1.0) * (0.5 if prof.rollout == "stall" else 1.0)
            d.target.running = 0 if prof.rollout == "fail" else int(svc.desired * fraction)
            return False
        d.target.running = svc.desired
        d.since += step.duration
        d.index, d.phase = d.index + 1, "enter"
        return True

    def _succeed(self, svc: ProgressiveService, d: ServiceDeployment, at: float) -> None:
        d.status, d.finished = "SUCCESSFUL", at
        d.reason = "Service deployment completed successfully."
        if d.source is not None:
            d.source.running = 0
        svc.blue = d.target  # green is the new blue: its target group serves production from now on
        d.production = d.test = 0.0  # (the weights now name the new blue)
        self._set_rules(svc, None)
        self._deployment_event(svc, d, "SERVICE_DEPLOYMENT_COMPLETED", at)

    def _start_rollback(
        self, svc: ProgressiveService, d: ServiceDeployment, at: float, reason: str, failed: bool = False
    ) -> None:
        for hook in d.hooks:
            if hook.status == "AWAITING_ACTION":
                hook.status = "FAILED"
        d.status, d.since, d.reason = "ROLLBACK_IN_PROGRESS", at, reason
        d.production = d.test = 0.0
        d.weights.append((at, 0.0))
        d.rollback = {"reason": reason, "startedAt": at, "serviceRevisionArn": svc.blue.arn}
        self._set_rules(svc, None)
        event = "SERVICE_DEPLOYMENT_FAILED" if failed else "SERVICE_DEPLOYMENT_IN_PROGRESS"
        self._deployment_event(svc, d, event, at, error=failed)

    def _finish_rollback(self, svc: ProgressiveService, d: ServiceDeployment, at: float) -> None:
        failure = self._failing_rollbacks.pop((svc.cluster, svc.name), None)
        d.status, d.finished = ("ROLLBACK_SUCCESSFUL" if failure is None else "ROLLBACK_FAILED"), at
        d.target.running = 0
        if failure is None:
            self._deployment_event(svc, d, "SERVICE_DEPLOYMENT_COMPLETED", at)
            return
        svc.blue.running = 0  # the source revision could not be brought back
        d.reason = failure
        self._deployment_event(svc, d, "SERVICE_DEPLOYMENT_FAILED", at, error=True)

    # ------------------------------------------------------------------ listener rules

    def _set_rules(self, svc: ProgressiveService, d: ServiceDeployment | None) -> None:
        green_tg = d.target.target_group if d is not None else _other(svc.target_groups, svc.blue.target_group)
        production = d.production if d is not None else 0.0
        test = d.test if d is not None else 0.0
        _forward(self.account_id, self.region, svc.production_rule, svc.blue.target_group, green_tg, production)
        if svc.test_rule:
            _forward(self.account_id, self.region, svc.test_rule, svc.blue.target_group, green_tg, test)

    # ------------------------------------------------------------------ events

    def _deployment_event(
        self, svc: ProgressiveService, d: ServiceDeployment, name: str, at: float, error: bool = False
    ) -> None:
        detail = {
            "eventType": "ERROR" if error else "INFO",
            "eventName": name,
            "deploymentId": d.arn.rsplit("/", 1)[-1],
            "serviceDeploymentArn": d.arn,
            "updatedAt": _iso(at),
            "reason": d.reason,
        }
        self._events.append(("ECS Deployment State Change", detail, [svc.arn]))

    def _hook_event(self, svc: ProgressiveService, d: ServiceDeployment, hook: Hook, at: float) -> None:
        detail = {
            "eventType": "INFO",
            "eventName": "HOOK_AWAITING_ACTION",
            "hookId": hook.hook_id,
            "lifecycleStage": hook.stage,
            "serviceDeploymentArn": d.arn,
            "serviceArn": svc.arn,
            "clusterArn": svc.cluster_arn,
            "targetServiceRevisionArn": d.target.arn,
            "expiresAt": _iso(hook.expires),
            "timeoutAction": hook.timeout_action,
            "testTrafficWeights": self._weights(svc, d, d.test),
            "productionTrafficWeights": self._weights(svc, d, d.production),
            "updatedAt": _iso(at),
        }
        self._events.append(("ECS Hook State Change", detail, [svc.arn]))

    @staticmethod
    def _weights(svc: ProgressiveService, d: ServiceDeployment, green: float) -> dict[str, float]:
        blue = d.source.arn if d.source is not None else svc.blue.arn
        return {blue: 100.0 - green, d.target.arn: green}

    def _flush(self) -> None:
        with self._lock:
            pending, self._events = self._events, []
        for detail_type, detail, resources in pending:
            self._emit(detail_type, detail, resources)

    # ------------------------------------------------------------------ DescribeServices

    def service_observed(self, service: Any) -> None:
        with self._lock:
            svc = self._services[(service.cluster_name, service.name)]
            self._advance_all(svc)
            self._write_back(service, svc)
        self._flush()

    def _write_back(self, service: Any, svc: ProgressiveService) -> None:
        """DescribeServices' ``deployments`` and ``taskDefinition`` as a client polling them sees them."""
        now = clock.current().now(None)
        current = self._current(svc)
        rows: list[tuple[Revision, str, str]] = []
        if current is not None and current.status == "IN_PROGRESS":
            rows = [(current.target, "IN_PROGRESS", current.reason), (svc.blue, "COMPLETED", "")]
        elif current is not None:  # rolling back: blue is PRIMARY again, green fails
            rows = [(svc.blue, "IN_PROGRESS", current.reason), (current.target, "FAILED", current.reason)]
        else:
            rows = [(svc.blue, "COMPLETED", "")]
        service.deployments = [
            {
                "id": "ecs-svc/" + revision.arn.rsplit("/", 1)[-1],
                "status": "PRIMARY" if i == 0 else "ACTIVE",
                "taskDefinition": revision.task_definition,
                "desiredCount": svc.desired if i == 0 else 0,
                "pendingCount": max(svc.desired - revision.running, 0) if state == "IN_PROGRESS" else 0,
                "runningCount": revision.running,
                "failedTasks": svc.desired if state == "FAILED" else 0,
                "createdAt": now,
                "updatedAt": now,
                "launchType": "FARGATE",
                "platformFamily": "FARGATE",
                "rolloutState": state,
                "rolloutStateReason": reason or f"ECS deployment ecs-svc/{revision.arn.rsplit('/', 1)[-1]} completed.",
            }
            for i, (revision, state, reason) in enumerate(rows)
        ]
        service.task_definition = rows[0][0].task_definition
        if svc.deployments:  # the service deployment ECS runs, or ran last (DescribeServices, UpdateService)
            service.current_service_deployment = svc.deployments[-1].arn
        service.running_count = sum(r.running for r, _, _ in rows)
        service.pending_count = max(svc.desired - rows[0][0].running, 0)

    def deployment_state(self, cluster: str, name: str, task_definition: str) -> str:
        """For CloudFormation's stability wait: IN_PROGRESS | COMPLETED | FAILED: <reason>."""
        with self._lock:
            svc = self._services[(cluster, name)]
            self._advance_all(svc)
            deployment = next(
                (d for d in reversed(svc.deployments) if d.target.task_definition == task_definition), None
            )
        self._flush()
        if deployment is None or deployment.status == "SUCCESSFUL":
            return "COMPLETED"
        if deployment.status in ("ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED"):
            return f"FAILED: {deployment.reason}"
        return "IN_PROGRESS"

    # ------------------------------------------------------------------ the service deployment APIs

    def _deployment(self, arn: str) -> tuple[ProgressiveService, ServiceDeployment]:
        from moto.core.exceptions import JsonRESTError

        svc = self._by_deployment.get(arn)
        found = next((d for d in svc.deployments if d.arn == arn), None) if svc is not None else None
        if svc is None or found is None:
            raise JsonRESTError("ServiceDeploymentNotFoundException", f"Service deployment {arn} not found.")
        return svc, found

    def list_deployments(self, cluster: str, service: str, statuses: list[str] | None) -> list[dict[str, Any]]:
        with self._lock:
            svc = self._services.get((cluster, service.split("/")[-1]))
            if svc is None:
                return []
            self._advance_all(svc)
            found = [
                {
                    "serviceDeploymentArn": d.arn,
                    "serviceArn": svc.arn,
                    "clusterArn": svc.cluster_arn,
                    "createdAt": _dt(d.created),
                    "startedAt": _dt(d.created),
                    **({"finishedAt": _dt(d.finished)} if d.finished is not None else {}),
                    "targetServiceRevisionArn": d.target.arn,
                    "status": d.status,
                    "statusReason": d.reason,
                }
                for d in reversed(svc.deployments)
                if not statuses or d.status in statuses
            ]
        self._flush()
        return found

    def describe(self, arns: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        found, failures = [], []
        with self._lock:
            for arn in arns:
                svc = self._by_deployment.get(arn)
                if svc is None:
                    failures.append({"arn": arn, "reason": "MISSING"})
                    continue
                self._advance_all(svc)
                found.append(self._describe(svc, self._deployment(arn)[1]))
        self._flush()
        return found, failures

    def _describe(self, svc: ProgressiveService, d: ServiceDeployment) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serviceDeploymentArn": d.arn,
            "serviceArn": svc.arn,
            "clusterArn": svc.cluster_arn,
            "createdAt": _dt(d.created),
            "startedAt": _dt(d.created),
            "updatedAt": _dt(clock.current().time()),
            "sourceServiceRevisions": [self._summary(svc, d, d.source, 100.0 - d.production, 100.0 - d.test)]
            if d.source is not None
            else [],
            "targetServiceRevision": self._summary(svc, d, d.target, d.production, d.test),
            "status": d.status,
            "statusReason": d.reason,
            "lifecycleStage": d.stage,
            "lifecycleHookDetails": [
                {
                    "hookId": h.hook_id,
                    "targetType": "PAUSE",
                    "status": h.status,
                    "expiresAt": _dt(h.expires),
                    "timeoutAction": h.timeout_action,
                }
                for h in d.hooks
            ],
            "deploymentConfiguration": d.config,
            "deploymentCircuitBreaker": {"status": "TRIGGERED" if "circuit breaker" in d.reason else "MONITORING"},
        }
        alarms = d.config.get("alarms") or {}
        if alarms.get("alarmNames"):
            out["alarms"] = {"status": _alarm_status(d, alarms), "alarmNames": list(alarms["alarmNames"])}
            if d.triggered:
                out["alarms"]["triggeredAlarmNames"] = list(d.triggered)
        if d.finished is not None:
            out["finishedAt"] = _dt(d.finished)
        if d.rollback is not None:
            out["rollback"] = {**d.rollback, "startedAt": _dt(d.rollback["startedAt"])}
        return out

    @staticmethod
    def _summary(
        svc: ProgressiveService, d: ServiceDeployment, revision: Revision, production: float, test: float
    ) -> dict[str, Any]:
        requested = svc.desired if revision is d.target or d.status not in TERMINAL else 0
        return {
            "arn": revision.arn,
            "requestedTaskCount": requested,
            "runningTaskCount": revision.running,
            "pendingTaskCount": max(requested - revision.running, 0),
            "requestedTestTrafficWeight": test,
            "requestedProductionTrafficWeight": production,
        }

    def revisions(self, arns: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        found, failures = [], []
        for arn in arns:
            svc = next((s for s in self._services.values() if arn in s.revisions), None)
            if svc is None:
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            revision = svc.revisions[arn]
            found.append(
                {
                    "serviceRevisionArn": arn,
                    "serviceArn": svc.arn,
                    "clusterArn": svc.cluster_arn,
                    "taskDefinition": revision.task_definition,
                    "launchType": "FARGATE",
                    "platformFamily": "FARGATE",
                    "loadBalancers": [{"targetGroupArn": revision.target_group, "containerName": svc.container}],
                    "containerImages": [{"containerName": svc.container, "image": revision.image}],
                    "createdAt": _dt(revision.created),
                }
            )
        return found, failures

    def continue_deployment(self, arn: str, hook_id: str, action: str) -> str:
        with self._lock:
            svc, d = self._deployment(arn)
            self._advance_all(svc)
            hook = next((h for h in d.hooks if h.hook_id == hook_id), None)
            if hook is None:
                raise _invalid(f"The lifecycle hook {hook_id} does not belong to service deployment {arn}.")
            if hook.status != "AWAITING_ACTION" or d.status != "IN_PROGRESS":
                raise _invalid(
                    f"The lifecycle hook {hook_id} is {hook.status}, not AWAITING_ACTION "
                    f"(service deployment {d.status})."
                )
            now = clock.current().time()
            if action == "ROLLBACK":
                hook.status = "FAILED"
                self._start_rollback(svc, d, now, f"ContinueServiceDeployment ROLLBACK at lifecycle hook {hook_id}.")
            else:
                hook.status = "SUCCEEDED"
                d.since = now
            self._advance_all(svc)
        self._flush()
        return arn

    def stop_deployment(self, arn: str, stop_type: str) -> str:
        with self._lock:
            svc, d = self._deployment(arn)
            self._advance_all(svc)
            if d.status != "IN_PROGRESS":
                from moto.core.exceptions import JsonRESTError

                raise JsonRESTError("ConflictException", f"The service deployment {arn} is {d.status}.")
            if stop_type != "ROLLBACK":
                raise _invalid("The local world supports StopServiceDeployment with stopType ROLLBACK only.")
            self._start_rollback(svc, d, clock.current().time(), "StopServiceDeployment ROLLBACK requested.")
        self._flush()
        return arn

    # ------------------------------------------------------------------ traffic and target health

    def weights(self, cluster: str, name: str, listener: str) -> dict[str, float]:
        """Revision ARN -> percent of ``listener``'s ("production" | "test") traffic, now."""
        with self._lock:
            svc = self._services[(cluster, name)]
            self._advance_all(svc)
            current = self._current(svc)
            share = 0.0 if current is None else current.production if listener == "production" else current.test
            out = {svc.blue.arn: 100.0 - share}
            if current is not None:
                out[current.target.arn] = share
        self._flush()
        return out

    def answer(self, cluster: str, name: str, listener: str) -> ImageProfile | None:
        """How the revision that ``listener``'s rule weights pick for this request answers."""
        chosen = self.listeners[listener].pick(self.weights(cluster, name, listener))
        if chosen is None:
            return None
        revision = self._services[(cluster, name)].revisions[chosen]
        if revision.running <= 0:
            return None
        answer = self._profile_of(revision.image)
        if self._stale(revision.task_definition, revision.created):
            answer = answer.with_changes(body="Error: db connection down")
        return answer

    def target_health(self, target_group_arn: str) -> list[Any] | None:
        from moto.elbv2.models import FakeHealthStatus

        from .model import TARGET_REASONS

        with self._lock:
            svc = next((s for s in self._services.values() if target_group_arn in s.target_groups), None)
            if svc is None:
                return None
            self._advance_all(svc)
            current = self._current(svc)
            behind = [r for r in (svc.blue, current.target if current else None) if r is not None]
            out = []
            for n, revision in enumerate(r for r in behind if r.target_group == target_group_arn):
                scaling = current is not None and revision is current.target and current.stage == "SCALE_UP"
                state = "initial" if scaling else self._profile_of(revision.image).targets
                for k in range(revision.running):
                    out.append(
                        FakeHealthStatus(
                            f"10.1.{n + 1}.{k + 10}", "3000", "traffic-port", state, TARGET_REASONS.get(state)
                        )
                    )
        self._flush()
        return out

    def production_history(
        self, target_group_arn: str
    ) -> tuple[list[tuple[float, dict[str, float]]], dict[str, Revision]]:
        """The production listener's weights over time, (virtual time, revision ARN -> percent) from the first
        revision on, and the revisions, of the service behind ``target_group_arn``; nothing if none is."""
        with self._lock:
            svc = next((s for s in self._services.values() if target_group_arn in s.target_groups), None)
            if svc is None:
                return [], {}
            self._advance_all(svc)
            first = min(svc.revisions.values(), key=lambda r: r.created)
            changes = [(first.created, {first.arn: 100.0})]
            for d in svc.deployments:
                blue = d.source.arn if d.source is not None else d.target.arn
                changes += [(t, {blue: 100.0 - share, d.target.arn: share}) for t, share in d.weights]
            found = sorted(changes, key=lambda change: change[0]), dict(svc.revisions)
        self._flush()
        return found

    def deployments_of(self, cluster: str, name: str) -> list[ServiceDeployment]:
        with self._lock:
            svc = self._services[(cluster, name)]
            self._advance_all(svc)
            found = list(svc.deployments)
        self._flush()
        return found


# ----------------------------------------------------------------------------------- helpers


def _plan(config: dict[str, Any], profile: ImageProfile) -> list[Step]:
    strategy = config.get("strategy", "BLUE_GREEN")
    steps = [
        Step("RECONCILE_SERVICE"),
        Step("PRE_SCALE_UP"),
        Step("SCALE_UP", duration=float(profile.rollout_seconds)),
        Step("POST_SCALE_UP"),
        Step("TEST_TRAFFIC_SHIFT", test=100.0),
        Step("POST_TEST_TRAFFIC_SHIFT"),
    ]
    if strategy == "CANARY":
        canary = {**DEFAULT_CANARY, **(config.get("canaryConfiguration") or {})}
        bake = 60 * float(canary["canaryBakeTimeInMinutes"])
        steps.append(Step("PRODUCTION_TRAFFIC_SHIFT", duration=bake, production=float(canary["canaryPercent"])))
    elif strategy == "LINEAR":
        linear = {**DEFAULT_LINEAR, **(config.get("linearConfiguration") or {})}
        bake, step, share = 60 * float(linear["stepBakeTimeInMinutes"]), float(linear["stepPercent"]), 0.0
        while share + step < 100:
            share += step
            steps.append(Step("PRODUCTION_TRAFFIC_SHIFT", duration=bake, production=share))
    steps += [
        Step("PRODUCTION_TRAFFIC_SHIFT", production=100.0),
        Step("POST_PRODUCTION_TRAFFIC_SHIFT"),
        Step("BAKE_TIME", duration=60 * float(config.get("bakeTimeInMinutes", 0) or 0)),
        Step("CLEAN_UP"),
    ]
    return steps


def _alarm_status(d: ServiceDeployment, alarms: dict[str, Any]) -> str:
    if not alarms.get("enable"):
        return "DISABLED"
    if d.triggered:
        return "TRIGGERED"
    return "MONITORING" if d.status not in TERMINAL else "MONITORING_COMPLETE"


def _other(pair: tuple[str, str], one: str) -> str:
    return pair[1] if one == pair[0] else pair[0]


def _forward(account_id: str, region: str, rule_arn: str, blue_tg: str, green_tg: str, green: float) -> None:
    """Set the rule's forward action weights (ALB weights are integers: tenths of a percent when needed)."""
    from moto.elbv2.models import FakeAction, elbv2_backends

    scale = 1 if float(green).is_integer() else 10
    green_weight = round(green * scale)
    action = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": blue_tg, "Weight": 100 * scale - green_weight},
                {"TargetGroupArn": green_tg, "Weight": green_weight},
            ]
        },
    }
    backend = elbv2_backends[account_id][region]
    [rule] = backend.describe_rules(listener_arn=None, rule_arns=[rule_arn])
    rule.actions = [FakeAction(action)]


def _dt(at: float) -> Any:
    import datetime as _datetime

    return _datetime.datetime.fromtimestamp(at, tz=_datetime.UTC)


def _iso(at: float) -> str:
    return str(_dt(at).strftime("%Y-%m-%dT%H:%M:%SZ"))
