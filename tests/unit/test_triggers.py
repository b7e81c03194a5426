"""Unit tests of execution-input classification (stepdeploy.triggers): pure parsing, no AWS.

Every accepted shape must produce the right ``Intent``; every rejected input must raise
``InvalidDeploymentRequest`` whose message starts with the JSON path of the offending part.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from stepdeploy.errors import DeploymentError, InvalidDeploymentRequest
from stepdeploy.models import MAX_REQUEST_BYTES
from stepdeploy.triggers import Intent, parse, parse_image_uri

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"

DIGEST = "sha256:788614df71ed927c1c76f0bbe031446648f7fd84dff948c1ca783f127d7eed9f"
OTHER_DIGEST = "sha256:" + "a" * 64
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def _load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def _ecr_event(**detail_overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = _load("ecr-push.json")
    for key, value in detail_overrides.items():
        key = key.replace("_", "-")
        if value is None:
            event["detail"].pop(key, None)
        else:
            event["detail"][key] = value
    return event


# --------------------------------------------------------------------------- accepted shapes (sample inputs)


def test_ecr_push_event_sample() -> None:
    intent = parse(_load("ecr-push.json"))
    assert intent == Intent(
        trigger="ecr",
        mode="deploy",
        target=None,
        repository="techchallengeapp",
        tag="v2",
        digest=DIGEST,
        container=None,
        event_time="2026-11-28T09:12:34Z",
        redeploy=False,
        reason=None,
        explicit=None,
    )


def test_ecr_push_event_without_image_tag_is_digest_only() -> None:
    intent = parse(_ecr_event(image_tag=None))
    assert intent.trigger == "ecr"
    assert intent.repository == "techchallengeapp"
    assert intent.tag is None
    assert intent.digest == DIGEST
    assert intent.event_time == "2026-11-28T09:12:34Z"


def test_ecr_push_event_without_time_and_nested_repository() -> None:
    event = _ecr_event(repository_name="team/a/b-c")
    del event["time"]
    intent = parse(event)
    assert intent.repository == "team/a/b-c"
    assert intent.event_time is None


def test_ecr_push_event_as_json_string_and_bytes() -> None:
    text = (EVENTS / "ecr-push.json").read_text()
    assert parse(text) == parse(_load("ecr-push.json"))
    assert parse(text.encode()) == parse(_load("ecr-push.json"))


def test_codepipeline_imagedefinitions_sample() -> None:
    intent = parse(_load("codepipeline-imagedefinitions.json"))
    assert intent == Intent(
        trigger="codepipeline",
        mode="deploy",
        repository="techchallenge-web",
        tag="v2",
        digest=None,
        container="app",
        event_time=None,
        redeploy=False,
        registry=("$[0].imageUri", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
    )


def test_codepipeline_imagedetail_sample() -> None:
    intent = parse(_load("codepipeline-imagedetail.json"))
    assert intent == Intent(
        trigger="codepipeline",
        mode="deploy",
        repository="techchallenge-web",
        tag=None,
        digest=DIGEST,
        container=None,
        event_time=None,
        redeploy=False,
        registry=("$.ImageURI", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
    )


def test_buildspec_outputs_parse() -> None:
    """The three files the example buildspec writes (printf formats, with typical values)."""
    uri = f"{REGISTRY}/techchallengeapp"
    imagedefinitions = '[{"name":"%s","imageUri":"%s"}]\n' % ("app", f"{uri}:abc1234")  # noqa: UP031
    imagedetail = '{"ImageURI":"%s"}\n' % f"{uri}@{DIGEST}"  # noqa: UP031
    deployrequest = (
        '{"target":"%s","image":{"tag":"%s","digest":"%s"},"trigger":"codepipeline","reason":"commit %s"}\n'  # noqa: UP031
        % ("techchallenge/web", "abc1234", DIGEST, "abc1234" * 5)
    )
    buildspec = (ROOT / "examples" / "pipeline" / "buildspec.yml").read_text()
    assert "imagedefinitions.json" in buildspec and "imageDetail.json" in buildspec

    a = parse(imagedefinitions)
    assert (a.trigger, a.repository, a.tag, a.digest, a.container) == (
        "codepipeline",
        "techchallengeapp",
        "abc1234",
        None,
        "app",
    )
    b = parse(imagedetail)
    assert (b.trigger, b.repository, b.tag, b.digest, b.container) == (
        "codepipeline",
        "techchallengeapp",
        None,
        DIGEST,
        None,
    )
    c = parse(deployrequest)
    assert (c.trigger, c.target, c.tag, c.digest, c.reason, c.repository) == (
        "codepipeline",
        "techchallenge/web",
        "abc1234",
        DIGEST,
        "commit " + "abc1234" * 5,
        None,
    )


def test_registry_deploy_manual_target_sample() -> None:
    intent = parse(_load("manual-target.json"))
    assert intent == Intent(
        trigger="manual",
        mode="deploy",
        target="techchallenge/web",
        repository=None,
        tag="v2",
        digest=None,
        container=None,
        event_time=None,
        redeploy=False,
        reason="release 2026-11-28",
    )


def test_registry_redeploy_known_good_sample() -> None:
    intent = parse(_load("manual-redeploy-known-good.json"))
    assert intent.trigger == "manual"
    assert intent.mode == "deploy"
    assert intent.target == "techchallenge/web"
    assert intent.tag is None
    assert intent.digest == DIGEST
    assert intent.redeploy is True
    assert intent.reason == "back to the last known-good digest"
    assert intent.repository is None


def test_registry_deploy_codepipeline_trigger_with_tag_and_digest() -> None:
    intent = parse({"target": "web", "image": {"tag": "v3", "digest": DIGEST}, "trigger": "codepipeline"})
    assert (intent.trigger, intent.target, intent.tag, intent.digest, intent.redeploy, intent.reason) == (
        "codepipeline",
        "web",
        "v3",
        DIGEST,
        False,
        None,
    )


def test_verify_sample() -> None:
    intent = parse(_load("verify.json"))
    assert intent == Intent(
        trigger="verify",
        mode="verify",
        target="techchallenge/web",
        reason="verify after the pipeline's ECS deploy action",
    )


@pytest.mark.parametrize("name", ["manual-deploy.json", "manual-redeploy-digest.json"])
def test_explicit_request_samples(name: str) -> None:
    payload = _load(name)
    intent = parse(payload)
    assert intent.trigger == "manual"
    assert intent.mode == "deploy"
    assert intent.target is None
    assert intent.repository is None and intent.tag is None and intent.digest is None
    redeploy = payload.pop("redeploy", False)  # lifted out of the explicit request
    assert intent.redeploy is (name == "manual-redeploy-digest.json") is redeploy
    assert intent.explicit == payload


def test_explicit_request_redeploy_is_lifted_out_and_trigger_kept() -> None:
    payload = _load("manual-deploy.json")
    payload["redeploy"] = True
    payload["trigger"] = "codepipeline"
    intent = parse(payload)
    assert intent.redeploy is True
    assert intent.trigger == "codepipeline"
    assert intent.explicit is not None
    assert "redeploy" not in intent.explicit
    assert intent.explicit["image"] == {"repository": "techchallenge-web", "tag": "v2"}


# --------------------------------------------------------------------------- image URIs


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"{REGISTRY}/techchallengeapp:v2", ("techchallengeapp", "v2", None)),
        (f"{REGISTRY}/techchallengeapp@{DIGEST}", ("techchallengeapp", None, DIGEST)),
        (f"{REGISTRY}/techchallengeapp:v2@{DIGEST}", ("techchallengeapp", "v2", DIGEST)),
        ("localhost:5000/app:1.0.0", ("app", "1.0.0", None)),
        (f"registry.local:5000/a/b/c:v1.2_3-rc@{DIGEST}", ("a/b/c", "v1.2_3-rc", DIGEST)),
        (f"{REGISTRY}/a/b/c:latest", ("a/b/c", "latest", None)),
        (f"{REGISTRY}/a/b/c@{DIGEST}", ("a/b/c", None, DIGEST)),
        ("localhost:5000/a/b/c:5000", ("a/b/c", "5000", None)),
        (f"{REGISTRY}/techchallengeapp:" + "t" * 128, ("techchallengeapp", "t" * 128, None)),
    ],
)
def test_parse_image_uri(uri: str, expected: tuple[str, str | None, str | None]) -> None:
    assert parse_image_uri(uri, "$.x") == expected


@pytest.mark.parametrize(
    "uri",
    [
        f"{REGISTRY}/techchallengeapp",  # neither tag nor digest
        "localhost:5000/app",  # port is not a tag
        "techchallengeapp:v2",  # no registry
        f"{REGISTRY}/techchallengeapp:" + "t" * 129,  # tag too long
        f"{REGISTRY}/techchallengeapp:-v2",  # tag must not start with '-'
        f"{REGISTRY}/techchallengeapp@sha256:abc",  # short digest
        f"{REGISTRY}/techchallengeapp@sha256:" + "A" * 64,  # upper-case digest
        f"{REGISTRY}/TechChallengeApp:v2",  # upper-case repository
        f"{REGISTRY}/techchallengeapp:v2 ",  # trailing space
        "",
        f"{REGISTRY}/" + "a" * 1020 + ":v2",  # longer than 1024
        42,
        None,
        ["x"],
    ],
)
def test_parse_image_uri_rejects(uri: Any) -> None:
    with pytest.raises(InvalidDeploymentRequest) as exc:
        parse_image_uri(uri, "$.somewhere")
    assert str(exc.value).startswith("$.somewhere: ")


@pytest.mark.parametrize(
    "uri",
    [f"{REGISTRY}/a//b:v1", f"{REGISTRY}/app/:v1", f"{REGISTRY}/app-:v1", f"{REGISTRY}/a..b@{DIGEST}"],
)
def test_parse_image_uri_rejects_invalid_repository_names(uri: str) -> None:
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$\.u: "):
        parse_image_uri(uri, "$.u")


# --------------------------------------------------------------------------- rejected inputs


def _with(base: Any, mutate: Any) -> Any:
    value = copy.deepcopy(base)
    mutate(value)
    return value


_ECR = _load("ecr-push.json")
_DEF = _load("codepipeline-imagedefinitions.json")
_DEF_ITEM = _DEF[0]
_URI = _DEF_ITEM["imageUri"]

INVALID: list[Any] = [
    # --- ECR events
    pytest.param(_with(_ECR, lambda e: e.update(source="aws.s3")), "$.source", id="ecr-wrong-source"),
    pytest.param(
        _with(_ECR, lambda e: e.update({"detail-type": "ECR Image Scan"})), "$.detail-type", id="ecr-wrong-detail-type"
    ),
    pytest.param(_with(_ECR, lambda e: e.pop("detail-type")), "$.detail-type", id="ecr-missing-detail-type"),
    pytest.param(_with(_ECR, lambda e: e.update(detail=["x"])), "$.detail", id="ecr-detail-not-object"),
    pytest.param(
        _with(_ECR, lambda e: e["detail"].update({"action-type": "DELETE"})), "$.detail.action-type", id="ecr-delete"
    ),
    pytest.param(
        _with(_ECR, lambda e: e["detail"].update(result="FAILURE")), "$.detail.result", id="ecr-failure-result"
    ),
    pytest.param(
        _with(_ECR, lambda e: e["detail"].pop("image-digest")), "$.detail.image-digest", id="ecr-missing-digest"
    ),
    pytest.param(
        _with(_ECR, lambda e: e["detail"].update({"image-digest": "sha256:xyz"})),
        "$.detail.image-digest",
        id="ecr-bad-digest",
    ),
    pytest.param(
        _with(_ECR, lambda e: e["detail"].update({"image-tag": "bad tag!"})), "$.detail.image-tag", id="ecr-bad-tag"
    ),
    pytest.param(_with(_ECR, lambda e: e["detail"].update({"image-tag": 7})), "$.detail.image-tag", id="ecr-int-tag"),
    pytest.param(
        _with(_ECR, lambda e: e["detail"].pop("repository-name")),
        "$.detail.repository-name",
        id="ecr-missing-repository",
    ),
    pytest.param(
        _with(_ECR, lambda e: e["detail"].update({"repository-name": "Bad//Repo"})),
        "$.detail.repository-name",
        id="ecr-bad-repository",
    ),
    pytest.param(_with(_ECR, lambda e: e.update(time=1764321154)), "$.time", id="ecr-non-string-time"),
    # --- CodePipeline imagedefinitions.json
    pytest.param([], "$", id="imagedefinitions-empty"),
    pytest.param([dict(_DEF_ITEM, name=f"c{i}") for i in range(11)], "$", id="imagedefinitions-11"),
    pytest.param([_DEF_ITEM, dict(_DEF_ITEM, name="sidecar")], "$", id="imagedefinitions-2-entries"),
    pytest.param([{"name": "app"}], "$[0]", id="imagedefinitions-missing-imageUri"),
    pytest.param([{"imageUri": _URI}], "$[0]", id="imagedefinitions-missing-name"),
    pytest.param([dict(_DEF_ITEM, extra=1)], "$[0]", id="imagedefinitions-extra-key"),
    pytest.param(["app"], "$[0]", id="imagedefinitions-item-not-object"),
    pytest.param([{"name": "", "imageUri": _URI}], "$[0].name", id="imagedefinitions-empty-name"),
    pytest.param([{"name": 3, "imageUri": _URI}], "$[0].name", id="imagedefinitions-int-name"),
    pytest.param([{"name": "app", "imageUri": "not a uri"}], "$[0].imageUri", id="imagedefinitions-bad-uri"),
    pytest.param(
        [{"name": "app", "imageUri": f"{REGISTRY}/techchallengeapp"}],
        "$[0].imageUri",
        id="imagedefinitions-uri-without-tag-or-digest",
    ),
    pytest.param([{"name": "app", "imageUri": None}], "$[0].imageUri", id="imagedefinitions-null-uri"),
    pytest.param(
        [_DEF_ITEM, {"name": "b", "imageUri": "bad"}], "$[1].imageUri", id="imagedefinitions-second-entry-bad-uri"
    ),
    # --- CodePipeline imageDetail.json
    pytest.param({"ImageURI": f"{REGISTRY}/app@{DIGEST}", "ImageTags": ["v1"]}, "$", id="imagedetail-extra-key"),
    pytest.param({"ImageURI": f"{REGISTRY}/app"}, "$.ImageURI", id="imagedetail-uri-without-tag-or-digest"),
    pytest.param({"ImageURI": 5}, "$.ImageURI", id="imagedetail-uri-not-string"),
    # --- verify
    pytest.param({"mode": "verify", "target": "web", "image": {"tag": "v1"}}, "$", id="verify-unknown-field"),
    pytest.param({"mode": "verify"}, "$.target", id="verify-missing-target"),
    pytest.param({"mode": "verify", "target": ["web"]}, "$.target", id="verify-target-list"),
    pytest.param({"mode": "verify", "target": "web", "reason": 1}, "$.reason", id="verify-reason-not-string"),
    pytest.param({"mode": "verify", "target": "web", "reason": "r" * 1025}, "$.reason", id="verify-reason-too-long"),
    pytest.param({"mode": "deploy", "target": "web", "image": {"tag": "v1"}}, "$.mode", id="unknown-mode"),
    pytest.param({"mode": None, "service": {}}, "$.mode", id="null-mode"),
    # --- registry deploy
    pytest.param({"target": 123, "image": {"tag": "v1"}}, "$.target", id="target-int"),
    pytest.param({"target": None, "image": {"tag": "v1"}}, "$.target", id="target-null"),
    pytest.param({"target": "-web", "image": {"tag": "v1"}}, "$.target", id="target-bad-start"),
    pytest.param({"target": "w" * 129, "image": {"tag": "v1"}}, "$.target", id="target-too-long"),
    pytest.param({"target": "web"}, "$.image", id="image-missing"),
    pytest.param({"target": "web", "image": "v1"}, "$.image", id="image-string"),
    pytest.param({"target": "web", "image": {}}, "$.image", id="image-empty"),
    pytest.param(
        {"target": "web", "image": {"repository": "techchallengeapp", "tag": "v1"}},
        "$.image",
        id="image-with-repository",
    ),
    pytest.param({"target": "web", "image": {"tag": "bad tag"}}, "$.image.tag", id="image-bad-tag"),
    pytest.param({"target": "web", "image": {"digest": "sha256:1"}}, "$.image.digest", id="image-bad-digest"),
    pytest.param({"target": "web", "image": {"tag": "v1"}, "redeploy": "yes"}, "$.redeploy", id="redeploy-string"),
    pytest.param({"target": "web", "image": {"tag": "v1"}, "redeploy": 1}, "$.redeploy", id="redeploy-int"),
    pytest.param({"target": "web", "image": {"tag": "v1"}, "trigger": "ecr"}, "$.trigger", id="trigger-ecr"),
    pytest.param({"target": "web", "image": {"tag": "v1"}, "trigger": "verify"}, "$.trigger", id="trigger-verify"),
    pytest.param({"target": "web", "image": {"tag": "v1"}, "reason": ["x"]}, "$.reason", id="reason-list"),
    pytest.param({"target": "web", "image": {"tag": "v1"}, "service": {}}, "$", id="target-unknown-field"),
    # --- explicit request
    pytest.param({"service": {}, "redeploy": "true"}, "$.redeploy", id="explicit-redeploy-string"),
    # --- not an object at all / unrecognised
    pytest.param({"hello": "world"}, "$", id="unrecognised-object"),
    pytest.param({}, "$", id="empty-object"),
    pytest.param(42, "$", id="number"),
    pytest.param(None, "$", id="null"),
    pytest.param(True, "$", id="boolean"),
    pytest.param("not json", "$", id="invalid-json-string"),
    pytest.param("", "$", id="empty-string"),
    pytest.param(b"\xff\xfe", "$", id="invalid-utf8-bytes"),
    pytest.param('"just a string"', "$", id="json-string-literal"),
    pytest.param("42", "$", id="json-number-string"),
    pytest.param("null", "$", id="json-null-string"),
    pytest.param(json.dumps({"service": {}, "reason": "x" * MAX_REQUEST_BYTES}), "$", id="oversized-string-payload"),
    pytest.param({"service": {}, "reason": "x" * MAX_REQUEST_BYTES}, "$", id="oversized-object-payload"),
    pytest.param([_DEF_ITEM] * 1 + [{"name": "x" * MAX_REQUEST_BYTES}], "$", id="oversized-list-payload"),
]


@pytest.mark.parametrize(("payload", "path"), INVALID)
def test_invalid_input_is_rejected_with_json_path(payload: Any, path: str) -> None:
    with pytest.raises(InvalidDeploymentRequest) as exc:
        parse(payload)
    assert type(exc.value) is InvalidDeploymentRequest
    assert str(exc.value).startswith(f"{path}: "), str(exc.value)


def test_invalid_inputs_cover_at_least_twenty_cases() -> None:
    assert len(INVALID) >= 20
    assert len({p.id for p in INVALID}) == len(INVALID)


def test_rejection_messages_are_informative() -> None:
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$\.detail\.action-type: only PUSH deploys, got 'DELETE'"):
        parse(_ecr_event(action_type="DELETE"))
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$: request is \d+ bytes; the limit is 32768"):
        parse("x" * (MAX_REQUEST_BYTES + 1))
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$: not valid JSON"):
        parse("{")
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$: expected an object .*got int"):
        parse(42)
    with pytest.raises(InvalidDeploymentRequest, match=r"^\$: unknown field\(s\) for verify: image$"):
        parse({"mode": "verify", "target": "web", "image": {}})
    with pytest.raises(InvalidDeploymentRequest, match=r"list exactly one"):
        parse([_DEF_ITEM, dict(_DEF_ITEM, name="b")])
    assert issubclass(InvalidDeploymentRequest, DeploymentError)


def test_string_payload_just_under_the_limit_is_parsed() -> None:
    base = {"target": "web", "image": {"tag": "v1"}, "reason": ""}
    text = json.dumps(base, separators=(",", ":"))
    assert len(text.encode()) < MAX_REQUEST_BYTES
    assert parse(text).target == "web"


def test_string_payload_under_the_byte_limit_is_not_rejected_for_non_ascii() -> None:
    text = json.dumps({"service": {}, "health": {"expected_body": "é" * 12000}}, ensure_ascii=False)
    assert len(text.encode()) < MAX_REQUEST_BYTES
    intent = parse(text)
    assert intent.explicit is not None
    assert intent.explicit["health"]["expected_body"] == "é" * 12000


ROTATED = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-4f2a9d1e-Xy12Ab"


def _rotation(**detail_overrides: Any) -> dict[str, Any]:
    detail = {
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "RotationSucceeded",
        "additionalEventData": {"SecretId": ROTATED},
        "eventID": "3f1c9b2e",
        **detail_overrides,
    }
    return {"source": "aws.secretsmanager", "detail-type": "AWS Service Event via CloudTrail", "detail": detail}


def test_a_rotation_event_dispatches_refreshes_for_its_secret() -> None:
    intent = parse(_rotation())
    assert (intent.trigger, intent.mode, intent.secret, intent.event_id) == (
        "rotation",
        "dispatch",
        ROTATED,
        "3f1c9b2e",
    )


@pytest.mark.parametrize(
    "where", [{"serviceEventDetails": {"secretId": ROTATED}}, {"responseElements": {"arn": ROTATED}}]
)
def test_the_rotated_secret_is_found_where_other_event_shapes_put_it(where: dict[str, Any]) -> None:
    assert parse(_rotation(additionalEventData=None, **where)).secret == ROTATED


@pytest.mark.parametrize(
    ("event", "path"),
    [
        ({**_rotation(), "detail-type": "AWS API Call via CloudTrail"}, "$.detail-type"),
        (_rotation(eventName="RotationFailed"), "$.detail.eventName"),
        (_rotation(additionalEventData={"SecretId": "not-an-arn"}), "$.detail.additionalEventData.SecretId"),
        (_rotation(additionalEventData=None), "$.detail.additionalEventData.SecretId"),
    ],
)
def test_a_bad_rotation_event_is_rejected_by_name(event: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidDeploymentRequest, match=re.escape(path)):
        parse(event)


def test_a_refresh_names_its_target() -> None:
    intent = parse({"mode": "refresh", "target": "techchallenge", "trigger": "rotation", "secret": ROTATED})
    assert (intent.mode, intent.trigger, intent.target, intent.secret) == (
        "refresh",
        "rotation",
        "techchallenge",
        ROTATED,
    )
    assert parse({"mode": "refresh", "target": "t"}).trigger == "manual"


@pytest.mark.parametrize(
    "payload",
    [
        {"mode": "refresh"},
        {"mode": "refresh", "target": "t", "image": {"tag": "v1"}},
        {"mode": "refresh", "target": "t", "trigger": "ecr"},
        {"mode": "refresh", "target": "t", "secret": "mysecret"},
    ],
)
def test_a_bad_refresh_is_rejected(payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidDeploymentRequest):
        parse(payload)


@pytest.mark.parametrize("key", ["strategy", "approval"])
def test_a_target_deploy_may_lay_its_own_strategy_or_approval_over_the_entry_s(key: str) -> None:
    fields = {"timeout_minutes": 30} if key == "approval" else {"type": "CANARY"}
    assert parse({"target": "web", "image": {"tag": "v3"}, key: fields}).overrides == {key: fields}
    with pytest.raises(InvalidDeploymentRequest, match=rf"\$\.{key}: expected an object"):
        parse({"target": "web", "image": {"tag": "v3"}, key: "yes"})
