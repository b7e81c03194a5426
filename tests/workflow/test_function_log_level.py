"""Each function runs at its world's log level (POWERTOOLS_LOG_LEVEL), as in a Lambda sandbox of its own, even
when an earlier world in the same process ran its functions at another level (Powertools configures its logger
once per process). Found by the no-leak test, which ran at ERROR after another test module's world."""

from __future__ import annotations

import logging

from stepdeploy_local import World


def _step_failures_logged(world: World) -> bool:
    """Deploy an image that fails its gates: the failing steps log a WARNING "step failed" line."""
    app = world.create_service(tag="v1")
    world.push_image(app.repository, "v2", "db-down")
    assert world.deploy(app.request("v2")).status == "FAILED"
    return any('"message":"step failed"' in i.logs for i in world.runtime.invocations)


def test_a_later_world_s_functions_run_at_its_own_log_level() -> None:
    with World(function_log_level="ERROR") as first:
        assert not _step_failures_logged(first)
        assert logging.getLogger("stepdeploy").level == logging.ERROR
    with World(function_log_level="DEBUG") as second:
        assert _step_failures_logged(second)
        assert logging.getLogger("stepdeploy").level == logging.DEBUG
