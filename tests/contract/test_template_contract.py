"""Contract: what must hold on AWS, checked offline (template, IAM, imports, settings)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stepdeploy.models import Defaults
from stepdeploy_local import template

ROOT = Path(__file__).resolve().parents[2]
SECRETISH = re.compile(r"(password|passwd|secret|token|apikey|api_key|credential|privatekey)", re.I)


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return template.load()


def _statements(tpl: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for logical, res in tpl["Resources"].items():
        for policy in res.get("Properties", {}).get("Policies", []) or []:
            if isinstance(policy, dict) and "Statement" in policy:
                out.extend((logical, st) for st in policy["Statement"])
        if res["Type"] == "AWS::IAM::Policy":
            out.extend((logical, st) for st in res["Properties"]["PolicyDocument"]["Statement"])
    return out


def test_no_wildcard_actions(tpl: dict[str, Any]) -> None:
    statements = _statements(tpl)
    assert statements
    for logical, st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        for action in actions:
            assert "*" not in action, f"{logical}: wildcard action {action}"
        assert st["Effect"] == "Allow"


def test_no_secrets_in_plain_parameters(tpl: dict[str, Any]) -> None:
    for path in [ROOT / "template.yaml", *sorted((ROOT / "stacks").glob("*.yaml"))]:
        doc = template.load(path)
        for name, param in doc.get("Parameters", {}).items():
            text = f"{name} {param.get('Description', '')}"
            assert not (SECRETISH.search(name) and param.get("Type") == "String" and not param.get("NoEcho")), (
                f"{path.name}: parameter {name} looks like a secret ({text})"
            )


def test_function_environment_provides_every_setting(tpl: dict[str, Any]) -> None:
    for fn in template.functions(tpl):
        env = set(fn.environment)
        assert {"DEPLOYMENTS_TABLE", "NOTIFICATION_TOPIC_ARN", "POWERTOOLS_SERVICE_NAME"} <= env, fn.logical_id
        assert {f"DEFAULT_{k.upper()}" for k in Defaults.__dataclass_fields__} <= env, fn.logical_id


def test_template_defaults_match_code_defaults(tpl: dict[str, Any]) -> None:
    params = template.parameter_defaults(tpl)
    env = template.functions(tpl)[0].environment
    for field, default in Defaults().__dict__.items():
        ref = env[f"DEFAULT_{field.upper()}"]["Ref"]
        assert params[ref] == str(default), f"{ref} default {params[ref]} != code default {default}"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_boto3_only_in_adapters() -> None:
    files = list((ROOT / "layers").rglob("*.py")) + list((ROOT / "functions").rglob("*.py"))
    assert files
    offenders = [
        str(p.relative_to(ROOT)) for p in files if {"boto3", "botocore"} & _imports(p) and "adapters" not in p.parts
    ]
    assert offenders == []


def test_handlers_import_without_side_effects() -> None:
    """Import every handler with an empty environment: no env reads, no clients at import time."""
    code = (
        "import importlib.util, sys\n"
        "from stepdeploy.adapters import clients\n"
        f"for p in {[str(p) for p in sorted((ROOT / 'functions').glob('*/app.py'))]!r}:\n"
        "    spec = importlib.util.spec_from_file_location('h_' + p.split('/')[-2], p)\n"
        "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "    assert callable(m.lambda_handler)\n"
        "assert clients.client.cache_info().currsize == 0\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT / "layers" / "common")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
