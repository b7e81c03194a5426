"""Reads the IAM statements and resources of the three CloudFormation templates the project ships, for the
contract tests on IAM resources and on encrypted notification destinations.

template.yaml is expanded with the AWS SAM translator (the same one `sam deploy` runs), so SAM policy templates
and the roles SAM generates (functions, state machine, EventBridge rule targets) are checked as AWS sees them.
Intrinsics are resolved to example values shaped like the real ARNs (account 123456789012, us-east-1); a
template parameter whose value is an ARN resolves to every shape its AllowedPattern admits (ARN_PARAMETERS)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepdeploy_local import template

ROOT = Path(__file__).resolve().parents[2]
APP_STACK = ROOT / "layers/common/stepdeploy/stacks/app.yaml"
PIPELINE = ROOT / "examples/pipeline/pipeline.yaml"
REGION, ACCOUNT = "us-east-1", "123456789012"

#: ARN-valued parameters: every shape the parameter's AllowedPattern accepts (examples/pipeline/pipeline.yaml).
ARN_PARAMETERS: dict[str, list[str]] = {
    "ConnectionArn": [
        f"arn:aws:codestar-connections:{REGION}:{ACCOUNT}:connection/example",
        f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/example",
    ],
    "StepDeployStateMachineArn": [f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:stepdeploy-dev-deploy"],
}

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "stack",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": "",
}


def _arn_of(logical: str, rtype: str) -> str:
    """The ARN a resource of this type gets (Ref for topics and state machines, GetAtt Arn otherwise)."""
    name = logical.lower()
    shapes = {
        "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
        "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
        "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
        "AWS::Serverless::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
        "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
        "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
        "AWS::ECR::Repository": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}",
        "AWS::CodeBuild::Project": f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{name}",
        "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}",
        "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}",
        "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
    }
    if rtype not in shapes:
        raise KeyError(f"no ARN shape for {logical} ({rtype})")
    return shapes[rtype]


@dataclass
class Template:
    name: str
    doc: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        res: dict[str, Any] = self.doc["Resources"]
        return res

    # ------------------------------------------------------------------ intrinsics -> example values
    def _ref(self, name: str) -> list[str]:
        if name in PSEUDO:
            return [PSEUDO[name]]
        if name in self.doc.get("Parameters", {}):
            if name in ARN_PARAMETERS:
                return ARN_PARAMETERS[name]
            return [str(self.doc["Parameters"][name].get("Default", name.lower()))]
        rtype = self.resources[name]["Type"]
        if rtype in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine"):
            return [_arn_of(name, rtype)]
        if rtype == "AWS::SQS::Queue":
            return [f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name.lower()}"]
        return [name.lower()]  # a name or an id

    def _getatt(self, logical: str, attr: str) -> list[str]:
        rtype = self.resources[logical]["Type"]
        if attr == "Arn":
            return [_arn_of(logical, rtype)]
        if attr == "MasterUserSecret.SecretArn":
            return [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!cluster-{logical.lower()}-AbCdEf"]
        return [f"{logical.lower()}-{attr.lower()}"]

    def values(self, node: Any, local: dict[str, list[str]] | None = None) -> list[str]:
        """Every string the node can take (alternatives: ARN parameters with several shapes, Fn::If)."""
        local = local or {}
        if isinstance(node, str):
            return [node]
        if isinstance(node, (int, float)):
            return [str(node)]
        if not isinstance(node, dict) or len(node) != 1:
            raise ValueError(f"cannot resolve {node!r}")
        [(fn, arg)] = node.items()
        if fn == "Ref":
            return local.get(arg) or self._ref(arg)
        if fn == "Fn::GetAtt":
            logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return self._getatt(logical, attr)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            scope = {**local, **{k: self.values(v, local) for k, v in variables.items()}}
            results = [""]
            for piece in re.split(r"(\$\{[^}!][^}]*\})", text):
                if piece.startswith("${"):
                    key = piece[2:-1]
                    if key in scope:
                        options = scope[key]
                    elif "." in key:
                        options = self._getatt(*key.split(".", 1))
                    else:
                        options = self._ref(key)
                else:
                    options = [piece]
                results = [r + o for r in results for o in options]
            return results
        if fn == "Fn::Join":
            sep, items = arg
            parts = [self.values(i, local) for i in items]
            out = [""]
            for i, options in enumerate(parts):
                out = [o + (sep if i else "") + p for o in out for p in options]
            return out
        if fn == "Fn::Select":
            index, seq = arg
            return [s[int(index)] for s in self._lists(seq, local)]
        if fn == "Fn::If":
            return self.values(arg[1], local) + self.values(arg[2], local)
        raise ValueError(f"cannot resolve {fn}")

    def _lists(self, node: Any, local: dict[str, list[str]]) -> list[list[str]]:
        if isinstance(node, dict) and "Fn::Split" in node:
            sep, source = node["Fn::Split"]
            return [v.split(sep) for v in self.values(source, local)]
        if isinstance(node, list):
            return [[self.values(i, local)[0] for i in node]]
        raise ValueError(f"cannot resolve a list from {node!r}")


def load_all() -> list[Template]:
    """template.yaml as the SAM translator expands it, the application stack and the example pipeline."""
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(template.load())
    for res in sam["Resources"].values():  # what `sam package` does: local paths become S3 locations
        for key in ("CodeUri", "DefinitionUri", "ContentUri"):
            if isinstance(res.get("Properties", {}).get(key), str):
                res["Properties"][key] = f"s3://bucket/{key}"

    class _NoManagedPolicyNames:  # the template names managed policies by ARN only: never asked
        def load(self) -> dict[str, str]:
            raise AssertionError("template.yaml must name managed policies by ARN")

    expanded = transform(sam, {}, _NoManagedPolicyNames())
    return [
        Template("template.yaml", expanded),
        Template("stacks/app.yaml", template.load(APP_STACK)),
        Template("examples/pipeline/pipeline.yaml", template.load(PIPELINE)),
    ]


@dataclass(frozen=True)
class Statement:
    where: str  # template / logical id / policy / Sid
    principal: str  # template / logical id of the role (statements of one principal add up)
    actions: tuple[str, ...]
    resources: tuple[tuple[str, ...], ...]  # each Resource item: the ARNs it can take
    raw: dict[str, Any]


def identity_statements(tpl: Template) -> Iterator[Statement]:
    """Allow statements of identity policies: inline role policies, AWS::IAM::Policy / ManagedPolicy."""
    for logical, res in tpl.resources.items():
        props = res.get("Properties", {})
        docs: list[tuple[str, dict[str, Any], str]] = []
        if res["Type"] == "AWS::IAM::Role":
            docs = [(p["PolicyName"], p["PolicyDocument"], logical) for p in props.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = props.get("Roles") or [logical]
            docs = [(props.get("PolicyName", logical), props["PolicyDocument"], str(roles[0]))]
        for policy_name, document, principal in docs:
            statements = document["Statement"]
            for i, st in enumerate(statements if isinstance(statements, list) else [statements]):
                if st.get("Effect") != "Allow":
                    continue
                if "NotAction" in st or "NotResource" in st:
                    raise AssertionError(f"{tpl.name}/{logical}/{policy_name}: NotAction/NotResource is refused")
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                yield Statement(
                    where=f"{tpl.name}/{logical}/{policy_name}/{st.get('Sid', i)}",
                    principal=f"{tpl.name}/{principal}",
                    actions=tuple(actions),
                    resources=tuple(tuple(tpl.values(r)) for r in resources),
                    raw=st,
                )
