"""Turn whatever started the execution into one ``Intent``: pure parsing, no I/O.

Accepted inputs (shape decides; ``docs/input-schema.json`` documents them):

- an ECR push event as EventBridge delivers it (``source: aws.ecr``, ``detail-type: ECR Image Action``);
- CodePipeline Step Functions invoke action, ``InputType: FilePath``: the content of
  ``imagedefinitions.json`` (a list of ``{name, imageUri}``) or ``imageDetail.json`` (``{ImageURI}``);
- a registry deploy: ``{"target": "<registry name>", "image": {"tag"|"digest"}, ...}`` (manual, or a
  CodePipeline ``Literal`` input);
- verify-after-deploy: ``{"mode": "verify", "target": "<registry name>"}``;
- a Secrets Manager ``RotationSucceeded`` event (``source: aws.secretsmanager``, ``detail-type: AWS Service
  Event via CloudTrail``): *dispatch* one refresh execution per registered service that uses the secret;
- refresh: ``{"mode": "refresh", "target": "<registry name>"}``: new tasks of the revision that runs (same
  image, same task definition), e.g. to pick up a rotated secret;
- an explicit request with ``service``/``image``/``health`` (see ``DeploymentRequest.from_input``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .models import _DIGEST, _REPOSITORY, _TAG, _fail, _flag, check_reason, load_payload


def _body(pattern: re.Pattern[str]) -> str:
    """A ``^...$`` pattern without its anchors, to compose it into another pattern."""
    return pattern.pattern.removeprefix("^").removesuffix("$")


# repository, tag and digest are the same rules as in an explicit request (models)
_IMAGE_URI = re.compile(
    rf"^(?P<registry>[a-z0-9.\-]+(?::\d+)?)/(?P<repository>{_body(_REPOSITORY)})"
    rf"(?::(?P<tag>{_body(_TAG)}))?(?:@(?P<digest>{_body(_DIGEST)}))?$"
)
_TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
# arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
_SECRET_ARN = re.compile(r"^arn:aws[a-z\-]*:secretsmanager:[a-z0-9\-]+:\d{12}:secret:[A-Za-z0-9/_+=.@!\-]{1,512}$")
ROTATION_SOURCE = "aws.secretsmanager"
ROTATION_DETAIL_TYPE = "AWS Service Event via CloudTrail"
ROTATION_EVENT_NAME = "RotationSucceeded"


@dataclass(frozen=True)
class Intent:
    """What the trigger asks for, before the registry and AWS are consulted."""

    trigger: str  # manual | ecr | codepipeline | verify | rotation
    mode: str = "deploy"  # deploy | verify | refresh | dispatch (a rotation event: start refreshes)
    target: str | None = None  # registry name
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    container: str | None = None
    event_time: str | None = None
    redeploy: bool = False
    reason: str | None = None
    plan: bool = False  # describe what would change, change nothing
    #: a {target, image} request's own strategy / approval fields, laid over the registry entry's
    overrides: Mapping[str, Mapping[str, Any]] | None = None
    explicit: Mapping[str, Any] | None = None  # a full DeploymentRequest input
    secret: str | None = None  # the rotated secret (ARN) a refresh or dispatch is for
    event_id: str | None = None  # the EventBridge event id (names the refresh executions: redelivery-safe)
    registry: tuple[str, str] | None = None  # (field, registry host) of an image given by URI


def _text(value: Mapping[str, Any], key: str, path: str, pattern: re.Pattern[str], required: bool = True) -> str | None:
    raw = value.get(key)
    if raw is None:
        if required:
            raise _fail(f"{path}.{key}", "is required")
        return None
    if not isinstance(raw, str) or not pattern.fullmatch(raw):
        raise _fail(f"{path}.{key}", f"invalid value {str(raw)[:80]!r}")
    return raw


def parse_image_uri(uri: Any, path: str) -> tuple[str, str | None, str | None]:
    """``<registry>/<repo>[:tag][@digest]`` -> (repository, tag, digest)."""
    if not isinstance(uri, str) or len(uri) > 1024:
        raise _fail(path, "expected an image URI string")
    match = _IMAGE_URI.fullmatch(uri)
    if match is None or not (match["tag"] or match["digest"]):
        raise _fail(path, f"not an image URI with a tag or digest: {uri[:120]!r}")
    return match["repository"], match["tag"], match["digest"]


def image_registry(uri: str) -> str:
    """The registry host of an image URI that :func:`parse_image_uri` accepted."""
    return uri.split("/", 1)[0]


def parse(payload: Any) -> Intent:
    """Classify and validate the execution input. Raises InvalidDeploymentRequest."""
    payload = load_payload(payload)
    if isinstance(payload, list):
        return _image_definitions(payload)
    if not isinstance(payload, Mapping):
        raise _fail("$", f"expected an object or an imagedefinitions.json list, got {type(payload).__name__}")
    if payload.get("source") == ROTATION_SOURCE:
        return _rotation_event(payload)
    if "detail-type" in payload or payload.get("source") == "aws.ecr":
        return _ecr_event(payload)
    if "ImageURI" in payload:
        if set(payload) - {"ImageURI"}:
            raise _fail("$", "imageDetail.json has only ImageURI")
        repository, tag, digest = parse_image_uri(payload["ImageURI"], "$.ImageURI")
        registry = ("$.ImageURI", image_registry(payload["ImageURI"]))
        return Intent(trigger="codepipeline", repository=repository, tag=tag, digest=digest, registry=registry)
    if payload.get("mode") == "verify":
        unknown = set(payload) - {"mode", "target", "reason", "trigger"}
        if unknown:
            raise _fail("$", f"unknown field(s) for verify: {', '.join(sorted(unknown))}")
        if payload.get("trigger", "verify") != "verify":
            raise _fail("$.trigger", "must be verify (or omitted) in verify mode")
        return Intent(
            trigger="verify", mode="verify", target=_text(payload, "target", "$", _TARGET), reason=_reason(payload)
        )
    if payload.get("mode") == "refresh":
        return _refresh(payload)
    if "mode" in payload:
        raise _fail("$.mode", "must be 'verify' or 'refresh' (omit it to deploy)")
    if "target" in payload:
        return _registry_deploy(payload)
    if "service" in payload or "stack" in payload:
        redeploy = _flag(payload, "redeploy", "$")
        explicit = {k: v for k, v in payload.items() if k != "redeploy"}
        trigger = explicit.get("trigger") or "manual"
        return Intent(trigger=str(trigger), explicit=explicit, redeploy=redeploy)
    raise _fail(
        "$",
        "unrecognised input: expected an ECR push event, a Secrets Manager RotationSucceeded event, "
        "imagedefinitions.json, imageDetail.json, {target, image}, {mode: verify|refresh, target} or an explicit "
        "{service|stack, image, health} request",
    )


def _reason(payload: Mapping[str, Any]) -> str | None:
    return check_reason(payload.get("reason"))


def _refresh(payload: Mapping[str, Any]) -> Intent:
    unknown = set(payload) - {"mode", "target", "reason", "trigger", "secret"}
    if unknown:
        raise _fail("$", f"unknown field(s) for refresh: {', '.join(sorted(unknown))}")
    trigger = payload.get("trigger", "manual")
    if trigger not in ("manual", "rotation"):
        raise _fail("$.trigger", "must be manual or rotation in refresh mode")
    return Intent(
        trigger=trigger,
        mode="refresh",
        target=_text(payload, "target", "$", _TARGET),
        reason=_reason(payload),
        secret=_text(payload, "secret", "$", _SECRET_ARN, required=False),
    )


def rotated_secret(detail: Mapping[str, Any]) -> Any:
    """The secret of a rotation event: CloudTrail service events name it in ``additionalEventData.SecretId``
    (AWS's documented sample); ``serviceEventDetails.secretId`` and ``responseElements.arn`` are accepted too."""
    for section, key in (
        ("additionalEventData", "SecretId"),
        ("serviceEventDetails", "secretId"),
        ("responseElements", "arn"),
        ("responseElements", "aRN"),
    ):
        part = detail.get(section)
        if isinstance(part, Mapping) and part.get(key) is not None:
            return part[key]
    return None


def _rotation_event(event: Mapping[str, Any]) -> Intent:
    if event.get("detail-type") != ROTATION_DETAIL_TYPE:
        raise _fail("$.detail-type", f"expected {ROTATION_DETAIL_TYPE!r}, got {str(event.get('detail-type'))[:60]!r}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise _fail("$.detail", "expected an object")
    if detail.get("eventName") != ROTATION_EVENT_NAME:
        raise _fail(
            "$.detail.eventName", f"only {ROTATION_EVENT_NAME} refreshes, got {str(detail.get('eventName'))[:40]!r}"
        )
    secret = rotated_secret(detail)
    if not isinstance(secret, str) or not _SECRET_ARN.fullmatch(secret):
        raise _fail("$.detail.additionalEventData.SecretId", f"expected a secret ARN, got {str(secret)[:120]!r}")
    # CloudTrail's eventID names the rotation itself (an EventBridge redelivery or a repeated delivery of
    # the same CloudTrail event carries it again); EventBridge's own id is the fallback
    when, event_id = event.get("time"), detail.get("eventID", event.get("id"))
    if when is not None and not isinstance(when, str):
        raise _fail("$.time", "expected an ISO-8601 string")
    if event_id is not None and not isinstance(event_id, str):
        raise _fail("$.detail.eventID", "expected a string")
    return Intent(trigger="rotation", mode="dispatch", secret=secret, event_time=when, event_id=event_id)


#: request fields a {target, image} request may lay over its registry entry's
OVERRIDABLE = ("strategy", "approval")


def _registry_deploy(payload: Mapping[str, Any]) -> Intent:
    allowed = {"target", "image", "redeploy", "reason", "trigger", "plan", *OVERRIDABLE}
    unknown = set(payload) - allowed
    if unknown:
        raise _fail("$", f"unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
    overrides = {key: payload[key] for key in OVERRIDABLE if key in payload}
    for key, value in overrides.items():
        if not isinstance(value, Mapping):
            raise _fail(f"$.{key}", "expected an object (its fields replace the registry entry's)")
    target = _text(payload, "target", "$", _TARGET)
    image = payload.get("image")
    if not isinstance(image, Mapping):
        raise _fail("$.image", "expected an object with tag or digest")
    if set(image) - {"tag", "digest"}:
        raise _fail("$.image", "only tag and digest (the repository comes from the registry)")
    tag = _text(image, "tag", "$.image", _TAG, required=False)
    digest = _text(image, "digest", "$.image", _DIGEST, required=False)
    if tag is None and digest is None:
        raise _fail("$.image", "give a tag or a digest (sha256:...)")
    redeploy = _flag(payload, "redeploy", "$")
    trigger = payload.get("trigger", "manual")
    if trigger not in ("manual", "codepipeline"):
        raise _fail("$.trigger", "must be manual or codepipeline")
    plan = _flag(payload, "plan", "$")
    return Intent(
        trigger=trigger,
        target=target,
        tag=tag,
        digest=digest,
        redeploy=redeploy,
        reason=_reason(payload),
        plan=plan,
        overrides=overrides or None,
    )


def _ecr_event(event: Mapping[str, Any]) -> Intent:
    if event.get("source") != "aws.ecr":
        raise _fail("$.source", f"expected aws.ecr, got {str(event.get('source'))[:60]!r}")
    if event.get("detail-type") != "ECR Image Action":
        raise _fail("$.detail-type", f"expected 'ECR Image Action', got {str(event.get('detail-type'))[:60]!r}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise _fail("$.detail", "expected an object")
    if detail.get("action-type") != "PUSH":
        raise _fail("$.detail.action-type", f"only PUSH deploys, got {str(detail.get('action-type'))[:20]!r}")
    if detail.get("result") != "SUCCESS":
        raise _fail("$.detail.result", f"only SUCCESS deploys, got {str(detail.get('result'))[:20]!r}")
    repository = _text(detail, "repository-name", "$.detail", _REPOSITORY)
    digest = _text(detail, "image-digest", "$.detail", _DIGEST)
    tag = _text(detail, "image-tag", "$.detail", _TAG, required=False)
    when = event.get("time")
    if when is not None and not isinstance(when, str):
        raise _fail("$.time", "expected an ISO-8601 string")
    return Intent(trigger="ecr", repository=repository, tag=tag, digest=digest, event_time=when)


def _image_definitions(items: list[Any]) -> Intent:
    if not items:
        raise _fail("$", "imagedefinitions.json is empty")
    if len(items) > 10:
        raise _fail("$", "imagedefinitions.json lists more than 10 containers")
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) != {"name", "imageUri"}:
            raise _fail(f"$[{i}]", 'expected {"name", "imageUri"}')
        if not isinstance(item["name"], str) or not item["name"]:
            raise _fail(f"$[{i}].name", "expected a container name")
        parsed.append((item["name"], *parse_image_uri(item["imageUri"], f"$[{i}].imageUri")))
    if len(parsed) != 1:
        raise _fail("$", "stepdeploy deploys one container image per execution; list exactly one")
    container, repository, tag, digest = parsed[0]
    registry = ("$[0].imageUri", image_registry(items[0]["imageUri"]))
    return Intent(
        trigger="codepipeline", repository=repository, tag=tag, digest=digest, container=container, registry=registry
    )
