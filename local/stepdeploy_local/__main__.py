"""python -m stepdeploy_local {demo,serve}: the local AWS world from the command line."""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import shlex
import signal
import sys
import threading
import time
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore import xform_name

from . import runtime, samples, template
from .traffic import UserTraffic
from .world import AppService, ExecutionResult, StackApp, World

DEFAULT_PORT = 5000
T = TypeVar("T")


def samconfig_stack() -> str:
    """The stack name of samconfig.toml's default environment: ``serve`` answers describe-stacks under it,
    as the deployed stack would (the stepdeploy command finds its state machine and tables there)."""
    config = tomllib.loads((template.ROOT / "samconfig.toml").read_text())
    return str(config["default"]["global"]["parameters"]["stack_name"])


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


@dataclass
class Row:
    label: str
    trigger: str
    result: ExecutionResult
    after: str
    expected: str
    outcome: str = ""
    ok: bool = False
    strategy: str = "ROLLING"
    users: UserTraffic | None = None  # synthetic users on the production listener during this release

    @property
    def failed(self) -> str:
        return "-" if self.users is None or not self.users.requests else f"{self.users.failed} of {self.users.requests}"


def _outcome(world: World, app: StackApp | AppService, result: ExecutionResult) -> str:
    if result.status == "SUCCEEDED" and result.path and result.path[-1] == "Skipped":
        record = world.record(app, result.name) or {}
        return f"SKIPPED ({record.get('skip_reason')})"
    if result.status == "SUCCEEDED" and result.path and result.path[-1] == "Planned":
        return "PLANNED"
    return result.status if result.status == "SUCCEEDED" else f"{result.status} {result.error}"


def _print_changes(title: str, changes: list[dict[str, Any]]) -> None:
    print(f"  {title}: {len(changes)} resource change(s)")
    for change in changes[:12]:
        replacement = " (replacement)" if change.get("replacement") == "True" else ""
        print(f"    {change['action']:<7} {change['logical_id']:<28} {change['type']}{replacement}")
    if len(changes) > 12:
        print(f"    ... and {len(changes) - 12} more")


def _print_stack(world: World, app: StackApp) -> None:
    out = app.outputs()
    rds, ecs, cfn = world.client("rds"), world.client("ecs"), world.client("cloudformation")
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier=out["DatabaseClusterIdentifier"])["DBClusters"]
    members = ", ".join(
        f"{m['DBInstanceIdentifier']} ({'writer' if m['IsClusterWriter'] else 'reader'})"
        for m in cluster["DBClusterMembers"]
    )
    (svc,) = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    resources = cfn.list_stack_resources(StackName=app.stack_name)["StackResourceSummaries"]
    secret = out["DatabaseSecretArn"].rsplit(":", 1)[-1]
    print(f"  stack {app.stack_name}: {len(resources)} resources")
    print(f"  Aurora {cluster['Engine']} {cluster['DBClusterIdentifier']}: {members}; secret {secret}")
    print(f"  ECS {out['ClusterName']}/{out['ServiceName']}: {svc['launchType']}, desired {svc['desiredCount']}")
    print(f"    in private subnets {out['PrivateSubnetIds']}")
    print(f"  ALB {out['LoadBalancerDNSName']} -> health check {out['HealthCheckUrl']}")
    print(f"  alarms {out['AlarmNames']}\n")


#: the demo's progressive releases: the product's strategies with one-minute bakes (a short demo)
DEMO_STRATEGIES = {
    "BLUE_GREEN": {"type": "BLUE_GREEN", "bake_minutes": 1},
    "CANARY": {"type": "CANARY", "canary_percent": 10, "canary_bake_minutes": 1, "bake_minutes": 1},
}


def _progressive_service(world: World, repository: str, kind: str) -> tuple[AppService, dict[str, Any]]:
    """A service that deploys ``kind`` (its own ALB, test listener and token secret) and the request's strategy."""
    name = f"web-{kind.lower().replace('_', '')}"
    svc = world.create_service(cluster=name, service=name, repository=repository, strategy=kind)
    token = json.dumps({"token": svc.test_token})
    secret = world.client("secretsmanager").create_secret(Name=f"{name}-test-token", SecretString=token)["ARN"]
    return svc, {**DEMO_STRATEGIES[kind], "test_url": svc.test_url, "test_header_secret_arn": secret}


def _strategies(world: World, app: StackApp, run: Any, stamp: Any) -> None:
    """The same broken v3 under BLUE_GREEN (gated through the test listener: no user sees it) and a healthy
    CANARY release of v7, each on a service of its own beside the stack's ROLLING one."""
    print("the same images on services that deploy BLUE_GREEN and CANARY (gates on the test listener first)")
    for kind, tag, expected in (("BLUE_GREEN", "v3", "FAILED HealthCheckFailed"), ("CANARY", "v7", "SUCCEEDED")):
        svc, strategy = _progressive_service(world, app.repository, kind)
        print(f"deploy {app.repository}:{tag} to {svc.service} ({kind}, manual)")
        request = svc.request(tag, strategy=strategy)
        row = run(f"{tag} ({kind.lower()})", "manual", world.start_deployment(request, name=stamp(tag)), expected, svc)
        row.ok = row.ok and row.users is not None and row.users.failed == 0
        row.after = _revision(svc.running_task_definition())


def _runner(world: World, app: StackApp, rows: list[Row]) -> Any:
    """run(label, trigger, execution ARN, expected outcome[, on]): wait for the deployment, showing its
    progress, and add its row to ``rows``."""

    def run(label: str, trigger: str, arn: str, expected: str, on: StackApp | AppService = app) -> Row:
        result = world.wait(arn, on_event=_progress(label))
        record = world.record(on, result.name) or {}
        after = _revision(str(record.get("running_task_definition") or "-")).removeprefix(app.stack_name + "-")
        service = on.service() if isinstance(on, StackApp) else on
        row = Row(label, trigger, result, after, expected, strategy=service.strategy)
        row.users = world.release_traffic(service, result)
        row.outcome = _outcome(world, on, result)
        row.ok = row.outcome == expected
        rows.append(row)
        print()
        return row

    return run


def _stamp(label: str) -> str:
    return f"demo-{label}-{int(time.time() * 1000)}"


def _strategies_apart(world: World, app: StackApp) -> tuple[str, list[Row]]:
    """The strategies section in a world of its own (a copy of the demo's, as it started): the images it
    deploys pushed as the main sequence pushes them; returns what it printed and its rows."""
    world.push_image(app.repository, "v3", "db-down")
    world.push_image(app.repository, "v7", "healthy")
    rows: list[Row] = []
    shown = io.StringIO()
    with runtime.stdout_to(shown):
        _strategies(world, app, _runner(world, app, rows), _stamp)
    return shown.getvalue(), rows


def _forked(work: Callable[[], T]) -> Callable[[], T]:
    """Start ``work`` in a forked copy of this process (call it while only the main thread runs); the
    returned function waits for its result (an exception in it is raised here with its traceback)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the copy: never returns
        os.close(read)
        payload = pickle.dumps((False, "interrupted"))
        try:
            payload = pickle.dumps((True, work()))
        except Exception:  # noqa: BLE001 - the parent raises it, with this traceback
            payload = pickle.dumps((False, traceback.format_exc()))
        finally:
            with os.fdopen(write, "wb") as pipe:
                pipe.write(payload)
            os._exit(0)
    os.close(write)

    def result() -> T:
        with os.fdopen(read, "rb") as pipe:
            ok, value = pickle.loads(pipe.read())  # noqa: S301 - written by our own fork, above
        os.waitpid(pid, 0)
        if not ok:
            raise RuntimeError(f"the forked part of the demo failed:\n{value}")
        return value  # type: ignore[no-any-return]

    return result


def run_demo(world: World, parallel: bool = False) -> int:
    print("stepdeploy local demo: the real state machine (statemachine/deploy.asl.json) and the real")
    print("handlers (functions/*/app.py) against an embedded AWS (moto) on a virtual clock.")
    print("The account starts empty: the first deployment provisions the application stack.")
    print("Its DeploymentStrategy is ROLLING here (a stack's default is BLUE_GREEN), to show what users see")
    print("of a broken image without a gate before production; BLUE_GREEN and CANARY follow.\n")
    app = world.stack_app("techchallenge", parameters={"DeploymentStrategy": "ROLLING"})
    rows: list[Row] = []
    run, stamp = _runner(world, app, rows), _stamp
    # the strategies run on services of their own: in a copy of the world on the other core when asked
    strategies = _forked(lambda: _strategies_apart(world, app)) if parallel else None

    # 1: from an empty account: change set (CREATE) -> execute -> database init -> gates
    world.push_image(app.repository, "v1", "healthy")
    print(f"deploy {app.repository}:v1 with stack {app.name!r} (manual): nothing exists yet")
    row = run("v1 (provision)", "manual", world.start_deployment(app.request("v1"), name=stamp("v1")), "SUCCEEDED")
    record = world.record(app, row.result.name) or {}
    _print_changes("change set CREATE", (record.get("stack") or {}).get("changes") or [])
    init = " ".join(world.one_off_runs[0].command) if world.one_off_runs else "NOT RUN"
    print(f"  database initialised by a one-off ECS task: {init}")
    _print_stack(world, app)
    target = world.register(app, tag_filter={"mode": "glob", "pattern": "v*"}, allow_digest_only=True)
    print(f"registry: {app.repository} (tags v*) -> {target} (stack {app.name})\n")

    # 2-3: manual deployments (StartExecution with the documented input)
    world.push_image(app.repository, "v2", "healthy")
    world.push_image(app.repository, "v3", "db-down")
    print("pushed v2 (healthy) and v3 (answers HTTP 200 'Error: db connection down')")
    print(f"deploy {app.repository}:v2 (manual)")
    run("v2", "manual", world.start_deployment(app.request("v2"), name=stamp("v2")), "SUCCEEDED")
    print(f"deploy {app.repository}:v3 (manual)")
    row = run("v3", "manual", world.start_deployment(app.request("v3"), name=stamp("v3")), "FAILED HealthCheckFailed")
    row.ok = row.ok and row.users is not None and row.users.failed > 0  # a rolling update: users see v3

    # 4-5: an ECR push through EventBridge, then the same event delivered again
    t = world.clock.time()
    world.push_image(app.repository, "v4", "healthy")
    event = world.ecr_push_event(app.repository, "v4", pushed=t)
    print("ECR push of v4 -> EventBridge rule -> state machine")
    [arn] = world.put_events(event)
    run("v4", "ecr", arn, "SUCCEEDED")
    print("the same ECR event delivered again (EventBridge delivers at least once)")
    [arn] = world.put_events(event)
    run("v4 again", "ecr", arn, "SKIPPED (AlreadyRunning)")

    # 6-7: two pushes racing: the second waits for the first, then deploys
    # (v5 is held mid-rollout until v6 is queued, so the race happens on every run)
    world.push_image(app.repository, "v5", "healthy")
    world.push_image(app.repository, "v6", "healthy")
    print("two pushes racing: v5, then v6 while v5 is rolling out")
    pause = world.pause_at("WaitRollout")
    [first] = world.put_events(world.ecr_push_event(app.repository, "v5", pushed=t + 10))
    pause.reached()
    [second] = world.put_events(world.ecr_push_event(app.repository, "v6", pushed=t + 20))
    world.wait_for_state(second, "QueueWait")
    pause.release()
    run("v5", "ecr", first, "SUCCEEDED")
    row = run("v6 (queued)", "ecr", second, "SUCCEEDED")
    row.ok = row.ok and "QueueWait" in row.result.path

    # 8: a late event for an image pushed before v6
    world.push_image(app.repository, "v5-hotfix", "healthy")
    print("a late ECR event for an image pushed before v6 (v5-hotfix)")
    [arn] = world.put_events(world.ecr_push_event(app.repository, "v5-hotfix", pushed=t + 15))
    run("v5-hotfix", "ecr", arn, "SKIPPED (StaleImage)")

    # 9: CodePipeline (Lambda invoke action with an imageDetail.json artifact)
    world.push_image(app.repository, "v7", "healthy")
    print("CodePipeline job: build output imageDetail.json for v7 -> Lambda invoke action -> state machine")
    job = world.run_pipeline_job(
        {"target": target, "file": "imageDetail.json"},
        {"imageDetail.json": {"ImageURI": world.image_uri(app.repository, "v7")}},
    )
    arn = f"{world.outputs['DeployStateMachineArn'].replace(':stateMachine:', ':execution:')}:codepipeline-{job['job']}"
    row = run("v7", "codepipeline", arn, "SUCCEEDED")
    row.ok = row.ok and job["status"] == "Succeeded"
    print(
        f"  CodePipeline job {job['job'][:8]}: {job['status']} after {job['invocations']} invocation(s) "
        "(continuation tokens while the deployment ran)\n"
    )

    # 10-11: an infrastructure change: planned (change set described, then deleted), then applied
    change: dict[str, Any] = {"stack": {"parameters": {"DesiredCount": 3, "MinCapacity": 3}}}
    print("plan: 3 tasks instead of 2 (plan: true -- the change set is described, then deleted)")
    row = run(
        "plan 3 tasks",
        "manual",
        world.start_deployment(app.request("v7", plan=True, **change), name=stamp("plan")),
        "PLANNED",
    )
    plan = (row.result.output or {}).get("plan", {})
    _print_changes("change set UPDATE (planned, not applied)", plan.get("stack", {}).get("changes", []))
    row.after = _revision(app.service().running_task_definition()).removeprefix(app.stack_name + "-")
    print()
    print("apply: 3 tasks instead of 2")
    row = run(
        "3 tasks", "manual", world.start_deployment(app.request("v7", **change), name=stamp("scale")), "SUCCEEDED"
    )
    record = world.record(app, row.result.name) or {}
    _print_changes("change set UPDATE (applied)", (record.get("stack") or {}).get("changes") or [])
    out = app.outputs()
    (svc,) = world.client("ecs").describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])[
        "services"
    ]
    row.ok = (
        row.ok and svc["desiredCount"] == 3 and app.service().running_image() == world.image_uri(app.repository, "v7")
    )
    print(f"  service desired count now {svc['desiredCount']}; it still runs v7\n")
    print(f"one-off database initialisations over the whole demo: {len(world.one_off_runs)}\n")
    row.ok = row.ok and len(world.one_off_runs) == 1
    rollouts = [_revision(arn).removeprefix(app.stack_name + "-") for arn in app.service().rollouts()]
    print(
        f"ECS rollouts after provisioning: {len(rollouts)} ({', '.join(rollouts)}): one per release, one per rollback\n"
    )
    row.ok = row.ok and len(rollouts) == 7  # v2, v3 and its rollback, v4, v5, v6, v7; the 3-task change rolls nothing
    if strategies is None:
        _strategies(world, app, run, _stamp)
    else:
        shown, their_rows = strategies()
        print(shown, end="")
        rows += their_rows

    header = (
        "deployment",
        "trigger",
        "strategy",
        "outcome",
        "user requests failed",
        "virtual time",
        "transitions",
        "wall",
        "service runs",
        "expected",
    )
    table = [header] + [
        (
            r.label,
            r.trigger,
            r.strategy,
            r.outcome,
            r.failed,
            f"{r.result.virtual_seconds:.0f}s",
            str(r.result.state_transitions),
            f"{r.result.wall_seconds:.1f}s",
            r.after,
            "yes" if r.ok else "NO",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, cells in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if r.result.status == "FAILED":
            print(f"\n{r.label} cause: {r.result.cause}")
    all_ok = all(r.ok for r in rows)
    print("\nall outcomes as expected" if all_ok else "\nUNEXPECTED OUTCOME(S)")
    return 0 if all_ok else 1


@dataclass(frozen=True)
class Example:
    """A command ``serve`` prints, in the order to run it: the program (``aws`` or ``stepdeploy``), its
    arguments, and what it does (the comment printed after it; tests/workflow/test_serve_examples.py runs
    each printed line and checks that it does so)."""

    key: str
    program: str
    args: tuple[str, ...]
    says: str

    def line(self) -> str:
        return f"{shlex.join((self.program, *self.args))}   # {self.says}"


def _aws(endpoint: str, service: str, operation: str, **params: Any) -> tuple[str, ...]:
    """An AWS CLI command line for ``operation`` (API names, as boto3 takes them): a string parameter
    as it is, a list of strings as separate words, anything else as JSON (as the CLI accepts it)."""
    args = ["--endpoint-url", endpoint, service, xform_name(operation, "-")]
    for name, value in params.items():
        args.append("--" + xform_name(name, "-"))
        if isinstance(value, str):
            args.append(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            args.extend(value)
        else:
            args.append(json.dumps(value))
    return tuple(args)


def serve_examples(world: World, app: StackApp, target: str, endpoint: str, good: str, bad: str) -> list[Example]:
    """What to try against the served world, in order: deploy the healthy image ``good`` by hand, then an
    ECR push of the broken ``bad`` (both already in ECR) that rolls back to ``good``; look at each step."""
    arn = world.outputs["DeployStateMachineArn"]
    service = app.service()
    push = {
        "result": "SUCCESS",
        "repository-name": app.repository,
        "action-type": "PUSH",
        "image-digest": world.digest_of(app.repository, bad),
        "image-tag": bad,
    }
    entry = {"Source": "aws.ecr", "DetailType": "ECR Image Action", "Detail": json.dumps(push)}
    request = {"target": target, "image": {"tag": good}, "reason": f"release {good}"}
    sfn = ("stepfunctions",)
    return [
        Example(
            "executions",
            "aws",
            _aws(endpoint, *sfn, "ListExecutions", stateMachineArn=arn),
            "every deployment so far and its status",
        ),
        Example(
            "deploy",
            "aws",
            _aws(endpoint, *sfn, "StartExecution", stateMachineArn=arn, input=json.dumps(request)),
            f"deploy {good} by hand (healthy: it runs after a few seconds)",
        ),
        Example(
            "service",
            "aws",
            _aws(endpoint, "ecs", "DescribeServices", cluster=service.cluster, services=[service.service]),
            f"the service runs {good}: one deployment, COMPLETED",
        ),
        Example(
            "push",
            "aws",
            _aws(endpoint, "events", "PutEvents", entries=[entry]),
            f"an ECR push of {bad} (broken: watch it roll back to {good})",
        ),
        Example(
            "history",
            "stepdeploy",
            ("--endpoint-url", endpoint, "history", target),
            f"newest first: {bad} ROLLED_BACK, then {good} SUCCEEDED",
        ),
        Example(
            "status",
            "stepdeploy",
            ("--endpoint-url", endpoint, "status", target),
            f"{good} runs and is the last verified image",
        ),
        Example(
            "stacks",
            "aws",
            _aws(endpoint, "cloudformation", "DescribeStacks", StackName=world.stack_name),
            "stepdeploy's stack: its outputs name the state machine and the tables",
        ),
        Example(
            "app-stack",
            "aws",
            _aws(endpoint, "cloudformation", "DescribeStacks", StackName=app.stack_name),
            "the application stack stepdeploy provisioned",
        ),
    ]


def _wait_forever(world: World, port: int, examples: list[Example]) -> None:
    print(f"\nlocal world listening on http://127.0.0.1:{port} (Ctrl-C to stop). Try, in this order:")
    print("  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=" + world.region)
    for example in examples:
        print(f"  {example.line()}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def serve_world(world: World) -> tuple[StackApp, str, bool]:
    """What ``serve`` starts from: the application stack provisioned with v1 and registered, v2 (healthy) and
    v3 (broken) pushed; the plain service ``techchallenge/web`` running v1, registered from
    events/registry/techchallenge-web.json, with v2 pushed (v2 has the digest the samples in events/ name).
    Returns the application, its registry target and whether v1 deployed."""
    app = world.stack_app("techchallenge")
    world.push_image(app.repository, "v1", "healthy")
    first = world.deploy(app.request("v1"))  # provisions the application stack
    target = world.register(app, tag_filter={"mode": "glob", "pattern": "v*"})
    world.push_image(app.repository, "v2", "healthy", content=samples.SAMPLE_IMAGE)
    world.push_image(app.repository, "v3", "db-down")
    samples.create_web(world)
    print(f"provisioned {app.stack_name} and deployed v1: {first.status}")
    return app, target, first.status == "SUCCEEDED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepdeploy_local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="provisioning from an empty account, manual, ECR and CodePipeline deployments incl. a rollback, "
        "a duplicate, a race, a stale push and an infrastructure change, then the same broken image under "
        "BLUE_GREEN and a CANARY release; exit 0 when every outcome is expected",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="after the demo, keep the world running as a server on 127.0.0.1 (see --port)",
    )
    serve = sub.add_parser(
        "serve", help="run the local world as a server on 127.0.0.1 with a provisioned application stack"
    )
    for p in (demo, serve):
        p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT})")
        p.add_argument(
            "--function-log-level",
            default="ERROR",
            help="POWERTOOLS_LOG_LEVEL for the functions in the local world (default ERROR)",
        )
    demo.add_argument("--stack-name", default="stepdeploy-local", help="stepdeploy's stack name in the world")
    serve.add_argument(
        "--stack-name", default=None, help="stepdeploy's stack name in the world (default: samconfig.toml's)"
    )
    args = parser.parse_args(argv)

    keep = args.command == "serve" or args.keep_running
    world = World(
        function_log_level=args.function_log_level,
        server_port=args.port if keep else None,
        stack_name=args.stack_name or samconfig_stack(),
    )
    endpoint = f"http://127.0.0.1:{args.port}"
    with world:
        if args.command == "demo":
            code = run_demo(world, parallel=not keep and os.cpu_count() != 1)
            app, target, good, bad = world.stack_apps[0], "techchallenge", "v8", "v9"
            world.push_image(app.repository, good, "healthy")
            world.push_image(app.repository, bad, "db-down")
        else:
            app, target, provisioned = serve_world(world)
            code, good, bad = (0 if provisioned else 1), "v2", "v3"
        if keep:
            _wait_forever(world, args.port, serve_examples(world, app, target, endpoint, good, bad))
    return code


if __name__ == "__main__":
    sys.exit(main())
