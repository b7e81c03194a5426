"""Unit tests of the workflow input/output models (stepdeploy.models).

``DeploymentRequest.from_input`` is the single validation point of workflow input: every invalid
input must raise ``InvalidDeploymentRequest`` whose message starts with the JSON path of the bad
field, so a human reading the failed execution knows what to fix.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from stepdeploy.errors import DeploymentError, InvalidDeploymentRequest
from stepdeploy.models import (
    MAX_REQUEST_BYTES,
    BakeState,
    Defaults,
    DeploymentRequest,
    HealthPolicy,
    ImageSpec,
    RolloutPolicy,
    RolloutState,
    ServiceRef,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4
CLUSTER_ARN = "arn:aws:ecs:eu-west-1:123456789012:cluster/prod"
SERVICE_ARN = "arn:aws:ecs:eu-west-1:123456789012:service/prod/web"
TG_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-tg/0123456789abcdef"
LB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web-alb/0123456789abcdef"


def minimal() -> dict[str, Any]:
    """The smallest valid request: repository + tag, cluster + service, health URL."""
    return {
        "service": {"cluster": "prod", "service": "web"},
        "image": {"repository": "techchallengeapp", "tag": "v2"},
        "health": {"url": "http://web.example.com/healthcheck/"},
    }


def parse(payload: Any, defaults: Defaults | None = None) -> DeploymentRequest:
    return DeploymentRequest.from_input(payload, defaults or Defaults())


# --------------------------------------------------------------------------- valid requests


def test_minimal_request_gets_every_default() -> None:
    req = parse(minimal())

    assert req.service == ServiceRef(cluster="prod", service="web", container=None)
    assert req.image == ImageSpec(repository="techchallengeapp", tag="v2", digest=None)
    assert req.health == HealthPolicy(
        url="http://web.example.com/healthcheck/",
        expected_status=200,
        expected_body="OK",
        body_match="exact",
        probe_timeout_seconds=5,
        interval_seconds=15,
        healthy_threshold=3,
        unhealthy_threshold=2,
        max_checks=12,
        max_latency_ms=2000,
        target_group_arn=None,
        alarm_names=(),
    )
    assert req.rollout == RolloutPolicy(timeout_seconds=900, poll_seconds=60)
    assert req.trigger == "manual"
    assert req.reason is None


def test_defaults_come_from_the_defaults_object_not_constants() -> None:
    defaults = Defaults(
        expected_status=204,
        expected_body="healthy",
        body_match="contains",
        probe_timeout_seconds=3,
        interval_seconds=20,
        healthy_threshold=4,
        unhealthy_threshold=3,
        max_checks=30,
        max_latency_ms=750,
        rollout_timeout_seconds=1200,
        rollout_poll_seconds=45,
    )
    req = parse(minimal(), defaults)

    h = req.health
    assert (h.expected_status, h.expected_body, h.body_match) == (204, "healthy", "contains")
    assert (h.probe_timeout_seconds, h.interval_seconds) == (3, 20)
    assert (h.healthy_threshold, h.unhealthy_threshold, h.max_checks, h.max_latency_ms) == (4, 3, 30, 750)
    assert req.rollout == RolloutPolicy(timeout_seconds=1200, poll_seconds=45)


def test_digest_only_request() -> None:
    payload = minimal()
    payload["image"] = {"repository": "team/techchallengeapp", "digest": DIGEST}

    req = parse(payload)

    assert req.image == ImageSpec(repository="team/techchallengeapp", tag=None, digest=DIGEST)


def test_tag_and_digest_together_are_kept() -> None:
    payload = minimal()
    payload["image"]["digest"] = DIGEST

    assert parse(payload).image == ImageSpec(repository="techchallengeapp", tag="v2", digest=DIGEST)


def test_every_override_is_applied() -> None:
    payload = {
        "service": {"cluster": CLUSTER_ARN, "service": SERVICE_ARN, "container": "app_1"},
        "image": {"repository": "registry-team/api.service", "tag": "release-1.2.3_rc.1"},
        "health": {
            "url": "https://api.example.com:8443/healthz?deep=1",
            "expected_status": 204,
            "expected_body": None,
            "body_match": "contains",
            "probe_timeout_seconds": 30,
            "interval_seconds": 5,
            "healthy_threshold": 1,
            "unhealthy_threshold": 20,
            "max_checks": 100,
            "max_latency_ms": 30000,
            "target_group_arn": TG_ARN,
            "alarm_names": ["web-5xx", "web latency p99 > 1s"],
        },
        "rollout": {"timeout_seconds": 3600, "poll_seconds": 600},
        "trigger": "codepipeline",
        "reason": "release 1.2.3",
    }

    req = parse(payload)

    assert req.service == ServiceRef(cluster=CLUSTER_ARN, service=SERVICE_ARN, container="app_1")
    assert req.image == ImageSpec(repository="registry-team/api.service", tag="release-1.2.3_rc.1")
    assert req.health == HealthPolicy(
        url="https://api.example.com:8443/healthz?deep=1",
        expected_status=204,
        expected_body=None,
        body_match="contains",
        probe_timeout_seconds=30,
        interval_seconds=5,
        healthy_threshold=1,
        unhealthy_threshold=20,
        max_checks=100,
        max_latency_ms=30000,
        target_group_arn=TG_ARN,
        alarm_names=("web-5xx", "web latency p99 > 1s"),
    )
    assert isinstance(req.health.alarm_names, tuple)
    assert req.rollout == RolloutPolicy(timeout_seconds=3600, poll_seconds=600)
    assert req.trigger == "codepipeline"
    assert req.reason == "release 1.2.3"


def test_lower_bounds_are_inclusive() -> None:
    payload = minimal()
    payload["health"].update(
        expected_status=100,
        probe_timeout_seconds=1,
        interval_seconds=5,
        healthy_threshold=1,
        unhealthy_threshold=1,
        max_checks=1,
        max_latency_ms=1,
    )
    payload["rollout"] = {"timeout_seconds": 60, "poll_seconds": 10}

    req = parse(payload)

    assert req.health.expected_status == 100
    assert (req.health.interval_seconds, req.health.max_checks, req.health.max_latency_ms) == (5, 1, 1)
    assert req.rollout == RolloutPolicy(timeout_seconds=60, poll_seconds=10)


def test_max_checks_equal_to_healthy_threshold_is_allowed() -> None:
    payload = minimal()
    payload["health"].update(healthy_threshold=5, max_checks=5)

    assert parse(payload).health.max_checks == 5


def test_valid_regex_is_accepted() -> None:
    payload = minimal()
    payload["health"].update(body_match="regex", expected_body=r"^OK( \d+)?$")

    assert parse(payload).health.expected_body == r"^OK( \d+)?$"


@pytest.mark.parametrize("trigger", ["manual", "ecr", "codepipeline", "verify"])
def test_every_known_trigger_is_accepted(trigger: str) -> None:
    payload = minimal()
    payload["trigger"] = trigger

    assert parse(payload).trigger == trigger


@pytest.mark.parametrize("encode", [json.dumps, lambda p: json.dumps(p).encode()], ids=["str", "bytes"])
def test_json_text_input_is_parsed(encode: Callable[[Any], str | bytes]) -> None:
    assert parse(encode(minimal())) == parse(minimal())


def test_json_text_of_exactly_the_limit_is_accepted() -> None:
    text = json.dumps(minimal())
    text = text + " " * (MAX_REQUEST_BYTES - len(text))
    assert len(text.encode()) == MAX_REQUEST_BYTES

    assert parse(text).image.tag == "v2"


# --------------------------------------------------------------------------- invalid requests

Mutation = Callable[[dict[str, Any]], Any]


def _set(section: str | None, key: str, value: Any) -> Mutation:
    def mutate(p: dict[str, Any]) -> Any:
        (p if section is None else p[section])[key] = value
        return p

    return mutate


def _drop(section: str | None, key: str) -> Mutation:
    def mutate(p: dict[str, Any]) -> Any:
        del (p if section is None else p[section])[key]
        return p

    return mutate


def _replace(value: Any) -> Mutation:
    return lambda _p: value


def _health(**values: Any) -> Mutation:
    def mutate(p: dict[str, Any]) -> Any:
        p["health"].update(values)
        return p

    return mutate


INVALID: list[Any] = [
    # top level
    pytest.param(_replace(["service", "image"]), "$", "expected an object, got list", id="top-level-list"),
    pytest.param(_replace(None), "$", "expected an object, got NoneType", id="top-level-null"),
    pytest.param(_replace('{"service": {"cluster": '), "$", "not valid JSON", id="invalid-json-string"),
    pytest.param(_replace(b"\xff\xfe{}"), "$", "not valid JSON", id="invalid-utf8-bytes"),
    pytest.param(_replace('"just a string"'), "$", "expected an object, got str", id="json-string-not-object"),
    pytest.param(
        _replace(json.dumps(minimal()) + " " * MAX_REQUEST_BYTES), "$", "the limit is 32768", id="oversized-json-text"
    ),
    pytest.param(
        _set(None, "padding", "x" * (MAX_REQUEST_BYTES + 1)), "$", "the limit is 32768", id="oversized-object"
    ),
    pytest.param(_set(None, "imagee", {}), "$", "unknown field(s) imagee", id="unknown-top-level-key"),
    # service
    pytest.param(_drop(None, "service"), "$.service", "expected an object, got NoneType", id="missing-service"),
    pytest.param(_set(None, "service", "prod/web"), "$.service", "expected an object, got str", id="service-string"),
    pytest.param(_drop("service", "cluster"), "$.service.cluster", "is required", id="missing-cluster"),
    pytest.param(_drop("service", "service"), "$.service.service", "is required", id="missing-service-name"),
    pytest.param(_set("service", "cluster", "prod cluster"), "$.service.cluster", "invalid value", id="cluster-space"),
    pytest.param(_set("service", "service", 42), "$.service.service", "expected a string, got int", id="service-int"),
    pytest.param(_set("service", "container", "-web"), "$.service.container", "invalid value", id="container-dash"),
    pytest.param(_set("service", "task", "x"), "$.service", "unknown field(s) task", id="unknown-service-key"),
    # image
    pytest.param(_drop(None, "image"), "$.image", "expected an object", id="missing-image"),
    pytest.param(_drop("image", "repository"), "$.image.repository", "is required", id="missing-repository"),
    pytest.param(
        _set("image", "repository", "TechChallengeApp"), "$.image.repository", "invalid value", id="repo-uppercase"
    ),
    pytest.param(_set("image", "repository", "app//web"), "$.image.repository", "invalid value", id="repo-empty-part"),
    pytest.param(_set("image", "tag", "v2 beta"), "$.image.tag", "invalid value", id="tag-space"),
    pytest.param(_set("image", "tag", "v2:latest"), "$.image.tag", "invalid value", id="tag-colon"),
    pytest.param(_set("image", "tag", ".hidden"), "$.image.tag", "invalid value", id="tag-leading-dot"),
    pytest.param(_set("image", "tag", "v" * 129), "$.image.tag", "invalid value", id="tag-too-long"),
    pytest.param(_set("image", "tag", 2), "$.image.tag", "expected a string, got int", id="tag-int"),
    pytest.param(_drop("image", "tag"), "$.image", "give a tag or a digest", id="neither-tag-nor-digest"),
    pytest.param(_set("image", "digest", "sha256:abc123"), "$.image.digest", "invalid value", id="digest-short"),
    pytest.param(
        _set("image", "digest", DIGEST.upper().replace("SHA256", "sha256")),
        "$.image.digest",
        "invalid value",
        id="digest-uppercase-hex",
    ),
    pytest.param(
        _set("image", "digest", "md5:" + "0" * 32), "$.image.digest", "invalid value", id="digest-wrong-algorithm"
    ),
    pytest.param(_set("image", "uri", "x"), "$.image", "unknown field(s) uri", id="unknown-image-key"),
    # health
    pytest.param(_drop(None, "health"), "$.health", "expected an object", id="missing-health"),
    pytest.param(_drop("health", "url"), "$.health.url", "is required", id="missing-url"),
    pytest.param(_health(url="ftp://web.example.com/health"), "$.health.url", "invalid value", id="url-ftp"),
    pytest.param(_health(url="web.example.com/health"), "$.health.url", "invalid value", id="url-no-scheme"),
    pytest.param(_health(url="http://web example.com/"), "$.health.url", "invalid value", id="url-space"),
    pytest.param(
        _health(expected_status="200"),
        "$.health.expected_status",
        "expected an integer, got str",
        id="expected-status-string",
    ),
    pytest.param(
        _health(expected_status=600), "$.health.expected_status", "between 100 and 599, got 600", id="status-600"
    ),
    pytest.param(
        _health(healthy_threshold=True),
        "$.health.healthy_threshold",
        "expected an integer, got bool",
        id="bool-for-int",
    ),
    pytest.param(
        _health(interval_seconds=15.0), "$.health.interval_seconds", "expected an integer, got float", id="float-int"
    ),
    pytest.param(
        _health(interval_seconds=None), "$.health.interval_seconds", "expected an integer, got NoneType", id="null-int"
    ),
    pytest.param(
        _health(interval_seconds=4), "$.health.interval_seconds", "between 5 and 300, got 4", id="interval-too-low"
    ),
    pytest.param(
        _health(interval_seconds=301), "$.health.interval_seconds", "between 5 and 300, got 301", id="interval-high"
    ),
    pytest.param(
        _health(probe_timeout_seconds=31), "$.health.probe_timeout_seconds", "between 1 and 30", id="probe-timeout"
    ),
    pytest.param(
        _health(unhealthy_threshold=0), "$.health.unhealthy_threshold", "between 1 and 20", id="unhealthy-zero"
    ),
    pytest.param(_health(max_checks=101), "$.health.max_checks", "between 1 and 100", id="max-checks-101"),
    pytest.param(_health(max_latency_ms=0), "$.health.max_latency_ms", "between 1 and 30000", id="latency-zero"),
    pytest.param(_health(body_match="fuzzy"), "$.health.body_match", "must be one of", id="unknown-body-match"),
    pytest.param(_health(body_match=1), "$.health.body_match", "expected a string, got int", id="body-match-int"),
    pytest.param(
        _health(body_match="regex", expected_body="(unclosed"),
        "$.health.expected_body",
        "invalid regular expression",
        id="invalid-regex",
    ),
    pytest.param(_health(expected_body=200), "$.health.expected_body", "expected a string", id="body-int"),
    pytest.param(_health(expected_body="x" * 4097), "$.health.expected_body", "at most 4096", id="body-too-long"),
    pytest.param(_health(alarm_names="web-5xx"), "$.health.alarm_names", "expected a list", id="alarms-not-list"),
    pytest.param(_health(alarm_names=None), "$.health.alarm_names", "expected a list", id="alarms-null"),
    pytest.param(_health(alarm_names=["ok", 5]), "$.health.alarm_names", "expected a list", id="alarms-int-item"),
    pytest.param(_health(alarm_names=[""]), "$.health.alarm_names", "expected a list", id="alarms-empty-name"),
    pytest.param(_health(alarm_names=["a\tb"]), "$.health.alarm_names", "expected a list", id="alarms-control-char"),
    pytest.param(
        _health(alarm_names=[f"a{i}" for i in range(101)]), "$.health.alarm_names", "at most 100", id="alarms-101"
    ),
    pytest.param(
        _health(target_group_arn=LB_ARN),
        "$.health.target_group_arn",
        "target group ARN",
        id="tg-arn-is-load-balancer",
    ),
    pytest.param(
        _health(target_group_arn="web-tg"), "$.health.target_group_arn", "target group ARN", id="tg-arn-bare-name"
    ),
    pytest.param(
        _health(target_group_arn=["x"]),
        "$.health.target_group_arn",
        "expected a string, got list",
        id="tg-arn-list",
    ),
    pytest.param(
        _health(healthy_threshold=5, max_checks=4),
        "$.health.max_checks",
        "must be at least healthy_threshold",
        id="max-checks-below-healthy-threshold",
    ),
    pytest.param(_health(retries=3), "$.health", "unknown field(s) retries", id="unknown-health-key"),
    # rollout
    pytest.param(_set(None, "rollout", []), "$.rollout", "expected an object, got list", id="rollout-list"),
    pytest.param(
        _set(None, "rollout", {"timeout_seconds": 59}),
        "$.rollout.timeout_seconds",
        "between 60 and 3600, got 59",
        id="rollout-timeout-low",
    ),
    pytest.param(
        _set(None, "rollout", {"timeout_seconds": 3601}),
        "$.rollout.timeout_seconds",
        "between 60 and 3600, got 3601",
        id="rollout-timeout-high",
    ),
    pytest.param(
        _set(None, "rollout", {"poll_seconds": 9}), "$.rollout.poll_seconds", "between 10 and 600", id="poll-low"
    ),
    pytest.param(
        _set(None, "rollout", {"deadline": 60}), "$.rollout", "unknown field(s) deadline", id="unknown-rollout-key"
    ),
    # trigger / reason
    pytest.param(_set(None, "trigger", "cron"), "$.trigger", "must be one of", id="unknown-trigger"),
    pytest.param(_set(None, "trigger", 1), "$.trigger", "expected a string, got int", id="trigger-int"),
    pytest.param(_set(None, "reason", "r" * 1025), "$.reason", "at most 1024 characters", id="reason-too-long"),
    pytest.param(_set(None, "reason", ["r"]), "$.reason", "expected a string, got list", id="reason-list"),
]


@pytest.mark.parametrize(("mutate", "path", "fragment"), INVALID)
def test_invalid_request_names_the_field(mutate: Mutation, path: str, fragment: str) -> None:
    payload = mutate(copy.deepcopy(minimal()))

    with pytest.raises(InvalidDeploymentRequest) as caught:
        parse(payload)

    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message
    assert isinstance(caught.value, DeploymentError)


def test_invalid_input_count_is_at_least_eighteen() -> None:
    # guards against the table silently shrinking
    assert len(INVALID) >= 18


def test_error_message_truncates_long_invalid_values() -> None:
    payload = minimal()
    payload["image"]["tag"] = "bad tag " + "x" * 500

    with pytest.raises(InvalidDeploymentRequest) as caught:
        parse(payload)

    assert str(caught.value) == f"$.image.tag: invalid value {payload['image']['tag'][:80]!r}"


def test_inconsistent_defaults_are_reported_against_the_field() -> None:
    # defaults are not validated on their own: a bad combination surfaces on the field it fills
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$\.health\.max_checks: "):
        parse(minimal(), Defaults(healthy_threshold=5, max_checks=4))


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        pytest.param(_set("image", "tag", "v2\n"), "$.image.tag", id="tag"),
        pytest.param(_set("image", "repository", "techchallengeapp\n"), "$.image.repository", id="repository"),
        pytest.param(_set("image", "digest", DIGEST + "\n"), "$.image.digest", id="digest"),
        pytest.param(_set("service", "cluster", "prod\n"), "$.service.cluster", id="cluster"),
        pytest.param(_set("service", "container", "web\n"), "$.service.container", id="container"),
        pytest.param(_health(url="http://web.example.com/health\n"), "$.health.url", id="url"),
        pytest.param(_health(alarm_names=["web-5xx\n"]), "$.health.alarm_names", id="alarm-name"),
        pytest.param(_set(None, "reason", "hotfix\n"), "$.reason", id="reason"),
        pytest.param(_set(None, "reason", "hotfix\r\n"), "$.reason", id="reason-crlf"),
        pytest.param(_health(expected_body="OK\n"), "$.health.expected_body", id="expected-body"),
        pytest.param(_health(target_group_arn=TG_ARN + "\n"), "$.health.target_group_arn", id="target-group"),
        pytest.param(_set("service", "service", "web\n"), "$.service.service", id="service"),
        pytest.param(_set(None, "trigger", "manual\n"), "$.trigger", id="trigger"),
    ],
)
def test_trailing_newline_is_rejected(mutate: Mutation, path: str) -> None:
    payload = mutate(copy.deepcopy(minimal()))

    with pytest.raises(InvalidDeploymentRequest) as caught:
        parse(payload)

    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize("reason", ["two\nlines", "tab\there", "bell\x07"])
def test_reason_is_one_line_without_control_characters(reason: str) -> None:
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$\.reason: must be one line"):
        parse({**minimal(), "reason": reason})


def test_a_multi_line_expected_body_is_kept_if_it_does_not_end_with_a_line_break() -> None:
    request = parse(_health(expected_body="line one\nline two", body_match="contains")(copy.deepcopy(minimal())))

    assert request.health.expected_body == "line one\nline two"


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web-alb/0123456789abcdef",
        "arn:aws:ecs:eu-west-1:123456789012:targetgroup/web-tg/0123456789abcdef",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-tg/",
    ],
)
def test_target_group_arn_must_be_a_target_group_arn(arn: str) -> None:
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$\.health\.target_group_arn: expected an ELBv2"):
        parse(_health(target_group_arn=arn)(copy.deepcopy(minimal())))


def test_explicit_null_for_a_defaulted_string_takes_the_default() -> None:
    payload = _set(None, "trigger", None)(_health(body_match=None)(copy.deepcopy(minimal())))

    request = parse(payload)

    assert request.trigger == "manual"
    assert request.health.body_match == Defaults().body_match


# --------------------------------------------------------------------------- Defaults.from_env


def test_defaults_from_empty_env_equal_class_defaults() -> None:
    assert Defaults.from_env({}) == Defaults()


def test_defaults_from_env_reads_default_variables() -> None:
    env = {
        "DEFAULT_EXPECTED_STATUS": "204",
        "DEFAULT_EXPECTED_BODY": "ready",
        "DEFAULT_BODY_MATCH": "contains",
        "DEFAULT_INTERVAL_SECONDS": "20",
        "DEFAULT_HEALTHY_THRESHOLD": "5",
        "DEFAULT_MAX_CHECKS": "40",
        "DEFAULT_ROLLOUT_TIMEOUT_SECONDS": "1800",
        "DEFAULT_ROLLOUT_POLL_SECONDS": "10",
        "DEFAULT_UNHEALTHY_THRESHOLD": "",  # empty: keep the built-in default
        "INTERVAL_SECONDS": "99",  # not DEFAULT_-prefixed: ignored
        "default_max_latency_ms": "1",  # wrong case: ignored
    }

    d = Defaults.from_env(env)

    assert d == Defaults(
        expected_status=204,
        expected_body="ready",
        body_match="contains",
        interval_seconds=20,
        healthy_threshold=5,
        max_checks=40,
        rollout_timeout_seconds=1800,
        rollout_poll_seconds=10,
    )
    assert isinstance(d.expected_status, int)
    assert d.unhealthy_threshold == 2
    assert d.max_latency_ms == 2000


@pytest.mark.parametrize("raw", ["fifteen", "1.5", "15s"])
def test_defaults_from_env_rejects_non_integer(raw: str) -> None:
    with pytest.raises(ValueError, match="DEFAULT_INTERVAL_SECONDS must be an integer") as caught:
        Defaults.from_env({"DEFAULT_INTERVAL_SECONDS": raw})

    assert repr(raw) in str(caught.value)


def test_defaults_from_env_feed_validation() -> None:
    req = parse(minimal(), Defaults.from_env({"DEFAULT_INTERVAL_SECONDS": "45", "DEFAULT_EXPECTED_BODY": "pong"}))

    assert req.health.interval_seconds == 45
    assert req.health.expected_body == "pong"


# --------------------------------------------------------------------------- round trips


def _full_payload() -> dict[str, Any]:
    payload = minimal()
    payload["service"]["container"] = "web"
    payload["image"]["digest"] = DIGEST
    payload["health"].update(target_group_arn=TG_ARN, alarm_names=["web-5xx", "web-latency"], expected_body=None)
    payload["rollout"] = {"timeout_seconds": 600, "poll_seconds": 15}
    payload["trigger"] = "ecr"
    payload["reason"] = "push of v2"
    return payload


@pytest.mark.parametrize("payload", [minimal(), _full_payload()], ids=["minimal", "full"])
def test_to_dict_from_dict_round_trip(payload: dict[str, Any]) -> None:
    req = parse(payload)

    data = req.to_dict()

    assert DeploymentRequest.from_dict(data) == req
    # survives the JSON hop between states as well
    assert DeploymentRequest.from_dict(json.loads(json.dumps(data))) == req


def test_to_dict_shape() -> None:
    data = parse(_full_payload()).to_dict()

    assert data["health"]["alarm_names"] == ["web-5xx", "web-latency"]
    assert isinstance(data["health"]["alarm_names"], list)
    assert data["service"] == {"cluster": "prod", "service": "web", "container": "web"}
    assert data["image"] == {"repository": "techchallengeapp", "tag": "v2", "digest": DIGEST}
    assert data["rollout"] == {"timeout_seconds": 600, "poll_seconds": 15}
    assert (data["trigger"], data["reason"]) == ("ecr", "push of v2")


def test_from_dict_defaults_trigger_and_alarms() -> None:
    data = parse(minimal()).to_dict()
    del data["trigger"], data["reason"], data["health"]["alarm_names"]

    req = DeploymentRequest.from_dict(data)

    assert req.trigger == "manual"
    assert req.reason is None
    assert req.health.alarm_names == ()


# --------------------------------------------------------------------------- loop states


@pytest.mark.parametrize("data", [None, {}])
def test_bake_state_from_empty(data: dict[str, Any] | None) -> None:
    assert BakeState.from_dict(data) == BakeState(
        status="CHECKING", checks=0, passes=0, failures=0, wait_seconds=0, last=[]
    )


def test_bake_state_round_trip_ignores_unknown_keys() -> None:
    state = BakeState(
        status="PASSED",
        checks=4,
        passes=3,
        failures=0,
        wait_seconds=0,
        last=[{"gate": "http", "passed": True, "detail": "HTTP 200"}],
    )
    data = {**asdict(state), "extra": "ignored"}

    assert BakeState.from_dict(data) == state


def test_bake_state_partial_dict_keeps_defaults() -> None:
    state = BakeState.from_dict({"checks": 2, "passes": 1})

    assert (state.status, state.checks, state.passes, state.failures, state.last) == ("CHECKING", 2, 1, 0, [])


def test_bake_state_default_last_is_not_shared() -> None:
    a, b = BakeState(), BakeState.from_dict(None)
    a.last.append({"gate": "x"})

    assert b.last == []


@pytest.mark.parametrize("data", [None, {}])
def test_rollout_state_from_empty(data: dict[str, Any] | None) -> None:
    assert RolloutState.from_dict(data) == RolloutState(
        status="IN_PROGRESS", elapsed_seconds=0, polls=0, wait_seconds=0, detail=""
    )


def test_rollout_state_round_trip_ignores_unknown_keys() -> None:
    state = RolloutState(status="COMPLETED", elapsed_seconds=120, polls=4, wait_seconds=0, detail="2/2 tasks running")

    assert RolloutState.from_dict({**asdict(state), "unknown": 1}) == state
    assert RolloutState.from_dict({"elapsed_seconds": 30, "wait_seconds": 30}) == RolloutState(
        elapsed_seconds=30, wait_seconds=30
    )


EXPLICIT_SAMPLES = [
    p for p in sorted((Path(__file__).resolve().parents[2] / "events").glob("*.json")) if '"service"' in p.read_text()
]


def test_there_are_explicit_samples() -> None:
    assert [p.name for p in EXPLICIT_SAMPLES] == ["manual-deploy.json", "manual-redeploy-digest.json"]


@pytest.mark.parametrize("sample", EXPLICIT_SAMPLES, ids=[p.name for p in EXPLICIT_SAMPLES])
def test_documented_explicit_samples_are_valid(sample: Path) -> None:
    payload = json.loads(sample.read_text())
    payload.pop("redeploy", None)  # the trigger layer takes it (triggers.py), not the request model
    request = DeploymentRequest.from_input(json.dumps(payload), Defaults())
    assert request.service.cluster == "techchallenge"


def test_settings_take_partition_region_and_account_from_the_function_arn() -> None:
    from stepdeploy.settings import Settings

    env = dict.fromkeys(("DEPLOYMENTS_TABLE", "NOTIFICATION_TOPIC_ARN", "REGISTRY_TABLE", "CONTROL_TABLE"), "x")
    arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:stepdeploy-Normalize"
    settings = Settings.from_env({**env, "AWS_REGION": "cn-north-1"}, function_arn=arn)

    assert (settings.partition, settings.region, settings.account) == ("aws-cn", "cn-north-1", "123456789012")
    assert Settings.from_env({**env, "AWS_REGION": "eu-west-1"}).account == ""


def test_destructive_init_is_opt_in_and_validated() -> None:
    stack = {"name": "techchallenge"}
    request = parse({"stack": stack, "image": {"repository": "techchallengeapp", "tag": "v1"}})
    assert request.stack is not None and request.stack.allow_destructive_init is False
    allowed = parse(
        {"stack": {**stack, "allow_destructive_init": True}, "image": {"repository": "techchallengeapp", "tag": "v1"}}
    )
    assert allowed.stack is not None and allowed.stack.allow_destructive_init is True
    assert DeploymentRequest.from_dict(allowed.to_dict()) == allowed
    with pytest.raises(InvalidDeploymentRequest, match=r"\$\.stack\.allow_destructive_init"):
        parse({"stack": {**stack, "allow_destructive_init": "yes"}, "image": {"repository": "r", "tag": "v1"}})


def _approval_request(**extra: object) -> dict[str, object]:
    return {
        "service": {"cluster": "c", "service": "s"},
        "image": {"repository": "web", "tag": "v2"},
        "health": {"url": "http://alb.example/health"},
        **extra,
    }


def test_an_approval_is_validated_once_with_its_defaults() -> None:
    from stepdeploy.models import ApprovalSpec, Defaults, DeploymentRequest

    request = DeploymentRequest.from_input(_approval_request(approval={}), Defaults())
    assert request.approval == ApprovalSpec(60, "REJECT")
    assert DeploymentRequest.from_dict(request.to_dict()) == request
    assert request.to_dict()["approval"]["timeout_seconds"] == 3600  # what the ASL's TimeoutSecondsPath reads
    for bad, field in (
        ({"timeout_minutes": 0}, "timeout_minutes"),
        ({"timeout_minutes": 1441}, "timeout_minutes"),
        ({"on_timeout": "CONTINUE"}, "on_timeout"),
        ({"who": "alice"}, "unknown field"),
    ):
        with pytest.raises(InvalidDeploymentRequest, match=field):
            DeploymentRequest.from_input(_approval_request(approval=bad), Defaults())


def test_an_approval_must_end_before_the_pause_hook_times_out() -> None:
    from stepdeploy.models import Defaults, DeploymentRequest

    strategy = {"type": "BLUE_GREEN", "test_url": "http://alb.example:8080/health", "hook_timeout_minutes": 120}
    ok = DeploymentRequest.from_input(
        _approval_request(strategy=strategy, approval={"timeout_minutes": 60}), Defaults()
    )
    assert ok.approval is not None
    with pytest.raises(InvalidDeploymentRequest, match="hook_timeout_minutes"):
        DeploymentRequest.from_input(
            _approval_request(strategy=strategy, approval={"timeout_minutes": 118}), Defaults()
        )
