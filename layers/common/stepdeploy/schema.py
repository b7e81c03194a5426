"""JSON Schema of every input the deploy state machine accepts, generated from the input model.

``python -m stepdeploy.schema > docs/input-schema.json`` regenerates the documented schema; a test
keeps the file equal to this output and validates every sample in ``events/`` against it.
The workflow's own validation (``models``, ``triggers``) is stricter where a schema cannot express a
rule (e.g. tag or digest required, max_checks >= healthy_threshold); the patterns and ranges are shared.
"""

from __future__ import annotations

import json
from typing import Any

from . import models, triggers
from . import stack as app_stack

_DEFAULTS = models.Defaults()
_DEFAULT_OF = {
    "health.expected_status": _DEFAULTS.expected_status,
    "health.probe_timeout_seconds": _DEFAULTS.probe_timeout_seconds,
    "health.interval_seconds": _DEFAULTS.interval_seconds,
    "health.healthy_threshold": _DEFAULTS.healthy_threshold,
    "health.unhealthy_threshold": _DEFAULTS.unhealthy_threshold,
    "health.max_checks": _DEFAULTS.max_checks,
    "health.max_latency_ms": _DEFAULTS.max_latency_ms,
    "rollout.timeout_seconds": _DEFAULTS.rollout_timeout_seconds,
    "rollout.poll_seconds": _DEFAULTS.rollout_poll_seconds,
    "stack.timeout_seconds": _DEFAULTS.stack_timeout_seconds,
    "stack.poll_seconds": _DEFAULTS.stack_poll_seconds,
    "strategy.bake_minutes": models.StrategySpec.bake_minutes,
    "strategy.canary_bake_minutes": models.StrategySpec.canary_bake_minutes,
    "strategy.step_bake_minutes": models.StrategySpec.step_bake_minutes,
    "strategy.hook_timeout_minutes": models.StrategySpec.hook_timeout_minutes,
    "approval.timeout_minutes": models.ApprovalSpec.timeout_minutes,
}


def _approval() -> dict[str, Any]:
    return _obj(
        {
            **_ints("approval"),
            "on_timeout": {"enum": list(models.APPROVAL_TIMEOUT_ACTIONS), "default": models.ApprovalSpec.on_timeout},
        },
        [],
        "a person approves or rejects the release (ROLLING: before UpdateService; BLUE_GREEN, CANARY, LINEAR: at "
        "POST_TEST_TRAFFIC_SHIFT, green verified, 0 % production); with a strategy, hook_timeout_minutes must exceed "
        "the approval timeout plus the gate window",
    )


def _strategy() -> dict[str, Any]:
    percents = {
        key.split(".", 1)[1]: {
            "type": "number",
            "minimum": low,
            "maximum": high,
            "multipleOf": 0.1,
            "default": getattr(models.StrategySpec, key.split(".", 1)[1]),
        }
        for key, (low, high) in models.PERCENT_RANGES.items()
    }
    where = {
        "test_url": _str(models._URL, "the gate's URL through the test listener (required unless ROLLING)"),
        "test_header_secret_arn": _str(
            models._SECRET_ARN, "secret holding the token the test listener requires in header X-Stepdeploy-Test"
        ),
    }
    return _obj(
        {"type": {"enum": list(models.STRATEGIES)}, **_ints("strategy"), **percents, **where},
        ["type"],
        "how ECS moves traffic to the new revision; absent: the service's own deployment configuration",
    )


def _str(pattern: Any, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "pattern": pattern.pattern}
    if description:
        out["description"] = description
    return out


_REASON: dict[str, Any] = {
    "type": "string",
    "maxLength": models.MAX_REASON,
    "pattern": models._ONE_LINE.pattern,
    "description": "one line: no newline (a trailing one included) or other control character",
}


def _ints(section: str) -> dict[str, Any]:
    return {
        key.split(".", 1)[1]: {"type": "integer", "minimum": low, "maximum": high, "default": _DEFAULT_OF[key]}
        for key, (low, high) in models.INT_RANGES.items()
        if key.startswith(section + ".")
    }


def _obj(properties: dict[str, Any], required: list[str], description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if description:
        out["description"] = description
    return out


def input_schema() -> dict[str, Any]:
    image_by_ref = _obj(
        {"tag": _str(models._TAG), "digest": _str(models._DIGEST)},
        [],
        "tag or digest (the repository comes from the registry); resolved to a digest",
    )
    image = _obj(
        {"repository": _str(models._REPOSITORY), "tag": _str(models._TAG), "digest": _str(models._DIGEST)},
        ["repository"],
    )
    gates: dict[str, Any] = {
        "expected_body": {
            "type": ["string", "null"],
            "maxLength": 4096,
            "pattern": models._NO_TRAILING_NEWLINE.pattern,
            "default": _DEFAULTS.expected_body,
        },
        "body_match": {"enum": list(models.BODY_MATCH_MODES), "default": _DEFAULTS.body_match},
        "alarm_names": {"type": "array", "items": _str(models._ALARM), "maxItems": 100},
        **_ints("health"),
    }
    common: dict[str, Any] = {
        "image": image,
        "rollout": _obj(_ints("rollout"), []),
        "trigger": {"enum": list(models.TRIGGERS), "default": "manual"},
        "reason": _REASON,
        "redeploy": {"type": "boolean", "default": False},
        "plan": {
            "type": "boolean",
            "default": False,
            "description": "describe the change set and the deploy plan; change nothing",
        },
    }
    explicit = _obj(
        {
            "service": _obj(
                {
                    "cluster": _str(models._ARN_OR_NAME),
                    "service": _str(models._ARN_OR_NAME),
                    "container": _str(models._NAME, "required when the task has several containers"),
                },
                ["cluster", "service"],
            ),
            "health": _obj(
                {
                    "url": _str(models._URL, "health endpoint through the load balancer"),
                    "target_group_arn": _str(models._TARGET_GROUP_ARN),
                    **gates,
                },
                ["url"],
            ),
            "strategy": _strategy(),
            "approval": _approval(),
            **common,
        },
        ["service", "image", "health"],
        "An explicit request for an existing service: everything given in the input.",
    )
    with_stack = _obj(
        {
            "stack": _obj(
                {
                    "name": _str(models._STACK, "application stack (CloudFormation name: APP_STACK_PREFIX + name)"),
                    "parameters": {
                        "type": "object",
                        "description": "stacks/app.yaml parameters (ContainerImage and DeferDatabaseDeletionProtection "
                        "are set by stepdeploy); "
                        "unspecified ones keep their current value",
                        "propertyNames": {
                            "enum": sorted(
                                k for k in app_stack.parameter_spec() if k not in app_stack.RESERVED_PARAMETERS
                            )
                        },
                        "additionalProperties": {"type": ["string", "number", "array"]},
                    },
                    "init_command": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "maxItems": 64,
                        "default": _DEFAULTS.init_command.split(),
                        "description": "one-off database initialisation, run once per stack ([] = none); "
                        "against a database the deployment did not create only with allow_destructive_init",
                    },
                    "allow_destructive_init": {
                        "type": "boolean",
                        "default": False,
                        "description": "run init_command against an existing database (it may hold data: "
                        "updatedb -s drops and re-seeds its table); without it that raises DatabaseInitRefused",
                    },
                    **_ints("stack"),
                },
                ["name"],
            ),
            "health": _obj(gates, [], "url, target group and alarms come from the stack outputs"),
            **common,
        },
        ["stack", "image"],
        "A request that provisions or updates the application stack, then deploys the image to its service.",
    )
    by_target = _obj(
        {
            "target": _str(triggers._TARGET, "registry entry name"),
            "image": image_by_ref,
            "redeploy": {
                "type": "boolean",
                "default": False,
                "description": "deploy even if this digest was deployed before (known-good redeploy)",
            },
            "reason": _REASON,
            "trigger": {"enum": ["manual", "codepipeline"], "default": "manual"},
            "plan": {"type": "boolean", "default": False},
            "strategy": {
                **{k: v for k, v in _strategy().items() if k != "required"},
                "description": "fields laid over the registry entry's strategy (e.g. type, canary_percent)",
            },
            "approval": {**_approval(), "description": "fields laid over the registry entry's approval"},
        },
        ["target", "image"],
        "Deploy an image to a registered target (manual, or a CodePipeline Literal input).",
    )
    verify = _obj(
        {
            "mode": {"const": "verify"},
            "target": _str(triggers._TARGET),
            "reason": _REASON,
            "trigger": {"const": "verify"},
        },
        ["mode", "target"],
        "Run the health gates on what is deployed; roll back to the last verified revision if they fail.",
    )
    refresh = _obj(
        {
            "mode": {"const": "refresh"},
            "target": _str(triggers._TARGET),
            "reason": _REASON,
            "trigger": {"enum": ["manual", "rotation"], "default": "manual"},
            "secret": _str(triggers._SECRET_ARN, "the rotated secret (set by a rotation dispatch)"),
        },
        ["mode", "target"],
        "Start new tasks of the revision that runs (same image, same task definition; e.g. after a secret "
        "rotation). Runs the health gates; a failure ends FAILED (nothing to roll back to).",
    )
    rotation_event = {
        "type": "object",
        "description": "Secrets Manager RotationSucceeded (CloudTrail service event), as EventBridge delivers "
        "it: starts one refresh per registered service that uses the secret",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": {"const": triggers.ROTATION_SOURCE},
            "detail-type": {"const": triggers.ROTATION_DETAIL_TYPE},
            "time": {"type": "string"},
            "detail": {
                "type": "object",
                "required": ["eventName"],
                "properties": {"eventName": {"const": triggers.ROTATION_EVENT_NAME}},
            },
        },
    }
    ecr_event = {
        "type": "object",
        "description": "ECR push, as EventBridge delivers it",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": {"const": "aws.ecr"},
            "detail-type": {"const": "ECR Image Action"},
            "time": {"type": "string"},
            "detail": {
                "type": "object",
                "required": ["action-type", "result", "repository-name", "image-digest"],
                "properties": {
                    "action-type": {"const": "PUSH"},
                    "result": {"const": "SUCCESS"},
                    "repository-name": _str(models._REPOSITORY),
                    "image-digest": _str(models._DIGEST),
                    "image-tag": _str(models._TAG),
                },
            },
        },
    }
    image_definitions = {
        "type": "array",
        "minItems": 1,
        "maxItems": 1,
        "description": "CodePipeline FilePath input: imagedefinitions.json (one container)",
        "items": _obj(
            {"name": {"type": "string", "minLength": 1}, "imageUri": {"type": "string"}}, ["name", "imageUri"]
        ),
    }
    image_detail = _obj({"ImageURI": {"type": "string"}}, ["ImageURI"], "CodePipeline FilePath input: imageDetail.json")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stepdeploy.dev/schemas/deploy-input.json",
        "title": "stepdeploy deploy state machine input",
        "description": f"At most {models.MAX_REQUEST_BYTES} bytes. One of the shapes below.",
        "oneOf": [
            explicit,
            with_stack,
            by_target,
            verify,
            refresh,
            ecr_event,
            rotation_event,
            image_definitions,
            image_detail,
        ],
    }


if __name__ == "__main__":
    print(json.dumps(input_schema(), indent=2))
