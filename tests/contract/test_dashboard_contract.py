"""Every metric on the CloudWatch dashboard (template.yaml DeploymentsDashboard) is one the functions emit:
same namespace, name and dimensions (names and values), including the ``service`` dimension Powertools adds.
The emitted metrics are found statically: every ``observability.count``/``observability.seconds`` call in the
shared layer, its literal name and keyword dimensions; dimension values come from the code's own vocabularies."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from stepdeploy import observability, workflow
from stepdeploy_local import template

LAYER = Path(__file__).resolve().parents[2] / "layers" / "common" / "stepdeploy"
EMITTERS = {"count", "seconds"}
#: what each dimension an emitting call passes by variable can be
VALUES = {
    "outcome": set(workflow.OUTCOMES) | set(workflow.ENDED_OUTCOMES.values()),
    "reason": set(workflow.SKIP_REASONS),
}


def emitted_calls() -> dict[str, set[tuple[str, ...]]]:
    """Metric name -> the sets of dimension names it is emitted with (besides the default one)."""
    found: dict[str, set[tuple[str, ...]]] = {}
    for path in LAYER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in EMITTERS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "observability"
            ):
                continue
            name = node.args[0]
            assert isinstance(name, ast.Constant) and isinstance(name.value, str), f"{path}: a metric name literal"
            found.setdefault(name.value, set()).add(tuple(sorted(k.arg for k in node.keywords if k.arg)))
    return found


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return template.load()


@pytest.fixture(scope="module")
def dashboard_metrics(tpl: dict[str, Any]) -> list[list[Any]]:
    body = tpl["Resources"]["DeploymentsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(re.findall(r"\$\{([^}]*)\}", body)) == {"AWS::Region"}
    widgets = json.loads(body.replace("${AWS::Region}", "us-east-1"))["widgets"]
    return [row for w in widgets for row in w["properties"].get("metrics", [])]


def default_dimensions(tpl: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> dict[str, str]:
    """The dimensions Powertools adds to every metric, with the functions' environment (template Globals)."""
    env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", env["POWERTOOLS_SERVICE_NAME"])
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", env["POWERTOOLS_METRICS_NAMESPACE"])
    capsys.readouterr()
    observability.count("ContractProbe", probe="x")
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [dimensions] = emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == observability.NAMESPACE
    return {d: emf[d] for d in dimensions if d != "probe"}


def test_the_dashboard_shows_only_emitted_metrics(
    tpl: dict[str, Any], dashboard_metrics: list[list[Any]], capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    emitted, defaults = emitted_calls(), default_dimensions(tpl, capsys, monkeypatch)
    assert defaults == {"service": "stepdeploy"}
    assert dashboard_metrics
    for row in dashboard_metrics:
        fields = [f for f in row if not isinstance(f, dict)]
        namespace, name, pairs = fields[0], fields[1], fields[2:]
        assert namespace == observability.NAMESPACE, row
        assert name in emitted, f"{name} is on the dashboard but no function emits it"
        dims = dict(zip(pairs[::2], pairs[1::2], strict=True))
        assert {k: dims.pop(k, None) for k in defaults} == defaults, row
        assert tuple(sorted(dims)) in emitted[name], f"{name} is never emitted with dimensions {sorted(dims)}"
        for key, value in dims.items():
            assert value in VALUES[key], f"{name}: {key}={value} is never emitted"


def test_the_dashboard_covers_outcomes_durations_rollbacks_and_skips(dashboard_metrics: list[list[Any]]) -> None:
    names = {row[1] for row in dashboard_metrics}
    assert {"DeploymentOutcome", "TimeToDeploy", "TimeToDetect", "TimeToRestore", "DeploymentSkipped"} <= names
    outcomes = {row[3] for row in dashboard_metrics if row[1] == "DeploymentOutcome"}
    assert outcomes == VALUES["outcome"]
    reasons = {row[3] for row in dashboard_metrics if row[1] == "DeploymentSkipped"}
    assert reasons == VALUES["reason"]
