"""Unit tests of the service registry (stepdeploy.registry) and the guarantee helpers of
stepdeploy.decisions that act on registry/ECR data (to_epoch, digest_of, queue_wait, is_stale).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from stepdeploy.decisions import digest_of, is_stale, queue_wait, to_epoch
from stepdeploy.errors import (
    DeploymentInProgress,
    InvalidDeploymentRequest,
    TagFilterMismatch,
    UnregisteredRepository,
)
from stepdeploy.models import Defaults, DeploymentRequest, ImageSpec, ServiceRef
from stepdeploy.registry import FILTER_MODES, RegistryEntry, select, validate_entry

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_ITEM: dict[str, Any] = json.loads((ROOT / "events" / "registry" / "techchallenge-web.json").read_text())
DIGEST = "sha256:788614df71ed927c1c76f0bbe031446648f7fd84dff948c1ca783f127d7eed9f"

MINIMAL_REQUEST: dict[str, Any] = {
    "service": {"cluster": "techchallenge", "service": "web"},
    "health": {"url": "http://alb.example.com/healthcheck/"},
}


def _item(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": "team/web", "repository": "webapp", "request": copy.deepcopy(MINIMAL_REQUEST)}
    item.update(overrides)
    return item


def _entry(
    name: str = "team/web",
    repository: str = "webapp",
    mode: str = "glob",
    pattern: str = "*",
    allow_digest_only: bool = False,
) -> RegistryEntry:
    return RegistryEntry.from_item(
        _item(
            name=name,
            repository=repository,
            tag_filter={"mode": mode, "pattern": pattern},
            allow_digest_only=allow_digest_only,
        )
    )


# --------------------------------------------------------------------------- from_item


def test_from_item_sample_entry() -> None:
    entry = RegistryEntry.from_item(SAMPLE_ITEM)
    assert entry.name == "techchallenge/web"
    assert entry.repository == "techchallenge-web"
    assert entry.filter_mode == "regex"
    assert entry.pattern == r"v[0-9]+(\.[0-9]+)*"
    assert entry.allow_digest_only is True
    assert entry.request == SAMPLE_ITEM["request"]
    assert entry.request is not SAMPLE_ITEM["request"]  # copied, not aliased


def test_from_item_defaults_to_glob_star_and_no_digest_only() -> None:
    entry = RegistryEntry.from_item(_item())
    assert entry.filter_mode == "glob"
    assert entry.pattern == "*"
    assert entry.allow_digest_only is False
    assert entry.matches("anything-at-all")
    assert not entry.matches(None)


@pytest.mark.parametrize("tag_filter", [None, {}])
def test_from_item_empty_tag_filter_defaults_to_glob_star(tag_filter: Any) -> None:
    entry = RegistryEntry.from_item(_item(tag_filter=tag_filter))
    assert (entry.filter_mode, entry.pattern) == ("glob", "*")


@pytest.mark.parametrize("mode", FILTER_MODES)
def test_from_item_accepts_each_mode(mode: str) -> None:
    entry = RegistryEntry.from_item(_item(tag_filter={"mode": mode, "pattern": "v1"}))
    assert entry.filter_mode == mode
    assert entry.matches("v1")
    assert not entry.matches("v2")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"tag_filter": {"mode": "prefix", "pattern": "v"}}, "tag_filter.mode must be one of exact, glob, regex"),
        ({"tag_filter": {"mode": "Regex", "pattern": "v"}}, "tag_filter.mode must be one of"),
        ({"tag_filter": {"mode": "regex", "pattern": "v(["}}, "unterminated character set"),
        ({"tag_filter": {"mode": "regex", "pattern": "*v"}}, "nothing to repeat"),
        ({"tag_filter": {"mode": "glob", "pattern": 5}}, "tag_filter"),
        ({"tag_filter": {"mode": "glob"}}, "'pattern'"),
        ({"tag_filter": {"pattern": "v*"}}, "'mode'"),
        ({"tag_filter": "v*"}, "string indices"),
        ({"request": None}, "not iterable"),
        ({"request": "service"}, "dictionary update sequence"),
        ({"request": 1}, "not iterable"),
    ],
)
def test_from_item_invalid_entries_name_the_entry(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidDeploymentRequest) as exc:
        RegistryEntry.from_item(_item(name="team/broken", **overrides))
    message = str(exc.value)
    assert message.startswith("registry entry 'team/broken' is invalid: "), message
    assert fragment in message


@pytest.mark.parametrize("missing", ["request", "repository"])
def test_from_item_missing_required_key_names_the_entry(missing: str) -> None:
    item = _item(name="team/broken")
    del item[missing]
    with pytest.raises(InvalidDeploymentRequest, match=rf"^registry entry 'team/broken' is invalid: '{missing}'$"):
        RegistryEntry.from_item(item)


def test_from_item_without_name_reports_placeholder() -> None:
    item = _item()
    del item["name"]
    del item["request"]
    with pytest.raises(InvalidDeploymentRequest, match=r"^registry entry '\?' is invalid"):
        RegistryEntry.from_item(item)


def test_from_item_rejects_non_boolean_allow_digest_only() -> None:
    with pytest.raises(InvalidDeploymentRequest, match=r"^registry entry 'team/web'"):
        RegistryEntry.from_item(_item(allow_digest_only="false"))


def test_from_item_deploy_on_push_defaults_to_true_and_can_be_turned_off() -> None:
    assert RegistryEntry.from_item(_item()).deploy_on_push is True
    assert RegistryEntry.from_item(SAMPLE_ITEM).deploy_on_push is True
    assert RegistryEntry.from_item(_item(deploy_on_push=False)).deploy_on_push is False


@pytest.mark.parametrize("value", ["false", 0, None, {"ecr": False}])
def test_from_item_rejects_non_boolean_deploy_on_push(value: Any) -> None:
    with pytest.raises(
        InvalidDeploymentRequest, match=r"^registry entry 'team/web' is invalid: deploy_on_push must be true or false$"
    ):
        RegistryEntry.from_item(_item(deploy_on_push=value))


def test_from_item_rejects_unknown_fields_so_a_misspelt_setting_is_not_ignored() -> None:
    with pytest.raises(InvalidDeploymentRequest) as exc:
        RegistryEntry.from_item(_item(deploy_on_psuh=False))
    assert str(exc.value).startswith("registry entry 'team/web' is invalid: unknown field(s) deploy_on_psuh; allowed:")
    assert "deploy_on_push" in str(exc.value)


# --------------------------------------------------------------------------- matches


@pytest.mark.parametrize(
    ("mode", "pattern", "tag", "expected"),
    [
        ("exact", "v1", "v1", True),
        ("exact", "v1", "v10", False),
        ("exact", "v1", "V1", False),
        ("exact", "v*", "v1", False),  # exact is literal
        ("glob", "v*", "v1", True),
        ("glob", "v*", "v1-rc", True),
        ("glob", "v*", "latest", False),
        ("glob", "v*", "V1", False),  # case-sensitive
        ("glob", "release-?", "release-1", True),
        ("glob", "release-?", "release-10", False),
        ("glob", "v[0-9]*", "v2.0", True),
        ("glob", "v[0-9]*", "vx", False),
        ("glob", "*", "anything", True),
        ("regex", r"v\d+", "v12", True),
        ("regex", r"v\d+", "v1-rc", False),  # fullmatch, not search/match
        ("regex", r"v\d+", "xv1", False),
        ("regex", r"v\d+", "v", False),
        ("regex", r"v[0-9]+(\.[0-9]+)*", "v1.2.3", True),
        ("regex", r"v[0-9]+(\.[0-9]+)*", "v1.2.", False),
        ("regex", "main|release", "main", True),
        ("regex", "main|release", "mainline", False),  # alternation is fully anchored
    ],
)
def test_matches(mode: str, pattern: str, tag: str, expected: bool) -> None:
    assert _entry(mode=mode, pattern=pattern).matches(tag) is expected


@pytest.mark.parametrize("mode", FILTER_MODES)
def test_digest_only_push_follows_allow_digest_only(mode: str) -> None:
    assert _entry(mode=mode, pattern="*" if mode == "glob" else "v1").matches(None) is False
    assert _entry(mode=mode, pattern="*" if mode == "glob" else "v1", allow_digest_only=True).matches(None) is True


def test_describe_filter() -> None:
    assert _entry(mode="glob", pattern="v*").describe_filter() == "glob 'v*', digest-only pushes not deployed"
    assert _entry(mode="exact", pattern="v1", allow_digest_only=True).describe_filter() == (
        "exact 'v1', digest-only pushes allowed"
    )


# --------------------------------------------------------------------------- select


def test_select_without_entries_for_repository_is_unregistered() -> None:
    with pytest.raises(UnregisteredRepository, match=r"repository 'other' is not in the stepdeploy registry"):
        select([_entry(repository="webapp")], "other", "v1")
    with pytest.raises(UnregisteredRepository):
        select([], "webapp", "v1")


def test_select_tag_mismatch_lists_every_filter_of_the_repository() -> None:
    entries = [
        _entry(name="web-prod", mode="regex", pattern=r"v\d+"),
        _entry(name="web-dev", mode="exact", pattern="dev"),
        _entry(name="api", repository="apiapp", mode="glob", pattern="*"),
    ]
    with pytest.raises(TagFilterMismatch) as exc:
        select(entries, "webapp", "v1-rc")
    message = str(exc.value)
    assert message.startswith("tag 'v1-rc' of 'webapp' matches no registry filter (")
    assert r"web-prod: regex 'v\\d+', digest-only pushes not deployed" in message
    assert "web-dev: exact 'dev', digest-only pushes not deployed" in message
    assert "api:" not in message  # other repositories are not listed
    assert message.endswith("nothing deployed")


def test_select_digest_only_push_without_permission_is_tag_mismatch() -> None:
    with pytest.raises(TagFilterMismatch, match=r"^a push without a tag of 'webapp' matches no registry filter"):
        select([_entry()], "webapp", None)


def test_select_two_matches_is_ambiguous() -> None:
    entries = [_entry(name="web-a", pattern="v*"), _entry(name="web-b", mode="regex", pattern=r"v\d+")]
    with pytest.raises(InvalidDeploymentRequest) as exc:
        select(entries, "webapp", "v1")
    message = str(exc.value)
    assert "webapp:v1 matches several registry entries (web-a, web-b)" in message
    assert "disjoint" in message


def test_select_two_digest_only_entries_is_ambiguous() -> None:
    entries = [
        _entry(name="web-a", mode="exact", pattern="a", allow_digest_only=True),
        _entry(name="web-b", mode="exact", pattern="b", allow_digest_only=True),
    ]
    with pytest.raises(InvalidDeploymentRequest, match=r"several registry entries \(web-a, web-b\)"):
        select(entries, "webapp", None)


@pytest.mark.parametrize(
    ("repository", "tag", "expected"),
    [
        ("webapp", "v3", "web-prod"),
        ("webapp", "dev-42", "web-dev"),
        ("webapp", "main", "web-main"),
        ("webapp", None, "web-prod"),
        ("apiapp", "v3", "api"),
        ("apiapp", None, "api"),
    ],
)
def test_select_picks_the_single_entry_among_disjoint_filters(repository: str, tag: str | None, expected: str) -> None:
    entries = [
        _entry(name="web-prod", mode="regex", pattern=r"v\d+", allow_digest_only=True),
        _entry(name="web-dev", mode="glob", pattern="dev-*"),
        _entry(name="web-main", mode="exact", pattern="main"),
        _entry(name="api", repository="apiapp", mode="glob", pattern="*", allow_digest_only=True),
    ]
    chosen = select(entries, repository, tag)
    assert chosen.name == expected
    assert chosen.repository == repository


# --------------------------------------------------------------------------- build_request


def test_build_request_fills_defaults_and_sets_trigger_and_repository() -> None:
    entry = RegistryEntry.from_item(_item(repository="team/webapp"))
    request = entry.build_request({"tag": "v3"}, "ecr", None, Defaults())
    assert isinstance(request, DeploymentRequest)
    assert request.image == ImageSpec(repository="team/webapp", tag="v3", digest=None)
    assert request.service == ServiceRef(cluster="techchallenge", service="web", container=None)
    assert request.trigger == "ecr"
    assert request.reason is None
    d = Defaults()
    h = request.health
    assert h.url == "http://alb.example.com/healthcheck/"
    assert (h.expected_status, h.expected_body, h.body_match) == (d.expected_status, d.expected_body, d.body_match)
    assert (h.probe_timeout_seconds, h.interval_seconds) == (d.probe_timeout_seconds, d.interval_seconds)
    assert (h.healthy_threshold, h.unhealthy_threshold, h.max_checks, h.max_latency_ms) == (
        d.healthy_threshold,
        d.unhealthy_threshold,
        d.max_checks,
        d.max_latency_ms,
    )
    assert h.target_group_arn is None and h.alarm_names == ()
    assert (request.rollout.timeout_seconds, request.rollout.poll_seconds) == (
        d.rollout_timeout_seconds,
        d.rollout_poll_seconds,
    )


def test_build_request_uses_custom_defaults_and_template_overrides() -> None:
    entry = RegistryEntry.from_item(SAMPLE_ITEM)
    defaults = Defaults(expected_status=204, max_checks=7, rollout_timeout_seconds=600, rollout_poll_seconds=10)
    request = entry.build_request({"digest": DIGEST, "tag": "v2"}, "codepipeline", "commit abc", defaults)
    assert request.image == ImageSpec(repository="techchallenge-web", tag="v2", digest=DIGEST)
    assert request.service.container == "app"
    assert request.trigger == "codepipeline"
    assert request.reason == "commit abc"
    assert request.health.expected_status == 204  # from defaults
    assert request.health.max_checks == 7  # from defaults
    assert request.health.alarm_names == ("web-target-5xx", "web-unhealthy-hosts")  # from the template
    assert (request.rollout.timeout_seconds, request.rollout.poll_seconds) == (900, 30)  # template wins


def test_build_request_trigger_and_image_override_the_template() -> None:
    template = dict(MINIMAL_REQUEST, trigger="manual", image={"repository": "elsewhere", "tag": "old"})
    entry = RegistryEntry.from_item(_item(request=template))
    request = entry.build_request({"tag": "new"}, "ecr", "", Defaults())
    assert request.image == ImageSpec(repository="webapp", tag="new", digest=None)
    assert request.trigger == "ecr"
    assert request.reason is None
    assert entry.request["trigger"] == "manual"  # the entry itself is not mutated


@pytest.mark.parametrize(
    ("request_template", "image", "trigger", "path"),
    [
        ({"health": MINIMAL_REQUEST["health"]}, {"tag": "v1"}, "ecr", "$.service"),
        ({"service": MINIMAL_REQUEST["service"]}, {"tag": "v1"}, "ecr", "$.health"),
        (MINIMAL_REQUEST, {"tag": "bad tag"}, "ecr", "$.image.tag"),
        (MINIMAL_REQUEST, {}, "ecr", "$.image"),
        (MINIMAL_REQUEST, {"tag": "v1"}, "cron", "$.trigger"),
        (dict(MINIMAL_REQUEST, extra=1), {"tag": "v1"}, "ecr", "$"),
        (
            {"service": MINIMAL_REQUEST["service"], "health": {"url": "http://a.example/", "max_checks": 0}},
            {"tag": "v1"},
            "ecr",
            "$.health.max_checks",
        ),
    ],
)
def test_build_request_wraps_validation_errors_with_the_entry_name(
    request_template: dict[str, Any], image: dict[str, Any], trigger: str, path: str
) -> None:
    entry = RegistryEntry.from_item(_item(name="team/web", request=request_template))
    with pytest.raises(InvalidDeploymentRequest) as exc:
        entry.build_request(image, trigger, None, Defaults())
    message = str(exc.value)
    assert message.startswith(f"registry entry 'team/web': {path}: "), message
    assert isinstance(exc.value.__cause__, InvalidDeploymentRequest)


def test_build_request_reason_too_long_is_wrapped() -> None:
    entry = RegistryEntry.from_item(_item())
    with pytest.raises(InvalidDeploymentRequest, match=r"^registry entry 'team/web': \$\.reason: "):
        entry.build_request({"tag": "v1"}, "manual", "r" * 1025, Defaults())


# --------------------------------------------------------------------------- decisions: to_epoch, digest_of


@pytest.mark.parametrize(
    ("z_form", "offset_form", "epoch"),
    [
        ("2026-11-28T09:12:34Z", "2026-11-28T09:12:34+00:00", 1795857154.0),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00+00:00", 0.0),
        ("2026-11-28T09:12:34.250Z", "2026-11-28T09:12:34.250+00:00", 1795857154.25),
    ],
)
def test_to_epoch_z_and_offset_forms_are_equal(z_form: str, offset_form: str, epoch: float) -> None:
    assert to_epoch(z_form) == to_epoch(offset_form) == epoch


def test_to_epoch_honours_other_offsets_and_orders_times() -> None:
    assert to_epoch("2026-11-28T10:12:34+01:00") == to_epoch("2026-11-28T09:12:34Z")
    assert to_epoch("2026-11-28T09:12:35Z") - to_epoch("2026-11-28T09:12:34Z") == 1.0


def test_to_epoch_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="Invalid isoformat"):
        to_epoch("yesterday")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{DIGEST}", DIGEST),
        (f"localhost:5000/a/b/c:v1@{DIGEST}", DIGEST),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1", None),
        ("", None),
    ],
)
def test_digest_of(uri: str, expected: str | None) -> None:
    assert digest_of(uri) == expected


# --------------------------------------------------------------------------- decisions: queue_wait, is_stale


@pytest.mark.parametrize(
    ("waited", "poll", "timeout", "expected"),
    [
        (0, 30, 600, 30),
        (0, 30, 20, 20),  # first wait clamped to the timeout
        (570, 30, 600, 30),  # exactly one poll left
        (571, 30, 600, 29),  # clamped to what remains
        (599, 30, 600, 1),  # one second before the timeout
    ],
)
def test_queue_wait_returns_poll_clamped_to_remaining(waited: int, poll: int, timeout: int, expected: int) -> None:
    assert queue_wait(waited, poll, timeout, {"deployment_id": "dep-1"}, "web") == expected


@pytest.mark.parametrize("waited", [600, 601, 10_000])
def test_queue_wait_raises_once_timeout_reached(waited: int) -> None:
    with pytest.raises(DeploymentInProgress) as exc:
        queue_wait(waited, 30, 600, {"deployment_id": "dep-1"}, "techchallenge/web")
    message = str(exc.value)
    assert message.startswith(f"techchallenge/web is being deployed by dep-1; waited {waited}s (queue timeout 600s)")
    assert "Nothing was changed" in message


def test_queue_wait_without_holder_id() -> None:
    with pytest.raises(DeploymentInProgress, match=r"is being deployed by \?;"):
        queue_wait(0, 30, 0, {}, "web")


@pytest.mark.parametrize(
    ("pushed_at", "last", "expected"),
    [
        (100.0, None, False),
        (100.0, {"pushed_at": "50.5"}, False),  # last deployed image is older: not stale
        (100.0, {"pushed_at": "150"}, True),  # last deployed image is newer: stale
        (100.0, {"pushed_at": "100.0"}, False),  # same push time: not stale
        (100.0, {"pushed_at": "100.001"}, True),
        (100.0, {}, False),  # no pushed_at recorded
    ],
)
def test_is_stale(pushed_at: float, last: dict[str, str] | None, expected: bool) -> None:
    assert is_stale(pushed_at, last) is expected


def test_is_stale_with_event_times() -> None:
    last = {"pushed_at": str(to_epoch("2026-11-28T09:12:34Z"))}
    assert is_stale(to_epoch("2026-11-28T09:12:33+00:00"), last) is True
    assert is_stale(to_epoch("2026-11-28T09:12:34+00:00"), last) is False
    assert is_stale(to_epoch("2026-11-28T09:12:35Z"), last) is False


def test_validate_entry_accepts_the_sample_entry() -> None:
    assert validate_entry(SAMPLE_ITEM, Defaults()).name == SAMPLE_ITEM["name"]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"name": "-web"}, "registry entry name '-web' is invalid"),
        ({"name": 7}, "registry entry name '7' is invalid"),
        ({"tag_filter": {"mode": "fuzzy", "pattern": "v*"}}, "tag_filter.mode"),
        ({"repository": "Not A Repo"}, "$.image.repository"),
        ({"request": {**MINIMAL_REQUEST, "health": {"url": "http://x/", "max_checks": 0}}}, "max_checks"),
        ({"request": {"service": {"cluster": "c"}, "health": {"url": "http://x/"}}}, "$.service.service"),
    ],
)
def test_validate_entry_refuses_what_a_deployment_would_refuse(overrides: dict[str, Any], fragment: str) -> None:
    """The request template is checked when the entry is written (RegistryEntry.from_item alone does not)."""
    with pytest.raises(InvalidDeploymentRequest) as exc:
        validate_entry(_item(**overrides), Defaults())
    assert fragment in str(exc.value)


def test_a_request_s_strategy_and_approval_are_laid_over_the_entry_s_and_validated_as_the_request() -> None:
    wired = {"type": "BLUE_GREEN", "test_url": "http://alb.example.com:8080/healthcheck/", "bake_minutes": 3}
    entry = RegistryEntry.from_item(
        _item(request={**MINIMAL_REQUEST, "strategy": wired, "approval": {"timeout_minutes": 60}})
    )
    overrides = {"strategy": {"type": "CANARY", "canary_percent": 20}, "approval": {"on_timeout": "APPROVE"}}
    request = entry.build_request({"tag": "v2"}, "manual", None, Defaults(), overrides=overrides)
    assert request.strategy is not None and request.approval is not None
    assert (request.strategy.type, request.strategy.canary_percent, request.strategy.bake_minutes) == ("CANARY", 20, 3)
    assert request.strategy.test_url == wired["test_url"]  # the entry's wiring stays
    assert (request.approval.timeout_minutes, request.approval.on_timeout) == (60, "APPROVE")
    plain = entry.build_request({"tag": "v2"}, "manual", None, Defaults())
    assert plain.strategy is not None and plain.strategy.type == "BLUE_GREEN"
    with pytest.raises(InvalidDeploymentRequest, match=r"with the request's approval: .*timeout_minutes"):
        entry.build_request({"tag": "v2"}, "manual", None, Defaults(), overrides={"approval": {"timeout_minutes": 0}})
    rolling = _entry()  # no test listener wired: a progressive strategy cannot be asked for
    with pytest.raises(InvalidDeploymentRequest, match=r"with the request's strategy: .*test_url"):
        rolling.build_request({"tag": "v2"}, "manual", None, Defaults(), overrides={"strategy": {"type": "CANARY"}})
