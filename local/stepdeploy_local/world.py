"""The local AWS world: moto + the compatibility patches + stepdeploy deployed from template.yaml.

    with World() as world:
        app = world.create_service()                 # cluster, service running v1, ALB, alarms
        world.push_image(app.repository, "v2")       # healthy
        run = world.deploy(app.request("v2"))        # the real ASL, the real handlers
        assert run.status == "SUCCEEDED"

Faults are injected through ``world.faults`` only (see :class:`Faults`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import ssl
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from secrets import token_hex, token_urlsafe
from typing import Any, TypeVar

from . import clock, compat, template, tls
from .deployments import PROGRESSIVE, DeploymentModel
from .model import RolloutModel, container_image
from .runtime import ApiFault, LambdaRuntime, unrecorded
from .traffic import DEFAULT_RATE, DeploymentTraffic, UserTraffic, count, metric_samples, requests, segments_of
from .workload import ImageProfile, RedirectServer, WorkloadServer, profile

ACCOUNT_ID = "123456789012"
#: the header the test listener's rule requires (a blue/green service the world creates)
TEST_HEADER = "X-Stepdeploy-Test"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")

T = TypeVar("T")


def _states_of(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The states of an ASL definition by name, those of its Parallel branches and Map iterators too."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition.get("States", {}).items():
        found[name] = state
        for inner in [*state.get("Branches", []), state.get("Iterator"), state.get("ItemProcessor")]:
            if inner:
                found.update(_states_of(inner))
    return found


def _merge(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides replace top-level values; a dict override is merged into the dict it overrides."""
    for key, value in overrides.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) and isinstance(body.get(key), dict) else value
    return body


def _manual_request(
    target: dict[str, Any], repository: str, tag: str | None, digest: str | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    image: dict[str, Any] = {"repository": repository}
    if tag:
        image["tag"] = tag
    if digest:
        image["digest"] = digest
    return _merge({**target, "image": image, "trigger": "manual"}, overrides)


@dataclass
class AppService:
    """A service the world created, and what a deployment request needs to target it."""

    world: World
    cluster: str
    service: str
    container: str
    repository: str
    target_group_arn: str
    alarm_names: tuple[str, ...]
    health_url: str
    #: ROLLING | BLUE_GREEN | CANARY | LINEAR (deploymentConfiguration.strategy)
    strategy: str = "ROLLING"
    #: the production listener's health URL (= health_url), the test listener's, and the header value
    #: (``X-Stepdeploy-Test``) its rule requires; the PAUSE hooks (deploymentConfiguration.lifecycleHooks)
    test_url: str | None = None
    test_token: str | None = None
    hooks: tuple[dict[str, Any], ...] = ()

    @property
    def production_url(self) -> str:
        return self.health_url

    def target(self, **overrides: Any) -> dict[str, Any]:
        """Where and how to deploy to this service: the ``service`` and ``health`` parts of a request
        (a registry entry's ``request``), with ``overrides`` merged into each part."""
        body: dict[str, Any] = {
            "service": {"cluster": self.cluster, "service": self.service, "container": self.container},
            "health": {
                "url": self.health_url,
                "target_group_arn": self.target_group_arn,
                "alarm_names": list(self.alarm_names),
            },
        }
        return _merge(body, overrides)

    def request(self, tag: str | None = None, digest: str | None = None, **overrides: Any) -> dict[str, Any]:
        """A manual deployment request (the documented explicit input) for an image of this service."""
        return _manual_request(self.target(), self.repository, tag, digest, overrides)

    @property
    def key(self) -> str:
        """The key of its deployment records, lock and claims."""
        return f"{self.cluster}/{self.service}"

    def running_task_definition(self) -> str:
        out = self.world.client("ecs").describe_services(cluster=self.cluster, services=[self.service])
        return str(out["services"][0]["taskDefinition"])

    def rollouts(self) -> list[str]:
        """The task definition of every ECS deployment (rollout) an UpdateService started, oldest first
        (CloudFormation's updates of the service included)."""
        self.world.client("ecs").describe_services(cluster=self.cluster, services=[self.service])  # adopt it
        modelled = self.world.model.find(self.cluster, self.service)
        return list(modelled.rollouts) if modelled is not None else []

    def running_image(self) -> str:
        td = self.world.client("ecs").describe_task_definition(taskDefinition=self.running_task_definition())
        return next(
            str(c["image"]) for c in td["taskDefinition"]["containerDefinitions"] if c["name"] == self.container
        )


@dataclass
class StackApp:
    """An application whose infrastructure stepdeploy provisions: requests carry ``stack``, and the
    service, health URL, target group and alarms come from the stack outputs."""

    world: World
    name: str  # the request's stack.name (CloudFormation: <prefix><name>)
    repository: str
    parameters: dict[str, Any]
    init_command: list[str] | None = None

    @property
    def stack_name(self) -> str:
        return f"{self.world.stack_name}-app-{self.name}"

    @property
    def key(self) -> str:
        """The key of its deployment records, lock and claims."""
        return f"stack/{self.name}"

    def target(self, **overrides: Any) -> dict[str, Any]:
        stack: dict[str, Any] = {"name": self.name, "parameters": dict(self.parameters)}
        if self.init_command is not None:
            stack["init_command"] = list(self.init_command)
        return _merge({"stack": stack}, overrides)

    def request(self, tag: str | None = None, digest: str | None = None, **overrides: Any) -> dict[str, Any]:
        """A manual deployment request (with the stack) for an image of this application."""
        return _manual_request(self.target(), self.repository, tag, digest, overrides)

    def outputs(self) -> dict[str, str]:
        stack = self.world.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def service(self) -> AppService:
        """The provisioned service, as the stack outputs name it."""
        out = self.outputs()
        return AppService(
            self.world,
            out["ClusterName"],
            out["ServiceName"],
            out["ContainerName"],
            self.repository,
            out["TargetGroupArn"],
            tuple(a for a in out.get("AlarmNames", "").split(",") if a),
            out["HealthCheckUrl"],
        )


@dataclass
class OneOffRun:
    """A one-off ECS task (e.g. the database initialisation) and how it ended."""

    cluster: str
    task_definition: str
    command: list[str]
    exit_code: int | None = None


@dataclass
class StateStep:
    name: str
    entered: float  # virtual seconds since execution start
    exited: float | None = None


@dataclass
class ExecutionResult:
    arn: str
    name: str
    status: str
    error: str | None
    cause: str | None
    output: dict[str, Any] | None
    input: dict[str, Any]
    events: list[dict[str, Any]]
    virtual_seconds: float
    wall_seconds: float

    @property
    def steps(self) -> list[StateStep]:
        start = self.events[0]["timestamp"].timestamp() if self.events else 0.0
        steps: list[StateStep] = []
        for e in self.events:
            t = e["timestamp"].timestamp() - start
            if e["type"].endswith("StateEntered"):
                steps.append(StateStep(e["stateEnteredEventDetails"]["name"], t))
            elif e["type"].endswith("StateExited") and steps:
                steps[-1].exited = t
        return steps

    @property
    def state_transitions(self) -> int:
        """States entered, plus Lambda retries (each retry is a billed transition)."""
        entered = sum(1 for e in self.events if e["type"].endswith("StateEntered"))
        scheduled = sum(1 for e in self.events if e["type"] in ("LambdaFunctionScheduled", "TaskScheduled"))
        tasks = sum(1 for e in self.events if e["type"] == "TaskStateEntered")
        return entered + max(scheduled - tasks, 0)

    @property
    def path(self) -> list[str]:
        return [s.name for s in self.steps]


class Faults:
    """The one API for injecting faults into the local world."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._stack_failures: dict[tuple[str, str], str] = {}
        self._stack_seconds: dict[str, float] = {}
        self._placement_failures: list[str] = []
        self.placement_failures: list[tuple[str, str, str]] = []  # (cluster, task definition, reason)
        self._task_faults: list[_StateFault] = []
        self._delivery_failures: dict[str, list[tuple[str, str]]] = {}  # rule -> (error code, message)
        self._lock = threading.Lock()

    # ---- Task states and AWS API calls

    def fail_task(
        self,
        state: str,
        error_type: str = "RuntimeError",
        message: str = "injected fault",
        arrival: int = 1,
        times: int = 1,
    ) -> None:
        """The ``arrival``-th time (1-based, counted per execution) an execution enters the Lambda Task
        state ``state`` (its ASL name), its invocation fails with ``error_type`` before the handler runs,
        as Lambda reports an unhandled exception (``Lambda.ServiceException`` etc. model the service's
        own errors), for ``times`` consecutive attempts (a Retry's attempts of that arrival count).
        The first execution that reaches it takes the fault."""
        definition = self._world.task_state(state)
        if ":lambda:" not in str(definition.get("Resource", "")):
            raise ValueError(f"{state} is not a Lambda Task state (fail_api fails the calls of its handlers)")
        self._add_task_fault(state, arrival, times, compat.TaskFault("fail", error_type, message))

    def time_out_task(self, state: str, arrival: int = 1, times: int = 1) -> None:
        """The ``arrival``-th time an execution enters the Task state ``state``, ``times`` consecutive
        attempts run longer than the state's ``TimeoutSeconds``: the work still happens (a Lambda handler
        runs and its writes land; an ``ecs:runTask.sync`` task runs on), the virtual clock reaches the
        state's deadline and the attempt fails with ``States.Timeout``, which Retry and Catch see as on AWS
        (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)."""
        self._world.task_state(state)
        self._add_task_fault(state, arrival, times, compat.TaskFault("timeout"))

    def _add_task_fault(self, state: str, arrival: int, times: int, fault: compat.TaskFault) -> None:
        if arrival < 1 or times < 1:
            raise ValueError("arrival and times must be >= 1")
        with self._lock:
            self._task_faults.append(_StateFault(state, arrival, times, fault))

    def task_attempt(self, execution_arn: str, state: str) -> compat.TaskFault | None:
        arrival = self._world.arrivals(execution_arn, state)
        with self._lock:
            for pending in self._task_faults:
                if pending.takes(execution_arn, state, arrival):
                    if pending.times == 0:
                        self._task_faults.remove(pending)
                    return pending.fault
        return None

    def fail_api(
        self,
        service: str,
        operation: str | None = None,
        error_code: str = "ThrottlingException",
        message: str = "injected API fault",
        times: int = 1,
        after: int = 0,
        state: str | None = None,
        after_success: bool = False,
    ) -> None:
        """AWS API calls that handlers make inside Lambda invocations (not the world's own calls, not the
        Step Functions service integrations) to ``service`` (boto3's name, "dynamodb") and ``operation``
        ("PutItem"; None: any), only in invocations for the Task state ``state`` if given: ``after``
        matching calls pass, then the next ``times`` raise botocore's ClientError with ``error_code``
        (what a handler sees once the SDK's own retries are spent). ``after_success``: the call is made
        and its effect lands, then the error is raised (the response is lost, as when the connection
        drops after the service acted)."""
        _check_operation(service, operation)
        if state is not None:
            self._world.task_state(state)
        if times < 1 or after < 0:
            raise ValueError("times must be >= 1 and after >= 0")
        self._world.runtime.api_faults.add(
            ApiFault(service, operation, error_code, message, times, after, state, after_success)
        )

    def fail_stack_resource(self, logical_id: str, reason: str, action: str = "UPDATE") -> None:
        """The next CloudFormation ``action`` (CREATE | UPDATE) of the resource fails with ``reason``
        (once), as when AWS refuses a change; CloudFormation then rolls the stack back."""
        self._stack_failures[(logical_id, action)] = reason

    def clear_stack_failures(self) -> None:
        """Forget the resource failures armed with ``fail_stack_resource`` that no operation met yet."""
        self._stack_failures.clear()

    def stack_resource_failure(self, stack_name: str, logical_id: str, resource_type: str, action: str) -> str | None:
        return self._stack_failures.pop((logical_id, action), None)

    def slow_stack_operations(self, seconds: float, action: str = "UPDATE") -> None:
        """From now on, each CloudFormation ``action`` (CREATE | UPDATE) of a stack stays in progress for
        ``seconds`` of virtual time, as on AWS (an Aurora creation takes 15-25 min); 0 makes it instant
        again. Meanwhile CancelUpdateStack can cancel an update."""
        self._stack_seconds[action] = seconds

    def stack_operation_seconds(self, stack_name: str, action: str) -> float:
        return self._stack_seconds.get(action, 0.0)

    def fail_event_delivery(
        self, rule: str, times: int = 1, error: str = "THROTTLING", message: str = "injected delivery failure"
    ) -> None:
        """The next ``times`` attempts to deliver events of the EventBridge rule ``rule`` (its name, or the
        SAM event name: "EcrPush") to its target fail with the error code ``error`` (as the dead-letter
        queue's ERROR_CODE reports it: THROTTLING, CONNECTION_FAILURE...). EventBridge retries them per the
        target's RetryPolicy; an event still undelivered when the retries or its age run out goes to the
        target's dead-letter queue (https://docs.aws.amazon.com/eventbridge/latest/userguide/rule-dlq.html)."""
        if times < 1:
            raise ValueError("times must be >= 1")
        name = self._world.rule_name(rule)
        with self._lock:
            self._delivery_failures.setdefault(name, []).extend([(error, message)] * times)

    def event_delivery_failure(self, rule: str) -> tuple[str, str] | None:
        with self._lock:
            pending = self._delivery_failures.get(rule)
            return pending.pop(0) if pending else None

    def fail_run_task_placement(self, times: int = 1, reason: str = "RESOURCE:ENI") -> None:
        """The next ``times`` RunTask calls place no task: ECS answers with ``failures`` (``reason``, e.g.
        RESOURCE:ENI when the subnets have no free IP addresses, RESOURCE:CPU / RESOURCE:MEMORY for
        capacity), so ``ecs:runTask.sync`` fails with AmazonECS.Unknown."""
        self._placement_failures.extend([reason] * times)

    def run_task_failure(self, cluster: str, task_definition: str) -> str | None:
        if not self._placement_failures:
            return None
        reason = self._placement_failures.pop(0)
        self.placement_failures.append((cluster, task_definition, reason))
        return reason

    def set_image_profile(self, repository: str, tag_or_digest: str, image_profile: str | ImageProfile) -> None:
        """Change how an already pushed image behaves (e.g. the database goes down for v1)."""
        digest = self._world.digest_of(repository, tag_or_digest)
        self._world.image_profiles[digest] = profile(image_profile)

    def fail_service_rollback(
        self,
        app: AppService,
        reason: str = "Rollback failed: tasks of the source service revision failed to start "
        "(CannotPullContainerError: the image was not found).",
    ) -> None:
        """The next rollback of a BLUE_GREEN/CANARY/LINEAR service deployment of ``app`` (whoever asks for it: a
        hook's ROLLBACK, StopServiceDeployment, the circuit breaker, a hook timeout) ends ROLLBACK_FAILED with
        ``reason``, the source revision's tasks stopped: nothing serves the service."""
        self._world.deployments.fail_next_rollback(app.cluster, app.service, reason)

    def fail_lambda(
        self,
        logical_id: str,
        error_type: str = "RuntimeError",
        message: str = "injected fault",
        times: int = 1,
        after: int = 0,
    ) -> None:
        """After ``after`` good invocations, the next ``times`` invocations of the function (its
        logical id in template.yaml) fail with ``error_type`` before the handler runs."""
        self._world.runtime.fail_next(logical_id, error_type, message, times, after)


@dataclass
class _StateFault:
    """A fault for ``times`` attempts of the ``arrival``-th entry of a Task state, taken by the first
    execution that gets there."""

    state: str
    arrival: int
    times: int
    fault: compat.TaskFault
    owner: str | None = None

    def takes(self, execution_arn: str, state: str, arrival: int) -> bool:
        if (state, arrival) != (self.state, self.arrival) or self.owner not in (None, execution_arn):
            return False
        self.owner, self.times = execution_arn, self.times - 1
        return True


def _check_operation(service: str, operation: str | None) -> None:
    """A boto3 service name and (if given) one of its operations, or ValueError."""
    import botocore.session

    session = botocore.session.get_session()
    if service not in session.get_available_services():
        raise ValueError(f"unknown AWS service {service!r} (use boto3's name, e.g. 'dynamodb')")
    if operation is not None and operation not in session.get_service_model(service).operation_names:
        raise ValueError(f"{service} has no operation {operation!r} (use the API name, e.g. 'PutItem')")


class Pause:
    """A breakpoint for races: the first execution that enters ``state`` (any state type) for the
    ``arrival``-th time is held there, before the state runs (in wall time, the virtual clock does not
    move for it), until :meth:`release`, or until it is stopped (it ends ABORTED without running the
    state). Only the local world has it; the workflow cannot tell it was held."""

    def __init__(self, state: str, arrival: int = 1) -> None:
        self.state, self.arrival = state, arrival
        self.execution_arn: str | None = None
        self._reached = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()

    def hold(self, execution_arn: str, state: str, arrival: int, running: Callable[[], bool]) -> None:
        with self._lock:
            if (state, arrival) != (self.state, self.arrival) or self._released.is_set():
                return
            if self.execution_arn is None:
                self.execution_arn = execution_arn
            elif self.execution_arn != execution_arn:
                return
        self._reached.set()
        while running() and not self._released.wait(0.02):
            pass

    def reached(self, timeout: float = 30.0) -> str:
        """Block until an execution is held; return its ARN."""
        if not self._reached.wait(timeout) or self.execution_arn is None:
            raise TimeoutError(f"no execution reached {self.state} within {timeout}s")
        return self.execution_arn

    def release(self) -> None:
        self._released.set()


@dataclass(frozen=True)
class _ProgressiveSetup:
    """What a BLUE_GREEN, CANARY or LINEAR service needs besides a rolling one (World.create_service)."""

    service: str
    port: int
    health_path: str
    test_port: int
    hook_timeout_minutes: int

    def create(
        self, elb: Any, vpc: str, lb: dict[str, Any], listener: dict[str, Any], tg: dict[str, Any], iam: Any
    ) -> dict[str, Any]:
        """The alternate target group, the production and test listener rules, the infrastructure role:
        the load balancer's advancedConfiguration."""
        green = elb.create_target_group(
            Name=f"{self.service}-tg-2",
            Protocol="HTTP",
            Port=self.port,
            VpcId=vpc,
            TargetType="ip",
            HealthCheckPath=self.health_path,
            Matcher={"HttpCode": "200"},
        )["TargetGroups"][0]["TargetGroupArn"]
        forward = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": tg["TargetGroupArn"], "Weight": 100},
                    {"TargetGroupArn": green, "Weight": 0},
                ]
            },
        }
        production = elb.create_rule(
            ListenerArn=listener["ListenerArn"],
            Priority=1,
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}],
            Actions=[forward],
        )["Rules"][0]["RuleArn"]
        test_listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=self.test_port,
            DefaultActions=[
                {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"}}
            ],
        )["Listeners"][0]["ListenerArn"]
        token = uuid.uuid4().hex
        test = elb.create_rule(
            ListenerArn=test_listener,
            Priority=1,
            Conditions=[
                {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": TEST_HEADER, "Values": [token]}}
            ],
            Actions=[forward],
        )["Rules"][0]["RuleArn"]
        role = iam.create_role(
            RoleName=f"{self.service}-ecs-infrastructure-lb",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "ecs.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )["Role"]["Arn"]
        return {
            "alternateTargetGroupArn": green,
            "productionListenerRule": production,
            "testListenerRule": test,
            "roleArn": role,
        }

    def configuration(
        self,
        strategy: str,
        canary_percent: float | None,
        canary_bake_minutes: int | None,
        step_percent: float | None,
        step_bake_minutes: int | None,
        bake_minutes: int | None,
    ) -> dict[str, Any]:
        config: dict[str, Any] = {"strategy": strategy}
        if bake_minutes is not None:
            config["bakeTimeInMinutes"] = bake_minutes
        canary = {"canaryPercent": canary_percent, "canaryBakeTimeInMinutes": canary_bake_minutes}
        linear = {"stepPercent": step_percent, "stepBakeTimeInMinutes": step_bake_minutes}
        if strategy == "CANARY":
            config["canaryConfiguration"] = {k: v for k, v in canary.items() if v is not None}
        if strategy == "LINEAR":
            config["linearConfiguration"] = {k: v for k, v in linear.items() if v is not None}
        config["lifecycleHooks"] = [
            {
                "targetType": "PAUSE",
                "lifecycleStages": [stage],
                "timeoutConfiguration": {"timeoutInMinutes": self.hook_timeout_minutes, "action": "ROLLBACK"},
            }
            for stage in ("POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT")
        ]
        return config


@dataclass(frozen=True)
class PipelineBuild:
    """The build stage of examples/pipeline: build and push ``repository:tag`` (the commit tag)."""

    repository: str
    tag: str
    image_profile: str | ImageProfile = "healthy"
    container: str = "app"


_SESSION: Any = None
_CLIENTS: dict[tuple[str, str], Any] = {}  # (service, region) -> the client every world uses


def _share_session() -> None:
    """Every world uses one boto3 session: moto gives each mock a new default session, whose new loader would
    parse the same service models again (~0.1 s per world), and whose clients would be built anew."""
    global _SESSION
    import boto3

    if _SESSION is None:
        boto3.setup_default_session()
        _SESSION = boto3.DEFAULT_SESSION
    boto3.DEFAULT_SESSION = _SESSION


def _client(service: str, region: str) -> Any:
    """The world's client for ``service``, shared by every world (~5 ms to build, ~15 per world): what it holds
    (the service model, the testing credentials every world sets, the region) is the same in each, and moto
    answers it from the backends of the world that runs."""
    if (service, region) not in _CLIENTS:
        _CLIENTS[service, region] = _SESSION.client(service, region_name=region)
    return _CLIENTS[service, region]


#: the AWS environment and the cache statistics the product's clients were left with by the last world
_PRODUCT_CLIENTS_LEFT: list[tuple[tuple[tuple[str, str], ...], Any]] = []


def _aws_environment() -> tuple[tuple[str, str], ...]:
    """The AWS_ variables a client may read (credentials, region, endpoints, config), not those that describe
    the function running (AWS_LAMBDA_*, AWS_EXECUTION_ENV: the last invocation's stay set, see runtime)."""
    return tuple(
        sorted(
            (k, v)
            for k, v in os.environ.items()
            if k.startswith("AWS_") and not k.startswith("AWS_LAMBDA_") and k != "AWS_EXECUTION_ENV"
        )
    )


def _product_clients_now() -> list[tuple[tuple[tuple[str, str], ...], Any]]:
    """The AWS environment and the cache statistics of the product's clients, as _PRODUCT_CLIENTS_LEFT keeps them."""
    from stepdeploy.adapters import clients

    return [(_aws_environment(), clients.client.cache_info())]


def _reuse_product_clients() -> None:
    """The product's boto3 clients (stepdeploy.adapters.clients) are built again in each world (~10 ms each, a
    dozen per world) unless the last world left them in the same AWS environment and nothing used them since,
    as a warm Lambda container keeps its clients: everything they hold comes from that environment."""
    from stepdeploy.adapters import clients

    if _product_clients_now() != _PRODUCT_CLIENTS_LEFT:
        clients.reset()


def _leave_product_clients() -> None:
    _PRODUCT_CLIENTS_LEFT[:] = _product_clients_now()


class World:
    def __init__(
        self,
        region: str = "us-east-1",
        stack_name: str = "stepdeploy-local",
        function_log_level: str | None = None,
        server_port: int | None = None,
        parameters: dict[str, str] | None = None,
        trust_world_ca: bool = True,
    ) -> None:
        """``trust_world_ca``: set ``SSL_CERT_FILE`` to a bundle with the world's CA while the world runs (the
        standard configuration a private CA needs; see :mod:`stepdeploy_local.tls`)."""
        self.region, self.stack_name = region, stack_name
        self.trust_world_ca = trust_world_ca
        self.ca: tls.CertificateAuthority | None = None
        self._tls_contexts: dict[str, ssl.SSLContext] = {}  # certificate ARN -> what its listeners serve
        self.parameters = dict(parameters or {})  # template parameter overrides, as with sam deploy
        self.function_log_level = function_log_level
        self.server_port = server_port
        self.clock = clock.VirtualClock()
        self.image_profiles: dict[str, ImageProfile] = {}
        self.services: list[AppService] = []
        self.stack_apps: list[StackApp] = []
        self.one_off_runs: list[OneOffRun] = []
        self.endpoints: dict[tuple[str, int], tuple[str, int]] = {}  # ALB DNS:port -> workload server
        self.faults = Faults(self)
        self.outputs: dict[str, str] = {}
        self._servers: list[WorkloadServer | RedirectServer] = []
        self._mock: Any = None
        self._moto_server: Any = None
        self._clients: dict[str, Any] = {}
        self._saved_env: dict[str, str] | None = None
        self._task_started: dict[str, float] = {}
        self._adopted: set[tuple[str, str]] = set()
        self.runtime: LambdaRuntime
        self.rules: dict[str, dict[str, Any]] = {}
        self.deliveries: list[tuple[str, str]] = []
        self._pauses: list[Pause] = []
        self._entries: dict[tuple[str, str], int] = {}  # (execution ARN, state) -> times entered
        self._entries_lock = threading.Lock()
        self.rotations: dict[str, float] = {}  # secret ARN -> virtual time of its last rotation
        self.ecs_events: list[dict[str, Any]] = []  # events ECS sent (service deployments, hooks), oldest first
        self.artifact_credentials: list[dict[str, str]] = []  # CodePipeline jobs' artifactCredentials, oldest first

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> World:
        from moto import mock_aws
        from stepdeploy import clock as product_clock

        self._saved_env = dict(os.environ)
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "MOTO_ALLOW_NONEXISTENT_REGION": "true",
                # nothing here launches an instance: moto's ~1300 default AMIs (and their volumes and snapshots)
                # would be built each time an EC2 backend is, at first use and again at reset (~0.5 s per world)
                "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
            }
        )
        for noisy in ("moto", "werkzeug", "botocore"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
        self.ca = tls.CertificateAuthority()
        if self.trust_world_ca:
            os.environ["SSL_CERT_FILE"] = str(self.ca.bundle)
        compat.apply()
        clock.install(self.clock)
        product_clock.use(self.clock.time)  # handlers read leases and claims on the virtual clock
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        _share_session()
        _reuse_product_clients()
        if self.server_port is not None:
            from moto.server import ThreadedMotoServer

            self._moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.server_port, verbose=False)
            self._moto_server.start()
        self._deploy_stack()
        return self

    def close(self) -> None:
        from stepdeploy import clock as product_clock

        try:
            for pause in self._pauses:
                pause.release()
            self._stop_executions()
        finally:
            for server in self._servers:
                server.close()
            self._servers.clear()
            if self._moto_server is not None:
                self._moto_server.stop()
                self._moto_server = None
            compat.HOOKS.invoke_lambda = compat.HOOKS.service_updated = None
            compat.HOOKS.service_observed = None
            compat.HOOKS.target_health = None
            compat.HOOKS.deliver_event = compat.HOOKS.execution_ended = None
            compat.HOOKS.tasks_observed = compat.HOOKS.endpoint = compat.HOOKS.stack_resource_failure = None
            compat.HOOKS.before_state = compat.HOOKS.stack_operation_seconds = None
            compat.HOOKS.task_attempt = None
            compat.HOOKS.run_task_failure = None
            compat.HOOKS.service_stability = None
            compat.HOOKS.service_deployments = None
            compat.HOOKS.alb_metrics = None
            if self._mock is not None:
                _leave_product_clients()  # (in the environment the mock sets, as the next world's start sees it)
                self._mock.stop()
                self._mock = None
            product_clock.use(None)
            self._clients.clear()
            if self._saved_env is not None:
                os.environ.clear()
                os.environ.update(self._saved_env)
            if self.ca is not None:
                tls.remove(self.ca)

    def _stop_executions(self) -> None:
        """Executions run on daemon threads: stop the running ones before the mock goes away."""
        if "DeployStateMachineArn" not in self.outputs:
            return
        sfn = self.client("stepfunctions")
        running = [
            ex["executionArn"]
            for ex in sfn.list_executions(
                stateMachineArn=self.outputs["DeployStateMachineArn"], statusFilter="RUNNING"
            )["executions"]
        ]
        for arn in running:
            sfn.stop_execution(executionArn=arn, error="WorldClosed", cause="local world closed")
        deadline = time.monotonic() + 5
        while running and time.monotonic() < deadline:
            running = [a for a in running if sfn.describe_execution(executionArn=a)["status"] == "RUNNING"]
            time.sleep(0.01)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = _client(service, self.region)
        return self._clients[service]

    # ------------------------------------------------------------------ the stepdeploy stack

    def _deploy_stack(self) -> None:
        """Create stepdeploy's own resources as template.yaml declares them."""
        tpl = template.load()
        resources = tpl["Resources"]
        refs: dict[str, str] = {}
        attrs: dict[str, str] = {}
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        params = template.parameter_defaults(tpl)
        unknown = set(self.parameters) - set(params)
        if unknown:
            raise ValueError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
        params.update(self.parameters)
        holds = template.conditions(tpl, params)
        resources = {k: r for k, r in resources.items() if holds.get(r.get("Condition", ""), True)}

        for logical, res in resources.items():
            props = res.get("Properties", {})
            if res["Type"] == "AWS::DynamoDB::Table":
                name = f"{self.stack_name}-{logical}"
                extra = (
                    {"GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]}
                    if "GlobalSecondaryIndexes" in props
                    else {}
                )
                table = self.client("dynamodb").create_table(
                    TableName=name,
                    KeySchema=props["KeySchema"],
                    AttributeDefinitions=props["AttributeDefinitions"],
                    BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
                    **extra,
                )["TableDescription"]
                ttl = props.get("TimeToLiveSpecification")
                if ttl:
                    self.client("dynamodb").update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
                refs[logical], attrs[f"{logical}.Arn"] = name, table["TableArn"]
                self.outputs[f"{logical}Name"] = name
            elif res["Type"] == "AWS::SQS::Queue":
                url = self.client("sqs").create_queue(QueueName=f"{self.stack_name}-{logical}")["QueueUrl"]
                qarn = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ]
                refs[logical], attrs[f"{logical}.Arn"] = url, qarn
                attrs[f"{logical}.QueueName"] = qarn.rsplit(":", 1)[-1]
                self.outputs[f"{logical}Url"] = url
            elif res["Type"] == "AWS::SNS::Topic":
                arn = self.client("sns").create_topic(Name=f"{self.stack_name}-{logical}")["TopicArn"]
                refs[logical], attrs[f"{logical}.TopicName"] = arn, arn.rsplit(":", 1)[-1]
                queue = self.client("sqs").create_queue(QueueName=f"{self.stack_name}-{logical}-observer")["QueueUrl"]
                qarn = self.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
                self.client("sns").subscribe(
                    TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "false"}
                )
                self.outputs[f"{logical}ObserverQueueUrl"] = queue
            elif res["Type"] == "AWS::Serverless::LayerVersion":
                refs[logical] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:layer:{self.stack_name}-{logical}:1"
            elif res["Type"] == "AWS::IAM::Role":
                created = self.client("iam").create_role(
                    RoleName=f"{self.stack_name}-{logical}"[:64],
                    AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
                )["Role"]
                refs[logical], attrs[f"{logical}.Arn"] = created["RoleName"], created["Arn"]

        role = self.client("iam").create_role(
            RoleName=f"{self.stack_name}-role",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]

        # functions: names first (their environment may reference each other), then create them
        specs = template.functions(tpl)
        for spec in specs:
            name = f"{self.stack_name}-{spec.logical_id}"
            refs[spec.logical_id] = name
            attrs[f"{spec.logical_id}.Arn"] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
        early = template.Resolver(params, refs, attrs, pseudo)
        for logical, res in resources.items():  # a state machine's ARN is known from its name
            if res["Type"] == "AWS::Serverless::StateMachine":
                name = str(early.resolve(res["Properties"].get("Name", logical)))
                refs[logical] = f"arn:aws:states:{self.region}:{ACCOUNT_ID}:stateMachine:{name}"
        resolver = template.Resolver(params, refs, attrs, pseudo)
        overrides = {"POWERTOOLS_LOG_LEVEL": self.function_log_level} if self.function_log_level else {}
        self.runtime = LambdaRuntime(self.region, ACCOUNT_ID, template.layer_dirs(tpl), overrides)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("app.py", "# executed in-process by stepdeploy_local.runtime\n")
        lam = self.client("lambda")
        for spec in specs:
            env = {k: str(resolver.resolve(v)) for k, v in spec.environment.items()}
            name = refs[spec.logical_id]
            lam.create_function(
                FunctionName=name,
                Runtime=spec.runtime,
                Role=role,
                Handler=spec.handler,
                Code={"ZipFile": buf.getvalue()},
                MemorySize=spec.memory_mb,
                Timeout=spec.timeout_s,
                Environment={"Variables": env},
            )
            self.runtime.register(spec, name, attrs[f"{spec.logical_id}.Arn"], env)

        runtime = self.runtime
        compat.HOOKS.invoke_lambda = lambda fn, event: runtime.invoke(fn.function_name, event)

        for logical, res in resources.items():
            if res["Type"] != "AWS::Serverless::StateMachine":
                continue
            props = res["Properties"]
            definition = (template.ROOT / props["DefinitionUri"]).read_text()
            for key, value in props.get("DefinitionSubstitutions", {}).items():
                definition = definition.replace("${" + key + "}", str(resolver.resolve(value)))
            name = str(resolver.resolve(props.get("Name", logical)))
            arn = self.client("stepfunctions").create_state_machine(
                name=name, definition=definition, roleArn=role, type=props.get("Type", "STANDARD")
            )["stateMachineArn"]
            self.outputs[f"{logical}Arn"] = arn
        self.outputs["NotificationTopicArn"] = refs["NotificationTopic"]
        self._create_event_rules(resources, template.Resolver(params, refs, attrs, pseudo))
        self._publish_stack(tpl, template.Resolver(params, refs, attrs, pseudo))
        self._create_alarms(resources, template.Resolver(params, refs, attrs, pseudo))
        compat.HOOKS.deliver_event = self._deliver_event
        compat.HOOKS.execution_ended = self._execution_ended

        from moto.ecs.models import ecs_backends
        from moto.elbv2.models import elbv2_backends

        ecs_backend = ecs_backends[ACCOUNT_ID][self.region]
        elb_backend = elbv2_backends[ACCOUNT_ID][self.region]
        self.model = RolloutModel(self.profile_of_image, ACCOUNT_ID, self.region, self._holds_rotated_password)
        self.deployments = DeploymentModel(
            self.profile_of_image, ACCOUNT_ID, self.region, self._emit_ecs_event, self._holds_rotated_password
        )
        compat.HOOKS.service_deployments = self.deployments
        compat.HOOKS.service_updated = self._service_updated
        compat.HOOKS.service_observed = self._service_observed
        compat.HOOKS.target_health = lambda tg: self._target_health(ecs_backend, tg)
        compat.HOOKS.tasks_observed = self._tasks_observed
        compat.HOOKS.endpoint = self._endpoint
        compat.HOOKS.stack_resource_failure = self.faults.stack_resource_failure
        compat.HOOKS.before_state = self._before_state
        compat.HOOKS.task_attempt = self.faults.task_attempt
        compat.HOOKS.stack_operation_seconds = self.faults.stack_operation_seconds
        compat.HOOKS.run_task_failure = self.faults.run_task_failure
        compat.HOOKS.service_stability = lambda c, s, td: self._service_stability(ecs_backend, c, s, td)
        compat.HOOKS.alb_metrics = self._alb_metrics
        self._ecs_backend, self._elb_backend = ecs_backend, elb_backend

    def _publish_stack(self, tpl: dict[str, Any], resolver: template.Resolver) -> None:
        """A CloudFormation stack named like stepdeploy's own (``self.stack_name``) whose outputs are
        template.yaml's, resolved against what the world created: ``describe-stacks`` answers as on AWS
        (the stepdeploy command finds its state machine and tables there). Outputs of resources the world
        does not create (e.g. alarms) are left out."""
        outputs: dict[str, Any] = {}
        for key, spec in tpl.get("Outputs", {}).items():
            try:
                value = resolver.resolve(spec["Value"])
            except KeyError:
                continue
            outputs[key] = {"Value": str(value), "Description": spec.get("Description", "")}
        body = {
            "Description": "stepdeploy (local world): the outputs of template.yaml",
            "Resources": {"Published": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": outputs,
        }
        with warnings.catch_warnings():  # moto: "WaitConditionHandle ... not supported" (it creates nothing)
            warnings.simplefilter("ignore", UserWarning)
            self.client("cloudformation").create_stack(StackName=self.stack_name, TemplateBody=json.dumps(body))

    # ------------------------------------------------------------------ services stepdeploy's stacks create

    @staticmethod
    def _progressive(service: Any) -> bool:
        """Does the service deploy blue/green, canary or linear (the world's DeploymentModel follows it)?"""
        strategy = (getattr(service, "deployment_configuration", None) or {}).get("strategy", "ROLLING")
        return strategy in PROGRESSIVE and any(lb.get("advancedConfiguration") for lb in service.load_balancers)

    def _service_updated(self, backend: Any, service: Any, previous: str | None, force: bool) -> None:
        """UpdateService: the rolling model or the deployment model follows it, per the service's strategy
        (a strategy change hands the service over, running ``previous``)."""
        key = (service.cluster_name, service.name)
        if self._progressive(service):
            if self.deployments.find(*key) is None:
                container = self._container_of(service)
                self._as_running(service, previous, lambda: self.deployments.adopt(backend, service, container))
                self.model.forget(*key)
            self.deployments.service_updated(backend, service, force)
            return
        if self.deployments.find(*key) is not None:
            self.deployments.forget(*key)
            self._as_running(service, previous, lambda: self._adopt(backend, service))
        self.model.service_updated(backend, service, previous, force)

    @staticmethod
    def _as_running(service: Any, previous: str | None, adopt: Callable[[], Any]) -> None:
        """Adopt the service as it ran before this UpdateService (its ``previous`` task definition)."""
        updated = service.task_definition
        service.task_definition = previous or updated
        try:
            adopt()
        finally:
            service.task_definition = updated

    @staticmethod
    def _container_of(service: Any) -> str:
        return str(service.load_balancers[0]["containerName"])

    def _target_health(self, backend: Any, target_group_arn: str) -> list[Any] | None:
        answer = self.deployments.target_health(target_group_arn)
        return answer if answer is not None else self.model.target_health(backend, target_group_arn)

    def _service_stability(self, backend: Any, cluster: str, name: str, task_definition: str) -> str:
        if self.deployments.find(cluster, name) is not None:
            return self.deployments.deployment_state(cluster, name, task_definition)
        return self.model.deployment_state(backend, cluster, name, task_definition)

    def _emit_ecs_event(self, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        """An event ECS sends to the default bus (source aws.ecs)."""
        when = _dt.datetime.fromtimestamp(self.clock.time(), tz=_dt.UTC)
        entry = {"Source": "aws.ecs", "DetailType": detail_type, "Detail": json.dumps(detail)}
        with unrecorded():  # ECS sends it, not the function whose call made ECS act
            self.client("events").put_events(Entries=[{**entry, "Resources": resources, "Time": when}])
        self.ecs_events.append({"detail-type": detail_type, "detail": detail, "resources": resources})

    def _service_observed(self, backend: Any, service: Any) -> None:
        """A service nobody modelled yet (CloudFormation created it): model it from what it declares."""
        key = (service.cluster_name, service.name)
        if self._progressive(service):
            if self.deployments.find(*key) is None:
                self.deployments.adopt(backend, service, self._container_of(service))
                self._serve_listeners(service.cluster_name, service.name, service)
            self.deployments.service_observed(service)
            return
        if self.model.find(*key) is None and service.load_balancers:
            self._adopt(backend, service)
        modelled = self.model.find(*key)
        if key in self._adopted and modelled is not None:  # alarms may be created after the service
            modelled.alarm_names = self._alarms_of(service)
        self.model.service_observed(backend, service)

    def _adopt(self, backend: Any, service: Any) -> None:
        binding = service.load_balancers[0]
        tg_arn = binding["targetGroupArn"]
        target_group = self._elb_backend.target_groups[tg_arn]
        cluster, name = service.cluster_name, service.name
        self.model.adopt(backend, cluster, name, binding["containerName"], tg_arn, self._alarms_of(service))
        self._adopted.add((cluster, name))
        model = self.model
        for lb in self._balancers(tg_arn):
            self._serve_balancer(
                lb, lambda: model.serving_profile(backend, cluster, name), target_group.health_check_path or "/"
            )

    def _serve_balancer(self, lb: Any, serving: Callable[[], ImageProfile | None], health_path: str) -> None:
        """Serve the load balancer's listeners (DNS name and port): one that forwards answers as ``serving``
        (HTTPS with its certificate on an HTTPS listener), one that redirects redirects; one with a fixed
        response (the test listener of a ROLLING service) is not served."""
        for listener in list(lb.listeners.values()):
            if listener.default_actions[0].type == "forward":
                server = WorkloadServer(serving, health_path, tls=self._listener_tls(listener))
                self._servers.append(server)
                self._route(listener, server)
        self._serve_redirects(lb)

    def _serve_redirects(self, lb: Any) -> None:
        """The load balancer's listeners whose default action redirects (HTTP to HTTPS) answer the redirect."""
        for listener in list(lb.listeners.values()):
            action = listener.default_actions[0]
            if action.type != "redirect":
                continue
            config = action.data["RedirectConfig"]
            status = int(str(config.get("StatusCode", "HTTP_301")).removeprefix("HTTP_"))
            server = RedirectServer(config.get("Protocol", "#{protocol}"), config.get("Port", "#{port}"), status)
            self._servers.append(server)
            self._route(listener, server)

    def _listener_tls(self, listener: Any) -> ssl.SSLContext | None:
        """What an HTTPS listener serves: its ACM certificate (an imported one as imported; one ACM issued,
        signed by the world's CA for its names). None: an HTTP listener."""
        if listener.protocol != "HTTPS":
            return None
        arn = str(listener.certificate)
        if arn not in self._tls_contexts:
            from moto.acm.models import acm_backends

            assert self.ca is not None  # the world started
            bundle = acm_backends[ACCOUNT_ID][self.region].get_certificate(arn)
            if bundle.type == "IMPORTED":
                chain, key = bundle.cert + b"\n" + bundle.chain, bundle.key
            else:
                chain, key = self.ca.issue([bundle.common_name, *[n for n in bundle.sans if n != bundle.common_name]])
            self._tls_contexts[arn] = self.ca.server_context(chain, key)
        return self._tls_contexts[arn]

    def _endpoint(self, host: str, port: int) -> tuple[str, int] | None:
        """Where a connection to ``host``:``port`` goes: a load balancer's listener, by its DNS name or by
        the DomainName of the application stack it belongs to (the template asks for a DNS record that
        points that name at the load balancer; the world has it)."""
        routed = self.endpoints.get((host, port))
        if routed is None:
            alias = self._domain_target(host)
            routed = self.endpoints.get((alias, port)) if alias is not None else None
        return routed

    def _domain_target(self, host: str) -> str | None:
        """The DNS name of the load balancer of the stack whose DomainName parameter is ``host``."""
        from moto.cloudformation.models import cloudformation_backends
        from moto.elbv2.models import FakeLoadBalancer

        for stack in list(cloudformation_backends[ACCOUNT_ID][self.region].stacks.values()):
            if stack.status == "DELETE_COMPLETE" or stack.stack_parameters.get("DomainName") != host:
                continue
            for resource in list(stack.resource_map._parsed_resources.values()):
                if isinstance(resource, FakeLoadBalancer):
                    return str(resource.dns_name)
        return None

    def issue_certificate(self, domain_name: str, *alternative_names: str) -> str:
        """A certificate the world's CA signs for the names, imported into ACM: its ARN (a stack's
        CertificateArn). ACM's RequestCertificate gives one too (ACM-issued; the world's CA signs what
        the listener serves)."""
        assert self.ca is not None, "start the world first"
        certificate, key = self.ca.issue([domain_name, *alternative_names])
        acm = self.client("acm")
        return str(
            acm.import_certificate(Certificate=certificate, PrivateKey=key, CertificateChain=self.ca.pem)[
                "CertificateArn"
            ]
        )

    def _balancers(self, target_group_arn: str) -> list[Any]:
        elb = self._elb_backend
        arns = elb.target_groups[target_group_arn].load_balancer_arns
        return [elb.load_balancers[arn] for arn in arns if arn in elb.load_balancers]

    def _alarms_of(self, service: Any) -> tuple[str, ...]:
        """Alarms on the service's target group or load balancer (CloudWatch dimensions)."""
        from moto.cloudwatch.models import cloudwatch_backends

        tg_arn = service.load_balancers[0]["targetGroupArn"]
        dimensions = {tg_arn.split(":")[-1]} | {lb.arn.split(":loadbalancer/")[-1] for lb in self._balancers(tg_arn)}
        return tuple(
            name
            for name, alarm in cloudwatch_backends[ACCOUNT_ID][self.region].alarms.items()
            if any(getattr(d, "value", None) in dimensions for d in alarm.dimensions)
        )

    def _tasks_observed(self, backend: Any, tasks: list[Any]) -> None:
        """One-off tasks run for the image's ``init_seconds`` and exit with its ``init_exit_code``."""
        now = self.clock.time()
        for task in tasks:
            if task.last_status == "STOPPED":
                continue
            started = self._task_started.setdefault(task.task_arn, now)
            overrides = (task.overrides or {}).get("containerOverrides") or [{}]
            td = backend.describe_task_definition(task.task_definition_arn)
            container = overrides[0].get("name") or td.container_definitions[0]["name"]
            image = next(c.get("image", "") for c in td.container_definitions if c.get("name") == container)
            prof = self.profile_of_image(str(image))
            if now - started < prof.init_seconds:
                continue
            task.last_status = task.desired_status = "STOPPED"
            task.stopped_reason = "Essential container in task exited"
            task.stop_code = "EssentialContainerExited"
            for c in task.containers:
                c.exitCode, c.last_status = prof.init_exit_code, "STOPPED"
            command = list(overrides[0].get("command") or [])
            self.one_off_runs.append(
                OneOffRun(task.cluster_name, task.task_definition_arn, command, prof.init_exit_code)
            )

    def stack_app(
        self,
        name: str = "techchallenge",
        repository: str = "techchallengeapp",
        parameters: dict[str, Any] | None = None,
        init_command: list[str] | None = None,
    ) -> StackApp:
        """An application stepdeploy provisions (stacks/app.yaml) when it first deploys it."""
        app = StackApp(self, name, repository, dict(parameters or {}), init_command)
        self.stack_apps.append(app)
        return app

    def _create_event_rules(self, resources: dict[str, Any], resolver: template.Resolver) -> None:
        """EventBridge rules declared as SAM ``Events`` of type EventBridgeRule, with their targets."""
        events = self.client("events")
        for logical, res in resources.items():
            for event_name, spec in (res.get("Properties", {}).get("Events") or {}).items():
                if spec["Type"] not in ("EventBridgeRule", "CloudWatchEvent"):
                    continue
                props = spec["Properties"]
                rule = f"{self.stack_name}-{logical}-{event_name}"[:64]
                events.put_rule(Name=rule, EventPattern=json.dumps(resolver.resolve(props["Pattern"])))
                if res["Type"] == "AWS::Serverless::StateMachine":
                    arn = self.outputs[f"{logical}Arn"]
                else:
                    arn = self.runtime.by_logical_id(logical).arn
                target: dict[str, Any] = {"Id": event_name, "Arn": arn}
                if "DeadLetterConfig" in props and "Arn" in props["DeadLetterConfig"]:
                    target["DeadLetterConfig"] = {"Arn": resolver.resolve(props["DeadLetterConfig"]["Arn"])}
                if "RetryPolicy" in props:
                    target["RetryPolicy"] = props["RetryPolicy"]
                events.put_targets(Rule=rule, Targets=[target])
                self.rules[rule] = target

    def _create_alarms(self, resources: dict[str, Any], resolver: template.Resolver) -> None:
        """The template's CloudWatch alarms (named after their logical ids), with their actions."""
        cw = self.client("cloudwatch")
        for logical, res in resources.items():
            if res["Type"] != "AWS::CloudWatch::Alarm":
                continue
            props = resolver.resolve(res["Properties"])
            cw.put_metric_alarm(
                AlarmName=f"{self.stack_name}-{logical}",
                AlarmDescription=props.get("AlarmDescription", ""),
                Namespace=props["Namespace"],
                MetricName=props["MetricName"],
                Dimensions=props.get("Dimensions", []),
                Statistic=props["Statistic"],
                Period=int(props["Period"]),
                EvaluationPeriods=int(props["EvaluationPeriods"]),
                Threshold=float(props["Threshold"]),
                ComparisonOperator=props["ComparisonOperator"],
                TreatMissingData=props.get("TreatMissingData", "missing"),
                AlarmActions=props.get("AlarmActions", []),
                OKActions=props.get("OKActions", []),
            )
            self.outputs[f"{logical}Name"] = f"{self.stack_name}-{logical}"

    def _deliver_event(self, rule: str, target: dict[str, Any], event: dict[str, Any]) -> None:
        """EventBridge -> target, as on AWS (https://docs.aws.amazon.com/eventbridge/latest/userguide/rule-dlq.html):
        a delivery that fails (``Faults.fail_event_delivery``) is retried with exponential back-off on the
        virtual clock, per the target's RetryPolicy (default 185 retries, 24 hours); once they are spent,
        the event goes to the target's dead-letter queue. A delivery the target refuses (no such state
        machine...) is not retried: it goes to the dead-letter queue at once."""
        policy = target.get("RetryPolicy") or {}
        max_retries = int(policy.get("MaximumRetryAttempts", 185))
        max_age = int(policy.get("MaximumEventAgeInSeconds", 86400))
        first, retries = self.clock.time(), 0
        while True:
            failure = self.faults.event_delivery_failure(rule)
            if failure is None:
                failure = self._send_to_target(rule, target, event)
                if failure is None:
                    return
                exhausted = "NONE"  # not retriable
            else:
                delay = float(min(2**retries, 300))
                exhausted = ""
                if retries >= max_retries:
                    exhausted = "MaximumRetryAttempts"
                elif self.clock.time() - first + delay > max_age:
                    exhausted = "MaximumEventAgeInSeconds"
            self.deliveries.append((rule, f"FAILED {failure[0]}: {failure[1]}"))
            if exhausted:
                self._dead_letter(rule, target, event, failure, exhausted, retries)
                return
            self.clock.advance(delay)
            retries += 1

    def _send_to_target(self, rule: str, target: dict[str, Any], event: dict[str, Any]) -> tuple[str, str] | None:
        """One delivery attempt; (error code, message) if the target refused it."""
        arn = target["Arn"]
        try:
            if arn.split(":")[2] == "states":
                out = self.client("stepfunctions").start_execution(stateMachineArn=arn, input=json.dumps(event))
                self.deliveries.append((rule, str(out["executionArn"])))
            else:
                payload, errored, _ = self.runtime.invoke(arn.rsplit(":", 1)[-1], event)
                self.deliveries.append((rule, f"{arn} -> {'error' if errored else 'ok'}: {payload[:200]}"))
        except Exception as exc:  # noqa: BLE001 - EventBridge gives up and dead-letters the event
            return "SDK_CLIENT_ERROR", f"{type(exc).__name__}: {exc}"
        return None

    def _dead_letter(
        self,
        rule: str,
        target: dict[str, Any],
        event: dict[str, Any],
        failure: tuple[str, str],
        exhausted: str,
        retries: int,
    ) -> None:
        """Send an undelivered event to the target's dead-letter queue (dropped without one), with the
        message attributes EventBridge sets."""
        dlq = target.get("DeadLetterConfig", {}).get("Arn")
        if not dlq:
            return
        attributes = {
            "RULE_ARN": f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{rule}",
            "TARGET_ARN": target["Arn"],
            "ERROR_CODE": failure[0],
            "ERROR_MESSAGE": failure[1][:256],
            "EXHAUSTED_RETRY_CONDITION": exhausted,
            "RETRY_ATTEMPTS": str(retries),
        }
        url = self.client("sqs").get_queue_url(QueueName=dlq.rsplit(":", 1)[-1])["QueueUrl"]
        self.client("sqs").send_message(
            QueueUrl=url,
            MessageBody=json.dumps(event),
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )

    def rule_name(self, rule: str) -> str:
        """The name of one of the world's EventBridge rules, given it or its SAM event name, or ValueError."""
        matches = [name for name in self.rules if rule in (name, name.rsplit("-", 1)[-1])]
        if len(matches) != 1:
            raise ValueError(f"no single EventBridge rule {rule!r}; known: {', '.join(sorted(self.rules))}")
        return matches[0]

    def redeliver_execution_end(self, execution_arn: str) -> None:
        """Deliver an ended execution's status-change event again: EventBridge delivers at least once
        (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-event-delivery.html)."""
        out = self.client("stepfunctions").describe_execution(executionArn=execution_arn)
        self._execution_ended(execution_arn, out["stateMachineArn"], out["name"], out["status"])

    def _execution_ended(self, execution_arn: str, state_machine_arn: str, name: str, status: str) -> None:
        detail = {"executionArn": execution_arn, "stateMachineArn": state_machine_arn, "name": name, "status": status}
        self.client("events").put_events(
            Entries=[
                {
                    "Source": "aws.states",
                    "DetailType": "Step Functions Execution Status Change",
                    "Detail": json.dumps(detail),
                    "Resources": [execution_arn],
                }
            ]
        )

    # ------------------------------------------------------------------ registry and triggers

    def register(
        self,
        app: AppService | StackApp,
        name: str | None = None,
        tag_filter: dict[str, str] | None = None,
        allow_digest_only: bool = False,
        deploy_on_push: bool | None = None,
        **request: Any,
    ) -> str:
        """Put a registry entry mapping ``app.repository`` (+ tag filter) to the service."""
        from stepdeploy.adapters import registry as registry_table

        body = app.target(**request)
        entry: dict[str, Any] = {
            "name": name or (app.name if isinstance(app, StackApp) else f"{app.cluster}/{app.service}"),
            "repository": app.repository,
            "tag_filter": tag_filter or {"mode": "glob", "pattern": "*"},
            "allow_digest_only": allow_digest_only,
            "request": body,
        }
        if deploy_on_push is not None:
            entry["deploy_on_push"] = deploy_on_push
        registry_table.put_entry(self.outputs["RegistryTableName"], entry)
        return str(entry["name"])

    def ecr_push_event(
        self,
        repository: str,
        tag: str | None,
        digest: str | None = None,
        *,
        action: str = "PUSH",
        result: str = "SUCCESS",
        pushed: float | None = None,
    ) -> dict[str, Any]:
        """The EventBridge entry ECR emits for a push (``digest`` defaults to the tag's digest)."""
        detail: dict[str, Any] = {
            "result": result,
            "repository-name": repository,
            "action-type": action,
            "image-digest": digest or self.digest_of(repository, str(tag)),
        }
        if tag is not None:
            detail["image-tag"] = tag
        when = _dt.datetime.fromtimestamp(pushed if pushed is not None else self.clock.time(), tz=_dt.UTC)
        return {
            "Source": "aws.ecr",
            "DetailType": "ECR Image Action",
            "Detail": json.dumps(detail),
            "Time": when,
            "Resources": [],
        }

    def secret_rotation_event(self, secret_arn: str, when: float | None = None) -> dict[str, Any]:
        """The EventBridge entry for a successful rotation: a CloudTrail service event (``RotationSucceeded``)
        that names the secret in ``additionalEventData.SecretId``, as AWS's documented sample does."""
        moment = _dt.datetime.fromtimestamp(when if when is not None else self.clock.time(), tz=_dt.UTC)
        detail = {
            "eventVersion": "1.08",
            "userIdentity": {"accountId": ACCOUNT_ID, "invokedBy": "secretsmanager.amazonaws.com"},
            "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "RotationSucceeded",
            "awsRegion": self.region,
            "sourceIPAddress": "secretsmanager.amazonaws.com",
            "userAgent": "secretsmanager.amazonaws.com",
            "requestParameters": None,
            "responseElements": None,
            "additionalEventData": {"SecretId": secret_arn},
            "eventID": hashlib.sha256(f"{secret_arn}:{moment.isoformat()}".encode()).hexdigest()[:36],
            "readOnly": False,
            "eventType": "AwsServiceEvent",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT_ID,
        }
        return {
            "Source": "aws.secretsmanager",
            "DetailType": "AWS Service Event via CloudTrail",
            "Detail": json.dumps(detail),
            "Time": moment,
            "Resources": [],
        }

    def rotate_secret(self, secret_arn: str, emit: bool = True) -> list[str]:
        """Rotate a secret as RDS managed rotation does: a new password becomes AWSCURRENT (the database
        accepts only it from now on, so tasks started before now fail their database connections), then
        Secrets Manager reports RotationSucceeded. Returns the executions the event started."""
        sm = self.client("secretsmanager")
        value = json.loads(sm.get_secret_value(SecretId=secret_arn)["SecretString"])
        value["password"] = hashlib.sha256(f"{secret_arn}:{time.time_ns()}".encode()).hexdigest()[:32]
        sm.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(value))
        self.rotations[secret_arn] = self.clock.time()
        return self.put_events(self.secret_rotation_event(secret_arn, self.rotations[secret_arn])) if emit else []

    def _holds_rotated_password(self, task_definition: str, started: float) -> bool:
        """Did a secret the task definition's containers read at start rotate after ``started``?"""
        if not self.rotations:
            return False
        td: Any = self._ecs_backend.describe_task_definition(task_definition)
        for definition in td.container_definitions:
            secrets: list[dict[str, Any]] = definition.get("secrets") or []
            for item in secrets:
                value_from = str(item.get("valueFrom", ""))
                for secret, rotated in self.rotations.items():
                    if (value_from == secret or value_from.startswith(secret + ":")) and rotated > started:
                        return True
        return False

    def put_events(self, *entries: dict[str, Any]) -> list[str]:
        """Send entries to the default bus; returns the executions the rules started."""
        before = len(self.deliveries)
        self.client("events").put_events(Entries=list(entries))
        return [arn for _, arn in self.deliveries[before:] if arn.startswith("arn:aws:states")]

    def run_pipeline_job(
        self,
        user_parameters: Any,
        files: dict[str, Any] | None = None,
        max_invocations: int = 500,
        reinvoke_seconds: float = 60.0,
        build: PipelineBuild | None = None,
        answer_seconds: float = 60.0,
    ) -> dict[str, Any]:
        """Act as CodePipeline for a Lambda invoke action: create the job (with a zipped input
        artifact holding ``files``), invoke the function, re-invoke it with each continuation token,
        until the job has a final result (from the function, or from the execution-status-change rule).
        A job whose function ends without a result is not invoked again: it waits up to ``answer_seconds``
        of wall time for a result from elsewhere, else it is HUNG. Returns the job's results.

        With ``build``, a build stage runs first, as examples/pipeline/buildspec.yml does: it pushes the
        image (unless the tag already exists: tags are immutable), so ECR's push event reaches the
        EventBridge rules as it would on AWS, and writes ``imagedefinitions.json`` and ``imageDetail.json``
        into the input artifact (``files`` are added to them). The result's ``build`` says what the push
        started (``executions``)."""
        built: dict[str, Any] | None = None
        if build is not None:
            built = self._build_stage(build)
            files = {**built.pop("files"), **(files or {})}
        job = self._run_job(user_parameters, files, max_invocations, reinvoke_seconds, answer_seconds)
        if built is not None:
            job["build"] = built
        return job

    def _build_stage(self, build: PipelineBuild) -> dict[str, Any]:
        ecr = self.client("ecr")
        try:
            ecr.describe_images(repositoryName=build.repository, imageIds=[{"imageTag": build.tag}])
            pushed, executions = False, []  # the buildspec reuses the image: no push, no event
        except (ecr.exceptions.RepositoryNotFoundException, ecr.exceptions.ImageNotFoundException):
            pushed = True
            executions = self.ecr_push(build.repository, build.tag, build.image_profile)[1]
        digest_uri = self.image_uri(build.repository, build.tag)
        tag_uri = f"{digest_uri.split('@', 1)[0]}:{build.tag}"
        files = {
            "imagedefinitions.json": [{"name": build.container, "imageUri": tag_uri}],
            "imageDetail.json": {"ImageURI": digest_uri},
        }
        return {"pushed": pushed, "image_uri": digest_uri, "executions": executions, "files": files}

    def _run_job(
        self,
        user_parameters: Any,
        files: dict[str, Any] | None,
        max_invocations: int,
        reinvoke_seconds: float,
        answer_seconds: float,
    ) -> dict[str, Any]:
        job_id = str(uuid.uuid4())
        function = self.runtime.by_logical_id("PipelineJobFunction").name
        params = user_parameters if isinstance(user_parameters, str) else json.dumps(user_parameters)
        data: dict[str, Any] = {
            "actionConfiguration": {"configuration": {"FunctionName": function, "UserParameters": params}},
            "inputArtifacts": [],
            "outputArtifacts": [],
            "artifactCredentials": self._artifact_credentials(),
        }
        if files is not None:
            location = {
                "bucketName": "codepipeline-artifacts-local",
                "objectKey": f"pipeline/BuildOutput/{job_id[:8]}.zip",
            }
            self._put_artifact(location, files)
            data["inputArtifacts"].append({"name": "BuildOutput", "location": {"type": "S3", "s3Location": location}})
        return self._drive_job(job_id, data, max_invocations, reinvoke_seconds, answer_seconds)

    def _artifact_credentials(self) -> dict[str, str]:
        """Temporary credentials of a job's artifact bucket, as CodePipeline gives them: random for each job (a test
        can tell them apart from anything else); every job's are kept in ``artifact_credentials``."""
        credentials = {
            "accessKeyId": "ASIA" + token_hex(8).upper(),
            "secretAccessKey": token_urlsafe(30),
            "sessionToken": token_urlsafe(96),
        }
        self.artifact_credentials.append(credentials)
        return credentials

    def run_job_event(
        self, event: dict[str, Any], files: dict[str, Any], answer_seconds: float = 60.0
    ) -> dict[str, Any]:
        """Act as CodePipeline for a job event as the Lambda invoke action sends it (e.g.
        events/lambda/codepipeline-job.json): ``files`` zipped where its first input artifact says, the job
        created, then the world's PipelineJobFunction invoked as ``run_pipeline_job`` does (the event's
        ``FunctionName`` names the function of a deployed stack: the world invokes its own)."""
        job = event["CodePipeline.job"]
        data = json.loads(json.dumps(job["data"]))
        self._put_artifact(data["inputArtifacts"][0]["location"]["s3Location"], files)
        return self._drive_job(str(job["id"]), data, 500, 60.0, answer_seconds)

    def _put_artifact(self, location: dict[str, str], files: dict[str, Any]) -> None:
        s3 = self.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=location["bucketName"])
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, content in files.items():
                zf.writestr(name, content if isinstance(content, str) else json.dumps(content))
        s3.put_object(Bucket=location["bucketName"], Key=location["objectKey"], Body=buf.getvalue())

    def _drive_job(
        self, job_id: str, data: dict[str, Any], max_invocations: int, reinvoke_seconds: float, answer_seconds: float
    ) -> dict[str, Any]:
        function = self.runtime.by_logical_id("PipelineJobFunction").name
        compat.JOBS.create(job_id, data)
        job = compat.JOBS.jobs[job_id]
        lam = self.client("lambda")
        token: str | None = None
        invocation = 0
        while invocation < max_invocations:
            invocation += 1
            job_data = dict(data, continuationToken=token) if token else data
            event = {"CodePipeline.job": {"id": job_id, "accountId": ACCOUNT_ID, "data": job_data}}
            answered = len(job["results"])
            lam.invoke(FunctionName=function, Payload=json.dumps(event))
            if job["status"] == "InProgress" and len(job["results"]) == answered:
                # the function ended without a result (it crashed: timeout, out of memory): CodePipeline does
                # not invoke it again; the job waits for a result from elsewhere until the action times out
                self._await_job_result(job, answer_seconds)
                break
            if job["status"] != "InProgress":
                break
            token = job["results"][-1]["continuationToken"]
            # CodePipeline invokes again about a minute later: wait for a virtual minute to pass (the
            # execution's own waits move the clock), or half a second of wall time at most
            since, deadline = self.clock.time(), time.monotonic() + 0.5
            while self.clock.time() - since < reinvoke_seconds and time.monotonic() < deadline:
                time.sleep(0.002)
            if job["status"] != "InProgress":
                break  # answered meanwhile (the execution-status-change rule): nothing invokes the function again
        outcome = {"InProgress": "HUNG", "Succeeded": "Succeeded", "Failed": "Failed"}[job["status"]]
        result = {"job": job_id, "status": outcome, "invocations": invocation, "results": job["results"]}
        if outcome == "Failed":
            result["failure"] = job["results"][-1]["failureDetails"]
        return result

    @staticmethod
    def _await_job_result(job: dict[str, Any], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while job["status"] == "InProgress" and time.monotonic() < deadline:
            time.sleep(0.01)

    # ------------------------------------------------------------------ images

    def push_image(
        self, repository: str, tag: str, image_profile: str | ImageProfile = "healthy", content: str | None = None
    ) -> str:
        """Push an image (a manifest) to ECR and decide how it behaves when deployed. Returns the digest.
        ECR's push event is not sent: tests deliver it themselves (``ecr_push_event``), or use ``ecr_push``.
        Each push is a new image, unless ``content`` names what it is built from: the same ``content`` is
        the same manifest, so the same digest (in any repository), as on ECR, where a digest is the
        manifest's hash (the samples in events/ name such an image by its digest)."""
        ecr = self.client("ecr")
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repository)
        built = content if content is not None else f"{repository}:{tag}:{time.time_ns()}"
        config_digest = "sha256:" + hashlib.sha256(built.encode()).hexdigest()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "size": 1470,
                    "digest": config_digest,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": 2811478,
                        "digest": "sha256:"
                        + hashlib.sha256(f"layer:{content or f'{repository}:{tag}'}".encode()).hexdigest(),
                    }
                ],
            }
        )
        digest = str(
            ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)["image"]["imageId"][
                "imageDigest"
            ]
        )
        self.image_profiles[digest] = profile(image_profile)
        return digest

    def ecr_push(
        self, repository: str, tag: str, image_profile: str | ImageProfile = "healthy"
    ) -> tuple[str, list[str]]:
        """A push as on AWS: the image, then ECR's "ECR Image Action" PUSH event on the default bus, which
        the EventBridge rules deliver. Returns (digest, executions the event started)."""
        digest = self.push_image(repository, tag, image_profile)
        return digest, self.put_events(self.ecr_push_event(repository, tag, digest))

    def digest_of(self, repository: str, tag_or_digest: str) -> str:
        if tag_or_digest.startswith("sha256:"):
            return tag_or_digest
        images = self.client("ecr").describe_images(repositoryName=repository, imageIds=[{"imageTag": tag_or_digest}])
        return str(images["imageDetails"][0]["imageDigest"])

    def image_uri(self, repository: str, tag_or_digest: str) -> str:
        uri = self.client("ecr").describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
        return f"{uri}@{self.digest_of(repository, tag_or_digest)}"

    def profile_of_image(self, image_uri: str) -> ImageProfile:
        """How the image behaves now (a flapping image's current half)."""
        digest = image_uri.rsplit("@", 1)[-1] if "@" in image_uri else ""
        return self.image_profiles.get(digest, profile("healthy")).at(self.clock.time())

    # ------------------------------------------------------------------ the application

    def create_service(
        self,
        cluster: str = "techchallenge",
        service: str = "web",
        repository: str = "techchallengeapp",
        tag: str = "v1",
        image_profile: str | ImageProfile = "healthy",
        desired: int = 2,
        container: str = "app",
        port: int = 3000,
        health_path: str = "/healthcheck/",
        strategy: str = "ROLLING",
        canary_percent: float | None = None,
        canary_bake_minutes: int | None = None,
        step_percent: float | None = None,
        step_bake_minutes: int | None = None,
        bake_minutes: int | None = None,
        hook_timeout_minutes: int = 60,
        test_port: int = 8080,
    ) -> AppService:
        """An ECS Fargate service behind an ALB, running ``repository:tag``, with its alarms.

        With a ``strategy`` other than ROLLING (BLUE_GREEN | CANARY | LINEAR), as ECS needs it: a second
        target group, a production listener rule, a test listener on ``test_port`` whose rule requires
        the header ``X-Stepdeploy-Test`` with a token, the ECS infrastructure role for load balancers, and
        PAUSE hooks at POST_TEST_TRAFFIC_SHIFT and POST_PRODUCTION_TRAFFIC_SHIFT (timeout action ROLLBACK)."""
        self.push_image(repository, tag, image_profile)
        ec2, ecs, elb, cw = self.client("ec2"), self.client("ecs"), self.client("elbv2"), self.client("cloudwatch")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        azs = [f"{self.region}a", f"{self.region}b"]
        public = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
            for i, az in enumerate(azs)
        ]
        private = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{10 + i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
            for i, az in enumerate(azs)
        ]
        alb_sg = ec2.create_security_group(GroupName=f"{service}-alb", Description="alb", VpcId=vpc)["GroupId"]
        task_sg = ec2.create_security_group(GroupName=f"{service}-tasks", Description="tasks", VpcId=vpc)["GroupId"]
        lb = elb.create_load_balancer(
            Name=f"{service}-alb", Subnets=public, SecurityGroups=[alb_sg], Scheme="internet-facing", Type="application"
        )["LoadBalancers"][0]
        tg = elb.create_target_group(
            Name=f"{service}-tg",
            Protocol="HTTP",
            Port=port,
            VpcId=vpc,
            TargetType="ip",
            HealthCheckPath=health_path,
            Matcher={"HttpCode": "200"},
        )["TargetGroups"][0]
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        )["Listeners"][0]
        binding: dict[str, Any] = {
            "targetGroupArn": tg["TargetGroupArn"],
            "containerName": container,
            "containerPort": port,
        }
        deployment_configuration: dict[str, Any] = {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        }
        if strategy != "ROLLING":
            progressive = _ProgressiveSetup(service, port, health_path, test_port, hook_timeout_minutes)
            binding["advancedConfiguration"] = progressive.create(elb, vpc, lb, listener, tg, self.client("iam"))
            deployment_configuration.update(
                progressive.configuration(
                    strategy, canary_percent, canary_bake_minutes, step_percent, step_bake_minutes, bake_minutes
                )
            )
        alarm_names = (f"{service}-target-5xx", f"{service}-unhealthy-hosts")
        for name, metric in zip(alarm_names, ("HTTPCode_Target_5XX_Count", "UnHealthyHostCount"), strict=True):
            cw.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/ApplicationELB",
                MetricName=metric,
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                Dimensions=[{"Name": "TargetGroup", "Value": tg["TargetGroupArn"].split(":")[-1]}],
            )
            cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="initial")
        ecs.create_cluster(clusterName=cluster)
        td = ecs.register_task_definition(
            family=service,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            executionRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{service}-execution",
            containerDefinitions=[
                {
                    "name": container,
                    "image": self.image_uri(repository, tag),
                    "essential": True,
                    "command": ["serve"],
                    "portMappings": [{"containerPort": port, "protocol": "tcp"}],
                    "environment": [
                        {"name": "VTT_DBTYPE", "value": "postgres"},
                        {"name": "VTT_LISTENHOST", "value": "0.0.0.0"},
                    ],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=cluster,
            serviceName=service,
            taskDefinition=td,
            desiredCount=desired,
            launchType="FARGATE",
            loadBalancers=[binding],
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": private, "securityGroups": [task_sg], "assignPublicIp": "DISABLED"}
            },
            deploymentConfiguration=deployment_configuration,
        )
        if strategy != "ROLLING":
            return self._progressive_app(cluster, service, container, repository, tg["TargetGroupArn"], alarm_names)
        self.model.adopt(self._ecs_backend, cluster, service, container, tg["TargetGroupArn"], alarm_names)
        backend = self._ecs_backend
        server = WorkloadServer(lambda: self.model.serving_profile(backend, cluster, service), health_path)
        self._servers.append(server)
        app = AppService(self, cluster, service, container, repository, tg["TargetGroupArn"], alarm_names, server.url)
        self.services.append(app)
        return app

    def _progressive_app(
        self, cluster: str, service: str, container: str, repository: str, tg_arn: str, alarm_names: tuple[str, ...]
    ) -> AppService:
        moto_service = self._ecs_backend._get_service(cluster, service)
        self.deployments.adopt(self._ecs_backend, moto_service, container)
        production, test, token = self._serve_listeners(cluster, service, moto_service)
        config: dict[str, Any] = getattr(moto_service, "deployment_configuration", None) or {}
        app = AppService(
            self,
            cluster,
            service,
            container,
            repository,
            tg_arn,
            alarm_names,
            production,
            strategy=config["strategy"],
            test_url=test,
            test_token=token,
            hooks=tuple(config.get("lifecycleHooks") or ()),
        )
        self.services.append(app)
        return app

    def _serve_listeners(self, cluster: str, name: str, service: Any) -> tuple[str, str | None, str | None]:
        """Workload servers for a blue/green service's production listener and test listener (routed from
        the load balancer's DNS name and the listeners' ports). Returns (production URL, test URL, token)."""
        advanced = next(lb["advancedConfiguration"] for lb in service.load_balancers if lb.get("advancedConfiguration"))
        target_group = self._elb_backend.target_groups[service.load_balancers[0]["targetGroupArn"]]
        path = target_group.health_check_path or "/"
        model = self.deployments
        production_listener = self._listener_of(advanced["productionListenerRule"])
        production = WorkloadServer(
            lambda: model.answer(cluster, name, "production"), path, tls=self._listener_tls(production_listener)
        )
        self._servers.append(production)
        test: WorkloadServer | None = None
        token: str | None = None
        self._route(production_listener, production)
        self._serve_redirects(self._elb_backend.load_balancers[production_listener.load_balancer_arn])
        if advanced.get("testListenerRule"):
            token = self._header_value(advanced["testListenerRule"], TEST_HEADER)
            header = (TEST_HEADER, token) if token else None
            test_listener = self._listener_of(advanced["testListenerRule"])
            test = WorkloadServer(
                lambda: model.answer(cluster, name, "test"), path, header, tls=self._listener_tls(test_listener)
            )
            self._servers.append(test)
            self._route(test_listener, test)
        return production.url, test.url if test is not None else None, token

    def _listener_of(self, rule_arn: str) -> Any:
        elb = self._elb_backend
        [rule] = elb.describe_rules(listener_arn=None, rule_arns=[rule_arn])
        return elb.describe_listeners(load_balancer_arn=None, listener_arns=[rule.listener_arn])[0]

    def _route(self, listener: Any, server: WorkloadServer | RedirectServer) -> None:
        """Requests to the listener (its load balancer's DNS name and port) reach ``server``."""
        balancer = self._elb_backend.load_balancers[listener.load_balancer_arn]
        self.endpoints[(balancer.dns_name, int(listener.port))] = ("127.0.0.1", server.port)

    def _header_value(self, rule_arn: str, header: str) -> str | None:
        [rule] = self._elb_backend.describe_rules(listener_arn=None, rule_arns=[rule_arn])
        for condition in rule.conditions:
            config = condition.get("HttpHeaderConfig") or {}
            if str(config.get("HttpHeaderName", "")).lower() == header.lower() and config.get("Values"):
                return str(config["Values"][0])
        return None

    def user_traffic(self, app: AppService, rate: float = DEFAULT_RATE, expected_body: str = "OK") -> UserTraffic:
        """Synthetic user traffic on the service's production listener, ``rate`` requests per virtual
        second, per deployment (see :mod:`stepdeploy_local.traffic`)."""
        if self.deployments.find(app.cluster, app.service) is not None:
            windows = self._progressive_windows(app)
        else:
            windows = self._rolling_windows(app)
        return UserTraffic(
            rate, [count(traffic, segments, answer, rate, expected_body) for traffic, segments, answer in windows]
        )

    def release_traffic(self, app: AppService, result: ExecutionResult) -> UserTraffic:
        """The user traffic of the deployments an execution started (its rollback included)."""
        start, end = (result.events[i]["timestamp"].timestamp() for i in (0, -1))
        return self.user_traffic(app).during(start, end)

    def _progressive_windows(self, app: AppService) -> list[tuple[DeploymentTraffic, list[Any], Any]]:
        now = self.clock.time()
        out = []
        for d in self.deployments.deployments_of(app.cluster, app.service):
            blue = d.source.arn if d.source is not None else d.target.arn
            images = {d.target.arn: d.target.image, blue: d.source.image if d.source is not None else d.target.image}
            end = d.finished if d.finished is not None else now
            changes = [(t, {blue: 100.0 - share, d.target.arn: share}) for t, share in d.weights]
            traffic = DeploymentTraffic(d.arn, d.strategy, d.target.arn, d.created, end)
            out.append((traffic, segments_of(changes, end), self._answer(images)))
        return out

    def _rolling_windows(self, app: AppService) -> list[tuple[DeploymentTraffic, list[Any], Any]]:
        svc = self.model.timeline(self._ecs_backend, app.cluster, app.service)
        now = self.clock.time()
        images = {td: image for _, _, td, image in svc.served}
        for _, _, td in svc.started:
            images.setdefault(td, container_image(self._ecs_backend, td, svc.container))
        out = []
        for i, (start, deployment_id, td) in enumerate(svc.started):
            end = svc.started[i + 1][0] if i + 1 < len(svc.started) else now
            before = [(t, {served_td: 100.0}) for t, _, served_td, _ in svc.served if t <= start][-1:]
            during = [(t, {served_td: 100.0}) for t, _, served_td, _ in svc.served if start < t < end]
            changes = [(start, before[0][1] if before else {}), *during]
            traffic = DeploymentTraffic(deployment_id, "ROLLING", td, start, end)
            out.append((traffic, segments_of(changes, end), self._answer(images)))
        return out

    def _answer(self, images: dict[str, str]) -> Any:
        def answer(revision: str, at: float) -> ImageProfile:
            digest = images[revision].rsplit("@", 1)[-1]
            return self.image_profiles.get(digest, profile("healthy")).at(at)

        return answer

    def _alb_metrics(
        self, metric: str, dimensions: dict[str, str], start: float, end: float, period: int
    ) -> list[tuple[float, list[float]]] | None:
        """A target group's AWS/ApplicationELB ``metric`` (dimensions LoadBalancer + TargetGroup, as AWS names
        them: ``app/<name>/<id>``, ``targetgroup/<name>/<id>``) from ``start`` to ``end``, per ``period``, from
        the synthetic user traffic on the production listener of the blue/green service behind it (the
        requests its revisions served, answered as their images answer). None: not one the world models."""
        target_group = self._target_group_of(dimensions)
        if target_group is None:
            return None
        changes, revisions = self.deployments.production_history(target_group)
        if not revisions:
            return None
        end = min(end, self.clock.time())
        answer = self._answer({arn: r.image for arn, r in revisions.items()})
        served = (
            r
            for r in requests(start, segments_of(changes, end), answer, DEFAULT_RATE)
            if r.revision is not None and revisions[r.revision].target_group == target_group
        )
        return metric_samples(metric, served, start, period)

    def _target_group_of(self, dimensions: dict[str, str]) -> str | None:
        """The ARN of the target group named by the dimensions LoadBalancer and TargetGroup (only those)."""
        if set(dimensions) != {"LoadBalancer", "TargetGroup"}:
            return None
        for arn, group in self._elb_backend.target_groups.items():
            if arn.endswith(":" + dimensions["TargetGroup"]) and any(
                lb.endswith(":loadbalancer/" + dimensions["LoadBalancer"]) for lb in group.load_balancer_arns
            ):
                return str(arn)
        return None

    # ------------------------------------------------------------------ executions

    def start_deployment(self, request: Any, name: str | None = None) -> str:
        body = request if isinstance(request, str) else json.dumps(request)
        kwargs: dict[str, Any] = {"stateMachineArn": self.outputs["DeployStateMachineArn"], "input": body}
        if name:
            kwargs["name"] = name
        return str(self.client("stepfunctions").start_execution(**kwargs)["executionArn"])

    def wait(
        self,
        execution_arn: str,
        timeout: float = 120.0,
        on_event: Callable[[dict[str, Any], float], None] | None = None,
    ) -> ExecutionResult:
        sfn = self.client("stepfunctions")
        started = time.monotonic()
        poll, shown = 0.002, 0.0
        events: list[dict[str, Any]] = []
        while True:
            desc = sfn.describe_execution(executionArn=execution_arn)
            done = desc["status"] in TERMINAL
            # moto serialises a history slowly: for progress, fetch the new events a few times a second
            if on_event is not None and (done or time.monotonic() - shown >= 0.25):
                shown = time.monotonic()
                new = self._events_after(execution_arn, events[-1]["id"] if events else 0)
                events += new
                for e in new:
                    on_event(e, e["timestamp"].timestamp() - events[0]["timestamp"].timestamp())
            if done:
                break
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"execution {execution_arn} still {desc['status']} after {timeout}s wall time")
            time.sleep(poll)
            poll = min(poll * 1.5, 0.05)
        if on_event is None:
            events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        stop = desc.get("stopDate") or desc["startDate"]
        return ExecutionResult(
            arn=execution_arn,
            name=desc["name"],
            status=desc["status"],
            error=desc.get("error"),
            cause=desc.get("cause"),
            output=json.loads(desc["output"]) if desc.get("output") else None,
            input=json.loads(desc.get("input") or "null"),
            events=events,
            virtual_seconds=(stop - desc["startDate"]).total_seconds(),
            wall_seconds=time.monotonic() - started,
        )

    def _events_after(self, execution_arn: str, last_id: int) -> list[dict[str, Any]]:
        """The execution's history events after event ``last_id``, oldest first: newest-first pages down to
        event ``last_id + 1`` (event ids count up from 1, one by one), so a poll does not fetch the whole
        history again. (Pages overlap when events arrive between two of them: an event is kept once.)"""
        sfn, new = self.client("stepfunctions"), dict[int, dict[str, Any]]()
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": 10}
        while True:
            page = sfn.get_execution_history(**kwargs)
            new.update((event["id"], event) for event in page["events"] if event["id"] > last_id)
            if "nextToken" not in page or any(event["id"] <= last_id + 1 for event in page["events"]):
                return [new[i] for i in sorted(new)]
            kwargs["nextToken"] = page["nextToken"]

    def pause_at(self, state: str, arrival: int = 1) -> Pause:
        """Hold the first execution that enters ``state`` (any state type) for the ``arrival``-th time,
        before the state runs, until the pause is released or the execution stopped (e.g. keep a
        deployment mid-rollout while a second one queues behind it)."""
        if arrival < 1:
            raise ValueError("arrival must be >= 1")
        self.state_definition(state)
        pause = Pause(state, arrival)
        self._pauses.append(pause)
        return pause

    def hold_when(
        self, state: str, start: Callable[[], str], condition: Callable[[], bool], limit: int = 60
    ) -> tuple[str, Pause]:
        """Start an execution (``start`` returns its ARN) and hold it at its arrivals at ``state`` until
        ``condition()`` holds there: (the ARN, the pause holding it: release it). The next arrival's pause is armed
        before the current one is released, so no arrival slips past (a fast execution could pass the next
        arrival before a pause made after the release existed). AssertionError after ``limit`` arrivals."""
        pause = self.pause_at(state, 1)
        arn = start()
        for arrival in range(1, limit + 1):
            pause.reached()
            if condition():
                return arn, pause
            following = self.pause_at(state, arrival + 1)
            pause.release()
            pause = following
        pause.release()
        raise AssertionError(f"{state}: the condition never held in {limit} arrivals")

    def _before_state(self, execution_arn: str, state: str, state_type: str, running: Callable[[], bool]) -> None:
        with self._entries_lock:
            key = (execution_arn, state)
            self._entries[key] = arrival = self._entries.get(key, 0) + 1
        for pause in list(self._pauses):
            pause.hold(execution_arn, state, arrival, running)

    def arrivals(self, execution_arn: str, state: str) -> int:
        """How many times the execution has entered ``state`` so far."""
        with self._entries_lock:
            return self._entries.get((execution_arn, state), 0)

    def state_definitions(self) -> dict[str, dict[str, Any]]:
        """Every state of the world's state machines (Parallel branches and Map iterators included), by name."""
        sfn, found = self.client("stepfunctions"), {}
        for machine in sfn.list_state_machines()["stateMachines"]:
            definition = json.loads(
                sfn.describe_state_machine(stateMachineArn=machine["stateMachineArn"])["definition"]
            )
            found.update(_states_of(definition))
        return found

    def state_definition(self, state: str) -> dict[str, Any]:
        """The definition of the state named ``state`` in one of the world's state machines, or ValueError."""
        definitions = self.state_definitions()
        if state not in definitions:
            raise ValueError(f"no state named {state!r} in the world's state machines")
        return definitions[state]

    def task_state(self, state: str) -> dict[str, Any]:
        """The definition of the Task state named ``state``, or ValueError."""
        definition = self.state_definition(state)
        if definition["Type"] != "Task":
            raise ValueError(f"{state} is a {definition['Type']} state, not a Task state")
        return definition

    @staticmethod
    def eventually(read: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll ``read`` (wall time) until it returns something truthy, e.g. what the execution-end handler does
        after an execution ended; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not (value := read()):
            assert time.monotonic() < deadline, "nothing appeared"
            time.sleep(0.02)
        return value

    def wait_for_state(self, execution_arn: str, state: str, timeout: float = 30.0) -> None:
        """Block until the execution has entered ``state`` (e.g. to start a racing deployment)."""
        sfn, deadline = self.client("stepfunctions"), time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
            if any(e.get("stateEnteredEventDetails", {}).get("name") == state for e in history):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{execution_arn} did not enter {state} within {timeout}s")

    def deploy(
        self,
        request: Any,
        name: str | None = None,
        timeout: float = 120.0,
        on_event: Callable[[dict[str, Any], float], None] | None = None,
    ) -> ExecutionResult:
        return self.wait(self.start_deployment(request, name), timeout, on_event)

    # ------------------------------------------------------------------ inspection

    def record(self, app: AppService | StackApp, deployment_id: str) -> dict[str, Any] | None:
        from stepdeploy.adapters import records

        return records.get_record(self.outputs["DeploymentsTableName"], app.key, deployment_id)

    def notifications(self) -> list[dict[str, Any]]:
        """Messages published to the notification topic (drained from an observer queue)."""
        sqs = self.client("sqs")
        out: list[dict[str, Any]] = []
        url = self.outputs["NotificationTopicObserverQueueUrl"]
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                body = json.loads(m["Body"])
                out.append(
                    {
                        "subject": body.get("Subject"),
                        "message": json.loads(body["Message"]),
                        "attributes": {k: v.get("Value") for k, v in body.get("MessageAttributes", {}).items()},
                    }
                )
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
