"""The generated fault matrix (issue 10): every Task state x fault kind x phase x scenario, and an
abort at every Wait state, generated from ``statemachine/deploy.asl.json``, each case checked by one
invariant checker (:func:`check`).

    base = baseline(SCENARIOS[0])            # the scenario once, without faults: its state path
    for case in cases(base):                 # a new Task or Wait state on the path joins by itself
        run = run_case(case)
        print(case.id, check(run) or "held")

Cases come from a scenario's fault-free path: each Task state gets its first arrival in the deploy
phase and its first arrival after the rollback began; each Wait state gets an abort (held there,
then StopExecution). After each case a healthy image is deployed: it must succeed (the lock is free
and the service recoverable). Used by tests/workflow/test_fault_matrix.py and tools/bench.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Any

from . import template
from .world import TERMINAL, AppService, ExecutionResult, StackApp, World

ASL = template.ROOT / "statemachine" / "deploy.asl.json"
ROLLBACK_ENTRIES = ("Rollback", "PrepareRollbackStack")  # the path enters the rollback phase here
BOOKKEEPING = re.compile(r"^(Record.*|Guard)$")  # states whose writes may land before the error
PERSON_NEEDED = re.compile(r"needs? (attention|a person)|a person is needed", re.IGNORECASE)
TRACE_MARKS = ("Traceback", '"stackTrace"', '"errorType"')
PERMANENT_ATTEMPTS = 7  # more than any Retry's MaxAttempts + 1
API_FAULTS = 10  # more than botocore's own retries
TIMEOUT = 300.0  # wall seconds an execution may take


# ---------------------------------------------------------------------------- the ASL


def asl_states(definition: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every state of the state machine by name (branches and iterators included)."""
    definition = definition if definition is not None else json.loads(ASL.read_text())
    out: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        out[name] = state
        for branch in state.get("Branches", []):
            out.update(asl_states(branch))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                out.update(asl_states(state[key]))
    return out


def task_function(state: dict[str, Any]) -> str | None:
    """The template's logical id of a Lambda Task's function (``${XFunctionArn}``), None otherwise."""
    match = re.fullmatch(r"\$\{(\w+)Arn\}", str(state.get("Resource", "")))
    return match.group(1) if match else None


# ---------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """A deployment a user recognises, set up in a fresh world."""

    name: str
    description: str
    app: str = "service"  # service | stack
    image: str = "healthy"  # the profile of the image deployed
    provisioned: bool = False  # stack: deployed once (v1) before
    trigger: str = "manual"  # manual | pipeline
    #: BLUE_GREEN | CANARY | LINEAR: a service deployment ECS runs, followed (a stack: its DeploymentStrategy)
    strategy: str = "ROLLING"
    tag: str | None = None  # the tag deployed (default: v1 for a first provisioning, else v2)
    arrange: Callable[[World, Prepared], None] | None = None  # what else is true of the world
    approval: bool = False  # the request asks a person to approve; nobody answers, its timeout approves


#: a person may hold the release for a minute; with no answer the release goes on
UNANSWERED_APPROVAL: dict[str, Any] = {"timeout_minutes": 1, "on_timeout": "APPROVE"}


def _rollback_fails(world: World, prepared: Prepared) -> None:
    world.faults.fail_lambda("UpdateServiceFunction", "RuntimeError", "the rollback's UpdateService failed", after=1)


def _init_never_placed(world: World, prepared: Prepared) -> None:
    world.faults.fail_run_task_placement(times=50, reason="RESOURCE:ENI")


def _stale_lock(world: World, prepared: Prepared) -> None:
    """A lock left by an execution that died; its lease runs out 60 virtual seconds from now."""
    now = int(world.clock.time())
    item = {"holder": "arn:aws:states:us-east-1:123456789012:execution:gone:dead", "deployment_id": "dead"}
    world.client("dynamodb").put_item(
        TableName=world.outputs["ControlTableName"],
        Item={
            "service": {"S": prepared.app.key},
            "item": {"S": "LOCK"},
            **{k: {"S": v} for k, v in item.items()},
            "acquired_at": {"N": str(now - 3600)},
            "lease_expires": {"N": str(now + 60)},
        },
    )


def _service_update_refused(world: World, prepared: Prepared) -> None:
    world.faults.fail_stack_resource("Service", "Resource handler returned message: refused (fault matrix)")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("service-healthy", "a service gets a healthy image"),
    Scenario("service-broken", "a service gets an image that fails its gates: rolled back", image="db-down"),
    Scenario("bluegreen-healthy", "a BLUE_GREEN service gets a healthy image", strategy="BLUE_GREEN"),
    Scenario(
        "bluegreen-broken",
        "a BLUE_GREEN service gets an image that fails on test traffic: ECS takes it back",
        image="db-down",
        strategy="BLUE_GREEN",
    ),
    Scenario(
        "canary-healthy",
        "a CANARY service gets a healthy image: gated (and compared with blue) at its canary step",
        strategy="CANARY",
    ),
    Scenario("linear-healthy", "a LINEAR service gets a healthy image: gated at every step", strategy="LINEAR"),
    Scenario("service-approval", "a release held for a person's approval that nobody answers", approval=True),
    Scenario(
        "bluegreen-approval",
        "a BLUE_GREEN release held for approval after its test-traffic gates; nobody answers",
        strategy="BLUE_GREEN",
        approval=True,
    ),
    Scenario(
        "stack-first",
        "a stack app's first provisioning (BLUE_GREEN, the default), with the database init",
        app="stack",
        strategy="BLUE_GREEN",
    ),
    Scenario(
        "stack-broken",
        "a ROLLING stack app release fails its gates: rolled back through the stack",
        app="stack",
        image="db-down",
        provisioned=True,
    ),
    Scenario(
        "stack-bluegreen-broken",
        "a BLUE_GREEN stack app release fails on test traffic: taken back, CloudFormation rolls the stack back",
        app="stack",
        image="db-down",
        provisioned=True,
        strategy="BLUE_GREEN",
    ),
    Scenario(
        "stack-approval",
        "a BLUE_GREEN stack app release held for approval at its test-traffic hook; nobody answers",
        app="stack",
        provisioned=True,
        strategy="BLUE_GREEN",
        approval=True,
    ),
    Scenario("pipeline", "a CodePipeline Lambda invoke action deploys a healthy image", trigger="pipeline"),
    Scenario(
        "rollback-fails",
        "a service gets a broken image and its rollback fails: a person is needed",
        image="db-down",
        arrange=_rollback_fails,
    ),
    Scenario("already-running", "the image the service runs is deployed again: skipped", tag="v1"),
    Scenario("queued", "a deployment queues behind a dead execution's lock until its lease ends", arrange=_stale_lock),
    Scenario(
        "init-not-placed",
        "a stack app's first provisioning whose database init task is never placed",
        app="stack",
        arrange=_init_never_placed,
    ),
    Scenario(
        "stack-refused",
        "a stack app release whose service update CloudFormation refuses: rolled back by CloudFormation",
        app="stack",
        provisioned=True,
        arrange=_service_update_refused,
    ),
)


@dataclass
class Prepared:
    """What a scenario set up: the application, its verified revision before, the image requested."""

    app: AppService | StackApp
    before: str | None  # task definition serving before the deployment (verified), None: nothing
    image: str  # the requested image URI (by digest)
    tag: str
    strategy: dict[str, Any] | None = None  # the request's $.strategy (a progressive service)


def prepare(world: World, scenario: Scenario) -> Prepared:
    app: AppService | StackApp
    before: str | None = None
    if scenario.app == "stack":
        world.push_image("matrixapp", "v1")
        app = world.stack_app("matrix", repository="matrixapp", parameters={"DeploymentStrategy": scenario.strategy})
        if scenario.provisioned:
            first = world.deploy(app.request("v1"), timeout=TIMEOUT)
            if first.status != "SUCCEEDED":
                raise RuntimeError(f"setup: provisioning ended {first.status}: {first.cause}")
            before = app.service().running_task_definition()
    else:
        app = world.create_service(tag="v1", strategy=scenario.strategy)
        before = app.running_task_definition()
    tag = scenario.tag or ("v1" if scenario.app == "stack" and not scenario.provisioned else "v2")
    if tag != "v1":
        world.push_image(app.repository, tag, scenario.image)
    elif scenario.image != "healthy":
        world.faults.set_image_profile(app.repository, tag, scenario.image)
    if scenario.trigger == "pipeline":
        world.register(app, allow_digest_only=True)
    strategy = None
    if isinstance(app, AppService) and scenario.strategy != "ROLLING":
        token = json.dumps({"token": app.test_token})
        secret = world.client("secretsmanager").create_secret(Name=f"{app.service}-test", SecretString=token)["ARN"]
        strategy = {"type": scenario.strategy, "bake_minutes": 1, "test_url": app.test_url}
        strategy["test_header_secret_arn"] = secret
    prepared = Prepared(app, before, world.image_uri(app.repository, tag), tag, strategy)
    if scenario.arrange is not None:
        scenario.arrange(world, prepared)
    return prepared


def deploy(world: World, scenario: Scenario, prepared: Prepared) -> tuple[ExecutionResult, dict[str, Any] | None]:
    """Start the scenario's deployment and follow it to its end (the pipeline job too)."""
    if scenario.trigger != "pipeline":
        request = prepared.app.request(prepared.tag)
        if prepared.strategy:
            request["strategy"] = prepared.strategy
        if not scenario.approval:
            return world.deploy(request, timeout=TIMEOUT), None
        request["approval"] = dict(UNANSWERED_APPROVAL)
        with _nobody_answers(world, prepared.app):
            return world.deploy(request, timeout=TIMEOUT), None
    target = prepared.app.name if isinstance(prepared.app, StackApp) else prepared.app.key
    job = world.run_pipeline_job(
        {"target": target, "file": "imageDetail.json"}, {"imageDetail.json": {"ImageURI": prepared.image}}
    )
    machine = world.outputs["DeployStateMachineArn"].replace(":stateMachine:", ":execution:")
    return world.wait(f"{machine}:codepipeline-{job['job']}", timeout=TIMEOUT), job


@contextlib.contextmanager
def _nobody_answers(world: World, app: AppService | StackApp) -> Iterator[None]:
    """While the block runs, each approval the release asks for goes unanswered for its whole timeout: once
    its task waits (the APPROVAL control item holds its token), the virtual clock moves past the timeout,
    as it does for a person who never answers (without it, the timeout would pass in wall time)."""
    done = threading.Event()
    thread = threading.Thread(target=_let_approvals_time_out, args=(world, app.key, done), daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _let_approvals_time_out(world: World, key: str, done: threading.Event) -> None:
    seconds = 60 * UNANSWERED_APPROVAL["timeout_minutes"] + 1
    ask = {"TableName": world.outputs["ControlTableName"], "Key": {"service": {"S": key}, "item": {"S": "APPROVAL"}}}
    answered: set[str] = set()
    while not done.wait(0.05):
        item = world.client("dynamodb").get_item(**ask).get("Item")
        token = item["token"]["S"] if item and "token" in item else None
        if token and token not in answered:
            answered.add(token)
            world.clock.advance(seconds)


# ---------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Call:
    service: str  # boto3 service name
    operation: str


@dataclass(frozen=True)
class Arrival:
    """One arrival of the fault-free path at a Task or Wait state."""

    state: str
    type: str  # Task | Wait
    arrival: int  # n-th arrival at the state in the execution
    phase: str  # deploy | rollback
    calls: tuple[Call, ...] = ()  # the AWS calls its handler made (Lambda Tasks)
    calls_before: tuple[Call, ...] = ()  # the calls the earlier arrivals at the state made


@dataclass(frozen=True)
class Baseline:
    scenario: Scenario
    path: tuple[str, ...]
    status: str
    error: str | None
    arrivals: tuple[Arrival, ...]  # the first arrival per (state, phase)


@dataclass(frozen=True)
class Case:
    scenario: Scenario
    state: str
    kind: str  # none | transient | permanent | timeout | api | api-landed | placement | placement-permanent | abort
    phase: str
    arrival: int
    expected: tuple[str, str | None] | None = None  # (status, error) it must end with, if any
    call: Call | None = None
    call_after: int = 0  # matching calls of the state to let through first (earlier arrivals)

    @property
    def id(self) -> str:
        return f"{self.scenario.name}:{self.state}:{self.kind}:{self.phase}"


SERVICE_KINDS = ("timeout", "placement", "placement-permanent")  # service integrations (ecs:runTask.sync)


def arrivals(result: ExecutionResult, calls: list[tuple[str, list[Call]]]) -> tuple[Arrival, ...]:
    """First arrival per (state, phase) at each Task and Wait state of the path. ``calls``: the
    (function logical id, AWS calls) of each invocation during the execution, in order."""
    states = asl_states()
    by_function: dict[str, list[list[Call]]] = {}
    for logical_id, made_by in calls:
        by_function.setdefault(logical_id, []).append(made_by)
    seen: dict[str, int] = {}
    made_at: dict[str, list[Call]] = {}
    phase, out, firsts = "deploy", [], set()
    for name in result.path:
        phase = "rollback" if name in ROLLBACK_ENTRIES else phase
        state = states[name]
        if state["Type"] not in ("Task", "Wait"):
            continue
        seen[name] = seen.get(name, 0) + 1
        queue = by_function.get(task_function(state) or "", [])
        made = queue.pop(0) if queue else []  # the function's invocations, in order
        before = tuple(made_at.get(name, []))
        made_at.setdefault(name, []).extend(made)
        if (name, phase) not in firsts:
            firsts.add((name, phase))
            out.append(Arrival(name, state["Type"], seen[name], phase, tuple(made), before))
    return tuple(out)


def baseline(scenario: Scenario) -> tuple[Baseline, Run]:
    """Run the scenario once without faults: its path and arrivals (and the run, checked as a case;
    no follow-up: nothing was broken)."""
    case = Case(scenario, "-", "none", "-", 0)
    run = run_case(case, follow=False)
    if run.result is None:
        raise RuntimeError(f"{scenario.name}: the fault-free run did not finish: {run.harness_error}")
    base = Baseline(
        scenario, tuple(run.result.path), run.result.status, run.result.error, arrivals(run.result, run.calls)
    )
    return base, run


def _write(call: Call) -> bool:
    return not re.match(r"(Get|Describe|List|Query|Scan|BatchGet|Head)", call.operation)


def cases(base: Baseline) -> list[Case]:
    """Every case of a scenario, from its fault-free path."""
    states = asl_states()
    expected = (base.status, base.error)
    out: list[Case] = []
    for a in base.arrivals:
        case = Case(base.scenario, a.state, "abort", a.phase, a.arrival)
        if a.type == "Wait":
            out.append(case)
            continue
        if task_function(states[a.state]) is None:
            out += [replace(case, kind=k) for k in SERVICE_KINDS]
            out[-2] = replace(out[-2], expected=expected)  # one placement failure is retried
            continue
        out.append(replace(case, kind="transient", expected=expected))
        out += [replace(case, kind="permanent"), replace(case, kind="timeout")]
        if a.calls:
            first = a.calls[0]
            out.append(replace(case, kind="api", call=first, call_after=a.calls_before.count(first)))
            writes = [c for c in a.calls if _write(c)]
            if BOOKKEEPING.match(a.state) and writes:
                out.append(replace(case, kind="api-landed", call=writes[0], call_after=a.calls_before.count(writes[0])))
    return out


def uncovered(baselines: Iterable[Baseline]) -> list[str]:
    """Task and Wait states of the ASL that no scenario's fault-free path reaches."""
    reached = {name for b in baselines for name in b.path}
    return sorted(n for n, s in asl_states().items() if s["Type"] in ("Task", "Wait") and n not in reached)


KINDS = ("transient", "permanent", "timeout", "api", "api-landed", "abort", "placement", "placement-permanent")


def slice_of(all_cases: Iterable[Case], scenarios: Iterable[Scenario] = SCENARIOS) -> list[Case]:
    """The representative slice for ``make test``: one case per fault kind, spread over the scenarios
    and their states. The i-th kind (:data:`KINDS`) takes the i-th scenario that has cases of that
    kind (wrapping), and among those cases (rollback phase first, then in path order) the i-th
    (wrapping)."""
    names = [s.name for s in scenarios]
    pool = sorted(all_cases, key=lambda c: (names.index(c.scenario.name), c.phase != "rollback"))
    chosen: list[Case] = []
    for i, kind in enumerate(KINDS):
        having = [n for n in names if any(c.kind == kind and c.scenario.name == n for c in pool)]
        if not having:
            continue
        scenario = having[i % len(having)]
        candidates = [c for c in pool if c.kind == kind and c.scenario.name == scenario]
        chosen.append(candidates[i % len(candidates)])
    return chosen


# ---------------------------------------------------------------------------- running a case


@dataclass
class Run:
    """A case run, and what the world looked like when its execution had ended (before the follow-up)."""

    case: Case
    result: ExecutionResult | None = None
    job: dict[str, Any] | None = None
    before: str | None = None  # verified task definition serving before
    image: str = ""  # requested image URI
    running: str | None = None  # task definition serving at the end (None: no service)
    running_image: str | None = None
    verified: set[str] = field(default_factory=set)  # task definitions that passed their gates in the execution
    settled: bool = True  # the status-change processing ran (or there was none to run)
    locks: list[str] = field(default_factory=list)  # keys of the LOCK items the execution still holds
    records: list[dict[str, Any]] = field(default_factory=list)  # records with this deployment id
    notes: list[dict[str, Any]] = field(default_factory=list)  # notifications for this deployment id
    followup: ExecutionResult | None = None
    init_runs: int = 0  # database init tasks run, over the case and its follow-up
    calls: list[tuple[str, list[Call]]] = field(default_factory=list)  # (function, AWS calls) per invocation
    harness_error: str | None = None
    wall_seconds: float = 0.0


def inject(world: World, case: Case) -> Any:
    """Arm the case's fault. Returns the Pause of an abort case."""
    faults: Any = world.faults
    state, arrival = case.state, case.arrival
    if case.kind == "abort":
        return world.pause_at(state, arrival=arrival)
    if case.kind == "transient":
        faults.fail_task(state, "Lambda.ServiceException", arrival=arrival, times=1)
    elif case.kind == "permanent":
        faults.fail_task(state, "RuntimeError", arrival=arrival, times=PERMANENT_ATTEMPTS)
    elif case.kind == "timeout":
        faults.time_out_task(state, arrival=arrival)
    elif case.kind in ("api", "api-landed") and case.call is not None:
        faults.fail_api(
            case.call.service,
            case.call.operation,
            "ThrottlingException",
            times=API_FAULTS,
            after=case.call_after,
            state=state,
            after_success=case.kind == "api-landed",
        )
    elif case.kind in ("placement", "placement-permanent"):
        faults.fail_run_task_placement(times=1 if case.kind == "placement" else API_FAULTS)
    return None


def _disarm(world: World) -> None:
    """Faults the case or its scenario left unused must not reach the follow-up deployment. (The
    world has no Faults.clear() yet: until it has, the queues it keeps are emptied here.)"""
    clear = getattr(world.faults, "clear", None)
    if callable(clear):
        clear()
        return
    world.runtime._faults.clear()
    world.faults._placement_failures.clear()
    for queue in ("_task_faults",):
        getattr(world.faults, queue, []).clear()
    api_faults = getattr(world.runtime, "api_faults", None)
    if api_faults is not None:
        api_faults.pending.clear()


def _follow(world: World, case: Case, prepared: Prepared, pause: Any) -> tuple[ExecutionResult, dict[str, Any] | None]:
    """Run the deployment; for an abort, stop it once it is held at its Wait state."""
    if pause is None:
        return deploy(world, case.scenario, prepared)
    out: dict[str, Any] = {}

    def worker() -> None:
        try:
            out["value"] = deploy(world, case.scenario, prepared)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            out["error"] = exc

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    arn = pause.reached(timeout=TIMEOUT)  # (a release held for approval reaches its Wait states a minute later)
    world.client("stepfunctions").stop_execution(
        executionArn=arn, error="Operator", cause="stopped by hand (fault matrix)"
    )
    thread.join(TIMEOUT)
    if "error" in out:
        raise out["error"]
    if "value" not in out:
        raise TimeoutError(f"the deployment did not end after StopExecution at {case.state}")
    return out["value"]  # type: ignore[no-any-return]


def run_case(case: Case, follow: bool = True) -> Run:
    t0 = time.monotonic()
    run = Run(case)
    try:
        with World(function_log_level="ERROR") as world:
            prepared = prepare(world, case.scenario)
            run.before, run.image = prepared.before, prepared.image
            since = len(world.runtime.invocations)
            pause = inject(world, case)
            run.result, run.job = _follow(world, case, prepared, pause)
            run.calls = [(i.function, [Call(*c) for c in i.aws_calls]) for i in world.runtime.invocations[since:]]
            _disarm(world)
            observe(world, prepared, run)
            run.followup = follow_up(world, prepared) if follow else None
            run.init_runs = len(world.one_off_runs)
    except Exception as exc:  # noqa: BLE001 - a case that breaks the harness is reported, not raised
        run.harness_error = f"{type(exc).__name__}: {exc}"
    run.wall_seconds = time.monotonic() - t0
    return run


def _settle(world: World, result: ExecutionResult, timeout: float = 10.0) -> bool:
    """Wait for the status-change rule (ReleaseLock) to have processed the end (every final status: a SUCCEEDED
    execution whose Record* step failed is recorded by it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(rule.endswith("ExecutionEnded") and result.arn in what for rule, what in world.deliveries):
            return True
        time.sleep(0.02)
    return False


def _serving(prepared: Prepared) -> tuple[str | None, str | None]:
    app = prepared.app
    with contextlib.suppress(Exception):  # a stack that was never created has no service
        service = app.service() if isinstance(app, StackApp) else app
        return service.running_task_definition(), service.running_image()
    return None, None


def passed_gates(result: ExecutionResult) -> set[str]:
    """Task definitions a CheckHealth round of the execution declared PASSED."""
    passed: set[str] = set()
    pending: dict[str, Any] | None = None
    for e in result.events:
        details = next((v for k, v in e.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
        if e["type"] in ("LambdaFunctionScheduled", "TaskScheduled"):
            with contextlib.suppress(ValueError, TypeError):
                pending = json.loads(details.get("input") or details.get("parameters") or "null")
        elif e["type"] in ("LambdaFunctionSucceeded", "TaskSucceeded") and isinstance(pending, dict):
            with contextlib.suppress(ValueError, TypeError):
                output = json.loads(details.get("output") or "null")
                active = pending.get("active") or {}
                if isinstance(output, dict) and output.get("status") == "PASSED" and "passes" in output:
                    passed.add(str(active.get("task_definition")))
    return passed


def observe(world: World, prepared: Prepared, run: Run) -> None:
    """What the execution left behind, once the status-change processing ran."""
    assert run.result is not None
    run.settled = _settle(world, run.result)
    run.running, run.running_image = _serving(prepared)
    run.verified = passed_gates(run.result)
    ddb = world.client("dynamodb")
    control = ddb.scan(TableName=world.outputs["ControlTableName"])["Items"]
    run.locks = [
        i["service"]["S"]
        for i in control
        if i["item"]["S"] == "LOCK" and i.get("holder", {}).get("S") == run.result.arn
    ]
    records = ddb.scan(TableName=world.outputs["DeploymentsTableName"])["Items"]
    run.records = [
        {k: next(iter(v.values())) for k, v in r.items()} for r in records if r["deployment_id"]["S"] == run.result.name
    ]
    run.notes = [  # the deployment's outcome notifications (an approval request is an announcement, not one)
        n
        for n in world.notifications()
        if n["message"].get("deployment_id") == run.result.name
        and n["attributes"].get("outcome") != "AWAITING_APPROVAL"
    ]


def follow_up(world: World, prepared: Prepared) -> ExecutionResult:
    """A healthy image deployed after the case: proves the lock is free and the service recoverable. A fault
    the scenario arranged that the case never reached (it failed earlier) is taken away first: the follow-up
    meets a healthy world."""
    world.faults.clear_stack_failures()
    world.push_image(prepared.app.repository, "v9")
    request = prepared.app.request("v9")
    if prepared.strategy:
        request["strategy"] = prepared.strategy
    return world.deploy(request, timeout=TIMEOUT)


# ---------------------------------------------------------------------------- the invariant checker


def check(run: Run) -> list[str]:
    """Every invariant the case must hold; the violations (empty: held)."""
    if run.harness_error is not None:
        return [f"the case did not run to its end: {run.harness_error}"]
    result = run.result
    assert result is not None
    out: list[str] = []
    out += _check_outcome(run, result)
    out += _check_serving(run, result)
    out += _check_bookkeeping(run, result)
    out += _check_pipeline(run, result)
    if run.init_runs > 1:
        out.append(f"the database init ran {run.init_runs} times (at most once)")
    if run.followup is not None and run.followup.status != "SUCCEEDED" and not _held_for_a_person(run):
        f = run.followup
        out.append(f"the follow-up healthy deployment ended {f.status} {f.error}: {(f.cause or '')[:200]}")
    return out


def _check_outcome(run: Run, result: ExecutionResult) -> list[str]:
    from stepdeploy.errors import ERROR_NAMES

    out: list[str] = []
    if result.status not in TERMINAL:
        out.append(f"the execution did not end ({result.status})")
    if any(mark in (result.cause or "") for mark in TRACE_MARKS):
        out.append(f"the cause is a raw trace: {(result.cause or '')[:160]}")
    internal = (result.error or "States.Runtime").startswith("States.") and result.status != "TIMED_OUT"
    if result.status == "FAILED" and result.error not in ERROR_NAMES and (internal or not result.cause):
        # (an unexpected exception keeps its name, with a readable cause; a States.* name on a Fail state
        # would have become States.Runtime)
        out.append(f"the error {result.error!r} is neither a stepdeploy error name nor explained by its cause")
    expected = run.case.expected
    if expected is not None and (result.status, result.error) != expected:
        out.append(f"ended {result.status}/{result.error}, as without the fault it ends {expected[0]}/{expected[1]}")
    return out


def _person_needed(run: Run, result: ExecutionResult) -> bool:
    return bool(PERSON_NEEDED.search(result.cause or "")) or any(
        n["attributes"].get("severity") == "CRITICAL" for n in run.notes
    )


def _check_serving(run: Run, result: ExecutionResult) -> list[str]:
    if result.status == "SUCCEEDED":
        if run.running_image != run.image:
            return [f"SUCCEEDED but the service runs {run.running_image}, not the requested {run.image}"]
        return []
    if run.running is not None and _runs_unverified(run) and not _person_needed(run, result):
        return [
            f"{result.status}: the service runs {run.running.rsplit('/', 1)[-1]}, which did not pass its gates, "
            "and neither the cause nor a CRITICAL notification says a person is needed"
        ]
    return []


def _expected_severity(run: Run, result: ExecutionResult) -> str:
    if result.status == "SUCCEEDED":
        return "INFO"
    # the product may alert more than the harness can see is needed (an abort mid-rollback: the revision
    # that ran before has not passed its gates again), never less; its own cause must then say so
    return "CRITICAL" if _runs_unverified(run) or _cause_says_a_person_is_needed(run) else "WARNING"


def _runs_unverified(run: Run) -> bool:
    """The service runs a revision that neither passed its gates nor ran before the deployment."""
    verified = run.verified | ({run.before} if run.before else set())
    return run.running is not None and run.running not in verified


def _held_for_a_person(run: Run) -> bool:
    """The follow-up stops by design: a destructive database init may have run (its claim stays STARTED),
    and the case's own end said a person must check before anything runs it again."""
    held = run.followup is not None and run.followup.error == "DatabaseInitUncertain"
    return held and _cause_says_a_person_is_needed(run)


def _cause_says_a_person_is_needed(run: Run) -> bool:
    """The execution's cause or one of its records' causes says a person is needed."""
    causes = [run.result.cause if run.result else None, *(record.get("cause") for record in run.records)]
    return any(PERSON_NEEDED.search(str(cause or "")) for cause in causes)


def _check_bookkeeping(run: Run, result: ExecutionResult) -> list[str]:
    out: list[str] = []
    if not run.settled:
        out.append(f"the status-change rule never processed the {result.status} execution")
    if run.locks:
        out.append(f"the lock is still held ({', '.join(run.locks)})")
    rejected_early = "Guard" not in result.path  # ended before Normalize named the service
    if len(run.records) != 1 and not (rejected_early and not run.records):
        out.append(f"{len(run.records)} deployment records for {result.name} (exactly one)")
    for record in run.records:
        if result.status == "SUCCEEDED" and record.get("outcome") not in ("SUCCEEDED", "SKIPPED"):
            out.append(f"SUCCEEDED but the record says {record.get('outcome')}")
        if result.status != "SUCCEEDED" and record.get("outcome") in ("SUCCEEDED", "SKIPPED"):
            out.append(f"{result.status} but the record says {record.get('outcome')}")
    if len(run.notes) != len(run.records):
        out.append(f"{len(run.notes)} notifications for {len(run.records)} record(s)")
    want = _expected_severity(run, result)
    for note in run.notes:
        if note["attributes"].get("severity") != want:
            out.append(f"notification severity {note['attributes'].get('severity')}, expected {want}")
    return out


def _check_pipeline(run: Run, result: ExecutionResult) -> list[str]:
    job = run.job
    if job is None:
        return []
    finals = [r for r in job["results"] if r["kind"] == "failure" or not r.get("continuationToken")]
    if len(finals) != 1 or job["results"][-1] is not finals[-1]:
        return [f"the pipeline job got {len(finals)} final result(s) (exactly one, last); status {job['status']}"]
    if (job["status"] == "Succeeded") != (result.status == "SUCCEEDED"):
        return [f"the pipeline job {job['status']} for an execution that ended {result.status}"]
    return []


# ---------------------------------------------------------------------------- the whole matrix


@dataclass
class MatrixResult:
    runs: list[Run]
    uncovered: list[str]

    @property
    def failing(self) -> list[tuple[Run, list[str]]]:
        return [(r, v) for r in self.runs if (v := check(r))]


def run_matrix(
    scenarios: Iterable[Scenario] = SCENARIOS,
    select: Callable[[list[Case]], list[Case]] = lambda cs: cs,
    progress: Callable[[Run, list[str]], None] | None = None,
    workers: int = 1,
) -> MatrixResult:
    """Baselines, then the selected cases of every scenario, ``workers`` worlds at a time (processes:
    a world patches moto process-wide)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        firsts = list(pool.map(baseline, scenarios))
        runs = [run for _, run in firsts]
        if progress is not None:
            for run in runs:
                progress(run, check(run))
        selected = [case for base, _ in firsts for case in select(cases(base))]
        for future in as_completed([pool.submit(run_case, case) for case in selected]):
            runs.append(future.result())
            if progress is not None:
                progress(runs[-1], check(runs[-1]))
    return MatrixResult(runs, uncovered(base for base, _ in firsts))
