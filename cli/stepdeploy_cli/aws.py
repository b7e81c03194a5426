"""Where stepdeploy is: its stack's outputs, and the AWS endpoint, profile and region to reach it.

The command sets the standard AWS environment (AWS_PROFILE, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL) and then
reads and writes through stepdeploy's own adapters, so it sees the tables exactly as the workflow writes them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepdeploy.adapters import clients

from .errors import AwsError, StackNotFound

FALLBACK_STACK = "stepdeploy-dev"
NEEDED = ("DeployStateMachineArn", "DeploymentsTableName", "RegistryTableName", "ControlTableName", "AppStackPrefix")


def default_stack(samconfig: Path = Path("samconfig.toml")) -> str:
    """The stack name of samconfig.toml's default environment (in the current directory), else stepdeploy-dev."""
    try:
        config = tomllib.loads(samconfig.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return FALLBACK_STACK
    return str(config.get("default", {}).get("global", {}).get("parameters", {}).get("stack_name", FALLBACK_STACK))


def use_environment(profile: str | None, region: str | None, endpoint_url: str | None) -> None:
    """Point boto3 (the adapters' clients included) at the given profile, region and endpoint."""
    for name, value in (("AWS_PROFILE", profile), ("AWS_DEFAULT_REGION", region), ("AWS_ENDPOINT_URL", endpoint_url)):
        if value:
            os.environ[name] = value
    if region:
        os.environ["AWS_REGION"] = region
    clients.reset()


def client(service: str) -> Any:
    return clients.client(service)


@dataclass(frozen=True)
class Stepdeploy:
    """stepdeploy's stack: the names the command works with."""

    stack: str
    outputs: dict[str, str]

    @property
    def state_machine(self) -> str:
        return self.outputs["DeployStateMachineArn"]

    @property
    def deployments_table(self) -> str:
        return self.outputs["DeploymentsTableName"]

    @property
    def registry_table(self) -> str:
        return self.outputs["RegistryTableName"]

    @property
    def control_table(self) -> str:
        return self.outputs["ControlTableName"]

    def app_stack(self, name: str) -> str:
        """The CloudFormation name of the application stack a request calls ``name``."""
        return self.outputs["AppStackPrefix"] + name


def find(stack: str) -> Stepdeploy:
    """Read the stack's outputs. Raises StackNotFound (naming what is missing) or AwsError."""
    cfn = client("cloudformation")
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            raise StackNotFound(f"stack {stack!r} does not exist here (give --stack, --region or --profile)") from exc
        raise AwsError(f"describe-stacks {stack}: {exc}") from exc
    except Exception as exc:  # no credentials, no endpoint: say so, no trace
        raise AwsError(f"cannot reach CloudFormation: {type(exc).__name__}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [k for k in NEEDED if k not in outputs]
    if missing:
        raise StackNotFound(f"stack {stack!r} has no output(s) {', '.join(missing)}: is it stepdeploy's stack?")
    return Stepdeploy(stack, outputs)
