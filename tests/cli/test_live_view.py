"""The live view's reading of an execution (`stepdeploy deploy --wait`, `watch`, `history TARGET ID`): gate rounds
of a followed ECS service deployment (BLUE_GREEN, CANARY, LINEAR) and the traffic it shifted, not only the
rolling path's CheckHealth rounds."""

from __future__ import annotations

from stepdeploy_cli import executions
from stepdeploy_cli.main import _live_table
from stepdeploy_local import World

from tests.workflow.test_progressive_delivery import progressive


def test_a_blue_green_release_shows_its_gate_rounds_at_the_hooks_and_the_traffic_it_moved(world: World) -> None:
    app, strategy = progressive(world, "BLUE_GREEN")
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2", strategy=strategy))
    assert result.status == "SUCCEEDED", result.cause
    view = executions.summarize(result.arn)
    follow = [r for r in view["gate_rounds"] if r["phase"] == "follow"]
    assert follow and {r["check"] for r in follow} >= {"POST_TEST_TRAFFIC_SHIFT"}, view["gate_rounds"]
    assert any(g["gate"] == "test-traffic" for r in follow for g in r["gates"]), follow
    events = executions.history(result.arn)
    seen = [executions._traffic(events[:n]) for n in range(1, len(events) + 1)]  # what a live view showed then
    assert {"stage": "POST_TEST_TRAFFIC_SHIFT", "production_percent": 0.0} in seen, seen
    at_full = next(t for t in seen if t and t["production_percent"] == 100)
    head = _live_table({**view, "status": "RUNNING", "traffic": at_full}).renderables[0]
    assert any("100 % of production on the new revision" in str(cell) for col in head.columns for cell in col._cells)


def test_a_rolling_release_shows_no_traffic_shift(world: World) -> None:
    app = world.create_service(tag="v1")
    world.push_image(app.repository, "v2")
    result = world.deploy(app.request("v2"))
    view = executions.summarize(result.arn)
    assert view["traffic"] is None and [r["phase"] for r in view["gate_rounds"]][-1] == "deploy"


def test_a_blue_green_stack_release_shows_the_gate_rounds_ensure_stack_ran(world: World) -> None:
    """A stack release's service deployment is gated by EnsureStack (the stack update started it): the live view
    shows those rounds and the traffic too."""
    world.push_image("techchallengeapp", "v1")
    app = world.stack_app("techchallenge")
    assert world.deploy(app.request("v1")).status == "SUCCEEDED"
    world.push_image("techchallengeapp", "v2")
    result = world.deploy(app.request("v2"))
    assert result.status == "SUCCEEDED", result.cause
    view = executions.summarize(result.arn)
    follow = [r for r in view["gate_rounds"] if r["phase"] == "follow"]
    assert {r["check"] for r in follow} >= {"POST_TEST_TRAFFIC_SHIFT"}, view["gate_rounds"]
    events = executions.history(result.arn)
    seen = [executions._traffic(events[:n]) for n in range(1, len(events) + 1)]
    assert {"stage": "POST_TEST_TRAFFIC_SHIFT", "production_percent": 0.0} in seen, seen
