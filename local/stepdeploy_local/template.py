"""template.yaml is the single source of truth: functions, environment, state machine, tables.

The local world reads it with this module: a YAML loader for CloudFormation short-form tags and a
small resolver for the intrinsics the template uses (Ref, GetAtt, Sub, Join, Select, Split, If).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    pass


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


#: parsed templates by (path, modification time, size): every world reads template.yaml (~0.3 s of YAML)
_PARSED: dict[tuple[Path, int, int], dict[str, Any]] = {}


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template at ``path``, parsed (a copy of its own: the caller may change it)."""
    stat = path.stat()
    key = (path.resolve(), stat.st_mtime_ns, stat.st_size)
    if key not in _PARSED:
        with path.open() as fh:
            _PARSED[key] = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return copy.deepcopy(_PARSED[key])


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, Any]  # unresolved intrinsics
    architectures: tuple[str, ...]


def functions(template: dict[str, Any], root: Path = ROOT) -> list[FunctionSpec]:
    glob = template.get("Globals", {}).get("Function", {})
    specs = []
    for logical_id, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        props = {**glob, **res.get("Properties", {})}
        env = dict(glob.get("Environment", {}).get("Variables", {}))
        env.update(res.get("Properties", {}).get("Environment", {}).get("Variables", {}))
        specs.append(
            FunctionSpec(
                logical_id=logical_id,
                code_dir=(root / props["CodeUri"]).resolve(),
                handler=props["Handler"],
                runtime=props["Runtime"],
                memory_mb=int(props.get("MemorySize", 128)),
                timeout_s=int(props.get("Timeout", 3)),
                environment=env,
                architectures=tuple(props.get("Architectures", ["x86_64"])),
            )
        )
    return specs


def layer_dirs(template: dict[str, Any], root: Path = ROOT) -> list[Path]:
    return [
        (root / r["Properties"]["ContentUri"]).resolve()
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::LayerVersion"
    ]


APP_STACK = ROOT / "layers" / "common" / "stepdeploy" / "stacks" / "app.yaml"
PARAMETER_RULES = (
    "Type",
    "Default",
    "AllowedValues",
    "AllowedPattern",
    "MinValue",
    "MaxValue",
    "MinLength",
    "MaxLength",
)


def parameter_spec(path: Path = APP_STACK) -> dict[str, dict[str, Any]]:
    """The parameter rules of a stack template, as ``stacks/app.parameters.json`` holds them
    (``python -m stepdeploy_local.template > layers/common/stepdeploy/stacks/app.parameters.json``)."""
    spec: dict[str, dict[str, Any]] = {}
    for name, rule in load(path).get("Parameters", {}).items():
        spec[name] = {k: rule[k] for k in PARAMETER_RULES if k in rule}
        if "ConstraintDescription" in rule:
            spec[name]["ConstraintDescription"] = rule["ConstraintDescription"]
    return spec


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}


def conditions(template: dict[str, Any], params: dict[str, str]) -> dict[str, bool]:
    """The template's Conditions, evaluated for these parameter values (Fn::Equals, Not, And, Or, Condition)."""
    declared = template.get("Conditions", {})
    done: dict[str, bool] = {}

    def value(node: Any) -> Any:
        return params[node["Ref"]] if isinstance(node, dict) and "Ref" in node else node

    def holds(node: Any) -> bool:
        ((key, arg),) = node.items()
        if key == "Condition":
            return named(arg)
        if key == "Fn::Equals":
            return str(value(arg[0])) == str(value(arg[1]))
        if key == "Fn::Not":
            return not holds(arg[0])
        if key == "Fn::And":
            return all(holds(a) for a in arg)
        if key == "Fn::Or":
            return any(holds(a) for a in arg)
        raise ValueError(f"unsupported condition function {key}")

    def named(name: str) -> bool:
        if name not in done:
            done[name] = holds(declared[name])
        return done[name]

    return {name: named(name) for name in declared}


class Resolver:
    """Resolves intrinsic functions against the physical ids/attributes the world created."""

    def __init__(
        self,
        params: dict[str, str],
        refs: dict[str, str],
        attrs: dict[str, str],
        pseudo: dict[str, str],
        conditions: dict[str, bool] | None = None,
    ) -> None:
        self.params, self.refs, self.attrs = params, refs, attrs
        self.pseudo = pseudo
        self.conditions = conditions or {}

    def _ref(self, name: str) -> str:
        for table in (self.pseudo, self.params, self.refs):
            if name in table:
                return table[name]
        raise KeyError(f"unresolved Ref {name!r}")

    def _getatt(self, logical: str, attr: str) -> str:
        key = f"{logical}.{attr}"
        if key not in self.attrs:
            raise KeyError(f"unresolved GetAtt {key!r}")
        return self.attrs[key]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self._ref(arg)
        if key == "Fn::GetAtt":
            return self._getatt(*(arg if isinstance(arg, list) else arg.split(".", 1)))
        if key == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

            def sub(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in local:
                    return str(local[name])
                if "." in name:
                    return self._getatt(*name.split(".", 1))
                return self._ref(name)

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        if key == "Fn::Join":
            return str(arg[0]).join(str(self.resolve(v)) for v in arg[1])
        if key == "Fn::Select":
            return self.resolve(arg[1])[int(self.resolve(arg[0]))]
        if key == "Fn::Split":
            return str(self.resolve(arg[1])).split(arg[0])
        if key == "Fn::If":
            return self.resolve(arg[1] if self.conditions.get(arg[0], False) else arg[2])
        return {key: self.resolve(arg)}


if __name__ == "__main__":
    import json
    import sys

    json.dump(parameter_spec(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
