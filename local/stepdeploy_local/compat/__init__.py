"""Every fix stepdeploy's local world applies to moto, in one place.

moto is pinned exactly (requirements-dev.txt) because these patches reach into its internals.
Each patch is listed in :data:`PATCHES` and covered by a contract test in
``tests/contract/test_emulator_contract.py`` (the CloudFormation ones, in ``compat/cloudformation.py``:
``test_emulator_cloudformation.py``)
that fails loudly if an upgrade changes the behaviour it relies on (or makes the patch unnecessary).

The patches only route moto to hooks (:class:`Hooks`); the behaviour behind the hooks (virtual
clock, in-process Lambda runtime, ECS rollout model, target health) lives in the world's own
modules. Nothing in stepdeploy's orchestrator code knows about any of this.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import json
import math
import os
import pickle
import re
import threading
import time as _time
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import clock as _clock


@dataclass(frozen=True)
class TaskFault:
    """What happens to one attempt of a Task state: ``fail`` (its Lambda invocation fails with
    ``error_type`` before the handler runs) or ``timeout`` (it runs on past the state's TimeoutSeconds)."""

    kind: str  # "fail" | "timeout"
    error_type: str = "RuntimeError"
    message: str = "injected fault"


@dataclass(frozen=True)
class TaskAttempt:
    """The Task state attempt a Step Functions worker thread is evaluating (see :func:`current_task`)."""

    execution_arn: str
    state: str
    deadline: float  # virtual time at which the state's TimeoutSeconds runs out
    fault: TaskFault | None = None


_task = threading.local()


def current_task() -> TaskAttempt | None:
    """The Task state attempt this thread evaluates (the Lambda runtime reads it), or None."""
    return getattr(_task, "attempt", None)


@dataclass
class Hooks:
    """What the patched moto calls into. A World installs its own."""

    #: (moto LambdaFunction, event) -> (payload JSON, errored, log text)
    invoke_lambda: Callable[[Any, Any], tuple[str, bool, str]] | None = None
    #: (ecs backend, service, previous task definition ARN, forceNewDeployment) after a successful UpdateService
    service_updated: Callable[[Any, Any, str | None, bool], None] | None = None
    #: (ecs backend, service) before a service is described
    service_observed: Callable[[Any, Any], None] | None = None
    #: (target group ARN) -> list of moto FakeHealthStatus, or None to let moto answer
    target_health: Callable[[str], list[Any] | None] | None = None
    #: (rule name, target dict, event) for EventBridge targets that are state machines or functions
    deliver_event: Callable[[str, dict[str, Any], dict[str, Any]], None] | None = None
    #: (execution ARN, state machine ARN, name, status) when an execution ends
    execution_ended: Callable[[str, str, str, str], None] | None = None
    #: (stack name, logical id, resource type, "CREATE" | "UPDATE" | "DELETE") before CloudFormation
    #: changes a resource (rollbacks and deletions included); a reason string makes that resource
    #: operation fail as on AWS: the stack rolls back (or ends DELETE_FAILED), the reason in its events
    stack_resource_failure: Callable[[str, str, str, str], str | None] | None = None
    #: (ecs backend, moto Tasks) before tasks are described: one-off tasks run and stop over virtual time
    tasks_observed: Callable[[Any, list[Any]], None] | None = None
    #: (host, port) -> (host, port) to connect to instead, or None (ALB DNS names -> workload servers)
    endpoint: Callable[[str, int], tuple[str, int] | None] | None = None
    #: (execution ARN, state name, state type, still running?) once a state is entered (its StateEntered
    #: event recorded), before it runs; it may block (World.pause_at holds an execution there until
    #: released or stopped: a stopped execution does not run the state)
    before_state: Callable[[str, str, str, Callable[[], bool]], None] | None = None
    #: (execution ARN, state name) before each attempt of a Task state (retries included) -> a fault
    #: for that attempt (:class:`TaskFault`), or None to run it as it is
    task_attempt: Callable[[str, str], TaskFault | None] | None = None
    #: (stack name, "CREATE" | "UPDATE") -> virtual seconds the stack operation stays in progress (0: none)
    stack_operation_seconds: Callable[[str, str], float] | None = None
    #: (cluster, task definition) before RunTask places a task -> a placement failure reason
    #: ("RESOURCE:ENI", ...): RunTask then starts nothing and reports it in ``failures``; None: place it
    run_task_failure: Callable[[str, str], str | None] | None = None
    #: (cluster, service, task definition) -> "IN_PROGRESS" | "COMPLETED" | "FAILED: <reason>": the state of
    #: the service's deployment of that task definition. While a stack update's service deployment is in
    #: progress, the update stays UPDATE_IN_PROGRESS (CloudFormation waits for a steady state); FAILED
    #: fails the Service resource, and CloudFormation rolls the stack back. None: updates finish at once
    service_stability: Callable[[str, str, str], str] | None = None
    #: the ECS service deployment APIs (ListServiceDeployments ...): a deployments.DeploymentModel
    service_deployments: Any = None
    #: (metric name, dimensions {name: value}, start, end, period) -> [(period start, samples)] for an
    #: AWS/ApplicationELB metric the world models (one sample per request; statistics come from them), or None
    #: to let moto answer (from PutMetricData)
    alb_metrics: Callable[[str, dict[str, str], float, float, int], list[tuple[float, list[float]]] | None] | None = (
        None
    )
    extra: dict[str, Any] = field(default_factory=dict)


HOOKS = Hooks()
_applied = False
_lock = threading.Lock()


def _virtual_datetime_module() -> types.ModuleType:
    """A stand-in for the ``datetime`` module whose ``datetime.now()`` reads the virtual clock."""

    class VirtualDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> _dt.datetime:  # type: ignore[override]
            return _clock.current().now(tz)

        @classmethod
        def utcnow(cls) -> _dt.datetime:  # type: ignore[override]
            return _clock.current().now(None)

    shim = types.ModuleType("datetime_virtual")
    shim.__dict__.update({k: getattr(_dt, k) for k in dir(_dt) if not k.startswith("__")})
    shim.datetime = VirtualDatetime  # type: ignore[attr-defined]
    return shim


class _VirtualTime(types.ModuleType):
    """A stand-in for the ``time`` module whose ``sleep`` advances the virtual clock. In a Task state
    attempt (``ecs:runTask.sync`` polling), a sleep past the state's TimeoutSeconds (on the virtual
    clock), or one that the attempt's timeout fault ends, raises States.Timeout at the state's deadline."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        attempt = current_task()
        if attempt is not None:
            timing_out = attempt.fault is not None and attempt.fault.kind == "timeout"
            if timing_out or _clock.current().time() + seconds > attempt.deadline:
                _time_out(attempt)
        _clock.current().advance(seconds)


def _time_out(attempt: TaskAttempt) -> None:
    """Move the clock to the attempt's deadline and fail it as moto fails a Task that ran too long."""
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError

    _clock.current().advance(attempt.deadline - _clock.current().time())
    raise EvalTimeoutError()


# ----------------------------------------------------------------------------------- patches


def _patch_wait_state() -> None:
    """Wait states block on a threading.Event for the full duration; advance the clock instead."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        deadline = _execution_deadline(env)
        if deadline is not None and _clock.current().time() + wait_seconds > deadline:
            _clock.current().advance(deadline - _clock.current().time())
            env.set_timed_out()  # the Wait ends past the execution's TimeoutSeconds: it ends there
            return
        _clock.current().advance(wait_seconds)

    wait_function.WaitFunction._wait_interval = _wait_interval  # type: ignore[method-assign]


class _StoppedBeforeRunning(Exception):
    """A state held by HOOKS.before_state whose execution was stopped meanwhile: it must not run."""


def _patch_state_hooks() -> None:
    """Nothing can observe or hold an execution at a state; call HOOKS.before_state once a state is
    entered (after its StateEntered event, before its input is processed), and skip the state if the
    execution was stopped while the hook held it."""
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

    original_input = CommonStateField._eval_state_input
    original_body = CommonStateField._eval_body

    def _eval_state_input(self: Any, env: Any) -> None:
        hook = HOOKS.before_state
        if hook is not None:
            context = env.states.context_object.context_object_data
            hook(context["Execution"]["Id"], self.name, self.state_type.name, env.is_running)
            if not env.is_running():
                raise _StoppedBeforeRunning(self.name)
        original_input(self, env)

    def _eval_body(self: Any, env: Any) -> None:
        deadline = _execution_deadline(env)
        if deadline is not None and _clock.current().time() >= deadline:
            env.set_timed_out()  # a transition past the execution's TimeoutSeconds
            return
        try:
            original_body(self, env)
        except _StoppedBeforeRunning:
            return

    CommonStateField._eval_state_input = _eval_state_input  # type: ignore[method-assign]
    CommonStateField._eval_body = _eval_body  # type: ignore[method-assign]


def _patch_task_attempts() -> None:
    """Task attempts cannot be made to fail or time out on demand, and TimeoutSeconds counts wall time.
    Ask HOOKS.task_attempt before each attempt; evaluate it with :func:`current_task` set in the thread
    that runs it (the Lambda runtime fails an invocation there); a ``timeout`` fault lets the attempt run
    (its effects land, as a function keeps running on AWS), moves the clock to the state's deadline and
    fails the attempt with States.Timeout (the Retry and Catch of the state apply). This is moto's
    ``ExecutionState._evaluate_with_timeout`` with those additions."""
    from threading import Thread

    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.utils import TMP_THREADS

    def _attempt(self: Any, env: Any, timeout_seconds: int) -> TaskAttempt:
        context = env.states.context_object.context_object_data
        execution_arn = context["Execution"]["Id"]
        fault = HOOKS.task_attempt(execution_arn, self.name) if HOOKS.task_attempt is not None else None
        return TaskAttempt(execution_arn, self.name, _clock.current().time() + timeout_seconds, fault)

    def _run_attempt(self: Any, frame: Any, attempt: TaskAttempt) -> None:
        timing_out = attempt.fault is not None and attempt.fault.kind == "timeout"
        _task.attempt = attempt
        try:
            self._eval_execution(frame)
        except Exception:
            if not timing_out:
                raise
        finally:
            _task.attempt = None
        if timing_out:
            _time_out(attempt)  # the work ran (its effects landed) and was still running at the deadline

    def _evaluate_with_timeout(self: Any, env: Any) -> None:
        self.timeout.eval(env=env)
        timeout_seconds: int = env.stack.pop()
        attempt = _attempt(self, env, timeout_seconds)

        frame: Any = env.open_frame()
        frame.states.reset(input_value=env.states.get_input())
        frame.stack = copy.deepcopy(env.stack)
        execution_outputs: list[Any] = []
        execution_exceptions: list[Exception | None] = [None]
        terminated_event = threading.Event()

        def _exec_and_notify() -> None:
            try:
                _run_attempt(self, frame, attempt)
                execution_outputs.extend(frame.stack)
            except Exception as ex:  # noqa: BLE001 - raised below, as moto does
                execution_exceptions.append(ex)
            terminated_event.set()

        thread = Thread(target=_exec_and_notify, daemon=True)
        TMP_THREADS.append(thread)
        thread.start()
        finished_on_time = terminated_event.wait(timeout_seconds)
        frame.set_ended()
        env.close_frame(frame)

        execution_exception = execution_exceptions.pop()
        if execution_exception:
            raise execution_exception
        if not finished_on_time:
            raise EvalTimeoutError()
        execution_output = execution_outputs.pop()
        env.stack.append(execution_output)
        if not self._is_language_query_jsonpath():
            env.states.set_result(execution_output)
        if self.assign_decl:
            self.assign_decl.eval(env=env)
        if self.result_selector:
            self.result_selector.eval(env=env)
        if self.result_path:
            self.result_path.eval(env)
        else:
            env.states.reset(input_value=env.stack.pop())

    ExecutionState._evaluate_with_timeout = _evaluate_with_timeout  # type: ignore[method-assign]


#: execution ARN -> virtual time its TimeoutSeconds runs out (executions whose definition sets one)
_DEADLINES: dict[str, float] = {}


def _execution_deadline(env: Any) -> float | None:
    return _DEADLINES.get(env.states.context_object.context_object_data["Execution"]["Id"])


def _patch_execution_timeout() -> None:
    """An execution's TimeoutSeconds is a wall-time join (14400 s of real time), so it never times out
    on the virtual clock. Record its virtual deadline: the state hooks end it at the first transition
    past it, a Wait that would end past it ends it at the deadline. It ends TIMED_OUT with
    States.Timeout as on AWS (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html,
    https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html)."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.asl.component.program.program import Program
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramTimedOut
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
    from moto.stepfunctions.responses import StepFunctionResponse

    original_eval = Program.eval
    original_reflect = BaseExecutionWorkerCommunication._reflect_execution_status

    def eval(self: Any, env: Any) -> None:  # noqa: A001 - moto's name
        if self.timeout_seconds is None or env.is_frame():
            original_eval(self, env)
            return
        arn = env.states.context_object.context_object_data["Execution"]["Id"]
        _DEADLINES[arn] = _clock.current().time() + self.timeout_seconds.timeout_seconds
        try:
            original_eval(self, env)
        finally:
            _DEADLINES.pop(arn, None)

    def _reflect_execution_status(self: Any) -> None:
        original_reflect(self)  # type: ignore[no-untyped-call]
        if isinstance(self.execution.exec_worker.env.program_state(), ProgramTimedOut):
            self.execution.error = "States.Timeout"
            self.execution.cause = "The execution ran longer than the state machine's TimeoutSeconds."

    original_describe = StepFunctionResponse.describe_execution

    def describe_execution(self: Any) -> Any:
        answer: Any = original_describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        if execution.status in ("TIMED_OUT", ExecutionStatus.TIMED_OUT):
            answer.result["stopDate"] = execution.stop_date  # moto leaves it out for TIMED_OUT
        return answer

    Program.eval = eval  # type: ignore[method-assign]
    BaseExecutionWorkerCommunication._reflect_execution_status = _reflect_execution_status  # type: ignore[method-assign]
    StepFunctionResponse.describe_execution = describe_execution  # type: ignore[method-assign]


def _patch_retry_sleep() -> None:
    """Retry intervals call time.sleep; route them to the virtual clock."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    retrier_decl.time = _VirtualTime("time_virtual")  # type: ignore[attr-defined]


def _patch_timestamps() -> None:
    """History events, execution start/stop dates, $$.State.EnteredTime and Wait Timestamp use
    datetime.now(); make them read the virtual clock so durations reflect virtual waits."""
    from moto.stepfunctions.parser import models as parser_models
    from moto.stepfunctions.parser.asl.component.state import state
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import timestamp
    from moto.stepfunctions.parser.asl.eval.event import event_manager
    from moto.stepfunctions.parser.backend import execution

    shim = _virtual_datetime_module()
    for module in (event_manager, execution, state, parser_models, timestamp):
        module.datetime = shim  # type: ignore[attr-defined]


def _patch_execution_name() -> None:
    """StartExecution without a name gets the ARN '...:None'; AWS generates a UUID."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


def _patch_lambda_invoke() -> None:
    """Lambda invoke needs Docker; run the handler in-process through HOOKS.invoke_lambda."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction._invoke_lambda

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        if HOOKS.invoke_lambda is None:
            return original(self, event)
        return HOOKS.invoke_lambda(self, event)

    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]


def _patch_ecs_rollouts() -> None:
    """UpdateService only swaps the task definition (no PRIMARY/ACTIVE deployments, no rollout; with
    forceNewDeployment it renames the deployment in place); let the world's rollout model maintain
    ``deployments`` over virtual time (a forced deployment starts new tasks of the same revision)."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original_update = EC2ContainerServiceBackend.update_service
    original_describe = EC2ContainerServiceBackend.describe_services

    def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
        cluster = service_properties.get("cluster", "default")
        name = str(service_properties.get("service", "")).split("/")[-1]
        previous = self._get_service(cluster, name).task_definition
        force = bool(service_properties.get("force_new_deployment"))  # (moto only renames the deployment)
        service = original_update(self, service_properties)
        if HOOKS.service_updated is not None:
            HOOKS.service_updated(self, service, previous, force)
        return service

    def describe_services(self: Any, cluster_str: str, service_names_or_arns: list[str]) -> Any:
        services, failures = original_describe(self, cluster_str, service_names_or_arns)
        if HOOKS.service_observed is not None:
            for service in services:
                HOOKS.service_observed(self, service)
        return services, failures

    EC2ContainerServiceBackend.update_service = update_service  # type: ignore[method-assign]
    EC2ContainerServiceBackend.describe_services = describe_services  # type: ignore[method-assign]


def _patch_ecs_deployment_configuration() -> None:
    """CreateService drops ``deploymentConfiguration``, and neither call checks it: store it and refuse
    what ECS refuses (strategy, ranges, a blue/green strategy without a load balancer's
    advancedConfiguration) with InvalidParameterException, before anything changes."""
    from moto.ecs.responses import EC2ContainerServiceResponse

    from ..deployments import validate

    original_create = EC2ContainerServiceResponse.create_service
    original_update = EC2ContainerServiceResponse.update_service

    def create_service(self: Any) -> Any:
        config = self._get_param("deploymentConfiguration")
        validate(config, self._get_param("loadBalancers"))
        answer = original_create(self)
        if config is not None:
            service = self.ecs_backend._get_service(
                self._get_param("cluster", "default"), self._get_param("serviceName")
            )
            service.deployment_configuration = config
        return answer

    def update_service(self: Any) -> Any:
        service = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("service"))
        config = self._get_param("deploymentConfiguration")
        balancers = self._get_param("loadBalancers")
        validate(
            config if config is not None else getattr(service, "deployment_configuration", None),
            balancers if balancers is not None else service.load_balancers,
        )
        return original_update(self)

    EC2ContainerServiceResponse.create_service = create_service  # type: ignore[method-assign]
    EC2ContainerServiceResponse.update_service = update_service  # type: ignore[method-assign]


def _patch_ecs_service_deployments() -> None:
    """ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions,
    ContinueServiceDeployment and StopServiceDeployment are not implemented: answer them from the
    world's deployment model (HOOKS.service_deployments)."""
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult
    from moto.ecs.responses import EC2ContainerServiceResponse

    def _model() -> Any:
        if HOOKS.service_deployments is None:
            raise JsonRESTError("UnsupportedFeatureException", "no service deployment model in this world")
        return HOOKS.service_deployments

    def list_service_deployments(self: Any) -> Any:
        cluster = str(self._get_param("cluster", "default")).split("/")[-1]
        self.ecs_backend._get_service(cluster, str(self._get_param("service")).split("/")[-1])  # not found: refused
        found = _model().list_deployments(cluster, self._get_param("service"), self._get_param("status"))
        return ActionResult({"serviceDeployments": found})

    def describe_service_deployments(self: Any) -> Any:
        found, failures = _model().describe(self._get_param("serviceDeploymentArns") or [])
        return ActionResult({"serviceDeployments": found, "failures": failures})

    def describe_service_revisions(self: Any) -> Any:
        found, failures = _model().revisions(self._get_param("serviceRevisionArns") or [])
        return ActionResult({"serviceRevisions": found, "failures": failures})

    def continue_service_deployment(self: Any) -> Any:
        arn = _model().continue_deployment(
            self._get_param("serviceDeploymentArn"), self._get_param("hookId"), self._get_param("action") or "CONTINUE"
        )
        return ActionResult({"serviceDeploymentArn": arn})

    def stop_service_deployment(self: Any) -> Any:
        arn = _model().stop_deployment(self._get_param("serviceDeploymentArn"), self._get_param("stopType") or "ABORT")
        return ActionResult({"serviceDeploymentArn": arn})

    for handler in (
        list_service_deployments,
        describe_service_deployments,
        describe_service_revisions,
        continue_service_deployment,
        stop_service_deployment,
    ):
        setattr(EC2ContainerServiceResponse, handler.__name__, handler)


def _patch_target_health() -> None:
    """ELBv2 targets are always healthy; let the world answer for the target groups it models."""
    from moto.elbv2.models import ELBv2Backend

    original = ELBv2Backend.describe_target_health

    def describe_target_health(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> Any:
        if HOOKS.target_health is not None and not targets:
            answer = HOOKS.target_health(target_group_arn)
            if answer is not None:
                return answer
        return original(self, target_group_arn, targets)

    ELBv2Backend.describe_target_health = describe_target_health  # type: ignore[method-assign]


def _statistic(stat: str, samples: list[float]) -> float | None:
    """A CloudWatch statistic of one period's samples (Sum, SampleCount, Average, Minimum, Maximum, pNN)."""
    ordered = sorted(samples)
    simple: dict[str, Callable[[], float]] = {
        "Sum": lambda: float(sum(ordered)),
        "SampleCount": lambda: float(len(ordered)),
        "Average": lambda: sum(ordered) / len(ordered),
        "Minimum": lambda: ordered[0],
        "Maximum": lambda: ordered[-1],
    }
    if stat in simple:
        return simple[stat]()
    if stat.startswith("p") and stat[1:].replace(".", "", 1).isdigit() and 0 < float(stat[1:]) <= 100:
        return ordered[max(math.ceil(float(stat[1:]) / 100 * len(ordered)) - 1, 0)]
    return None


def _alb_datapoints(
    query: dict[str, Any], start: _dt.datetime, end: _dt.datetime
) -> tuple[list[Any], list[Any]] | None:
    """(timestamps, values) of a MetricStat query on AWS/ApplicationELB that HOOKS.alb_metrics answers, oldest
    first. CloudWatch rounds a StartTime of the last 15 days down to the minute (the second, below 60 s)."""
    stat = query["MetricStat"]
    metric = stat["Metric"]
    if HOOKS.alb_metrics is None or metric.get("Namespace") != "AWS/ApplicationELB":
        return None
    period = int(stat["Period"])
    begin = start.timestamp() // (60 if period >= 60 else 1) * (60 if period >= 60 else 1)
    dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
    found = HOOKS.alb_metrics(metric["MetricName"], dimensions, begin, end.timestamp(), period)
    if found is None:
        return None
    points = [(at, _statistic(stat["Stat"], samples)) for at, samples in found if samples]
    kept = [(_dt.datetime.fromtimestamp(at, tz=_dt.UTC), value) for at, value in points if value is not None]
    return [at for at, _ in kept], [value for _, value in kept]


def _patch_alb_metrics() -> None:
    """GetMetricData answers only what PutMetricData stored: a load balancer's AWS/ApplicationELB metrics never
    have data. Queries of that namespace get the datapoints HOOKS.alb_metrics models (the world's user traffic);
    a metric math expression still sees moto's own results."""
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.get_metric_data

    def get_metric_data(
        self: Any,
        queries: list[dict[str, Any]],
        start_time: _dt.datetime,
        end_time: _dt.datetime,
        scan_by: str = "TimestampAscending",
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = original(self, queries, start_time, end_time, scan_by)
        by_id = {q["Id"]: q for q in queries if "MetricStat" in q}
        for result in results:
            found = _alb_datapoints(by_id[result["id"]], start_time, end_time) if result["id"] in by_id else None
            if found is not None:
                timestamps, values = found
                if scan_by == "TimestampDescending":
                    timestamps, values = timestamps[::-1], values[::-1]
                result["timestamps"], result["values"] = timestamps, values
        return results

    CloudWatchBackend.get_metric_data = get_metric_data  # type: ignore[method-assign]


def _patch_event_targets() -> None:
    """put_events raises NotImplementedError for Step Functions and Lambda targets; deliver them
    through HOOKS.deliver_event, with ``time`` as the ISO-8601 string EventBridge sends."""
    from moto.events.models import Rule

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        ours = [t for t in self.targets if t["Arn"].split(":")[2] in ("states", "lambda")]
        if ours and HOOKS.deliver_event is not None and self.event_pattern.matches_event(original_event):
            event = dict(original_event)
            event.pop("ingestion-time", None)
            if isinstance(event.get("time"), int | float):
                event["time"] = _dt.datetime.fromtimestamp(event["time"], tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for target in ours:
                HOOKS.deliver_event(self.name, target, event)
        rest = [t for t in self.targets if t not in ours]
        if rest:
            saved = self.targets
            self.targets = rest
            try:
                original(self, original_event, transform_input)  # type: ignore[arg-type]
            finally:
                self.targets = saved

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign, assignment]


def _patch_event_time() -> None:
    """PutEvents stamps an entry without ``Time`` (and its ingestion time) with wall time; EventBridge uses
    the time it received the event, which in the world is the virtual clock (an ECR push made after a
    deployment that waited on that clock must not look older than it)."""
    from moto.events import models

    original = models.unix_time  # type: ignore[attr-defined]

    def unix_time(dt: _dt.datetime | None = None) -> float:
        return _clock.current().time() if dt is None else original(dt)

    models.unix_time = unix_time  # type: ignore[attr-defined]


def _patch_execution_status_events() -> None:
    """Step Functions emits 'Step Functions Execution Status Change' to EventBridge; moto does not."""
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    original = BaseExecutionWorkerCommunication._reflect_execution_status

    def _reflect_execution_status(self: Any) -> None:
        original(self)  # type: ignore[no-untyped-call]
        if HOOKS.execution_ended is not None:
            ex = self.execution
            status = getattr(ex.exec_status, "value", str(ex.exec_status))
            HOOKS.execution_ended(ex.exec_arn, ex.state_machine_arn, ex.name, status)

    BaseExecutionWorkerCommunication._reflect_execution_status = _reflect_execution_status  # type: ignore[method-assign]


def _patch_execution_history_order() -> None:
    """GetExecutionHistory ignores reverseOrder, maxResults and nextToken (it returns every event, oldest
    first); page through the events as AWS does, newest first with reverseOrder."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def get_execution_history(self: Any) -> Any:
        output = self.stepfunction_backend.get_execution_history(self._get_param("executionArn"))
        events = list(output["events"])
        if self._get_param("reverseOrder"):
            events.reverse()
        start = int(self._get_param("nextToken") or 0)
        size = int(self._get_param("maxResults") or 100) or 100  # (0 means the default, 100, on AWS)
        page: dict[str, Any] = {"events": events[start : start + size]}
        if start + size < len(events):
            page["nextToken"] = str(start + size)
        return ActionResult(page)

    StepFunctionResponse.get_execution_history = get_execution_history  # type: ignore[method-assign]


class PipelineJobs:
    """CodePipeline job state for the emulated job APIs (moto has none). A job is ``InProgress`` until it
    gets a final result (a success without a continuation token: ``Succeeded``; a failure: ``Failed``)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def create(self, job_id: str, data: dict[str, Any]) -> None:
        self.jobs[job_id] = {"data": data, "results": [], "status": "InProgress"}

    def put_result(self, job_id: str, result: dict[str, Any]) -> None:
        """Accept a result while the job is InProgress; as on AWS, refuse any other with
        InvalidJobStateException (PutJobSuccessResult / PutJobFailureResult API reference, Errors)."""
        from moto.core.exceptions import JsonRESTError

        with self._lock:
            job = self.jobs[job_id]
            if job["status"] != "InProgress":
                raise JsonRESTError("InvalidJobStateException", f"job {job_id} is {job['status']}, not InProgress")
            job["results"].append(result)
            if result["kind"] == "failure":
                job["status"] = "Failed"
            elif not result.get("continuationToken"):
                job["status"] = "Succeeded"


JOBS = PipelineJobs()


def _patch_codepipeline_jobs() -> None:
    """GetJobDetails, PutJobSuccessResult and PutJobFailureResult are not implemented in moto."""

    from moto.codepipeline.responses import CodePipelineResponse
    from moto.core.exceptions import JsonRESTError

    def _job(self: Any) -> dict[str, Any]:
        job_id = self._get_param("jobId")
        if job_id not in JOBS.jobs:
            raise JsonRESTError("JobNotFoundException", f"job {job_id} not found")
        return JOBS.jobs[job_id]

    def get_job_details(self: Any) -> str:
        job = _job(self)
        return json.dumps({"jobDetails": {"id": self._get_param("jobId"), "data": job["data"]}})

    def put_job_success_result(self: Any) -> str:
        _job(self)
        JOBS.put_result(
            self._get_param("jobId"),
            {
                "kind": "success",
                "continuationToken": self._get_param("continuationToken"),
                "executionDetails": self._get_param("executionDetails"),
            },
        )
        return "{}"

    def put_job_failure_result(self: Any) -> str:
        _job(self)
        JOBS.put_result(
            self._get_param("jobId"), {"kind": "failure", "failureDetails": self._get_param("failureDetails")}
        )
        return "{}"

    CodePipelineResponse.get_job_details = get_job_details  # type: ignore[attr-defined]
    CodePipelineResponse.put_job_success_result = put_job_success_result  # type: ignore[attr-defined]
    CodePipelineResponse.put_job_failure_result = put_job_failure_result  # type: ignore[attr-defined]


def _patch_cfn_cidr() -> None:
    """CloudFormation templates in moto cannot use Fn::Cidr (it is returned unevaluated)."""
    import ipaddress

    from moto.cloudformation import parsing

    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, dict) and list(resource_json) == ["Fn::Cidr"]:
            block, count, bits = (clean_json(v, resources_map) for v in resource_json["Fn::Cidr"])
            network = ipaddress.ip_network(str(block), strict=False)
            subnets = network.subnets(new_prefix=network.max_prefixlen - int(bits))
            return [str(next(subnets)) for _ in range(int(count))]
        return original(resource_json, resources_map)

    parsing.clean_json = clean_json


# ---- ECS one-off tasks and the load balancer's front door


def _patch_ecs_tasks() -> None:
    """RunTask tasks stay RUNNING forever (nothing runs them), and ``ecs:runTask.sync`` polls them with
    a wall-time sleep: let the world stop them (HOOKS.tasks_observed) and poll on the virtual clock."""
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )

    original = EC2ContainerServiceBackend.describe_tasks

    def describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> Any:
        found = original(self, cluster_str, tasks)
        if HOOKS.tasks_observed is not None:
            for task in found:
                task._tick = 0  # moto's own progression would stop the task after a few describes
            HOOKS.tasks_observed(self, list(found))
        return found

    EC2ContainerServiceBackend.describe_tasks = describe_tasks  # type: ignore[method-assign]
    state_task_service_callback.time = _VirtualTime("time_virtual")  # type: ignore[attr-defined]

    # Fargate sizes a task at task level; moto sums container-level memory and fails without it
    original_requirements = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def _calculate_task_resource_requirements(task_definition: Any) -> Any:
        sized = [dict(c) for c in task_definition.container_definitions]
        for c in sized:
            if not any(k in c for k in ("memory", "memoryReservation", "Memory", "MemoryReservation")):
                c["memory"] = 0
        saved, task_definition.container_definitions = task_definition.container_definitions, sized
        try:
            return original_requirements(task_definition)
        finally:
            task_definition.container_definitions = saved

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(  # type: ignore[method-assign]
        _calculate_task_resource_requirements
    )


def _patch_ecs_run_task_failures() -> None:
    """RunTask never reports ``failures`` (placement: RESOURCE:ENI, RESOURCE:CPU...), and moto's
    ``ecs:runTask.sync`` reads ``Tasks[0]`` regardless: a RunTask with failures would end the state with
    States.Runtime (an IndexError). On AWS a .sync or .waitForTaskToken task with non-empty Failures
    fails with ``AmazonECS.Unknown``; request-response returns the response. HOOKS.run_task_failure
    makes RunTask fail placement."""
    from moto.core.responses import ActionResult
    from moto.ecs.responses import EC2ContainerServiceResponse
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    original_run_task = EC2ContainerServiceResponse.run_task

    def run_task(self: Any) -> Any:
        if HOOKS.run_task_failure is not None:
            cluster_name, task_definition = self._get_param("cluster", "default"), self._get_param("taskDefinition")
            cluster = self.ecs_backend._get_cluster(cluster_name)  # refusals first: ClusterNotFoundException
            self.ecs_backend.describe_task_definition(task_definition)  # ... ClientException (no such revision)
            reason = HOOKS.run_task_failure(cluster.name, task_definition)
            if reason:
                return ActionResult({"tasks": [], "failures": [{"arn": cluster.arn, "reason": reason}]})
        return original_run_task(self)

    original_eval = StateTaskServiceEcs._eval_service_task

    def _eval_service_task(
        self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
    ) -> None:
        if self._get_boto_service_action() != "run_task":
            original_eval(self, env, resource_runtime_part, normalised_parameters, state_credentials)
            return
        ecs: Any = boto_client_for(
            region=resource_runtime_part.region, service="ecs", state_credentials=state_credentials
        )
        response = ecs.run_task(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        self._normalise_response(response=response, service_action_name="run_task")
        if not response.get("Failures"):
            task = response["Tasks"][0]  # as moto: the output is the task's description
            described = ecs.describe_tasks(cluster=task["ClusterArn"], tasks=[task["TaskArn"]])
            described.pop("ResponseMetadata", None)
            self._normalise_response(response=described, service_action_name="describe_tasks")
            env.stack.append(described)
        elif not self._is_integration_pattern():
            env.stack.append(response)  # request-response: the response, and the state does not fail
        else:
            error = "AmazonECS.Unknown"
            raise FailureEventException(
                failure_event=FailureEvent(
                    env=env,
                    error_name=CustomErrorName(error_name=error),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]  # a total TypedDict in moto
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resourceType=self._get_sfn_resource_type(),
                            resource=self._get_sfn_resource(),
                            error=error,
                            cause=to_json_str(response),
                        )
                    ),
                )
            )

    EC2ContainerServiceResponse.run_task = run_task  # type: ignore[method-assign]
    StateTaskServiceEcs._eval_service_task = _eval_service_task  # type: ignore[method-assign]


def _patch_service_integration_casing() -> None:
    """Optimised service integrations (``ecs:runTask`` ...) take and return PascalCase in Step Functions;
    moto's port left the conversion to and from boto3's shapes empty (getmoto/moto#10076)."""
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    models: dict[str, Any] = {}

    def operation(self: Any, service: str | None, action: str | None) -> Any:
        name = self._get_boto_service_name(service)
        if name not in models:
            models[name] = botocore.session.get_session().get_service_model(name)
        model = models[name]
        wanted = self._get_boto_service_action(action)
        op = next(o for o in model.operation_names if botocore.xform_name(o) == wanted)
        return model.operation_model(op)

    def _normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        shape = operation(self, boto_service_name, service_action_name).input_shape
        if shape is not None:
            self._to_boto_request(parameters, shape)

    def _normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        shape = operation(self, boto_service_name, service_action_name).output_shape
        if shape is not None:
            self._from_boto_response(response, shape)

    StateTaskService._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]
    StateTaskService._normalise_response = _normalise_response  # type: ignore[method-assign]


def _patch_alb_endpoints() -> None:
    """moto's ALB DNS names resolve nowhere; connect them to the world's workload servers."""
    import socket

    original = socket.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if HOOKS.endpoint is not None:
            routed = HOOKS.endpoint(str(address[0]), int(address[1]))
            if routed is not None:
                address = routed
        return original(address, *args, **kwargs)

    socket.create_connection = create_connection  # type: ignore[assignment]


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, th: v >= th,
    "GreaterThanThreshold": lambda v, th: v > th,
    "LessThanThreshold": lambda v, th: v < th,
    "LessThanOrEqualToThreshold": lambda v, th: v <= th,
}


def _alarm_notification(alarm: Any, old: str, reason: str, account_id: str, region: str) -> str:
    """The JSON message CloudWatch publishes to an alarm action's SNS topic."""
    return json.dumps(
        {
            "AlarmName": alarm.name,
            "AlarmDescription": alarm.description,
            "AWSAccountId": account_id,
            "NewStateValue": alarm.state_value,
            "NewStateReason": reason,
            "StateChangeTime": _clock.current().now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "Region": region,
            "AlarmArn": alarm.alarm_arn,
            "OldStateValue": old,
            "Trigger": {
                "MetricName": alarm.metric_name,
                "Namespace": alarm.namespace,
                "Statistic": (alarm.statistic or "").upper(),
                "Dimensions": [{"name": d.name, "value": d.value} for d in alarm.dimensions],
                "Period": alarm.period,
                "EvaluationPeriods": alarm.evaluation_periods,
                "ComparisonOperator": alarm.comparison_operator,
                "Threshold": alarm.threshold,
                "TreatMissingData": alarm.treat_missing_data,
            },
        }
    )


def _evaluate_queue_alarms(account_id: str, region: str, queue_name: str, visible: int) -> None:
    """Alarms on the queue's AWS/SQS ApproximateNumberOfMessagesVisible take the state the count gives them;
    a state change publishes the alarm's notification to the SNS topics of its actions for that state."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.sns.models import sns_backends

    for alarm in list(cloudwatch_backends[account_id][region].alarms.values()):
        if (alarm.namespace, alarm.metric_name) != ("AWS/SQS", "ApproximateNumberOfMessagesVisible"):
            continue
        if [(d.name, d.value) for d in alarm.dimensions] != [("QueueName", queue_name)]:
            continue
        breaching = _COMPARE[alarm.comparison_operator](float(visible), float(alarm.threshold))
        state, old = ("ALARM" if breaching else "OK"), alarm.state_value
        if state == old:
            continue
        op = alarm.comparison_operator.replace("Threshold", "").replace("To", " to").lower()
        reason = f"Threshold Crossed: 1 datapoint [{float(visible)}] was {op} the threshold ({alarm.threshold})."
        alarm.update_state(reason, "{}", state)
        actions = alarm.alarm_actions if state == "ALARM" else alarm.ok_actions
        for arn in actions if alarm.actions_enabled else []:
            if arn.split(":")[2] == "sns":
                sns_backends[account_id][region].publish(
                    _alarm_notification(alarm, old, reason, account_id, region),
                    arn=arn,
                    subject=f'{state}: "{alarm.name}" in {region}'[:99],
                )


def _patch_sqs_queue_alarms() -> None:
    """CloudWatch alarms are never evaluated (no SQS metrics, no state changes, no actions). Alarms on a
    queue's ApproximateNumberOfMessagesVisible are evaluated whenever the queue's visible messages change
    (send, receive, delete), at once rather than at the next 1-minute datapoint; their state change
    notifies the alarm's SNS actions as CloudWatch does."""
    from moto.sqs.models import SQSBackend

    def evaluated(original: Callable[..., Any]) -> Callable[..., Any]:
        def method(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
            result = original(self, queue_name, *args, **kwargs)
            visible = len(self.get_queue(queue_name).messages)
            _evaluate_queue_alarms(self.account_id, self.region_name, queue_name, visible)
            return result

        return method

    for name in ("send_message", "send_message_batch", "receive_message", "delete_message", "delete_message_batch"):
        setattr(SQSBackend, name, evaluated(getattr(SQSBackend, name)))


from . import cloudformation as _cfn  # noqa: E402 - its patches use HOOKS, defined above

#: name -> (patch, what it fixes). The contract tests iterate over this.

#: task tokens issued (waitForTaskToken) whose task has closed: answered, timed out, or its execution ended
_CLOSED_TOKENS: set[str] = set()
#: the shape of a task token as Step Functions issues it (opaque base64, hundreds of characters, at most 2048)
TASK_TOKEN = re.compile(r"^AQ[A-Za-z0-9+/]{200,2000}={0,2}$")


def _new_task_token() -> str:
    return "AQ" + base64.b64encode(os.urandom(480)).decode()


def _patch_task_tokens() -> None:
    """moto's task tokens are UUIDs; a waitForTaskToken task times out in wall time; SendTaskSuccess/Failure
    with the token of a closed task (answered, timed out, execution stopped) succeeds silently or says
    InvalidToken/TaskDoesNotExist; invalid JSON output fails the execution instead of the call; SendTaskFailure
    drops the cause. As on AWS (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html):
    tokens are long opaque base64 strings; the task times out on the virtual clock with States.Timeout; an
    unknown or malformed token is InvalidToken, a closed task's token TaskTimedOut, bad output InvalidOutput."""
    from moto.stepfunctions.parser import api
    from moto.stepfunctions.parser.api import InvalidToken
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval import states as sfn_states
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackOutcomeFailure,
        CallbackOutcomeSuccess,
        CallbackOutcomeTimedOut,
    )
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    class TaskTimedOut(api.TaskTimedOut):  # (moto's has no exception_type: the error code reaches no client)
        def __init__(self, message: str) -> None:
            api.ServiceException.__init__(self, message, "TaskTimedOut", 400)  # type: ignore[attr-defined]

    class InvalidOutput(api.InvalidOutput):
        def __init__(self, message: str) -> None:
            api.ServiceException.__init__(self, message, "InvalidOutput", 400)  # type: ignore[attr-defined]

    def update_task_token(self: Any) -> str:
        token = _new_task_token()
        self.context_object_data["Task"] = {"Token": token}
        return token

    def _eval_wait_for_task_token(
        self: Any, env: Any, timeout_seconds: int, callback_endpoint: Any, heartbeat_endpoint: Any
    ) -> Any:
        attempt = current_task()  # the task's TimeoutSeconds runs from its start (the Lambda invocation included)
        deadline = attempt.deadline if attempt is not None else _clock.current().time() + timeout_seconds
        try:
            while env.is_running():
                outcome = callback_endpoint.get_outcome()
                if outcome is not None:
                    return outcome
                if _clock.current().time() >= deadline:
                    return CallbackOutcomeTimedOut(callback_id=callback_endpoint.callback_id)
                callback_endpoint._notify_event.wait(0.02)
                callback_endpoint._notify_event.clear()
            return CallbackOutcomeTimedOut(callback_id=callback_endpoint.callback_id)  # stopped: abandoned
        finally:
            _CLOSED_TOKENS.add(callback_endpoint.callback_id)

    original_set_error = Environment.set_error

    def set_error(self: Any, error: Any) -> None:
        if isinstance(self._program_state, ProgramStopped):
            return  # the task abandoned by StopExecution fails after the stop: the execution stays ABORTED
        original_set_error(self, error)

    def _endpoint(backend: Any, token: Any) -> Any:
        if not isinstance(token, str) or not TASK_TOKEN.fullmatch(token):
            raise InvalidToken()  # type: ignore[no-untyped-call]
        for execution in backend._get_executions():
            worker = execution.exec_worker
            endpoint = worker.env.callback_pool_manager.get(token) if worker is not None else None
            if endpoint is None:
                continue
            if token in _CLOSED_TOKENS or execution.status != "RUNNING":
                raise TaskTimedOut("Task Timed Out: 'Provided task does not exist anymore'")
            return endpoint
        raise InvalidToken()  # type: ignore[no-untyped-call]

    def send_task_success(self: Any, task_token: str, outcome: str) -> None:
        endpoint = _endpoint(self, task_token)
        try:
            json.loads(outcome)
        except (TypeError, ValueError):
            raise InvalidOutput("Invalid Output: the output is not valid JSON") from None
        endpoint.notify(CallbackOutcomeSuccess(callback_id=task_token, output=outcome))

    def send_task_failure(self: Any, task_token: str, error: Any = None, cause: Any = None) -> None:
        _endpoint(self, task_token).notify(CallbackOutcomeFailure(callback_id=task_token, error=error, cause=cause))

    def response_send_task_failure(self: Any) -> Any:
        from moto.core.responses import EmptyResult

        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    sfn_states.ContextObject.update_task_token = update_task_token  # type: ignore[method-assign]
    StateTaskServiceCallback._eval_wait_for_task_token = _eval_wait_for_task_token  # type: ignore[method-assign]
    Environment.set_error = set_error  # type: ignore[method-assign]
    StepFunctionsParserBackend.send_task_success = send_task_success  # type: ignore[method-assign,assignment]
    StepFunctionsParserBackend.send_task_failure = send_task_failure  # type: ignore[method-assign,assignment]
    StepFunctionResponse.send_task_failure = response_send_task_failure  # type: ignore[method-assign]


def _patch_serializer_member_keys() -> None:
    """moto's response serializer finds every member of a structure through six alias providers (new
    objects and name transformations per member, per value): ~0.5 ms for one Step Functions history event
    of ~45 members, most of them absent. The keys it tries depend only on the member's shape and the
    value's type (for a type without ``__getattr__`` nor a per-instance ``Meta``): remember them, and
    look the value up with them as moto does (first key present wins; then the response transformer of
    the key path, if any). Other alias providers or pickers go through moto as before."""
    from moto.core import serialize as _serialize
    from moto.core.constants import MISSING
    from moto.core.utils import get_value as _lookup

    original = _serialize.ResponseSerializer.get_value
    keys_of: dict[tuple[type, int, str], tuple[Any, Any, tuple[str, ...]]] = {}

    def _keys(picker: Any, value: Any, key: str, shape: Any) -> tuple[str, ...] | None:
        kind = type(value)
        if kind is not dict and (hasattr(kind, "__getattr__") or "Meta" in getattr(value, "__dict__", ())):
            return None  # what the alias providers see may differ from one value of this type to another
        parent = getattr(shape, "parent", None)
        known = keys_of.get((kind, id(shape), key))
        if known is None or known[0] is not shape or known[1] is not parent:
            context = _serialize.AttributePickerContext(obj=value, key=key, shape=shape)
            known = (shape, parent, tuple(picker.get_possible_keys(context)))
            keys_of[(kind, id(shape), key)] = known
        return None if any("." in k for k in known[2]) else known[2]

    def get_value(self: Any, value: Any, key: str, shape: Any) -> Any:
        picker = self._value_picker
        if (
            type(picker) is not _serialize.XFormedAttributePicker
            or picker.alias_providers is not _serialize.DEFAULT_ALIAS_PROVIDERS
            or (keys := _keys(picker, value, key, shape)) is None
        ):
            return original(self, value, key, shape)
        found = None
        for possible in keys:
            candidate = value.get(possible, MISSING) if type(value) is dict else _lookup(value, possible, MISSING)
            if candidate is not MISSING:
                found = candidate
                break
        if picker.response_transformers:
            key_path = f"{'.'.join(self.path)}.{key}"
            for transform_path, transform in picker.response_transformers.items():
                if key_path.endswith(transform_path):
                    return transform(found)
        return found

    get_value.__wrapped__ = original  # type: ignore[attr-defined]
    _serialize.ResponseSerializer.get_value = get_value  # type: ignore[method-assign]


#: parsed ASL by definition text, newest last (see :func:`_patch_asl_parse_cache`): the ANTLR parse tree and
#: the program built from it, pickled
_PARSE_TREES: dict[str, tuple[Any, bytes | None]] = {}
_PARSE_TREES_KEPT = 16


def _patch_json_path_cache() -> None:
    """Each JSONPath an execution evaluates ($.request.service, ResultPath, Choice variables, ...) is parsed
    again with jsonpath-ng, whose parse builds a new PLY parser every time (~2 ms, hundreds per execution).
    A parsed path is immutable (find and update_or_create change the data, not the path): parse each text
    once (the parse error of a bad path is raised each time, as before)."""
    import functools

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)  # type: ignore[attr-defined]
    result_path.parse = functools.lru_cache(maxsize=4096)(result_path.parse)  # type: ignore[attr-defined]


def _patch_unsigned_requests() -> None:
    """moto checks no request signature unless it authenticates requests (set_initial_no_auth_action_count): it
    reads the caller from the access key in Authorization (the account and identity of a key it issued, an IAM
    user's or an assumed role's, maybe in another account; the default account, the world's, for any other key
    or none) and the region from the URL. Computing SigV4 for every request it answers in-process is ~7% of the
    suite's CPU. While a mock intercepts requests, botocore sends those to AWS endpoints unsigned; requests with
    a key moto issued or while it authenticates, presigned URLs, S3 (an unsigned request is anonymous: moto
    checks it against the bucket's public access), requests to another endpoint (a served world, whose region
    moto reads from the signature) and every request when no mock runs are signed as before."""
    from urllib.parse import urlsplit

    from botocore.signers import RequestSigner
    from moto import settings
    from moto.core.models import botocore_stubber
    from moto.iam.models import iam_backends

    original = RequestSigner.sign

    def checked_by_moto(credentials: Any) -> bool:
        """Does moto read this request's signature: it authenticates requests (set_initial_no_auth_action_count),
        or its credentials are a key it issued?"""
        if not math.isinf(settings.INITIAL_NO_AUTH_ACTION_COUNT):
            return True
        key = getattr(credentials, "access_key", None)
        return any(key in iam.access_keys for account in list(iam_backends.values()) for iam in list(account.values()))

    def sign(self: Any, operation_name: str, request: Any, *args: Any, **kwargs: Any) -> None:
        standard = (args[1] if len(args) > 1 else kwargs.get("signing_type", "standard")) == "standard"
        in_process = botocore_stubber.enabled and (urlsplit(request.url).hostname or "").endswith(".amazonaws.com")
        if not (standard and in_process and self._signing_name != "s3") or checked_by_moto(self._credentials):
            original(self, operation_name, request, *args, **kwargs)

    RequestSigner.sign = sign  # type: ignore[method-assign]


def _patch_lambda_task_clients() -> None:
    """Each Lambda Task attempt creates a new boto3 Lambda client to invoke its function (~5 ms: botocore
    builds the client class, its endpoint and event hooks each time). The client depends only on the region,
    whether moto intercepts calls (else the moto server's port) and the session boto3 creates clients from
    (a world sets up its own): keep one per such key, as a long-running service keeps its clients."""
    import boto3
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original = lambda_eval_utils.boto_client_for  # type: ignore[attr-defined]
    clients: dict[tuple[str, str, bool, str], tuple[Any, Any]] = {}

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, botocore_stubber.enabled, moto_server_port())
        session, client = clients.get(key, (None, None))
        if client is None or session is not boto3.DEFAULT_SESSION:
            session, client = boto3.DEFAULT_SESSION, original(region, service, state_credentials)
            clients[key] = (session, client)
        return client

    lambda_eval_utils.boto_client_for = boto_client_for  # type: ignore[attr-defined]


def _patch_action_names() -> None:
    """moto finds the method that answers a request among its response class's methods, listed again with
    inspect.getmembers for every request (~0.5 ms, a tenth of a small call). A class's methods are set when its
    module is loaded and patched (compat.apply, before any request): list them once per class."""
    from moto.core import responses, utils

    listed: dict[type, list[str]] = {}

    def method_names_from_class(clazz: Any) -> list[str]:
        names = listed.get(clazz)
        if names is None:
            names = listed[clazz] = utils.method_names_from_class(clazz)
        return names

    responses.method_names_from_class = method_names_from_class  # type: ignore[attr-defined]


#: the key SNS signs notifications with, made at first use (see :func:`_patch_sns_signing_key`)
_SNS_SIGNING_KEY: list[Any] = []


def _patch_sns_signing_key() -> None:
    """moto makes a new 2048-bit RSA key for each subscription at its first signed delivery (~0.1 s of CPU:
    every world's notification queue); SNS signs every notification of a region with one key, named by the
    SigningCertURL. Sign with one key, made once."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from moto.sns.models import Subscription

    def private_key(self: Any) -> Any:
        with _lock:
            if not _SNS_SIGNING_KEY:
                _SNS_SIGNING_KEY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
            return _SNS_SIGNING_KEY[0]

    Subscription.private_key = private_key  # type: ignore[method-assign,assignment]


_JSON_ATOMS = (str, int, float, bool, type(None))


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, strings, numbers, booleans, null) ~3x faster than
    ``copy.deepcopy``; anything else is deep-copied by it."""
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    if kind in _JSON_ATOMS:
        return value
    return copy.deepcopy(value)


def _patch_json_data_copies() -> None:
    """Each read of an execution's state data ($, a path of it, the context object) and each write of a
    state's input, result or error output is a ``copy.deepcopy`` (~0.3 ms for a deployment's input, tens of
    thousands per test file). That data is JSON (it crosses the execution as JSON text on AWS): copy it as
    JSON. Anything that is not JSON is still deep-copied."""
    from moto.stepfunctions.parser.asl.component.common.string import string_expression
    from moto.stepfunctions.parser.asl.eval import states

    json_copy = types.SimpleNamespace(deepcopy=_copy_json)
    states.copy = json_copy  # type: ignore[attr-defined,assignment]
    string_expression.copy = json_copy  # type: ignore[attr-defined,assignment]


def _pickled(program: Any) -> bytes | None:
    try:
        return pickle.dumps(program)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return None


def _patch_asl_parse_cache() -> None:
    """Every execution parses its state machine's definition again with ANTLR (about 0.3 s of CPU for
    stepdeploy's 57 kB definition, more than most executions take in the local world), then builds its
    program from the parse tree (another 80 ms). Keep the parse tree of each definition and the program
    built from it, pickled: every execution gets a fresh program (the components are not shared between
    executions) unpickled in ~3 ms (one that cannot be pickled is built from the tree each time);
    definitions with syntax errors are not kept."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = AmazonStateLanguageParser.parse

    def parse(definition: str) -> tuple[Any, Any]:
        kept = _PARSE_TREES.get(definition)
        if kept is None:
            program, tree = original(definition)
            with _lock:
                _PARSE_TREES[definition] = (tree, _pickled(program))
                while len(_PARSE_TREES) > _PARSE_TREES_KEPT:
                    del _PARSE_TREES[next(iter(_PARSE_TREES))]
            return program, tree
        with _lock:  # the least recently used definition goes first: a world's own outlives the tests' many others
            _PARSE_TREES[definition] = _PARSE_TREES.pop(definition, kept)
        tree, pickled = kept
        if pickled is None:
            return Preprocessor().visit(tree), tree
        return pickle.loads(pickled), tree  # noqa: S301 - bytes this process pickled from its own program

    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]

    validate = StepFunctionsParserBackend._validate_definition

    def _validate_definition(definition: str) -> None:
        # CreateStateMachine parses the definition only to refuse a bad one: a kept definition parsed cleanly
        # before (about 25 ms to unpickle a program it would throw away, at each world's start)
        if definition not in _PARSE_TREES:
            validate(definition=definition)

    StepFunctionsParserBackend._validate_definition = staticmethod(_validate_definition)  # type: ignore[method-assign]


PATCHES: dict[str, tuple[Callable[[], None], str]] = {
    "wait_state": (_patch_wait_state, "Wait states sleep in wall time"),
    "state_hooks": (_patch_state_hooks, "nothing can observe or hold an execution as it enters a state"),
    "task_attempts": (
        _patch_task_attempts,
        "Task attempts cannot be made to fail or time out (the local world injects faults per state)",
    ),
    "retry_sleep": (_patch_retry_sleep, "Retry intervals sleep in wall time"),
    "timestamps": (_patch_timestamps, "execution timestamps ignore the virtual clock"),
    "execution_name": (_patch_execution_name, "StartExecution without a name yields ARN ...:None"),
    "lambda_invoke": (_patch_lambda_invoke, "Lambda invoke requires Docker"),
    "task_tokens": (
        _patch_task_tokens,
        "task tokens are UUIDs, time out in wall time, and a closed task's token is answered silently",
    ),
    "ecs_rollouts": (_patch_ecs_rollouts, "UpdateService has no deployments or rollout progress"),
    "ecs_deployment_configuration": (
        _patch_ecs_deployment_configuration,
        "CreateService drops deploymentConfiguration; nothing checks strategy, ranges or advancedConfiguration",
    ),
    "ecs_service_deployments": (
        _patch_ecs_service_deployments,
        "service deployments, revisions, lifecycle hooks (Continue/StopServiceDeployment) are not implemented",
    ),
    "target_health": (_patch_target_health, "ELBv2 targets are always healthy"),
    "alb_metrics": (_patch_alb_metrics, "a load balancer publishes no AWS/ApplicationELB metrics (GetMetricData)"),
    "event_targets": (_patch_event_targets, "EventBridge cannot deliver to Step Functions or Lambda targets"),
    "execution_timeout": (
        _patch_execution_timeout,
        "an execution's TimeoutSeconds counts wall time; TIMED_OUT has no error nor stopDate",
    ),
    "event_time": (_patch_event_time, "PutEvents stamps an entry without Time with wall time"),
    "execution_status_events": (_patch_execution_status_events, "no execution status change events"),
    "codepipeline_jobs": (
        _patch_codepipeline_jobs,
        "CodePipeline job APIs are not implemented (a job refuses a result once it has a final one)",
    ),
    "serializer_member_keys": (
        _patch_serializer_member_keys,
        "every response member is looked up through six alias providers (slow for large responses)",
    ),
    "asl_parse_cache": (
        _patch_asl_parse_cache,
        "every execution and CreateStateMachine parse the definition again (ANTLR) and build its program (slow)",
    ),
    "action_names": (_patch_action_names, "each request lists its response class's methods (inspect.getmembers)"),
    "json_path_cache": (_patch_json_path_cache, "every JSONPath is parsed again at each use (a new PLY parser, slow)"),
    "unsigned_requests": (_patch_unsigned_requests, "every request moto answers is signed (SigV4), for nothing"),
    "lambda_task_clients": (_patch_lambda_task_clients, "each Lambda Task attempt creates a new boto3 client"),
    "sns_signing_key": (_patch_sns_signing_key, "each subscription signs with a new RSA key (slow to make)"),
    "json_data_copies": (_patch_json_data_copies, "state data is deep-copied with copy.deepcopy at every read"),
    "execution_history_order": (
        _patch_execution_history_order,
        "GetExecutionHistory ignores reverseOrder, maxResults and nextToken",
    ),
    "cfn_cidr": (_patch_cfn_cidr, "CloudFormation Fn::Cidr is not evaluated"),
    # ---- CloudFormation (compat/cloudformation.py)
    "cfn_getatt_paths": (_cfn._patch_cfn_getatt_paths, "Fn::GetAtt of a dotted attribute (Endpoint.Address) fails"),
    "cfn_list_parameters": (_cfn._patch_cfn_list_parameters, "CommaDelimitedList parameter defaults are not split"),
    "cfn_physical_names": (_cfn._patch_cfn_physical_names, "generated names break AWS length limits (RDS > 63)"),
    "cfn_iam_roles": (
        _cfn._patch_cfn_iam_roles,
        "IAM roles ignore ManagedPolicyArns and trust policy updates, and cannot be deleted with them",
    ),
    "cfn_dynamic_references": (
        _cfn._patch_cfn_dynamic_references,
        "{{resolve:secretsmanager:...}} dynamic references reach resources unresolved",
    ),
    "cfn_resource_types": (_cfn._patch_cfn_resource_types, "RDS DBCluster, Secret, autoscaling, Alarm are ignored"),
    "cfn_aurora_instances": (
        _cfn._patch_cfn_aurora_instances,
        "Aurora DBInstances fail (KeyError 'aurora-postgresql')",
    ),
    "cfn_ecs_properties": (_cfn._patch_cfn_ecs_properties, "ECS resources lose networking, LB and Fargate properties"),
    "cfn_deletions": (_cfn._patch_cfn_deletions, "stacks cannot delete VPC plumbing and ELBv2 parts, nor update some"),
    "cfn_elbv2_attributes": (_cfn._patch_cfn_elbv2_attributes, "GetAtt LoadBalancerFullName/TargetGroupFullName fail"),
    "cfn_vpc_properties": (_cfn._patch_cfn_vpc_properties, "VPC DNS hostnames and security group egress are ignored"),
    "cfn_change_sets": (_cfn._patch_cfn_change_sets, "change sets diff template text, not resolved properties"),
    "cfn_change_set_names": (
        _cfn._patch_cfn_change_set_names,
        "ChangeSetName is checked with str.isalnum, and refused with a 'Stack ... does not exist' message",
    ),
    "cfn_execution": (_cfn._patch_cfn_execution, "change set failures raise instead of rolling back"),
    "cfn_operation_time": (
        _cfn._patch_cfn_operation_time,
        "stack operations are never in progress; CancelUpdateStack is not implemented",
    ),
    "cfn_stack_resources": (_cfn._patch_cfn_stack_resources, "stack resources include never-created ones, empty"),
    # ---- end CloudFormation
    "ecs_tasks": (_patch_ecs_tasks, "RunTask tasks never stop; runTask.sync polls in wall time"),
    "ecs_run_task_failures": (
        _patch_ecs_run_task_failures,
        "RunTask never fails placement; runTask.sync ignores Failures (AmazonECS.Unknown on AWS)",
    ),
    "service_casing": (_patch_service_integration_casing, "service integrations skip PascalCase conversion"),
    "alb_endpoints": (_patch_alb_endpoints, "ALB DNS names do not answer"),
    "sqs_queue_alarms": (_patch_sqs_queue_alarms, "CloudWatch alarms on SQS queue depth never change state nor notify"),
}


def apply() -> None:
    """Apply every patch once per process (idempotent)."""
    global _applied
    with _lock:
        if _applied:
            return
        for patch, _ in PATCHES.values():
            patch()
        _applied = True
