"""samconfig.toml agrees with the Makefile, the template and the stepdeploy command: one region, the
documented environments, and the stack name the command and `make serve` look for."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from stepdeploy_cli.aws import FALLBACK_STACK, default_stack
from stepdeploy_local import template
from stepdeploy_local.__main__ import samconfig_stack

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
ENVIRONMENTS = ("default", "dev", "prod")


def _overrides(env: str) -> dict[str, str]:
    pairs = shlex.split(CONFIG[env]["deploy"]["parameters"]["parameter_overrides"])
    return dict(pair.split("=", 1) for pair in pairs)


def _makefile_region() -> str:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [region] = re.findall(r"^export AWS_DEFAULT_REGION \?= (\S+)$", makefile, re.M)
    return region


def test_the_environments_are_default_dev_and_prod() -> None:
    assert set(CONFIG) - {"version"} == set(ENVIRONMENTS)
    assert CONFIG["default"]["global"] == CONFIG["dev"]["global"]  # default is dev
    assert CONFIG["default"]["deploy"] == CONFIG["dev"]["deploy"]
    assert CONFIG["prod"]["global"]["parameters"]["stack_name"] != CONFIG["dev"]["global"]["parameters"]["stack_name"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_deploys_to_the_makefile_region(env: str) -> None:
    assert CONFIG[env]["deploy"]["parameters"]["region"] == _makefile_region() == "us-east-1"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_overrides_are_template_parameters_with_allowed_values(env: str) -> None:
    parameters: dict[str, Any] = template.load()["Parameters"]
    overrides = _overrides(env)
    assert overrides["Environment"] == ("prod" if env == "prod" else "dev")
    assert overrides["LogLevel"] == "INFO"  # DEBUG logs whole requests: opt in with --parameter-overrides
    for name, value in overrides.items():
        spec = parameters[name]
        allowed = [str(v) for v in spec.get("AllowedValues", [])]
        assert not allowed or value in allowed, f"{env}: {name}={value} not in {allowed}"


def test_the_command_and_serve_default_to_the_default_stack() -> None:
    stack = CONFIG["default"]["global"]["parameters"]["stack_name"]
    assert default_stack(ROOT / "samconfig.toml") == samconfig_stack() == FALLBACK_STACK == stack
