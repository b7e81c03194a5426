"""The documented input schema is generated from the model, and every sample input satisfies it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from stepdeploy import schema, triggers
from stepdeploy.models import Defaults, DeploymentRequest
from stepdeploy.registry import RegistryEntry

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "events").glob("*.json"))


def test_documented_schema_is_the_generated_one() -> None:
    documented = json.loads((ROOT / "docs" / "input-schema.json").read_text())
    assert documented == schema.input_schema(), "run: python -m stepdeploy.schema > docs/input-schema.json"
    jsonschema.Draft202012Validator.check_schema(documented)


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_input_is_valid_and_accepted(sample: Path) -> None:
    payload = json.loads(sample.read_text())
    jsonschema.validate(payload, schema.input_schema())
    intent = triggers.parse(payload)
    if intent.explicit is not None:
        DeploymentRequest.from_input(intent.explicit, Defaults())


@pytest.mark.parametrize(
    "bad",
    [
        {"target": "x", "image": {"tag": "v1"}, "colour": "blue"},
        {
            "service": {"cluster": "c", "service": "s"},
            "image": {"repository": "r", "tag": "v1"},
            "health": {"url": "http://h/", "interval_seconds": 1},
        },
        [{"name": "a", "imageUri": "r/x:1"}, {"name": "b", "imageUri": "r/y:1"}],
        {"mode": "verify"},
        {"stack": {"name": "t", "parameters": {"ContainerImage": "x"}}, "image": {"repository": "r", "tag": "v1"}},
        {"stack": {"name": "t"}, "service": {"cluster": "c", "service": "s"}, "image": {"repository": "r", "tag": "1"}},
        {"stack": {"name": "t"}, "image": {"repository": "r", "tag": "v1"}, "health": {"url": "http://h/"}},
    ],
)
def test_the_schema_rejects_what_the_workflow_rejects(bad: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema.input_schema())


def test_sample_registry_entry_builds_a_valid_request() -> None:
    entry = RegistryEntry.from_item(json.loads((ROOT / "events" / "registry" / "techchallenge-web.json").read_text()))
    assert entry.matches("v2.1") and not entry.matches("latest") and entry.matches(None)
    request = entry.build_request({"tag": "v2"}, "ecr", None, Defaults())
    assert request.target.service == "web" and request.image.repository == "techchallenge-web"


def test_sample_stack_registry_entry_builds_a_stack_request() -> None:
    item = json.loads((ROOT / "events" / "registry" / "techchallenge-stack.json").read_text())
    request = RegistryEntry.from_item(item).build_request({"tag": "v2"}, "ecr", None, Defaults())
    assert request.stack is not None and request.stack.parameters == {"DesiredCount": "2"}
    assert request.service is None and request.lock_key == "stack/techchallenge"
