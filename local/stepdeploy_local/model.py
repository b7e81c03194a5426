"""A small, explicit model of what moto does not simulate: ECS rollouts, ALB target health and
alarms, over virtual time, driven by the profile of the image each deployment runs.

- UpdateService to a new revision starts a PRIMARY deployment (IN_PROGRESS); the old one is ACTIVE.
- After the image's ``rollout_seconds`` the PRIMARY is COMPLETED and the old deployment goes away;
  a ``fail`` image is FAILED instead and, like the ECS deployment circuit breaker with rollback,
  a new PRIMARY deployment of the last completed revision starts; a ``stall`` image never finishes.
- The load balancer routes to the completed deployment; its targets take the image's target health.
- Alarms named by the serving image's profile are put into ALARM, the service's others are OK.
- UpdateService with forceNewDeployment starts a new PRIMARY deployment of the same revision (new tasks).
- Tasks read their secrets when they start: a deployment whose tasks started before a secret they read
  was rotated (``stale_credentials``) answers as the workload does with a wrong database password
  (TechChallengeApp: HTTP 200, ``Error: db connection down``; the ALB health check still passes).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from . import clock
from .workload import ImageProfile


def container_image(backend: Any, task_definition: str, container: str) -> str:
    """The image ``container`` of a task definition runs (the first container's when none is named so)."""
    td = backend.describe_task_definition(task_definition)
    for definition in td.container_definitions:
        if definition.get("name") == container:
            return str(definition.get("image", ""))
    return str(td.container_definitions[0].get("image", ""))


@dataclass
class Deployment:
    id: str
    task_definition: str
    image: str
    created: float
    state: str = "IN_PROGRESS"  # IN_PROGRESS | COMPLETED | FAILED
    reason: str = ""
    running: int = 0


@dataclass
class ModelledService:
    cluster: str
    name: str
    desired: int
    container: str
    target_group_arn: str | None
    alarm_names: tuple[str, ...]
    deployments: list[Deployment] = field(default_factory=list)  # newest first; [0] is PRIMARY
    #: every ECS deployment an UpdateService started (a rollout), oldest first: its task definition
    rollouts: list[str] = field(default_factory=list)
    #: (virtual time, ECS deployment id, task definition, image) each time the serving deployment changed
    served: list[tuple[float, str, str, str]] = field(default_factory=list)
    #: (virtual time, ECS deployment id, task definition) of each rollout, oldest first
    started: list[tuple[float, str, str]] = field(default_factory=list)


TARGET_REASONS = {
    "unhealthy": "Target.ResponseCodeMismatch",
    "initial": "Elb.RegistrationInProgress",
    "draining": "Target.DeregistrationInProgress",
}


class RolloutModel:
    def __init__(self, profile_of: Any, account_id: str, region: str, stale_credentials: Any = None) -> None:
        self._profile_of = profile_of  # image URI -> ImageProfile
        # (task definition ARN, tasks started at) -> did a secret they read rotate since?
        self._stale_credentials = stale_credentials or (lambda task_definition, started: False)
        self._services: dict[tuple[str, str], ModelledService] = {}
        self._tg_index: dict[str, ModelledService] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.account_id, self.region = account_id, region

    # ------------------------------------------------------------------ registration

    def adopt(
        self,
        backend: Any,
        cluster: str,
        name: str,
        container: str,
        target_group_arn: str | None,
        alarm_names: tuple[str, ...],
    ) -> None:
        """Start modelling a service that already runs its current revision (COMPLETED)."""
        with self._lock:
            service = backend._get_service(cluster, name)
            svc = ModelledService(
                cluster=cluster,
                name=name,
                desired=service.desired_count,
                container=container,
                target_group_arn=target_group_arn,
                alarm_names=alarm_names,
            )
            td = service.task_definition
            svc.deployments = [
                Deployment(
                    self._new_id(),
                    td,
                    container_image(backend, td, container),
                    clock.current().time(),
                    state="COMPLETED",
                    reason="ECS deployment completed.",
                    running=service.desired_count,
                )
            ]
            first = svc.deployments[0]
            svc.served.append((first.created, first.id, first.task_definition, first.image))
            self._services[(service.cluster_name, name)] = svc
            if target_group_arn:
                self._tg_index[target_group_arn] = svc
            self._write_back(backend, service, svc)

    def _new_id(self) -> str:
        return f"ecs-svc/{next(self._ids):019d}"

    # ------------------------------------------------------------------ hooks

    def service_updated(self, backend: Any, service: Any, previous: str | None, force: bool = False) -> None:
        with self._lock:
            svc = self._services.get((service.cluster_name, service.name))
            if svc is None:
                return
            svc.desired = service.desired_count
            target = service.task_definition
            self._advance(backend, svc)
            primary = svc.deployments[0]
            if target != primary.task_definition or force:
                svc.rollouts.append(target)
                svc.deployments.insert(
                    0,
                    Deployment(
                        self._new_id(), target, container_image(backend, target, svc.container), clock.current().time()
                    ),
                )
                svc.started.append((svc.deployments[0].created, svc.deployments[0].id, target))
                self._prune(svc)
            self._write_back(backend, service, svc)

    def service_observed(self, backend: Any, service: Any) -> None:
        with self._lock:
            svc = self._services.get((service.cluster_name, service.name))
            if svc is None:
                return
            self._advance(backend, svc)
            self._write_back(backend, service, svc)

    # ------------------------------------------------------------------ the model

    def _advance(self, backend: Any, svc: ModelledService) -> None:
        now = clock.current().time()
        primary = svc.deployments[0]
        if primary.state != "IN_PROGRESS":
            return
        prof: ImageProfile = self._profile_of(primary.image)
        age = now - primary.created
        if prof.rollout == "complete" and age >= prof.rollout_seconds:
            primary.state, primary.running = "COMPLETED", svc.desired
            primary.reason = f"ECS deployment {primary.id} completed."
            completed = primary.created + prof.rollout_seconds
            svc.served.append((completed, primary.id, primary.task_definition, primary.image))
            svc.deployments = [primary]
        elif prof.rollout == "fail" and age >= prof.rollout_seconds:
            primary.state, primary.running = "FAILED", 0
            primary.reason = (
                "ECS deployment circuit breaker: tasks failed to start or failed ELB health checks. "
                "Rolling back to the last completed deployment."
            )
            restore = next((d for d in svc.deployments[1:] if d.state == "COMPLETED"), None)
            if restore is not None:
                svc.deployments.insert(0, Deployment(self._new_id(), restore.task_definition, restore.image, now))
                self._prune(svc)
        else:
            fraction = min(age / max(prof.rollout_seconds, 1), 1.0)
            primary.running = (
                0 if prof.rollout == "fail" else int(svc.desired * fraction * (0.5 if prof.rollout == "stall" else 1))
            )

    @staticmethod
    def _prune(svc: ModelledService) -> None:
        """Keep the PRIMARY and the most recent deployments that still have tasks (ECS shows ACTIVE ones)."""
        svc.deployments = svc.deployments[:3]

    def serving(self, svc: ModelledService) -> Deployment | None:
        """The deployment the load balancer routes to: the newest COMPLETED one with running tasks."""
        return next((d for d in svc.deployments if d.state == "COMPLETED" and d.running > 0), None)

    def _write_back(self, backend: Any, service: Any, svc: ModelledService) -> None:
        """Reflect the model in moto's service object, in the shape DescribeServices returns."""
        now = clock.current().now(None)
        service.deployments = [
            {
                "id": d.id,
                "status": "PRIMARY" if i == 0 else "ACTIVE",
                "taskDefinition": d.task_definition,
                "desiredCount": svc.desired if i == 0 else 0,
                "pendingCount": max(svc.desired - d.running, 0) if i == 0 and d.state == "IN_PROGRESS" else 0,
                "runningCount": d.running,
                "failedTasks": svc.desired if d.state == "FAILED" else 0,
                "createdAt": now,
                "updatedAt": now,
                "launchType": "FARGATE",
                "platformFamily": "FARGATE",
                "rolloutState": d.state,
                "rolloutStateReason": d.reason or f"ECS deployment {d.id} in progress.",
            }
            for i, d in enumerate(svc.deployments)
        ]
        service.task_definition = svc.deployments[0].task_definition
        service.running_count = sum(d.running for d in svc.deployments)
        service.pending_count = max(svc.desired - svc.deployments[0].running, 0)
        self._sync_alarms(svc)

    def _sync_alarms(self, svc: ModelledService) -> None:
        if not svc.alarm_names:
            return
        from moto.cloudwatch.models import cloudwatch_backends

        cw = cloudwatch_backends[self.account_id][self.region]
        serving = self.serving(svc)
        firing = set(self._profile_of(serving.image).alarms) if serving else set()
        for name in svc.alarm_names:
            wanted = "ALARM" if ("*" in firing or name in firing) else "OK"
            alarm = cw.alarms.get(name)
            if alarm is not None and alarm.state_value != wanted:
                cw.set_alarm_state(name, f"local world: serving image profile -> {wanted}", "{}", wanted)

    # ------------------------------------------------------------------ queries used by the world

    def deployment_state(self, backend: Any, cluster: str, name: str, task_definition: str) -> str:
        """The state of the service's newest deployment of ``task_definition``: IN_PROGRESS, COMPLETED, or
        "FAILED: <reason>" (a service the model does not follow is taken as COMPLETED)."""
        with self._lock:
            svc = self._services.get((cluster, name))
            if svc is None:
                return "COMPLETED"
            self._catch_up(backend, svc)
            deployment = next((d for d in svc.deployments if d.task_definition == task_definition), None)
            if deployment is None:
                return "COMPLETED"
            return f"FAILED: {deployment.reason}" if deployment.state == "FAILED" else deployment.state

    def _catch_up(self, backend: Any, svc: ModelledService) -> None:
        """Advance the service's deployments to the virtual now and write them back to moto (lock held)."""
        self._advance(backend, svc)
        self._write_back(backend, backend._get_service(svc.cluster, svc.name), svc)

    def find(self, cluster: str, name: str) -> ModelledService | None:
        return self._services.get((cluster, name))

    def forget(self, cluster: str, name: str) -> None:
        """Stop following a service (its strategy is no longer ROLLING: the deployment model follows it)."""
        with self._lock:
            svc = self._services.pop((cluster, name), None)
            if svc is not None and svc.target_group_arn:
                self._tg_index.pop(svc.target_group_arn, None)

    def timeline(self, backend: Any, cluster: str, name: str) -> ModelledService:
        """The service, advanced to the virtual now (its ``served`` and ``deployments`` up to date)."""
        with self._lock:
            svc = self._services[(cluster, name)]
            self._catch_up(backend, svc)
            return svc

    def serving_profile(self, backend: Any, cluster: str, name: str) -> ImageProfile | None:
        with self._lock:
            svc = self._services[(cluster, name)]
            self._catch_up(backend, svc)
            serving = self.serving(svc)
            if serving is None:
                return None
            answer: ImageProfile = self._profile_of(serving.image)
            if self._stale_credentials(serving.task_definition, serving.created):
                answer = answer.with_changes(body="Error: db connection down")
            return answer

    def target_health(self, backend: Any, target_group_arn: str) -> list[Any] | None:
        from moto.elbv2.models import FakeHealthStatus

        with self._lock:
            svc = self._tg_index.get(target_group_arn)
            if svc is None:
                return None
            self._catch_up(backend, svc)
            serving = self.serving(svc)
            out = []
            for n, d in enumerate(svc.deployments):
                if d.running <= 0:
                    continue
                if d is serving:
                    state = self._profile_of(d.image).targets
                elif d.state == "IN_PROGRESS":
                    state = "initial"
                else:
                    state = "draining"
                for k in range(d.running):
                    reason = TARGET_REASONS.get(state)
                    out.append(FakeHealthStatus(f"10.0.{n + 1}.{k + 10}", "3000", "traffic-port", state, reason))
            return out
