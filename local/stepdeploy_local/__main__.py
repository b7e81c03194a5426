"""python -m stepdeploy_local {demo,serve}: the local AWS world from the command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from .world import AppService, ExecutionResult, World

DEFAULT_PORT = 5000


def _progress(label: str) -> Any:
    def on_event(event: dict[str, Any], t: float) -> None:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            print(f"  [{label}] +{t:7.1f}s  {event['stateEnteredEventDetails']['name']}", flush=True)
        elif kind in ("LambdaFunctionFailed", "TaskFailed"):
            details = event.get("lambdaFunctionFailedEventDetails") or event.get("taskFailedEventDetails") or {}
            print(f"  [{label}] +{t:7.1f}s    ! {details.get('error')}", flush=True)
        elif kind == "ExecutionFailed":
            d = event.get("executionFailedEventDetails", {})
            print(f"  [{label}] +{t:7.1f}s  = FAILED {d.get('error')}: {d.get('cause')}", flush=True)
        elif kind == "ExecutionSucceeded":
            print(f"  [{label}] +{t:7.1f}s  = SUCCEEDED", flush=True)

    return on_event


def _revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def run_demo(world: World) -> int:
    print("stepdeploy local demo: the real state machine (statemachine/deploy.asl.json) and the real")
    print("handlers (functions/*/app.py) against an embedded AWS (moto) on a virtual clock.\n")
    app: AppService = world.create_service(tag="v1")
    print(
        f"service {app.cluster}/{app.service} runs {app.repository}:v1 as {_revision(app.running_task_definition())};"
        f" the load balancer answers at {app.health_url}"
    )
    world.push_image(app.repository, "v2", "healthy")
    world.push_image(app.repository, "v3", "db-down")
    print("pushed v2 (healthy) and v3 (answers HTTP 200 'Error: db connection down')\n")

    plan = [("v2", "SUCCEEDED", None), ("v3", "FAILED", "HealthCheckFailed")]
    rows: list[tuple[str, ExecutionResult, str, bool]] = []
    for tag, want_status, want_error in plan:
        print(f"deploy {app.repository}:{tag}")
        result = world.deploy(app.request(tag), name=f"demo-{tag}-{int(time.time())}", on_event=_progress(tag))
        after = _revision(app.running_task_definition())
        ok = result.status == want_status and result.error == want_error
        rows.append((tag, result, after, ok))
        print()

    header = ("deployment", "outcome", "error", "virtual time", "transitions", "wall", "running after", "expected")
    table = [header] + [
        (
            f"{app.repository}:{tag}",
            r.status,
            r.error or "-",
            f"{r.virtual_seconds:.0f}s",
            str(r.state_transitions),
            f"{r.wall_seconds:.1f}s",
            after,
            "yes" if ok else "NO",
        )
        for tag, r, after, ok in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    failed = [r for r in rows if r[1].status == "FAILED"]
    for tag, r, _, _ in failed:
        print(f"\n{tag} cause: {r.cause}")
    all_ok = all(ok for *_, ok in rows)
    print("\nall outcomes as expected" if all_ok else "\nUNEXPECTED OUTCOME(S)")
    return 0 if all_ok else 1


def _wait_forever(world: World, port: int) -> None:
    arn = world.outputs["DeployStateMachineArn"]
    app = world.services[0] if world.services else None
    print(f"\nlocal world listening on http://127.0.0.1:{port} (Ctrl-C to stop). Try:")
    print("  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=" + world.region)
    print(f"  aws --endpoint-url http://127.0.0.1:{port} stepfunctions list-executions --state-machine-arn {arn}")
    if app is not None:
        example = json.dumps(app.request("v2"))
        print(
            f"  aws --endpoint-url http://127.0.0.1:{port} stepfunctions start-execution --state-machine-arn {arn} "
            f"--input '{example}'"
        )
        print(
            f"  aws --endpoint-url http://127.0.0.1:{port} ecs describe-services --cluster {app.cluster} "
            f"--services {app.service}"
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepdeploy_local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="deploy a healthy and a broken image; exit 0 when every outcome is expected")
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="after the demo, keep the world running as a server on 127.0.0.1 (see --port)",
    )
    serve = sub.add_parser("serve", help="run the local world as a server on 127.0.0.1 with a seeded service")
    for p in (demo, serve):
        p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT})")
        p.add_argument(
            "--function-log-level",
            default="ERROR",
            help="POWERTOOLS_LOG_LEVEL for the functions in the local world (default ERROR)",
        )
    args = parser.parse_args(argv)

    keep = args.command == "serve" or args.keep_running
    world = World(function_log_level=args.function_log_level, server_port=args.port if keep else None)
    with world:
        if args.command == "demo":
            code = run_demo(world)
        else:
            app = world.create_service(tag="v1")
            world.push_image(app.repository, "v2", "healthy")
            world.push_image(app.repository, "v3", "db-down")
            code = 0
        if keep:
            _wait_forever(world, args.port)
    return code


if __name__ == "__main__":
    sys.exit(main())
