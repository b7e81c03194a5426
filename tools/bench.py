"""Benchmark stepdeploy in the local AWS world and print a table per section.

    PYTHONPATH=layers/common:local .venv/bin/python tools/bench.py [--quick] [--skip-build] [--with-tests] [--matrix]
    make bench ARGS="--fresh-clone [--with-tests] [--warm-cache] [--ref REV]"   (only the fresh-clone timings)

Every figure comes from a run made by this script; the only constants are the published AWS prices
below. The same data is written as JSON to ``.bench/bench-<UTC timestamp>.json`` and ``.bench/latest.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import freshclone

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "layers" / "common", ROOT / "local"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from stepdeploy import decisions  # noqa: E402
from stepdeploy.models import Defaults, DeploymentRequest  # noqa: E402
from stepdeploy_local import faultmatrix, template  # noqa: E402
from stepdeploy_local.traffic import DEFAULT_RATE  # noqa: E402
from stepdeploy_local.workload import PROFILES  # noqa: E402
from stepdeploy_local.world import AppService, ExecutionResult, World  # noqa: E402

# Published prices, us-east-1 (https://aws.amazon.com/step-functions/pricing/,
# https://aws.amazon.com/lambda/pricing/):
#   Step Functions Standard: $0.025 per 1,000 state transitions
#   Lambda arm64: $0.0000133334 per GB-second (billed in 1 ms increments) and $0.20 per 1M requests
PRICE_SFN_PER_TRANSITION = 0.025 / 1000
PRICE_LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334
PRICE_LAMBDA_PER_REQUEST = 0.20 / 1_000_000

# Targets
TARGET_HEALTHY_TRANSITIONS = 40
TARGET_DETECTION_SECONDS = 60.0
TARGET_IMPORT_RATIO = 1.5
TARGET_DEMO_SECONDS = 20.0
TARGET_BROKEN_BLUE_GREEN_FAILED = 0
TARGET_RESTORE_SECONDS = 30.0
TARGET_HEALTHY_BLUE_GREEN_TRANSITIONS = 45

#: the strategies compared (the request's $.strategy; the product's defaults but for the canary share)
CANARY_PERCENT = 10
STRATEGIES: dict[str, dict[str, Any] | None] = {
    "ROLLING": None,
    "BLUE_GREEN": {"type": "BLUE_GREEN"},
    "CANARY": {"type": "CANARY", "canary_percent": CANARY_PERCENT},
    "LINEAR": {"type": "LINEAR"},
}

IMPORT_RUNS = 7
AURORA_CREATION_SECONDS = 1200  # scenario 3a: how long the stack creation stays in progress
THROUGHPUT_SERVICES = 20

#: scenario keys to run (the first word of a scenario's name, e.g. 6b); empty: all (--only)
ONLY: set[str] = set()


# ---------------------------------------------------------------------------- data


@dataclass
class ScenarioResult:
    name: str
    outcome: str | None = None
    error: str | None = None
    state_transitions: int | None = None
    lambda_invocations: int | None = None
    lambda_gb_seconds: float | None = None
    cost_usd: float | None = None
    virtual_seconds: float | None = None
    rollout_to_first_failing_gate_s: float | None = None
    rollout_to_rollback_start_s: float | None = None
    rollout_to_restored_passing_s: float | None = None
    wall_seconds: float | None = None
    note: str | None = None
    # synthetic users on the production listener (DEFAULT_RATE requests per virtual s) during this release
    strategy: str | None = None
    user_requests: int | None = None
    user_requests_failed: int | None = None
    user_requests_to_new_revision: int | None = None
    restore_virtual_seconds: float | None = None  # first failed user request -> 100 % on a good revision


@dataclass
class Report:
    started_utc: str
    python: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    imports: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    matrix: dict[str, Any] = field(default_factory=dict)
    footnotes: list[str] = field(default_factory=list)
    total_wall_seconds: float | None = None


# ---------------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def section(title: str, body: str) -> None:
    print(f"\n== {title}\n{body}", flush=True)


# ---------------------------------------------------------------------------- scenarios


def memory_by_function() -> dict[str, int]:
    return {spec.logical_id: spec.memory_mb for spec in template.functions(template.load())}


def _rel(result: ExecutionResult, event: dict[str, Any]) -> float:
    start: float = result.events[0]["timestamp"].timestamp()
    return float(event["timestamp"].timestamp()) - start


def gate_timings(result: ExecutionResult) -> tuple[float | None, float | None, float | None]:
    """(rollout completion -> first failing gate, -> rollback start, -> restored revision passing)."""
    events = result.events
    first_health = next(
        (
            i
            for i, e in enumerate(events)
            if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"] == "CheckHealth"
        ),
        None,
    )
    if first_health is None:
        return None, None, None
    rollout_done: float | None = None
    for e in events[:first_health]:
        if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "CheckRollout":
            rollout_done = _rel(result, e)
    if rollout_done is None:
        return None, None, None
    first_fail: float | None = None
    rollback: float | None = None
    restored: float | None = None
    current_task: str | None = None
    for e in events:
        if e["type"] == "TaskStateEntered":
            current_task = e["stateEnteredEventDetails"]["name"]
            if current_task == "Rollback" and rollback is None:
                rollback = _rel(result, e)
            if current_task == "RecordRolledBack" and restored is None:
                restored = _rel(result, e)
        elif e["type"] == "LambdaFunctionFailed" and current_task == "CheckHealth" and first_fail is None:
            first_fail = _rel(result, e)

    def since(t: float | None) -> float | None:
        return None if t is None else t - rollout_done

    return since(first_fail), since(rollback), since(restored)


def cost(world: World, result: ExecutionResult, memory: dict[str, int], since: int = 0) -> tuple[int, float, float]:
    """(invocations, GB-seconds, USD) for the deployment measured (invocations from ``since`` on)."""
    invocations = world.runtime.invocations[since:]
    gb_s = sum(math.ceil(inv.duration_ms) / 1000 * memory[inv.function] / 1024 for inv in invocations)
    usd = (
        result.state_transitions * PRICE_SFN_PER_TRANSITION
        + gb_s * PRICE_LAMBDA_ARM64_PER_GB_SECOND
        + len(invocations) * PRICE_LAMBDA_PER_REQUEST
    )
    return len(invocations), gb_s, usd


def progressive_strategy(world: World, app: AppService, strategy: dict[str, Any]) -> dict[str, Any]:
    """The request's $.strategy for a service create_service made progressive: its test URL and token secret."""
    token = json.dumps({"token": app.test_token})
    secret = world.client("secretsmanager").create_secret(Name=f"{app.service}-test-token", SecretString=token)
    return {**strategy, "test_url": app.test_url, "test_header_secret_arn": secret["ARN"]}


def gate_interval_seconds() -> int:
    """Seconds between gate rounds while a new revision takes production traffic (the product's defaults)."""
    minimal = {
        "service": {"cluster": "c", "service": "s", "container": "app"},
        "image": {"repository": "r", "tag": "v2"},
        "health": {"url": "http://service.example/"},
    }
    return decisions.shift_wait(DeploymentRequest.from_input(minimal, Defaults()).health)


def run_scenario(
    name: str,
    setup: Callable[[World, Any], None],
    memory: dict[str, int],
    deploy: Callable[[World, Any], ExecutionResult] | None = None,
    stack: str | None = None,
    strategy: str = "ROLLING",
) -> ScenarioResult:
    """One deployment in a fresh world. ``stack``: None = an existing service (create_service) deploying with
    ``strategy`` (a key of STRATEGIES); "provisioned" = a stack app deployed once before the measured deployment;
    "empty" = nothing exists. A scenario --only leaves out is not run (outcome SKIPPED)."""
    t0 = time.monotonic()
    out = ScenarioResult(name, strategy=strategy)
    if ONLY and name.split()[0] not in ONLY:
        out.outcome = "SKIPPED"
        return out
    try:
        with World(function_log_level="ERROR") as world:
            app: Any
            if stack is None:
                app = world.create_service(tag="v1", strategy=strategy)
                spec = STRATEGIES[strategy]
                if spec is not None:
                    app.bench_strategy = progressive_strategy(world, app, spec)
            else:
                app = world.stack_app("bench")
                world.push_image(app.repository, "v1")
                if stack == "provisioned":
                    assert world.deploy(app.request("v1"), timeout=300.0).status == "SUCCEEDED"
            setup(world, app)
            since = len(world.runtime.invocations)
            result = deploy(world, app) if deploy else world.deploy(request(app, "v2"), timeout=300.0)
            out.outcome, out.error = result.status, result.error
            out.state_transitions = result.state_transitions
            out.lambda_invocations, out.lambda_gb_seconds, out.cost_usd = cost(world, result, memory, since)
            out.virtual_seconds = result.virtual_seconds
            if strategy == "ROLLING":  # (the '->' columns time a rolling release's gates after its rollout)
                (
                    out.rollout_to_first_failing_gate_s,
                    out.rollout_to_rollback_start_s,
                    out.rollout_to_restored_passing_s,
                ) = gate_timings(result)
            traffic = world.release_traffic(app if stack is None else app.service(), result)
            out.user_requests, out.user_requests_failed = traffic.requests, traffic.failed
            out.user_requests_to_new_revision = traffic.to_release_revision
            out.restore_virtual_seconds = traffic.restore_seconds
    except Exception as exc:  # noqa: BLE001 - a benchmark reports the failure and goes on
        out.outcome, out.note = "ERROR", f"{type(exc).__name__}: {exc}"
    out.wall_seconds = time.monotonic() - t0
    return out


def request(app: Any, tag: str) -> dict[str, Any]:
    """The manual request for ``tag``, with the scenario's $.strategy when its service is progressive."""
    strategy = getattr(app, "bench_strategy", None)  # set by run_scenario on a progressive service
    out: dict[str, Any] = app.request(tag, strategy=strategy) if strategy else app.request(tag)
    return out


def production_share(world: World, app: AppService) -> float:
    """Percent of production traffic the newest service deployment's revision takes (ECS's view)."""
    ecs = world.client("ecs")
    listed = ecs.list_service_deployments(cluster=app.cluster, service=app.service)["serviceDeployments"]
    arns = [d["serviceDeploymentArn"] for d in listed]
    described = ecs.describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"] if arns else []
    newest: dict[str, Any] = max(described, key=lambda d: d["createdAt"], default={})
    return float((newest.get("targetServiceRevision") or {}).get("requestedProductionTrafficWeight") or 0.0)


def failing_on_production(world: World, app: Any) -> ExecutionResult:
    """A release that passes its gates on test traffic and answers HTTP 500 from its first production request
    (a fault only production load shows). Each FollowDeployment is held until a poll finds production traffic
    on the new revision; the image's profile is then set to http-500 before that poll's gates run. User
    traffic is counted afterwards from the image's profile, so users see it fail from the first production
    request on, while the gates see it from their first round after the shift, as on AWS."""
    arn = None
    for arrival in range(1, 200):
        pause = world.pause_at("FollowDeployment", arrival)
        arn = arn or world.start_deployment(request(app, "v2"))
        pause.reached()
        shifted = production_share(world, app) > 0
        if shifted:
            world.faults.set_image_profile(app.repository, "v2", "http-500")
        pause.release()
        if shifted:
            return world.wait(arn, timeout=300.0)
    raise RuntimeError("the release never took production traffic")


def strategy_scenarios(memory: dict[str, int], healthy: Callable[[World, Any], None]) -> list[ScenarioResult]:
    """The broken image of the demo (db-down) and a healthy one under each strategy, with user traffic."""

    def broken(world: World, app: Any) -> None:
        world.push_image(app.repository, "v2", "db-down")

    def plain(world: World, app: Any) -> None:
        world.push_image(app.repository, "v2", "healthy")

    def label(kind: str) -> str:
        return {"CANARY": f"CANARY {CANARY_PERCENT} %"}.get(kind, kind)

    out = [run_scenario(f"5{i} broken (db-down), {label(k)}", broken, memory, strategy=k) for i, k in _KINDS]
    out += [run_scenario(f"6{i} healthy, 5-min rollout, {label(k)}", healthy, memory, strategy=k) for i, k in _KINDS]
    out.append(
        run_scenario(
            f"7c broken on production traffic only (HTTP 500), {label('CANARY')}",
            plain,
            memory,
            failing_on_production,
            strategy="CANARY",
        )
    )
    return out


_KINDS = list(zip("rbcl", STRATEGIES, strict=True))


def scenarios() -> list[ScenarioResult]:
    memory = memory_by_function()

    def healthy(world: World, app: Any) -> None:
        world.push_image(app.repository, "v2", PROFILES["healthy"].with_changes(rollout_seconds=300))

    def broken(world: World, app: Any) -> None:
        world.push_image(app.repository, "v2", "db-down")

    def pipeline(world: World, app: Any) -> ExecutionResult:
        """CodePipeline Lambda invoke action with an imageDetail.json artifact (re-invoked every ~60 s)."""
        target = world.register(app, allow_digest_only=True)
        job = world.run_pipeline_job(
            {"target": target, "file": "imageDetail.json"},
            {"imageDetail.json": {"ImageURI": world.image_uri(app.repository, "v2")}},
        )
        machine = world.outputs["DeployStateMachineArn"].replace(":stateMachine:", ":execution:")
        return world.wait(f"{machine}:codepipeline-{job['job']}")

    def nothing(world: World, app: Any) -> None:
        return None

    def provision(world: World, app: Any) -> ExecutionResult:
        return world.deploy(app.request("v1"), timeout=300.0)

    def slow_creation(world: World, app: Any) -> None:
        world.faults.slow_stack_operations(AURORA_CREATION_SECONDS, "CREATE")

    results = [
        run_scenario("1 healthy update, 5-min rollout", healthy, memory),
        run_scenario("1s same, service in a stepdeploy stack", healthy, memory, stack="provisioned"),
        run_scenario("2 broken image (db-down) rolled back", broken, memory),
        run_scenario("3 first provisioning (stack, db init, gates)", nothing, memory, provision, stack="empty"),
        run_scenario(
            f"3a same, the creation taking {AURORA_CREATION_SECONDS // 60} min as Aurora does",
            slow_creation,
            memory,
            provision,
            stack="empty",
        ),
        run_scenario("4 CodePipeline-invoked deploy", healthy, memory, pipeline),
        *strategy_scenarios(memory, healthy),
    ]
    return [r for r in results if r.outcome != "SKIPPED"]


def print_scenarios(results: list[ScenarioResult]) -> None:
    headers = [
        "scenario",
        "outcome",
        "error",
        "transitions",
        "invocations",
        "cost/deploy $",
        "virtual s",
        "->1st fail gate s",
        "->rollback s",
        "->restored ok s",
        "wall s",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r.name,
                r.outcome or "-",
                r.error or "-",
                fmt(r.state_transitions),
                fmt(r.lambda_invocations),
                fmt(r.cost_usd, 6),
                fmt(r.virtual_seconds),
                fmt(r.rollout_to_first_failing_gate_s),
                fmt(r.rollout_to_rollback_start_s),
                fmt(r.rollout_to_restored_passing_s),
                fmt(r.wall_seconds, 2),
            ]
        )
    section(
        "Scenarios (each in a fresh local world; '->' columns: virtual s since rollout completed)", table(headers, rows)
    )
    for r in results:
        if r.outcome == "ERROR":
            print(f"  {r.name}: {r.note}")
    print_user_traffic(results)


def print_user_traffic(results: list[ScenarioResult]) -> None:
    headers = [
        "scenario",
        "strategy",
        "outcome",
        "user requests",
        "failed",
        "to new revision",
        "restore virtual s",
        "transitions",
        "cost/deploy $",
    ]
    rows = [
        [
            r.name,
            r.strategy or "-",
            r.outcome or "-" if r.error is None else f"{r.outcome} {r.error}",
            fmt(r.user_requests),
            fmt(r.user_requests_failed),
            fmt(r.user_requests_to_new_revision),
            fmt(r.restore_virtual_seconds),
            fmt(r.state_transitions),
            fmt(r.cost_usd, 6),
        ]
        for r in results
    ]
    section(
        f"User traffic per release (synthetic users: {DEFAULT_RATE:.0f} requests per virtual s on the production "
        "listener; restore: first failed request -> 100 % on a good revision)",
        table(headers, rows),
    )


# ---------------------------------------------------------------------------- imports

_CHILD_HANDLER = """
import importlib.util, sys, time
t = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_handler", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
print(time.perf_counter() - t)
"""
_CHILD_BOTO3 = """
import time
t = time.perf_counter()
import boto3
print(time.perf_counter() - t)
"""


def _child_seconds(code: str, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "common")}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return float(proc.stdout.strip().splitlines()[-1])


def measure_imports() -> dict[str, Any]:
    boto3_runs = [_child_seconds(_CHILD_BOTO3) for _ in range(IMPORT_RUNS)]
    boto3_median = statistics.median(boto3_runs)
    handlers: dict[str, Any] = {}
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        runs = [_child_seconds(_CHILD_HANDLER, str(app)) for _ in range(IMPORT_RUNS)]
        median = statistics.median(runs)
        handlers[app.parent.name] = {"median_ms": median * 1000, "ratio_to_boto3": median / boto3_median}
    return {"runs": IMPORT_RUNS, "boto3_median_ms": boto3_median * 1000, "handlers": handlers}


def print_imports(data: dict[str, Any]) -> None:
    rows = [["import boto3 (baseline)", fmt(data["boto3_median_ms"]), "1.00"]]
    for name, h in data["handlers"].items():
        rows.append([f"functions/{name}/app.py", fmt(h["median_ms"]), fmt(h["ratio_to_boto3"], 2)])
    section(
        f"Cold import, fresh interpreter, median of {data['runs']} (footnote 1)",
        table(["module", "median ms", "x boto3"], rows),
    )


# ---------------------------------------------------------------------------- sizes


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure_sizes() -> dict[str, Any]:
    sam = ROOT / ".venv" / "bin" / "sam"
    if not sam.exists():
        return {"error": "n/a (.venv/bin/sam not found)"}
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with tempfile.TemporaryDirectory(prefix="stepdeploy-bench-") as tmp:
        build = Path(tmp) / "build"
        t0 = time.monotonic()
        proc = subprocess.run(
            [str(sam), "build", "--build-dir", str(build), "--template", "template.yaml"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"error": f"sam build failed (rc={proc.returncode}): {' | '.join(tail)}", "wall_seconds": wall}
        artifacts = {d.name: dir_size(d) for d in sorted(build.iterdir()) if d.is_dir()}
    return {"wall_seconds": wall, "artifacts_bytes": artifacts}


def print_sizes(data: dict[str, Any]) -> None:
    if "artifacts_bytes" not in data:
        section("Built artifacts (sam build)", data.get("error", "-"))
        return
    rows = [[name, f"{size:,}", fmt(size / 1024 / 1024, 2)] for name, size in data["artifacts_bytes"].items()]
    section(
        f"Built artifacts (sam build took {data['wall_seconds']:.1f} s wall)",
        table(["artifact", "bytes", "MiB"], rows),
    )


# ---------------------------------------------------------------------------- commands


def time_command(cmd: list[str], timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(cmd), "wall_seconds": time.monotonic() - t0, "exit_code": None, "timeout": True}
    return {"command": " ".join(cmd), "wall_seconds": time.monotonic() - t0, "exit_code": proc.returncode}


def print_timings(data: dict[str, Any]) -> None:
    rows = []
    for name, d in data.items():
        if isinstance(d, str):
            rows.append([name, d, "-"])
        else:
            rows.append([d["command"], fmt(d["wall_seconds"], 2), fmt(d["exit_code"])])
    section("Command wall times (after install)", table(["command", "wall s", "exit"], rows))


# ---------------------------------------------------------------------------- throughput


def measure_throughput() -> dict[str, Any]:
    """20 services, two racing ECR pushes each (40 executions at once), checking the per-service lock:
    no two executions of one service may be between RegisterRevision and their Record step at once."""
    out: dict[str, Any] = {"services": THROUGHPUT_SERVICES, "locks": "?"}
    try:
        with World(function_log_level="ERROR") as world:
            t_setup = time.monotonic()
            apps = [
                world.create_service(cluster=f"c{i}", service=f"s{i}", repository=f"repo{i}", tag="v1")
                for i in range(THROUGHPUT_SERVICES)
            ]
            for app in apps:
                world.register(app)
                world.push_image(app.repository, "v2", "healthy")
                world.push_image(app.repository, "v3", "healthy")
            out["setup_wall_seconds"] = time.monotonic() - t_setup
            t0 = time.monotonic()
            now = world.clock.time()
            by_service: dict[str, list[str]] = {}
            for app in apps:
                for offset, tag in ((0, "v2"), (1, "v3")):
                    arns = world.put_events(world.ecr_push_event(app.repository, tag, pushed=now + offset))
                    by_service.setdefault(app.service, []).extend(arns)
            results_by_service = {s: [world.wait(a, timeout=600.0) for a in arns] for s, arns in by_service.items()}
            wall = time.monotonic() - t0
            results = [r for rs in results_by_service.values() for r in rs]
            violations = sum(_overlaps(rs) for rs in results_by_service.values())
            newest = sum(app.running_image().endswith(world.digest_of(app.repository, "v3")) for app in apps)
            out["locks"] = f"{violations} violation(s); newest image running on {newest}/{len(apps)} services"
    except Exception as exc:  # noqa: BLE001 - reported as n/a
        out["error"] = f"n/a ({type(exc).__name__}: {exc})"
        return out
    statuses: dict[str, int] = {}
    for r in results:
        key = r.status if r.error is None else f"{r.status}/{r.error}"
        statuses[key] = statuses.get(key, 0) + 1
    out.update(
        {
            "wall_seconds": wall,
            "deployments_per_minute": len(results) / wall * 60,
            "statuses": statuses,
            "max_virtual_seconds": max(r.virtual_seconds for r in results),
            "failure_causes": [(r.cause or "")[:300] for r in results if r.status != "SUCCEEDED"],
        }
    )
    return out


def _window(result: ExecutionResult) -> tuple[float, float] | None:
    """(entered RegisterRevision, entered its Record step) on the shared virtual clock, if it deployed."""
    times = {
        e["stateEnteredEventDetails"]["name"]: e["timestamp"].timestamp()
        for e in reversed(result.events)
        if "stateEnteredEventDetails" in e
    }
    if "RegisterRevision" not in times:
        return None
    end = min(t for name, t in times.items() if name.startswith("Record"))
    return times["RegisterRevision"], end


def _overlaps(results: list[ExecutionResult]) -> int:
    windows = sorted(w for w in map(_window, results) if w is not None)
    return sum(1 for a, b in itertools.pairwise(windows) if b[0] < a[1])


def print_throughput(data: dict[str, Any]) -> None:
    if "error" in data:
        rows = [[str(data["services"]), data["error"], "-", "-", data["locks"]]]
    else:
        statuses = ", ".join(f"{k}={v}" for k, v in sorted(data["statuses"].items()))
        rows = [
            [
                str(data["services"]),
                statuses,
                fmt(data["wall_seconds"], 2),
                fmt(data["deployments_per_minute"]),
                data["locks"],
            ]
        ]
    section(
        "Throughput: 20 services x 2 racing ECR pushes at once, one world",
        table(["services", "outcomes", "wall s", "deployments/min (wall)", "per-service locks"], rows),
    )
    causes = data.get("failure_causes") or []
    if causes:
        print(f"  first failure cause: {causes[0][:200]}")
    if "max_virtual_seconds" in data:
        print(f"  (one shared virtual clock: the longest execution took {data['max_virtual_seconds']:.0f} virtual s)")


# ---------------------------------------------------------------------------- fault matrix


def measure_matrix() -> dict[str, Any]:
    """The full fault matrix (issue 10): every scenario, every case generated from the ASL."""
    t0 = time.monotonic()

    def progress(run: faultmatrix.Run, violations: list[str]) -> None:
        print(f"  {'held' if not violations else 'FAILED':6} {run.case.id} ({run.wall_seconds:.1f} s)", flush=True)

    result = faultmatrix.run_matrix(progress=progress, workers=os.cpu_count() or 1)
    failing = [{"case": run.case.id, "violations": violations} for run, violations in result.failing]
    return {
        "cases": len(result.runs),
        "held": len(result.runs) - len(failing),
        "failing": failing,
        "uncovered": result.uncovered,
        "wall_seconds": time.monotonic() - t0,
    }


def print_matrix(data: dict[str, Any]) -> None:
    if "cases" not in data:
        section("Fault matrix", data.get("error", "-"))
        return
    rows = [[str(data["cases"]), str(data["held"]), str(len(data["failing"])), fmt(data["wall_seconds"], 1)]]
    section(
        "Fault matrix (every Task state x fault kind x phase x scenario, an abort at every Wait state)",
        table(["cases", "held", "did not", "wall s"], rows),
    )
    print(f"  states no scenario reaches: {', '.join(data['uncovered']) or 'none'}")
    for failure in data["failing"]:
        print(f"  {failure['case']}: {'; '.join(failure['violations'])}")


# ---------------------------------------------------------------------------- targets


def targets(report: Report) -> list[dict[str, Any]]:
    def verdict(value: float | None, limit: float) -> str:
        if value is None:
            return "n/a"
        return "met" if value <= limit else "not met"

    by_name = {s.name.split()[0]: s for s in report.scenarios}
    broken = by_name.get("2")
    out: list[dict[str, Any]] = []
    for key, what in (("1", "healthy update"), ("1s", "healthy update of a stack's service")):
        healthy = by_name.get(key)
        h_tr = healthy.state_transitions if healthy and healthy.outcome == "SUCCEEDED" else None
        out.append(
            {
                "target": f"{what}, 5-min rollout <= {TARGET_HEALTHY_TRANSITIONS} state transitions",
                "measured": fmt(h_tr),
                "result": verdict(h_tr, TARGET_HEALTHY_TRANSITIONS),
            }
        )
    det = broken.rollout_to_first_failing_gate_s if broken else None
    out.append(
        {
            "target": f"broken image detected <= {TARGET_DETECTION_SECONDS:.0f} virtual s after rollout",
            "measured": "-" if det is None else f"{det:.1f} s",
            "result": verdict(det, TARGET_DETECTION_SECONDS),
        }
    )
    out += strategy_targets(by_name)
    handlers = report.imports.get("handlers") or {}
    worst = max((h["ratio_to_boto3"] for h in handlers.values()), default=None)
    out.append(
        {
            "target": f"every handler cold import <= {TARGET_IMPORT_RATIO}x bare boto3",
            "measured": "-" if worst is None else f"worst {worst:.2f}x",
            "result": verdict(worst, TARGET_IMPORT_RATIO),
        }
    )
    demo = report.timings.get("demo")
    demo_s = demo["wall_seconds"] if isinstance(demo, dict) and demo.get("exit_code") == 0 else None
    out.append(
        {
            "target": f"make demo <= {TARGET_DEMO_SECONDS:.0f} s after install",
            "measured": "-" if demo_s is None else f"{demo_s:.1f} s",
            "result": verdict(demo_s, TARGET_DEMO_SECONDS),
        }
    )
    return out


def strategy_targets(by_name: dict[str, ScenarioResult]) -> list[dict[str, Any]]:
    """Issue 11: what users see of a broken image per strategy, and what a healthy blue/green release costs."""

    def verdict(value: float | None, limit: float) -> str:
        return "n/a" if value is None else "met" if value <= limit else "not met"

    def ran(key: str) -> ScenarioResult | None:
        found = by_name.get(key)
        return found if found is not None and found.outcome not in (None, "ERROR") else None

    interval = gate_interval_seconds()
    canary_budget = CANARY_PERCENT / 100 * DEFAULT_RATE * interval
    out: list[dict[str, Any]] = []
    for key, what, limit in (
        ("5b", "broken image (db-down) under BLUE_GREEN fails", TARGET_BROKEN_BLUE_GREEN_FAILED),
        ("5c", f"broken image (db-down) under CANARY {CANARY_PERCENT} % fails", canary_budget),
        ("7c", f"image broken on production traffic only, CANARY {CANARY_PERCENT} %, fails", canary_budget),
    ):
        failed = r.user_requests_failed if (r := ran(key)) else None
        out.append(
            {
                "target": f"{what} <= {limit:g} user requests"
                + (f" (canary share of one {interval} s gate interval)" if key != "5b" else ""),
                "measured": fmt(failed),
                "result": verdict(failed, limit),
            }
        )
    for key in ("5b", "5c", "5l", "7c"):
        r = ran(key)
        restore = r.restore_virtual_seconds if r else None
        no_failure = r is not None and r.user_requests_failed == 0
        out.append(
            {
                "target": f"{r.name if r else key}: restored <= {TARGET_RESTORE_SECONDS:.0f} virtual s",
                "measured": "no request failed" if no_failure else "-" if restore is None else f"{restore:.1f} s",
                "result": "met" if no_failure else verdict(restore, TARGET_RESTORE_SECONDS),
            }
        )
    r = ran("6b")
    transitions = r.state_transitions if r and r.outcome == "SUCCEEDED" else None
    out.append(
        {
            "target": f"healthy BLUE_GREEN release <= {TARGET_HEALTHY_BLUE_GREEN_TRANSITIONS} state transitions",
            "measured": fmt(transitions),
            "result": verdict(transitions, TARGET_HEALTHY_BLUE_GREEN_TRANSITIONS),
        }
    )
    return out


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip sam build, demo timing, tests and throughput")
    parser.add_argument("--skip-build", action="store_true", help="skip sam build (artifact sizes)")
    parser.add_argument("--with-tests", action="store_true", help="also time the test suite (~2 min)")
    parser.add_argument("--matrix", action="store_true", help="also run the full fault matrix (~20 min)")
    parser.add_argument(
        "--fresh-clone",
        action="store_true",
        help="only time, in fresh clones, the install, first and second make demo (and make test with --with-tests)",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="KEY", help="run only this scenario (e.g. 6b; repeatable)"
    )
    freshclone.add_arguments(parser)
    args = parser.parse_args(argv)
    ONLY.update(args.only)
    if args.fresh_clone:
        return freshclone.main_with(args)

    t_start = time.monotonic()
    now = datetime.now(UTC)
    report = Report(started_utc=now.isoformat(timespec="seconds"), python=sys.version.split()[0])
    skipped_quick = "skipped (--quick)"

    report.scenarios = scenarios()
    print_scenarios(report.scenarios)

    report.imports = measure_imports()
    print_imports(report.imports)

    if args.quick or args.skip_build:
        report.sizes = {"error": skipped_quick if args.quick else "skipped (--skip-build)"}
    else:
        report.sizes = measure_sizes()
    print_sizes(report.sizes)

    if args.quick:
        report.timings["demo"] = skipped_quick
    else:
        report.timings["demo"] = time_command(["make", "demo"], timeout=600)
    if args.with_tests and not args.quick:
        report.timings["tests"] = time_command(["make", "unit"], timeout=1800)  # pytest as `make test` runs it
    else:
        report.timings["tests"] = "skipped (--quick)" if args.quick else "skipped (use --with-tests)"
    print_timings(report.timings)

    if args.quick:
        report.throughput = {"services": THROUGHPUT_SERVICES, "error": skipped_quick, "locks": "n/a"}
    else:
        report.throughput = measure_throughput()
    print_throughput(report.throughput)

    if args.matrix:
        report.matrix = measure_matrix()
    else:
        report.matrix = {"error": "skipped (use --matrix or make bench ARGS=--matrix; ~20 min)"}
    print_matrix(report.matrix)

    report.targets = targets(report)
    section(
        "Targets",
        table(["target", "measured", "result"], [[t["target"], t["measured"], t["result"]] for t in report.targets]),
    )

    report.footnotes = [
        "1. Import ratio only: the handlers import boto3 lazily (adapters import it inside functions), "
        "so a handler's import excludes boto3; the cost of first use is not measured.",
        "2. Cost = transitions x $0.025/1000 + sum(ceil(duration ms) x memory/1024 GB-s) x $0.0000133334 "
        "+ invocations x $0.20/1M (us-east-1, arm64); durations are the local in-process wall times, "
        "memory is each function's MemorySize in template.yaml.",
        "3. Virtual times come from the execution history on the local virtual clock.",
        "4. First provisioning: in scenario 3 the local CloudFormation completes the change set at once; "
        f"3a keeps the stack CREATE_IN_PROGRESS for {AURORA_CREATION_SECONDS // 60} virtual minutes "
        "(Aurora takes 15-25 min on AWS), so EnsureStack polls every DefaultStackPollSeconds=30 until it ends.",
    ]
    print("\n" + "\n".join(report.footnotes))

    report.total_wall_seconds = time.monotonic() - t_start
    out_dir = ROOT / ".bench"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"bench-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    text = json.dumps(asdict(report), indent=2, default=str) + "\n"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    print(f"\nbenchmark wall time: {report.total_wall_seconds:.1f} s")
    print(f"JSON: {path.relative_to(ROOT)} (also .bench/latest.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
