"""Shared fixtures: a fresh local AWS world per test (moto + the real template, ASL and handlers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import AppService


@pytest.fixture
def world() -> Iterator[World]:
    with World(function_log_level="ERROR") as w:
        yield w


@pytest.fixture
def app(world: World) -> AppService:
    """A Fargate service behind an ALB running techchallengeapp:v1 (healthy)."""
    return world.create_service(tag="v1")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n 2 --dist loadgroup`` (make test) tests are spread one by one over the workers, so
    both stay busy to the end; the tests of a module that share a module-scoped fixture (a world or a
    template built once) form one group, run by one worker, which builds it once."""
    for item in items:
        if any(fixture.scope in ("module", "class") for fixture in _fixtures_of(item)):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


def _fixtures_of(item: pytest.Item) -> list[pytest.FixtureDef[object]]:
    info = getattr(item, "_fixtureinfo", None)
    return [d for defs in (info.name2fixturedefs.values() if info else ()) for d in defs]
