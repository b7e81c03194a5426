"""stepdeploy: deploy, watch, inspect and roll back services over the deploy state machine."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from stepdeploy import models

from . import aws, executions, targets
from .errors import AwsError, CliError, InvalidRegistryEntry, NothingToDo

OUTCOME_STYLE = {
    **dict.fromkeys(("SUCCEEDED", "DEPLOYED", "VERIFIED", "REFRESHED"), "green"),
    **dict.fromkeys(("SKIPPED", "IGNORED"), "yellow"),
    **dict.fromkeys(("PLANNED", "DISPATCHED"), "cyan"),
    "RUNNING": "blue",
}


class Context:
    def __init__(self, output: str, stack: str) -> None:
        self.json = output == "json"
        self.stack = stack
        self.console = Console(highlight=False, soft_wrap=True)
        self._sd: aws.Stepdeploy | None = None

    @property
    def sd(self) -> aws.Stepdeploy:
        if self._sd is None:
            self._sd = aws.find(self.stack)
        return self._sd

    def emit(self, data: Any, render: Callable[[], None]) -> None:
        if self.json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            render()


pass_ctx = click.make_pass_decorator(Context)


class NamedErrors(click.Group):
    """Named errors end the command with their name and cause (JSON with --output json), exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            except (ClientError, BotoCoreError) as exc:  # credentials, permissions, endpoint, throttling
                raise AwsError(f"{type(exc).__name__}: {exc}") from exc
        except CliError as exc:
            if isinstance(ctx.obj, Context) and ctx.obj.json:
                click.echo(json.dumps({"error": exc.name, "cause": exc.message}, indent=2))
            else:
                click.echo(f"Error: {exc.name}: {exc.message}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=NamedErrors)
@click.option("--stack", default=None, help="stepdeploy's CloudFormation stack (default: samconfig.toml's stack_name)")
@click.option("--profile", default=None, help="AWS profile (default: the usual credential chain)")
@click.option("--region", default=None, help="AWS region")
@click.option("--endpoint-url", default=None, help="AWS endpoint, e.g. http://127.0.0.1:5000 for the local world")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.version_option(package_name=None, version="0.1.0", prog_name="stepdeploy")
@click.pass_context
def cli(
    ctx: click.Context,
    stack: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    output: str,
) -> None:
    """Deploy, watch, inspect and roll back services with stepdeploy."""
    aws.use_environment(profile, region, endpoint_url)
    ctx.obj = Context(output, stack or aws.default_stack())


# ---------------------------------------------------------------------------- rendering


def _short(digest: Any) -> str:
    return str(digest)[:19] if digest else "-"


def _live_table(view: dict[str, Any]) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_row("deployment", view["deployment"])
    head.add_row("state", Text(str(view["state"]), style="bold"))
    head.add_row("status", Text(view["outcome"], style=OUTCOME_STYLE.get(view["outcome"], "red")))
    head.add_row("elapsed", f"{view['elapsed_seconds']:.0f}s")
    if view.get("traffic") and view["status"] == "RUNNING":  # (where the shift stands while it runs)
        shift = view["traffic"]
        head.add_row(
            "traffic", f"{shift['production_percent']:g} % of production on the new revision ({shift['stage']})"
        )
    gates = Table("phase", "check", "result", "gates", title="gate rounds", title_justify="left")
    for r in view["gate_rounds"][-8:]:
        detail = "; ".join(f"{'ok' if g['passed'] else 'FAIL'} {g['gate']}: {g['detail']}" for g in r["gates"])
        ok = all(g["passed"] for g in r["gates"])
        label = str(r["status"]) if ok else "FAILING"
        gates.add_row(str(r["phase"]), str(r["check"]), Text(label, "green" if ok else "red"), detail)
    return Group(head, gates) if view["gate_rounds"] else Group(head)


def _summary(c: Context, view: dict[str, Any]) -> None:
    style = OUTCOME_STYLE.get(view["outcome"], "red")
    c.console.print(
        Text.assemble(
            (f"{view['outcome']}", f"bold {style}"),
            f"  {view['deployment']}  after {view['elapsed_seconds']:.0f}s, {view['transitions']} states",
        )
    )
    c.console.print("path: " + " > ".join(view["path"]))
    if view["error"] or view["cause"]:
        c.console.print(f"cause: {view['error'] or ''}: {view['cause'] or ''}")


def _follow(c: Context, arn: str, timeout: float) -> dict[str, Any]:
    """Follow an execution to its end: a live view on a terminal, the final summary either way."""
    if c.json:
        return executions.follow(arn, lambda _: None, timeout)
    with Live(console=c.console, refresh_per_second=4, transient=not c.console.is_terminal) as live:
        view = executions.follow(arn, lambda v: live.update(_live_table(v)), timeout)
    _summary(c, view)
    return view


def _finish(c: Context, view: dict[str, Any], ok: bool) -> None:
    if c.json:
        click.echo(json.dumps(view, indent=2, default=str))
    if not ok:
        if not c.json:
            click.echo(f"not deployed: {view['outcome']} {view['error'] or ''}: {view['cause'] or ''}", err=True)
        sys.exit(1)


def _start(c: Context, body: dict[str, Any]) -> str:
    out = aws.client("stepfunctions").start_execution(stateMachineArn=c.sd.state_machine, input=json.dumps(body))
    return str(out["executionArn"])


def _run(c: Context, body: dict[str, Any], wait: bool, timeout: float) -> None:
    arn = _start(c, body)
    if not wait:
        c.emit({"execution": arn, "deployment": arn.rsplit(":", 1)[-1]}, lambda: c.console.print(f"started {arn}"))
        return
    if not c.json:
        c.console.print(f"started {arn.rsplit(':', 1)[-1]}")
    view = _follow(c, arn, timeout)
    plan = bool(body.get("plan"))
    _finish(c, view, view["end_state"] == executions.PLANNED if plan else view["verified"])


# ---------------------------------------------------------------------------- deploy, watch, rollback, abort

WAIT = click.option(
    "--wait/--no-wait", default=False, help="follow the deployment live to its end; exit 0 only when verified"
)
TIMEOUT = click.option("--timeout", default=3600.0, show_default=True, help="seconds --wait follows before giving up")


@cli.command()
@click.argument("target")
@click.option("--tag", default=None, help="image tag (resolved to a digest)")
@click.option("--digest", default=None, help="image digest (sha256:...)")
@click.option("--plan", is_flag=True, help="describe what would change; change nothing")
@click.option("--redeploy", is_flag=True, help="deploy even if this image was deployed before")
@click.option("--reason", default=None, help="one line recorded with the deployment")
@click.option(
    "--strategy",
    type=click.Choice(models.STRATEGIES),
    default=None,
    help="this release's strategy instead of the registry entry's (which keeps the test listener wiring)",
)
@click.option(
    "--approval-timeout",
    type=click.IntRange(*models.INT_RANGES["approval.timeout_minutes"]),
    default=None,
    metavar="MINUTES",
    help="hold the release until a person runs `stepdeploy approve|reject` (within MINUTES)",
)
@click.option(
    "--on-timeout",
    type=click.Choice(models.APPROVAL_TIMEOUT_ACTIONS),
    default="REJECT",
    show_default=True,
    help="what an unanswered approval does",
)
@WAIT
@TIMEOUT
@pass_ctx
def deploy(
    c: Context,
    target: str,
    tag: str | None,
    digest: str | None,
    plan: bool,
    redeploy: bool,
    reason: str | None,
    strategy: str | None,
    approval_timeout: int | None,
    on_timeout: str,
    wait: bool,
    timeout: float,
) -> None:
    """Deploy an image (--tag or --digest) to a registered TARGET."""
    if (tag is None) == (digest is None):
        raise click.UsageError("give exactly one of --tag and --digest")
    t = targets.target(c.sd, target)
    body: dict[str, Any] = {"target": t.name, "image": {"tag": tag} if tag else {"digest": digest}}
    for key, value in (("plan", plan), ("redeploy", redeploy), ("reason", reason)):
        if value:
            body[key] = value
    if strategy is not None:
        body["strategy"] = {"type": strategy}
    if approval_timeout is not None:
        body["approval"] = {"timeout_minutes": approval_timeout, "on_timeout": on_timeout}
    _run(c, body, wait, timeout)


@cli.command()
@click.argument("execution_or_target")
@TIMEOUT
@pass_ctx
def watch(c: Context, execution_or_target: str, timeout: float) -> None:
    """Follow a running deployment (an execution ARN or name, or a TARGET) to its end."""
    given = execution_or_target
    if given.startswith("arn:"):
        arn = given
    else:
        try:
            arn = targets.in_progress(c.sd, targets.target(c.sd, given))
        except CliError:
            arn = executions.execution_arn(c.sd.state_machine, given)
            try:
                aws.client("stepfunctions").describe_execution(executionArn=arn)
            except aws.client("stepfunctions").exceptions.ClientError as exc:
                raise NothingToDo(f"{given!r} is neither a target with a running deployment nor an execution") from exc
    view = _follow(c, arn, timeout)
    _finish(c, view, view["status"] == "SUCCEEDED")


@cli.command()
@click.argument("target")
@click.option("--to", "to", default=None, help="a DEPLOYMENT id or an image DIGEST (default: the last verified image)")
@click.option("--reason", default=None)
@WAIT
@TIMEOUT
@pass_ctx
def rollback(c: Context, target: str, to: str | None, reason: str | None, wait: bool, timeout: float) -> None:
    """Deploy the last verified (or the named) image again, through the state machine: gates, lock and record apply."""
    t = targets.target(c.sd, target)
    digest, why = targets.rollback_digest(c.sd, t, to)
    if not c.json:
        c.console.print(f"rolling {t.name} back to {why}: {digest}")
    body = {"target": t.name, "image": {"digest": digest}, "redeploy": True, "reason": reason or f"rollback to {why}"}
    _run(c, body, wait, timeout)


@cli.command()
@click.argument("target")
@click.option("--record-timeout", default=60.0, show_default=True, help="seconds to wait for the end record")
@pass_ctx
def abort(c: Context, target: str, record_timeout: float) -> None:
    """Stop the running deployment of TARGET and report what was recorded."""
    t = targets.target(c.sd, target)
    arn = targets.in_progress(c.sd, t)
    sfn = aws.client("stepfunctions")
    sfn.stop_execution(executionArn=arn, error="Aborted", cause="stopped with stepdeploy abort")
    name, deadline = arn.rsplit(":", 1)[-1], time.monotonic() + record_timeout
    found = None
    while found is None and time.monotonic() < deadline:
        from stepdeploy.adapters import records

        found = records.get_record(c.sd.deployments_table, t.key, name)
        if found is None:
            time.sleep(0.5)
    data = {
        "execution": arn,
        "deployment": name,
        "status": sfn.describe_execution(executionArn=arn)["status"],
        "recorded": {k: found.get(k) for k in ("outcome", "error", "cause", "running_task_definition")}
        if found
        else None,
    }

    def render() -> None:
        c.console.print(f"stopped {name}: {data['status']}")
        rec = data["recorded"]
        c.console.print(
            f"recorded {rec['outcome']} ({rec['error']}): {rec['cause']}" if rec else "nothing recorded (yet)"
        )

    c.emit(data, render)


# ---------------------------------------------------------------------------- approvals


def _answer(c: Context, target: str, deployment: str | None, answer: Callable[[str], None], verb: str) -> None:
    """Answer the release TARGET holds for a person (the one named, if given) and say which one it was."""
    t = targets.target(c.sd, target)
    held = targets.held_release(c.sd, t, deployment)
    targets.answer(held, answer)
    data = {verb: held["deployment_id"], "target": t.name, "image": held.get("tag") or held.get("digest")}
    c.emit(data, lambda: c.console.print(f"{verb} {held['deployment_id']} of {t.name} ({data['image']})"))


def _who(by: str | None) -> str:
    return by or targets.caller()


@cli.command()
@click.argument("target")
@click.option("--deployment", default=None, help="answer only if this deployment is the one held")
@click.option("--by", default=None, help="who approves (default: your AWS identity)")
@pass_ctx
def approve(c: Context, target: str, deployment: str | None, by: str | None) -> None:
    """Let the release TARGET holds for approval go ahead."""
    output = json.dumps({"approved": True, "by": _who(by)})
    sfn = aws.client("stepfunctions")
    _answer(c, target, deployment, lambda token: sfn.send_task_success(taskToken=token, output=output), "approved")


@cli.command()
@click.argument("target")
@click.option("--reason", required=True, help="why (recorded as the deployment's cause)")
@click.option("--deployment", default=None, help="answer only if this deployment is the one held")
@click.option("--by", default=None, help="who rejects (default: your AWS identity)")
@pass_ctx
def reject(c: Context, target: str, reason: str, deployment: str | None, by: str | None) -> None:
    """Refuse the release TARGET holds for approval: it ends FAILED (ApprovalRejected), production unchanged."""
    cause = f"rejected by {_who(by)}: {reason}"
    sfn = aws.client("stepfunctions")
    _answer(
        c,
        target,
        deployment,
        lambda token: sfn.send_task_failure(taskToken=token, error="ApprovalRejected", cause=cause),
        "rejected",
    )


# ---------------------------------------------------------------------------- status and history


def _verified_cell(last: dict[str, Any] | None) -> Text:
    if not last:
        return Text("none", "yellow")
    if last["running"]:
        return Text(f"running ({last['deployment']})", "green")
    return Text(f"{last['revision']} {_short(last['digest'])} (not running)", "red")


def _progress_cell(target: str, progress: dict[str, Any] | None) -> str:
    if not progress:
        return "-"
    held = progress.get("awaiting_approval")
    if held:
        return f"{progress['deployment']} awaits approval (stepdeploy approve|reject {target})"
    return f"{progress['deployment']} in {progress['state']}"


@cli.command()
@click.argument("target", required=False)
@pass_ctx
def status(c: Context, target: str | None) -> None:
    """What runs now per service, the last verified deployment, a deployment in progress, the lock and queue."""
    chosen = [targets.target(c.sd, target)] if target else targets.all_targets(c.sd)
    data = [targets.status(c.sd, t) for t in chosen]

    def render() -> None:
        table = Table("target", "revision", "image", "last verified", "in progress", "lock", "queue")
        for s in data:
            run = s["running"] or {}
            image = (
                f"{','.join(run.get('tags') or []) or '-'} {_short(run.get('digest'))}" if run else "not provisioned"
            )
            table.add_row(
                s["target"],
                run.get("revision", "-"),
                image,
                _verified_cell(s["last_verified"]),
                _progress_cell(s["target"], s["in_progress"]),
                (s["lock"] or {}).get("deployment") or "-",
                ", ".join(s["queue"]) or "-",
            )
        c.console.print(table)

    c.emit(data, render)


@cli.command()
@click.argument("target")
@click.argument("deployment", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@pass_ctx
def history(c: Context, target: str, deployment: str | None, limit: int) -> None:
    """TARGET's deployments newest first; with DEPLOYMENT, that one: its path, gate rounds and cause."""
    t = targets.target(c.sd, target)
    if deployment is not None:
        _history_one(c, t, deployment)
        return
    rows = [_history_row(r) for r in targets.recent(c.sd, t, limit)]

    def render() -> None:
        table = Table("when", "deployment", "trigger", "image", "outcome", "error", "duration")
        for r in rows:
            style = OUTCOME_STYLE.get(r["outcome"], "red")
            table.add_row(
                r["when"],
                r["deployment"],
                r["trigger"],
                r["image"],
                Text(r["outcome"], style),
                r["error"] or "",
                r["duration"],
            )
        c.console.print(table)

    c.emit(rows, render)


def _history_row(item: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    started, ended = item.get("started_at"), item.get("ended_at")
    duration = "-"
    if started and ended:
        seconds = (datetime.fromisoformat(str(ended)) - datetime.fromisoformat(str(started))).total_seconds()
        duration = f"{seconds:.0f}s"
    return {
        "when": started,
        "deployment": item["deployment_id"],
        "trigger": item.get("trigger"),
        "mode": item.get("mode"),
        "image": item.get("image_tag") or _short(item.get("image_digest")),
        "digest": item.get("image_digest"),
        "outcome": item.get("outcome"),
        "error": item.get("error") or item.get("skip_reason"),
        "duration": duration,
        "revision": str(item.get("running_task_definition") or "").rsplit("/", 1)[-1],
    }


def _history_one(c: Context, t: targets.Target, deployment: str) -> None:
    rec = targets.record(c.sd, t, deployment)
    view = executions.summarize(executions.execution_arn(c.sd.state_machine, deployment))
    data = {**_history_row(rec), "cause": rec.get("cause"), "path": view["path"], "gate_rounds": view["gate_rounds"]}

    def render() -> None:
        c.console.print(
            f"{data['deployment']}  {data['outcome']}  {data['trigger']}  {data['image']}  {data['duration']}"
        )
        c.console.print("path: " + " > ".join(data["path"]))
        c.console.print(_live_table({**view, "outcome": data["outcome"]}).renderables[-1])
        if data["cause"]:
            c.console.print(f"cause: {data['error'] or ''}: {data['cause']}")

    c.emit(data, render)


# ---------------------------------------------------------------------------- registry


@cli.command()
@click.argument("entry_file", type=click.File("r"))
@pass_ctx
def register(c: Context, entry_file: Any) -> None:
    """Add or replace a registry entry (a JSON file, - for stdin), validated as a deployment validates it."""
    try:
        item = json.load(entry_file)
    except ValueError as exc:
        raise InvalidRegistryEntry(f"not JSON: {exc}") from exc
    if not isinstance(item, dict):
        raise InvalidRegistryEntry("expected a JSON object (name, repository, tag_filter, request, ...)")
    t = targets.register(c.sd, item)
    c.emit({"registered": t.name, "key": t.key}, lambda: c.console.print(f"registered {t.name} ({t.key})"))


@cli.command()
@click.argument("target")
@pass_ctx
def unregister(c: Context, target: str) -> None:
    """Remove a registry entry."""
    targets.unregister(c.sd, target)
    c.emit({"unregistered": target}, lambda: c.console.print(f"unregistered {target}"))


@cli.command()
@pass_ctx
def services(c: Context) -> None:
    """The registry: each target, its repository and tag filter."""
    data: list[dict[str, Any]] = [
        {
            "target": t.name,
            "key": t.key,
            "repository": t.entry.repository,
            "tag_filter": {"mode": t.entry.filter_mode, "pattern": t.entry.pattern},
            "allow_digest_only": t.entry.allow_digest_only,
            "deploy_on_push": t.entry.deploy_on_push,
        }
        for t in targets.all_targets(c.sd)
    ]

    def render() -> None:
        table = Table("target", "key", "repository", "tags", "on push")
        for d in data:
            table.add_row(
                d["target"],
                d["key"],
                d["repository"],
                f"{d['tag_filter']['mode']} {d['tag_filter']['pattern']}",
                "deploy" if d["deploy_on_push"] else "ignore",
            )
        c.console.print(table)

    c.emit(data, render)
