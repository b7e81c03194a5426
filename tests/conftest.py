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
