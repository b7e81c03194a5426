"""A {target, image} request may lay its own strategy or approval over its registry entry's (the entry keeps the
service's wiring: test listener URL and token): `stepdeploy deploy TARGET --strategy CANARY`, `--approval-timeout`.
A field the entry's service cannot honour is refused before anything changes."""

from __future__ import annotations

from stepdeploy_local import World
from stepdeploy_local.world import AppService

from tests.workflow.test_progressive_delivery import assert_settled, deployments, progressive, revision


def test_a_request_releases_a_blue_green_service_as_a_canary(world: World) -> None:
    app, strategy = progressive(world, "BLUE_GREEN")
    target = world.register(app, name="shop/web", strategy=strategy)
    world.push_image(app.repository, "v2")
    override = {"type": "CANARY", "canary_percent": 20, "canary_bake_minutes": 1}
    result = world.deploy({"target": target, "image": {"tag": "v2"}, "strategy": override})
    assert result.status == "SUCCEEDED", result.cause
    service = world.client("ecs").describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    configuration = service["deploymentConfiguration"]
    assert configuration["strategy"] == "CANARY" and configuration["canaryConfiguration"]["canaryPercent"] == 20
    (deployment,) = deployments(world, app)
    assert deployment["status"] == "SUCCESSFUL"
    assert_settled(world, app, "web:2")


def test_a_strategy_the_entry_s_service_is_not_wired_for_is_refused_and_nothing_changes(
    world: World, app: AppService
) -> None:
    target = world.register(app, name="shop/rolling")
    world.push_image(app.repository, "v2")
    result = world.deploy({"target": target, "image": {"tag": "v2"}, "strategy": {"type": "BLUE_GREEN"}})
    assert (result.status, result.error) == ("FAILED", "InvalidDeploymentRequest"), result.cause
    assert "registry entry 'shop/rolling' with the request's strategy" in (result.cause or "")
    assert "test_url" in (result.cause or "")
    assert revision(app.running_task_definition()) == "web:1" and app.rollouts() == []
