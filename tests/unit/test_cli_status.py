"""The status command's view of the last verified deployment: the image decides whether it runs now, not the
revision number (a CloudFormation rollback registers a new task definition revision of the same image)."""

from __future__ import annotations

from stepdeploy_cli.targets import _last_verified

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
LAST = {"deployment_id": "d-2", "digest": A, "task_definition": "arn:aws:ecs:us-east-1:1:task-definition/web:2"}


def test_the_verified_image_runs_under_a_newer_revision() -> None:
    view = _last_verified(LAST, {"digest": A, "revision": "web:4"})
    assert view == {"deployment": "d-2", "digest": A, "revision": "web:2", "running": True}


def test_another_image_or_no_service_is_not_the_verified_one() -> None:
    assert _last_verified(LAST, {"digest": B, "revision": "web:2"})["running"] is False
    assert _last_verified(LAST, None)["running"] is False
    assert _last_verified({**LAST, "digest": None}, {"digest": None, "revision": "web:2"})["running"] is False
