"""An in-process Lambda runtime for the functions declared in template.yaml.

Each function's ``app.py`` is loaded by path under a unique module name (they are all called
``app``), with the layer directories on ``sys.path`` as ``/opt/python`` would be on Lambda. An
invocation runs with the function's environment from the template and a real Lambda context
object. Invocations are serialised (the environment is process-wide), recorded with the AWS API
calls they made, and can be made to fail through :meth:`LambdaRuntime.fail_next` (fault injection).
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from botocore.exceptions import ClientError

from . import clock, compat
from .template import FunctionSpec


@dataclass
class LocalLambdaContext:
    """The attributes and method of the context object Lambda passes to a Python handler."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_s: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


@dataclass
class Invocation:
    function: str
    request_id: str
    started: float  # virtual
    duration_ms: float  # wall
    error: str | None
    aws_calls: list[tuple[str, str]] = field(default_factory=list)  # (boto3 service name, operation)
    logs: str = ""


@dataclass
class LoadedFunction:
    spec: FunctionSpec
    name: str
    arn: str
    environment: dict[str, str]
    module: ModuleType | None = None


_recording = threading.local()
_api_hook_installed = False


class _ThreadRoutedStdout:
    """sys.stdout stand-in: writes from a thread inside an invocation go to that invocation's log
    buffer (as Lambda sends a function's stdout to CloudWatch Logs); other writes pass through."""

    def __init__(self, passthrough: Any) -> None:
        self._passthrough = passthrough

    def _target(self) -> Any:
        buf = getattr(_recording, "logs", None)
        return buf if buf is not None else self._passthrough

    def write(self, text: str) -> int:
        return int(self._target().write(text))

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._passthrough, name)


def _install_stdout_proxy() -> None:
    """Route sys.stdout through the proxy (again, if something -- a test runner's capture -- replaced it)."""
    if not isinstance(sys.stdout, _ThreadRoutedStdout):
        sys.stdout = _ThreadRoutedStdout(sys.stdout)  # type: ignore[assignment]


@contextmanager
def stdout_to(target: Any) -> Iterator[None]:
    """What this process prints outside invocations goes to ``target`` meanwhile (what an invocation prints
    still goes to its log buffer)."""
    saved = sys.stdout
    sys.stdout = _ThreadRoutedStdout(target)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = saved


@contextmanager
def unrecorded() -> Iterator[None]:
    """Calls the world makes on AWS's behalf inside an invocation (e.g. ECS putting its events on the bus) are
    not the function's calls: neither recorded against it nor subject to its API faults."""
    calls, faults = getattr(_recording, "calls", None), getattr(_recording, "api_faults", None)
    _recording.calls = None
    try:
        yield
    finally:
        _recording.calls, _recording.api_faults = calls, faults


def _install_api_recorder() -> None:
    """Record (service, operation) of every boto3 call made inside an invocation."""
    global _api_hook_installed
    if _api_hook_installed:
        return
    from botocore.client import BaseClient

    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        calls = getattr(_recording, "calls", None)
        if calls is None:
            return original(self, operation_name, api_params)
        service = self.meta.service_model.service_name
        calls.append((service, operation_name))
        fault = _recording.api_faults.take(service, operation_name, _recording.state)
        if fault is not None and not fault.after_success:
            raise fault.error(operation_name)
        response = original(self, operation_name, api_params)
        if fault is not None:
            raise fault.error(operation_name)  # the call was made; its response is lost
        return response

    BaseClient._make_api_call = _make_api_call  # type: ignore[attr-defined]
    _api_hook_installed = True


_STATUS = {"InternalFailure": 500, "ServiceUnavailable": 503}  # HTTP status of a server-side error code


@dataclass
class ApiFault:
    """The next ``times`` matching boto3 calls (after ``after`` pass) raise a ClientError."""

    service: str
    operation: str | None
    error_code: str
    message: str
    times: int
    after: int
    state: str | None
    after_success: bool

    def matches(self, service: str, operation: str, state: str | None) -> bool:
        return (
            self.service == service
            and self.operation in (None, operation)
            and (self.state is None or self.state == state)
        )

    def error(self, operation: str) -> ClientError:
        status = _STATUS.get(self.error_code, 400)
        response: Any = {"Error": {"Code": self.error_code, "Message": self.message}}
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
        return ClientError(response, operation)


class ApiFaults:
    """The API faults of a runtime, consulted for each boto3 call a handler makes."""

    def __init__(self) -> None:
        self.pending: list[ApiFault] = []
        self._lock = threading.Lock()

    def add(self, fault: ApiFault) -> None:
        with self._lock:
            self.pending.append(fault)

    def take(self, service: str, operation: str, state: str | None) -> ApiFault | None:
        """The fault this call meets (counting it against the first fault it matches), or None."""
        with self._lock:
            for fault in self.pending:
                if not fault.matches(service, operation, state):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.times -= 1
                if fault.times == 0:
                    self.pending.remove(fault)
                return fault
        return None


class LambdaRuntime:
    def __init__(
        self, region: str, account_id: str, layer_dirs: list[Path], env_overrides: dict[str, str] | None = None
    ) -> None:
        self.region, self.account_id = region, account_id
        self.functions: dict[str, LoadedFunction] = {}
        self.invocations: list[Invocation] = []
        self._faults: dict[str, list[tuple[str, str] | None]] = {}
        self.api_faults = ApiFaults()
        self._lock = threading.RLock()
        self._env_overrides = env_overrides or {}
        self._baseline = set(os.environ)
        self._introduced: set[str] = set()
        for layer in layer_dirs:
            if str(layer) not in sys.path:
                sys.path.insert(0, str(layer))
        _install_api_recorder()
        _install_stdout_proxy()

    def register(self, spec: FunctionSpec, name: str, arn: str, environment: dict[str, str]) -> None:
        self.functions[name] = LoadedFunction(spec=spec, name=name, arn=arn, environment=environment)

    def by_logical_id(self, logical_id: str) -> LoadedFunction:
        return next(f for f in self.functions.values() if f.spec.logical_id == logical_id)

    # ----------------------------------------------------------------- fault injection

    def fail_next(
        self,
        logical_id: str,
        error_type: str = "RuntimeError",
        message: str = "injected fault",
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Let ``after`` invocations of a function run, then make the following ``times`` fail with
        ``error_type`` (as Lambda reports an unhandled exception) before the handler runs."""
        self.by_logical_id(logical_id)  # validate the name
        if times < 1 or after < 0:
            raise ValueError("times must be >= 1 and after >= 0")
        with self._lock:
            self._faults.setdefault(logical_id, []).extend([None] * after + [(error_type, message)] * times)

    def _next_fault(self, logical_id: str, task: compat.TaskAttempt | None) -> tuple[str, str] | None:
        """The (error type, message) this invocation fails with before its handler runs, if any: the
        Task state attempt's fault, else the function's next queued one."""
        if task is not None and task.fault is not None and task.fault.kind == "fail":
            return task.fault.error_type, task.fault.message
        faults = self._faults.get(logical_id)
        return faults.pop(0) if faults else None

    # ----------------------------------------------------------------- invocation

    def _load(self, fn: LoadedFunction) -> ModuleType:
        if fn.module is None:
            module_file = fn.spec.handler.rsplit(".", 1)[0]
            path = fn.spec.code_dir / f"{module_file.replace('.', '/')}.py"
            unique = f"stepdeploy_fn_{fn.spec.logical_id}"
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            fn.module = module
        return fn.module

    @contextmanager
    def _environment(self, fn: LoadedFunction, context: LocalLambdaContext) -> Iterator[None]:
        values = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.spec.runtime}",
            "_HANDLER": fn.spec.handler,
            **fn.environment,
            **self._env_overrides,
        }
        # Keys are set, never removed: other threads (boto3 in the Step Functions engine, the caller)
        # read the environment concurrently, and botocore tests `KEY in os.environ` then reads it, so a
        # removal can race it. A key an earlier invocation introduced that this function does not
        # define is blanked instead; the World restores the whole environment when it closes.
        for key in self._introduced - values.keys():
            values[key] = ""
        self._introduced.update(k for k in values if k not in self._baseline)
        os.environ.update(values)
        _sandbox_logging(values)
        yield

    def invoke(self, function_name: str, event: Any) -> tuple[str, bool, str]:
        """Run a handler; returns (payload JSON, errored, logs) like moto's Docker path."""
        fn = self.functions[function_name]
        if isinstance(event, str | bytes):
            event = json.loads(event or "{}")
        request_id = str(uuid.uuid4())
        context = LocalLambdaContext(
            function_name=fn.name,
            memory_limit_in_mb=fn.spec.memory_mb,
            invoked_function_arn=fn.arn,
            aws_request_id=request_id,
            timeout_s=fn.spec.timeout_s,
            log_group_name=f"/aws/lambda/{fn.name}",
            log_stream_name=f"local/[$LATEST]{request_id[:8]}",
            _deadline=time.monotonic() + fn.spec.timeout_s,
        )
        with self._lock:
            record = Invocation(fn.spec.logical_id, request_id, clock.current().time(), 0.0, None)
            started = time.perf_counter()
            task = compat.current_task()
            _recording.calls, _recording.api_faults = record.aws_calls, self.api_faults
            _recording.state = task.state if task is not None else None
            _recording.logs = io.StringIO()
            try:
                fault = self._next_fault(fn.spec.logical_id, task)
                if fault is not None:
                    raise _InjectedFault(*fault)
                handler = getattr(self._load(fn), fn.spec.handler.rsplit(".", 1)[1])
                with self._environment(fn, context):
                    result = handler(event, context)
                payload, errored = json.dumps(result), False
            except Exception as exc:  # noqa: BLE001 - reported to Step Functions as Lambda does
                error_type = exc.error_type if isinstance(exc, _InjectedFault) else type(exc).__name__
                record.error = error_type
                payload = json.dumps(
                    {
                        "errorMessage": str(exc),
                        "errorType": error_type,
                        "requestId": request_id,
                        "stackTrace": traceback.format_tb(exc.__traceback__)[-5:],
                    }
                )
                errored = True
            finally:
                _recording.calls = None
                record.logs, _recording.logs = _recording.logs.getvalue(), None
                record.duration_ms = (time.perf_counter() - started) * 1000
                self.invocations.append(record)
        return payload, errored, record.logs


class _InjectedFault(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _sandbox_logging(environment: dict[str, str]) -> None:
    """On AWS each function runs in a sandbox of its own, whose Powertools logger reads POWERTOOLS_LOG_LEVEL and
    writes to that sandbox's stdout (its log) from when it is first built. In this one process the logger is
    configured once (Powertools keeps the first configuration), so a later world, or a function with another
    level, would log at the first one's level and to the first one's stdout: apply the invocation's level and
    stdout to the service's logger, as a fresh sandbox would."""
    service, level = environment.get("POWERTOOLS_SERVICE_NAME"), environment.get("POWERTOOLS_LOG_LEVEL")
    if not service:
        return
    logger = logging.getLogger(service)
    if level and level.upper() in logging.getLevelNamesMapping():
        logger.setLevel(level.upper())
    _install_stdout_proxy()
    for handler in logger.handlers:  # its stdout is the function's log, whatever stdout was when it was built
        if isinstance(handler, logging.StreamHandler) and handler.stream is not sys.stdout:
            handler.setStream(sys.stdout)
