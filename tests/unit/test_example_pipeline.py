"""Static and behavioural checks of the example CodePipeline (examples/pipeline/).

The template is parsed with a YAML loader that understands the CloudFormation short-form tags. The
buildspec is checked twice: the inline copy in the template must equal buildspec.yml, and its commands
are run under bash with stub ``aws``/``docker`` executables to prove the artifacts it writes are what
the Step Functions invoke action hands to stepdeploy (and that stepdeploy's trigger parser accepts them).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from cfnlint.api import lint_file
from stepdeploy import triggers

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "pipeline"
TEMPLATE_PATH = EXAMPLE_DIR / "pipeline.yaml"
BUILDSPEC_PATH = EXAMPLE_DIR / "buildspec.yml"

REPOSITORY_URI = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/techchallengeapp"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32


class CfnLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """SafeLoader plus the CloudFormation short-form intrinsic functions (!Ref, !Sub, !GetAtt, ...)."""


def _cfn_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=CfnLoader)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def pipeline_stages(template: dict[str, Any]) -> list[dict[str, Any]]:
    (pipeline,) = resources_of_type(template, "AWS::CodePipeline::Pipeline").values()
    stages = pipeline["Properties"]["Stages"]
    assert isinstance(stages, list)
    return stages


def iam_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy, resource policy and trust policy in the template."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("PolicyDocument", "AssumeRolePolicyDocument") and isinstance(value, dict):
                    for statement in value["Statement"]:
                        yield where, statement
                else:
                    yield from walk(value, where)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    for name, resource in template["Resources"].items():
        yield from walk(resource.get("Properties", {}), name)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_actions(template: dict[str, Any]) -> list[str]:
    return [
        f"{where}: {action}"
        for where, statement in iam_statements(template)
        for action in as_list(statement.get("Action", []))
        if "*" in str(action)
    ]


def inline_buildspec(template: dict[str, Any]) -> dict[str, Any]:
    (project,) = resources_of_type(template, "AWS::CodeBuild::Project").values()
    text = project["Properties"]["Source"]["BuildSpec"]
    assert isinstance(text, str), "the inline buildspec must be a plain string (no intrinsic functions)"
    parsed = yaml.safe_load(text)
    assert isinstance(parsed, dict)
    return parsed


def file_buildspec() -> dict[str, Any]:
    parsed = yaml.safe_load(BUILDSPEC_PATH.read_text())
    assert isinstance(parsed, dict)
    return parsed


# --- the pipeline -----------------------------------------------------------------------------------


def test_parameters_and_defaults(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    defaults = {name: spec.get("Default") for name, spec in params.items()}
    assert defaults == {
        "ConnectionArn": None,
        "FullRepositoryId": "servian/TechChallengeApp",
        "BranchName": "master",
        "EcrRepositoryName": "techchallengeapp",
        "ContainerName": "app",
        "StepDeployStateMachineArn": None,
        "DeploymentTarget": "techchallenge/web",
    }
    assert "Transform" not in template, "plain CloudFormation: no SAM transform"
    assert set(template["Outputs"]) == {"PipelineName", "EcrRepositoryUri", "ArtifactBucketName"}


def test_three_stages_in_order(template: dict[str, Any]) -> None:
    assert [stage["Name"] for stage in pipeline_stages(template)] == ["Source", "Build", "Deploy"]
    (pipeline,) = resources_of_type(template, "AWS::CodePipeline::Pipeline").values()
    assert pipeline["Properties"]["PipelineType"] == "V2"


def test_source_is_github_through_the_connection(template: dict[str, Any]) -> None:
    (action,) = pipeline_stages(template)[0]["Actions"]
    assert action["ActionTypeId"] == {
        "Category": "Source",
        "Owner": "AWS",
        "Provider": "CodeStarSourceConnection",
        "Version": "1",
    }
    config = action["Configuration"]
    assert config["ConnectionArn"] == {"Ref": "ConnectionArn"}
    assert config["FullRepositoryId"] == {"Ref": "FullRepositoryId"}
    assert config["BranchName"] == {"Ref": "BranchName"}
    assert action["OutputArtifacts"] == [{"Name": "SourceOutput"}]


def test_build_stage_feeds_build_output(template: dict[str, Any]) -> None:
    (action,) = pipeline_stages(template)[1]["Actions"]
    assert action["ActionTypeId"]["Provider"] == "CodeBuild"
    assert action["InputArtifacts"] == [{"Name": "SourceOutput"}]
    assert action["OutputArtifacts"] == [{"Name": "BuildOutput"}]
    (project,) = resources_of_type(template, "AWS::CodeBuild::Project").values()
    env = project["Properties"]["Environment"]
    assert env["Type"] == "LINUX_CONTAINER"
    assert env["Image"] == "aws/codebuild/standard:7.0"
    assert env["PrivilegedMode"] is True
    names = {var["Name"] for var in env["EnvironmentVariables"]}
    assert {"REPOSITORY_URI", "CONTAINER_NAME", "DEPLOYMENT_TARGET"} <= names


def test_deploy_action_invokes_stepdeploy_with_image_detail(template: dict[str, Any]) -> None:
    (action,) = pipeline_stages(template)[2]["Actions"]
    assert action["ActionTypeId"] == {"Category": "Invoke", "Owner": "AWS", "Provider": "StepFunctions", "Version": "1"}
    assert action["Configuration"] == {
        "StateMachineArn": {"Ref": "StepDeployStateMachineArn"},
        "ExecutionNamePrefix": "pipeline",
        "InputType": "FilePath",
        "Input": "imageDetail.json",
    }
    assert action["InputArtifacts"] == [{"Name": "BuildOutput"}]


def test_artifact_bucket_and_repository_are_hardened(template: dict[str, Any]) -> None:
    (bucket,) = resources_of_type(template, "AWS::S3::Bucket").values()
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    rule = props["LifecycleConfiguration"]["Rules"][0]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] > 0
    (repo,) = resources_of_type(template, "AWS::ECR::Repository").values()
    rprops = repo["Properties"]
    assert rprops["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert rprops["ImageTagMutability"] == "IMMUTABLE"
    rules = json.loads(rprops["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rules and all(r["action"]["type"] == "expire" for r in rules)


# --- IAM ---------------------------------------------------------------------------------------------


def test_no_iam_action_has_a_wildcard(template: dict[str, Any]) -> None:
    assert list(iam_statements(template)), "no IAM statements found: the walker is broken"
    assert wildcard_actions(template) == []


def test_wildcard_check_can_fail() -> None:
    bad = {
        "Resources": {
            "R": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [{"PolicyDocument": {"Statement": [{"Action": ["s3:Get*"], "Resource": "x"}]}}]
                },
            }
        }
    }
    assert wildcard_actions(bad) == ["R: s3:Get*"]


def test_only_get_authorization_token_has_a_wildcard_resource(template: dict[str, Any]) -> None:
    wildcard = [
        (where, as_list(statement["Action"]))
        for where, statement in iam_statements(template)
        if "*" in [str(r) for r in as_list(statement.get("Resource", []))]
    ]
    assert wildcard == [("BuildRole", ["ecr:GetAuthorizationToken"])]


def _statement(template: dict[str, Any], role: str, action: str) -> dict[str, Any]:
    found = [s for where, s in iam_statements(template) if where == role and action in as_list(s["Action"])]
    assert len(found) == 1, f"{role} must grant {action} in exactly one statement"
    return found[0]


def test_pipeline_role_is_scoped_to_the_state_machine_and_its_executions(template: dict[str, Any]) -> None:
    start = _statement(template, "PipelineRole", "states:StartExecution")
    assert start["Resource"] == {"Ref": "StepDeployStateMachineArn"}
    describe = _statement(template, "PipelineRole", "states:DescribeExecution")
    pattern, variables = describe["Resource"]["Fn::Sub"]
    assert pattern.endswith(":execution:${StateMachineName}:*")
    assert pattern.startswith("arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:")
    assert variables["StateMachineName"] == {
        "Fn::Select": [6, {"Fn::Split": [":", {"Ref": "StepDeployStateMachineArn"}]}]
    }
    machine_arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:stepdeploy-dev-deploy"
    assert machine_arn.split(":")[6] == "stepdeploy-dev-deploy"
    use = _statement(template, "PipelineRole", "codestar-connections:UseConnection")
    assert use["Resource"] == {"Ref": "ConnectionArn"}
    build = _statement(template, "PipelineRole", "codebuild:StartBuild")
    assert "codebuild:BatchGetBuilds" in build["Action"]
    assert build["Resource"] == {"Fn::GetAtt": ["BuildProject", "Arn"]}


def test_build_role_pushes_only_to_its_repository(template: dict[str, Any]) -> None:
    push = _statement(template, "BuildRole", "ecr:PutImage")
    assert push["Resource"] == {"Fn::GetAtt": ["EcrRepository", "Arn"]}
    logs = _statement(template, "BuildRole", "logs:PutLogEvents")
    assert logs["Resource"] == {"Fn::GetAtt": ["BuildLogGroup", "Arn"]}


# --- the buildspec -----------------------------------------------------------------------------------


def test_inline_buildspec_equals_the_file(template: dict[str, Any]) -> None:
    assert inline_buildspec(template) == file_buildspec()


def test_buildspec_declares_both_artifacts() -> None:
    spec = file_buildspec()
    files = spec["artifacts"]["files"]
    assert {"imagedefinitions.json", "imageDetail.json"} <= set(files)
    commands = "\n".join(c for phase in spec["phases"].values() for c in phase["commands"])
    assert "> imagedefinitions.json" in commands
    assert "> imageDetail.json" in commands
    assert "docker inspect --format='{{index .RepoDigests 0}}'" in commands
    assert "CODEBUILD_RESOLVED_SOURCE_VERSION" in commands


STUB_AWS = """#!/usr/bin/env bash
echo "aws $*" >> "$STUB_LOG"
case "$1 $2" in
  "ecr get-login-password") echo token ;;
  "ecr describe-images")
    if [ -n "${STUB_EXISTING_DIGEST:-}" ]; then echo "$STUB_EXISTING_DIGEST"; else exit 254; fi ;;
  *) echo "unexpected aws call: $*" >&2; exit 2 ;;
esac
"""

STUB_DOCKER = """#!/usr/bin/env bash
echo "docker $*" >> "$STUB_LOG"
case "$1" in
  login) cat > /dev/null ;;
  build) exit "${STUB_BUILD_RC:-0}" ;;
  push) exit 0 ;;
  inspect) echo "${REPOSITORY_URI}@${STUB_PUSHED_DIGEST}" ;;
  *) echo "unexpected docker call: $*" >&2; exit 2 ;;
esac
"""


def run_buildspec(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    """Run the buildspec's phases like CodeBuild: one bash shell, a phase stops at its first failing command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("aws", STUB_AWS), ("docker", STUB_DOCKER)):
        stub = bin_dir / name
        stub.write_text(body)
        stub.chmod(0o755)
    spec = file_buildspec()
    assert spec["env"]["shell"] == "bash"
    lines = []
    for phase in ("pre_build", "build", "post_build"):
        for command in spec["phases"][phase]["commands"]:
            lines.append(f"{{\n{command}\n}} || exit 1")
    log = tmp_path / "calls.log"
    environ = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "STUB_LOG": str(log),
        "STUB_PUSHED_DIGEST": DIGEST,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "REPOSITORY_URI": REPOSITORY_URI,
        "CONTAINER_NAME": "app",
        "DEPLOYMENT_TARGET": "techchallenge/web",
        "CODEBUILD_RESOLVED_SOURCE_VERSION": COMMIT,
        "CODEBUILD_BUILD_SUCCEEDING": "1",
        **env,
    }
    result = subprocess.run(
        ["bash", "-c", "\n".join(lines)], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls


def test_buildspec_writes_the_artifacts_stepdeploy_accepts(tmp_path: Path) -> None:
    rc, calls = run_buildspec(tmp_path)
    assert rc == 0, calls
    assert f"docker build --tag {REPOSITORY_URI}:0123456 ." in calls
    assert f"docker push {REPOSITORY_URI}:0123456" in calls

    definitions = json.loads((tmp_path / "imagedefinitions.json").read_text())
    assert definitions == [{"name": "app", "imageUri": f"{REPOSITORY_URI}:0123456"}]
    detail = json.loads((tmp_path / "imageDetail.json").read_text())
    assert detail == {"ImageURI": f"{REPOSITORY_URI}@{DIGEST}"}
    request = json.loads((tmp_path / "deployrequest.json").read_text())

    intent = triggers.parse(detail)
    assert (intent.trigger, intent.repository, intent.digest, intent.tag) == (
        "codepipeline",
        "techchallengeapp",
        DIGEST,
        None,
    )
    intent = triggers.parse(request)
    assert (intent.target, intent.tag, intent.digest) == ("techchallenge/web", "0123456", DIGEST)
    intent = triggers.parse(definitions)
    assert (intent.repository, intent.tag, intent.container) == ("techchallengeapp", "0123456", "app")


def test_buildspec_reuses_an_existing_immutable_tag(tmp_path: Path) -> None:
    existing = "sha256:" + "cd" * 32
    rc, calls = run_buildspec(tmp_path, STUB_EXISTING_DIGEST=existing)
    assert rc == 0, calls
    assert not [c for c in calls if c.startswith(("docker build", "docker push"))]
    detail = json.loads((tmp_path / "imageDetail.json").read_text())
    assert detail == {"ImageURI": f"{REPOSITORY_URI}@{existing}"}


def test_buildspec_fails_without_artifacts_when_the_build_fails(tmp_path: Path) -> None:
    rc, calls = run_buildspec(tmp_path, STUB_BUILD_RC="1")
    assert rc != 0
    assert not [c for c in calls if c.startswith("docker push")]
    assert not (tmp_path / "imageDetail.json").exists()


# --- cfn-lint ------------------------------------------------------------------------------------------


def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(TEMPLATE_PATH)
    problems = [f"{m.rule.id} {m.linenumber}: {m.message}" for m in matches if m.rule.id[:1] in ("E", "W")]
    assert problems == []


def test_readme_registry_entry_is_valid_and_not_deployed_on_push() -> None:
    """The README's entry for a repository the pipeline deploys: commit tags, digest-only files, no push deploys."""
    from stepdeploy.registry import RegistryEntry

    text = (EXAMPLE_DIR / "README.md").read_text()
    [block] = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    entry = RegistryEntry.from_item(json.loads(block))
    assert entry.deploy_on_push is False and entry.allow_digest_only is True
    assert entry.matches(COMMIT[:7]) and not entry.matches("latest")
