"""Contract: what must hold on AWS, checked offline (template, IAM, imports, settings)."""

from __future__ import annotations

import ast
import json
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


# ------------------------------------------------------------------ application stack: deployment strategies
APP_STACK = ROOT / "layers/common/stepdeploy/stacks/app.yaml"


@pytest.fixture(scope="module")
def app() -> dict[str, Any]:
    return template.load(APP_STACK)


def _if(value: Any) -> tuple[str, Any, Any]:
    """(condition, value when true, value when false) of an Fn::If."""
    condition, when_true, when_false = value["Fn::If"]
    return condition, when_true, when_false


NO_VALUE = {"Ref": "AWS::NoValue"}


def test_the_stack_defaults_to_blue_green(app: dict[str, Any]) -> None:
    """A stack stepdeploy provisions deploys BLUE_GREEN unless asked otherwise (EnsureStack answers the hooks of
    the service deployments a stack update starts: tests/workflow/test_stack_blue_green.py)."""
    strategy = app["Parameters"]["DeploymentStrategy"]
    assert (strategy["Default"], strategy["AllowedValues"]) == (
        "BLUE_GREEN",
        ["ROLLING", "BLUE_GREEN", "CANARY", "LINEAR"],
    )
    assert app["Conditions"]["Rolling"] == {"Fn::Equals": [{"Ref": "DeploymentStrategy"}, "ROLLING"]}
    config = app["Resources"]["Service"]["Properties"]["DeploymentConfiguration"]
    assert config["Strategy"] == {"Ref": "DeploymentStrategy"}
    assert config["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}


def test_strategy_specific_blocks_exist_only_for_their_strategy(app: dict[str, Any]) -> None:
    config = app["Resources"]["Service"]["Properties"]["DeploymentConfiguration"]
    conditions = app["Conditions"]
    for block, condition, strategy in (
        ("CanaryConfiguration", "Canary", "CANARY"),
        ("LinearConfiguration", "Linear", "LINEAR"),
    ):
        name, when_true, when_false = _if(config[block])
        assert (name, when_false) == (condition, NO_VALUE) and when_true
        assert conditions[condition] == {"Fn::Equals": [{"Ref": "DeploymentStrategy"}, strategy]}
    for value in (
        config["BakeTimeInMinutes"],
        config["LifecycleHooks"],
        app["Resources"]["Service"]["Properties"]["LoadBalancers"][0]["AdvancedConfiguration"],
    ):
        name, when_true, when_false = _if(value)
        assert (name, when_true) == ("Rolling", NO_VALUE) and when_false  # non-rolling only


def test_the_pause_hooks_roll_back_when_nobody_answers(app: dict[str, Any]) -> None:
    _, _, hooks = _if(app["Resources"]["Service"]["Properties"]["DeploymentConfiguration"]["LifecycleHooks"])
    assert [h["LifecycleStages"] for h in hooks] == [["POST_TEST_TRAFFIC_SHIFT"], ["POST_PRODUCTION_TRAFFIC_SHIFT"]]
    for hook in hooks:
        assert hook["TargetType"] == "PAUSE" and "HookTargetArn" not in hook
        assert hook["TimeoutConfiguration"] == {
            "TimeoutInMinutes": {"Ref": "LifecycleHookTimeoutMinutes"},
            "Action": "ROLLBACK",
        }


def test_the_test_listener_is_not_open_without_the_header(app: dict[str, Any]) -> None:
    resources = app["Resources"]
    listener = resources["TestListener"]["Properties"]
    assert listener["Port"] == {"Ref": "TestListenerPort"}
    [default] = listener["DefaultActions"]
    assert (default["Type"], default["FixedResponseConfig"]["StatusCode"]) == ("fixed-response", "403")
    rules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"]
    on_test = [r for r in rules if r["ListenerArn"] == {"Ref": "TestListener"}]
    assert len(on_test) == 1  # the only way past the 403
    [condition] = on_test[0]["Conditions"]
    secret = resources["TestTrafficSecret"]["Properties"]["GenerateSecretString"]
    header = json.loads(secret["SecretStringTemplate"])["header"]
    assert condition["Field"] == "http-header" and condition["HttpHeaderConfig"]["HttpHeaderName"] == header
    assert condition["HttpHeaderConfig"]["Values"] == [
        {"Fn::Sub": "{{resolve:secretsmanager:${TestTrafficSecret}:SecretString:" + secret["GenerateStringKey"] + "}}"}
    ]
    # no wildcards (* ?) in the token, long enough although ALB compares header values case-insensitively
    assert secret["ExcludePunctuation"] is True and secret["PasswordLength"] >= 32


def test_both_rules_weigh_the_two_target_groups_and_ecs_may_move_them(app: dict[str, Any]) -> None:
    resources = app["Resources"]
    expected = [
        {"TargetGroupArn": {"Ref": "TargetGroup"}, "Weight": 100},
        {"TargetGroupArn": {"Ref": "AlternateTargetGroup"}, "Weight": 0},
    ]
    for rule in ("ProductionListenerRule", "TestListenerRule"):
        [action] = resources[rule]["Properties"]["Actions"]
        assert (action["Type"], action["ForwardConfig"]["TargetGroups"]) == ("forward", expected)
    blue, green = (dict(resources[n]["Properties"]) for n in ("TargetGroup", "AlternateTargetGroup"))
    assert blue == green  # the same health check
    _, _, advanced = _if(resources["Service"]["Properties"]["LoadBalancers"][0]["AdvancedConfiguration"])
    assert advanced == {
        "AlternateTargetGroupArn": {"Ref": "AlternateTargetGroup"},
        "ProductionListenerRule": {"Ref": "ProductionListenerRule"},
        "TestListenerRule": {"Ref": "TestListenerRule"},
        "RoleArn": {"Fn::GetAtt": ["LoadBalancerInfrastructureRole", "Arn"]},
    }
    role = resources["LoadBalancerInfrastructureRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecs.amazonaws.com"}
    assert role["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"}
    ]


def test_the_load_balancer_admits_the_test_port_only_from_the_test_cidr(app: dict[str, Any]) -> None:
    ingress = app["Resources"]["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    test = [r for r in ingress if r["FromPort"] == {"Ref": "TestListenerPort"}]
    assert [(r["ToPort"], r["CidrIp"]) for r in test] == [({"Ref": "TestListenerPort"}, {"Ref": "TestTrafficCidr"})]
    assert sorted(json.dumps(r["FromPort"]) for r in ingress) == sorted(["80", "443", json.dumps(test[0]["FromPort"])])


def test_the_product_outputs_exist(app: dict[str, Any]) -> None:
    needed = {
        "DeploymentStrategy",
        "TestUrl",
        "TestTrafficSecretArn",
        "AlternateTargetGroupArn",
        "ProductionListenerRuleArn",
        "TestListenerRuleArn",
    }
    assert needed <= set(app["Outputs"])
