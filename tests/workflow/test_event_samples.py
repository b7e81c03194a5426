"""Every file in events/ against the served world (`make serve`), sent the way docs/input.md says it is used:
start-execution input, put-events for an EventBridge event, the pipeline-job Lambda invoked with a job event,
a registry entry through `stepdeploy register`. Each ends as the table below says. One served world is shared;
the cases run in the table's order, so each starts from the state the ones before it left (a file that is not
in the table fails: say what it does)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from stepdeploy_local import World
from stepdeploy_local.__main__ import samconfig_stack, serve_world
from stepdeploy_local.samples import EVENTS, load, localise
from stepdeploy_local.world import AppService, StackApp
from test_serve_examples import CREDENTIALS, _free_port, stepdeploy


@dataclass(frozen=True)
class Ends:
    """How a sample ends: the execution's status and error, the state it ends in (the last one entered),
    the skip reason recorded, and the tag the service runs after it (web: techchallenge/web, stack: the
    techchallenge stack); a registry entry: REGISTERED and its name."""

    status: str
    error: str | None
    state: str
    skip: str | None = None
    runs: tuple[str, str] | None = None


@dataclass(frozen=True)
class Case:
    starts: tuple[str, str] | None  # the service, and the tag it runs before the sample is sent
    ends: Ends


WEB_V1, WEB_V2, STACK_V1, STACK_V2 = ("web", "v1"), ("web", "v2"), ("stack", "v1"), ("stack", "v2")

#: in the order they run. The served world starts with the stack and techchallenge/web running v1 and v2
#: (the image the samples name by its digest) pushed to both repositories. An image runs once per service
#: unless a request says ``redeploy``: after the first, a sample that asks for what runs ends Skipped
#: (AlreadyRunning), and an image that ran before deploys again only with ``redeploy`` (else Skipped, Duplicate)
EXPECTED: dict[str, Case] = {
    "manual-target.json": Case(WEB_V1, Ends("SUCCEEDED", None, "Deployed", runs=WEB_V2)),
    # the build output as the Step Functions action's input: found by repository, digest only
    "codepipeline-imagedetail.json": Case(WEB_V2, Ends("SUCCEEDED", None, "Skipped", "AlreadyRunning", WEB_V2)),
    "codepipeline-imagedefinitions.json": Case(WEB_V2, Ends("SUCCEEDED", None, "Skipped", "AlreadyRunning", WEB_V2)),
    "manual-deploy.json": Case(WEB_V2, Ends("SUCCEEDED", None, "Skipped", "AlreadyRunning", WEB_V2)),
    "lambda/codepipeline-job.json": Case(WEB_V2, Ends("SUCCEEDED", None, "Skipped", "AlreadyRunning", WEB_V2)),
    "verify.json": Case(WEB_V2, Ends("SUCCEEDED", None, "Deployed", runs=WEB_V2)),
    "manual-refresh.json": Case(WEB_V2, Ends("SUCCEEDED", None, "Deployed", runs=WEB_V2)),
    # back to v2, which ran before: ``redeploy`` deploys it again on purpose
    "manual-redeploy-digest.json": Case(WEB_V1, Ends("SUCCEEDED", None, "Deployed", runs=WEB_V2)),
    "manual-redeploy-known-good.json": Case(WEB_V1, Ends("SUCCEEDED", None, "Deployed", runs=WEB_V2)),
    # the sample's secret is no service's: nothing to refresh
    "secret-rotation.json": Case(None, Ends("SUCCEEDED", None, "Dispatched")),
    "stack-plan.json": Case(STACK_V1, Ends("SUCCEEDED", None, "Planned", runs=STACK_V1)),
    # the database was initialised when the stack was provisioned: init_command does not run again
    "stack-deploy.json": Case(STACK_V1, Ends("SUCCEEDED", None, "Deployed", runs=STACK_V2)),
    "ecr-push.json": Case(STACK_V2, Ends("SUCCEEDED", None, "Skipped", "AlreadyRunning", STACK_V2)),
    "registry/techchallenge-stack.json": Case(None, Ends("REGISTERED", None, "techchallenge")),
    "registry/techchallenge-web.json": Case(None, Ends("REGISTERED", None, "techchallenge/web")),
}


def _name(path: Path) -> str:
    return path.relative_to(EVENTS).as_posix()


def _in_order(paths: list[Path]) -> list[Path]:
    order = list(EXPECTED)
    return sorted(paths, key=lambda p: (order.index(_name(p)) if _name(p) in order else len(order), _name(p)))


SAMPLES = _in_order(sorted(EVENTS.glob("**/*.json")))


class Served:
    def __init__(self, world: World, stack: StackApp, web: AppService, endpoint: str) -> None:
        self.world, self.stack, self.web, self.endpoint = world, stack, web, endpoint
        http = {"endpoint_url": endpoint, "region_name": world.region, **CREDENTIALS}
        self.sfn = boto3.client("stepfunctions", **http)
        self.events = boto3.client("events", **http)
        self.arn = world.outputs["DeployStateMachineArn"]

    def executions(self) -> set[str]:
        return {e["executionArn"] for e in self.sfn.list_executions(stateMachineArn=self.arn)["executions"]}

    def app(self, which: str) -> AppService | StackApp:
        return self.web if which == "web" else self.stack

    def runs(self, which: str) -> str:
        """The tag (v1 | v2) of the image ``which`` (web | stack) runs now."""
        app = self.web if which == "web" else self.stack.service()
        image = app.running_image()
        return next(t for t in ("v1", "v2") if image.endswith(self.world.digest_of(app.repository, t)))

    def bring(self, which: str, tag: str) -> None:
        """Deploy ``tag`` to ``which`` unless it runs it (on purpose: ``redeploy``)."""
        if self.runs(which) != tag:
            result = self.world.deploy(self.app(which).request(tag, redeploy=True))
            assert (result.status, self.runs(which)) == ("SUCCEEDED", tag), result.cause


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    port = _free_port()
    with World(function_log_level="ERROR", server_port=port, stack_name=samconfig_stack()) as world:
        stack, _, provisioned = serve_world(world)
        assert provisioned
        [web] = world.services
        yield Served(world, stack, web, f"http://127.0.0.1:{port}")


def _register(s: Served, path: Path) -> Ends:
    out = stepdeploy(["stepdeploy", "--endpoint-url", s.endpoint, "register", str(path)])
    assert out.returncode == 0, out.stderr
    listed = stepdeploy(["stepdeploy", "--endpoint-url", s.endpoint, "--output", "json", "services"])
    assert load(path)["name"] in listed.stdout, listed.stdout
    return Ends("REGISTERED", None, load(path)["name"])


def _send(s: Served, path: Path) -> str:
    """Send the sample as docs/input.md says it is used; the execution it started."""
    sample, before = load(path), s.executions()
    if path.parent.name == "lambda":  # CodePipeline's Lambda invoke action: the build output is its artifact
        job = s.world.run_job_event(sample, {"imageDetail.json": load(EVENTS / "codepipeline-imagedetail.json")})
        assert job["status"] == "Succeeded", job
    elif isinstance(sample, dict) and "detail-type" in sample:  # an event on the default bus
        entry = {
            "Source": sample["source"],
            "DetailType": sample["detail-type"],
            "Detail": json.dumps(sample["detail"]),
        }
        assert s.events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    else:  # StartExecution (an explicit request names an ALB and target group: the served world's instead)
        payload = localise(sample, s.web) if isinstance(sample, dict) and "service" in sample else sample
        s.sfn.start_execution(stateMachineArn=s.arn, input=json.dumps(payload))
    [started] = s.executions() - before
    return started


def _run(s: Served, path: Path, case: Case) -> Ends:
    if path.parent.name == "registry":
        return _register(s, path)
    if case.starts is not None:
        s.bring(*case.starts)
    result = s.world.wait(_send(s, path))
    which = (case.ends.runs or case.starts or ("web", ""))[0]
    record = s.world.record(s.app(which), result.name) or {}
    runs = (which, s.runs(which)) if case.ends.runs else None
    return Ends(result.status, result.error, result.path[-1], record.get("skip_reason"), runs)


@pytest.mark.parametrize("path", SAMPLES, ids=[_name(p) for p in SAMPLES])
def test_every_event_sample_ends_as_documented(served: Served, path: Path) -> None:
    assert _name(path) in EXPECTED, f"{_name(path)}: add how it ends against the served world to EXPECTED"
    case = EXPECTED[_name(path)]
    assert _run(served, path, case) == case.ends
