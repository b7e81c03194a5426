"""Synthetic user traffic counts (stepdeploy_local.traffic) on made-up timelines (no world): what the bench and
the demo report per release as user requests, failed, to the new revision and restore seconds."""

from __future__ import annotations

import pytest
from stepdeploy_local.traffic import DeploymentTraffic, Segment, UserTraffic, count, segments_of
from stepdeploy_local.workload import PROFILES, ImageProfile

GOOD, BAD = PROFILES["healthy"], PROFILES["db-down"]


def answers(bad: str, bad_until: float = float("inf")) -> object:
    """Revision ``bad`` answers with a bad body until ``bad_until`` (virtual s); every other one answers OK."""

    def answer(revision: str, at: float) -> ImageProfile:
        return BAD if revision == bad and at < bad_until else GOOD

    return answer


def test_a_canary_restores_when_one_good_revision_takes_all_traffic_not_at_its_first_good_request() -> None:
    """10 % on a green that fails from 10 s to 20 s, rolled back at 40 s: users see no error after 20 s, but
    restored means 100 % on a good revision (the rollback), not the canary's next good answer."""
    weights = [(0.0, {"blue": 100.0, "green": 0.0}), (10.0, {"blue": 90.0, "green": 10.0})]
    weights.append((40.0, {"blue": 100.0, "green": 0.0}))
    traffic = count(
        DeploymentTraffic("d", "CANARY", "green", 0.0, 60.0), segments_of(weights, 60.0), answers("green", 20.0), 10.0
    )
    assert traffic.requests == 600
    assert traffic.to_new_revision == 30  # 1 in 10 of the 300 requests from 10 s to 40 s
    assert traffic.failed == 10  # the green ones before 20 s
    assert traffic.first_failure is not None and 10.0 <= traffic.first_failure < 11.0
    assert traffic.restored == pytest.approx(40.0)
    users = UserTraffic(10.0, [traffic])
    assert users.restore_seconds == pytest.approx(40.0 - traffic.first_failure)
    assert users.to_release_revision == 30


def test_a_rolling_release_and_its_rollback_are_one_release_from_first_failure_to_restore() -> None:
    """The bad rollout (served from 50 s) and its rollback (a second deployment, v1 serving again at 170 s)."""
    release = DeploymentTraffic("r2", "ROLLING", "v2", 0.0, 100.0)
    rollback = DeploymentTraffic("r3", "ROLLING", "v1", 100.0, 200.0)
    served = [(0.0, {"v1": 100.0}), (50.0, {"v2": 100.0})]
    back = [(100.0, {"v2": 100.0}), (170.0, {"v1": 100.0})]
    users = UserTraffic(
        1.0,
        [
            count(release, segments_of(served, 100.0), answers("v2"), 1.0),
            count(rollback, segments_of(back, 200.0), answers("v2"), 1.0),
        ],
    )
    assert (users.requests, users.failed, users.to_release_revision) == (200, 120, 120)  # all v2 served
    assert users.to_new_revision == 50 + 30  # (each deployment's own: the rollback's new revision is v1)
    assert users.restore_seconds == pytest.approx(120.0)  # 50 s (first bad answer) -> 170 s (v1 serving)
    later = users.during(100.0, 200.0)  # only the deployments that started in the window
    assert [d.deployment for d in later.deployments] == ["r3"] and later.failed == 70


def test_no_failed_request_restores_nothing() -> None:
    traffic = count(
        DeploymentTraffic("d", "BLUE_GREEN", "green", 0.0, 30.0),
        [Segment(0.0, 30.0, {"blue": 100.0})],
        answers("green"),
        10.0,
    )
    users = UserTraffic(10.0, [traffic])
    assert (users.requests, users.failed, users.to_release_revision, users.restore_seconds) == (300, 0, 0, None)
    assert users.during(31.0, 60.0).requests == 0
