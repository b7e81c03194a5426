"""Contract for compat's CloudFormation patches: the application stack (app.yaml) through change sets.

Ordinary boto3 calls only, as a workflow makes them; each test names the patches it covers (the
coverage check lives in test_emulator_contract.py, which imports this module).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from stepdeploy_local import compat, template
from test_emulator_contract import covers

REGION, ACCOUNT = "us-east-1", "123456789012"
APP_TEMPLATE = Path(__file__).resolve().parents[2] / "layers/common/stepdeploy/stacks/app.yaml"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/techchallengeapp@sha256:{'ab' * 32}"
IMAGE_2 = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/techchallengeapp@sha256:{'cd' * 32}"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepdeploy-cloudformation"
CERTIFICATE = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0a1b2c3d-0000-4000-8000-000000000000"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
NO_CHANGES = "The submitted information didn't contain changes. Submit different information to create a change set."

Clients = Callable[[str], Any]


class _TemplateLoader(yaml.SafeLoader):
    """Reads the template's structure; intrinsic functions (!Ref ...) are not evaluated."""


_TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
TEMPLATE = APP_TEMPLATE.read_text()
RESOURCES: dict[str, Any] = yaml.load(TEMPLATE, Loader=_TemplateLoader)["Resources"]
PARAMETERS: list[str] = list(yaml.load(TEMPLATE, Loader=_TemplateLoader)["Parameters"])


DEFAULT_CONDITIONS = ("DatabaseMonitoring",)  # the conditions true with every parameter at its default


def expected_resources(*conditions_true: str) -> set[tuple[str, str]]:
    return {
        (name, res["Type"])
        for name, res in RESOURCES.items()
        if "Condition" not in res or res["Condition"] in {*DEFAULT_CONDITIONS, *conditions_true}
    }


_CLIENTS: dict[str, Any] = {}  # ~10 ms to build a client (its service model parsed again): ~40 tests x 4


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    """compat.apply() then mock_aws(), as the world starts them; plain boto3 clients."""
    from moto import mock_aws

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    compat.apply()

    def client(service: str) -> Any:
        if service not in _CLIENTS:  # kept across tests: moto answers a client from the mock that runs
            _CLIENTS[service] = boto3.client(service, region_name=REGION)  # type: ignore[call-overload]
        return _CLIENTS[service]

    try:
        with mock_aws():
            yield client
    finally:
        compat.HOOKS.stack_resource_failure = compat.HOOKS.stack_operation_seconds = None


def create_change_set(cfn: Any, stack: str, name: str, template: str = TEMPLATE, **parameters: str) -> str:
    values = {"ContainerImage": IMAGE, **parameters}
    return str(
        cfn.create_change_set(
            StackName=stack,
            ChangeSetName=name,
            ChangeSetType="CREATE",
            TemplateBody=template,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
            Capabilities=CAPABILITIES,
            RoleARN=ROLE,
        )["Id"]
    )


def update_change_set(cfn: Any, stack: str, name: str, template: str | None = None, **changed: str) -> str:
    """An UPDATE change set (of the previous template, unless given): previous values except ``changed``."""
    parameters = [
        {"ParameterKey": key, "ParameterValue": changed[key]}
        if key in changed
        else {"ParameterKey": key, "UsePreviousValue": True}
        for key in PARAMETERS
    ]
    return str(
        cfn.create_change_set(
            StackName=stack,
            ChangeSetName=name,
            ChangeSetType="UPDATE",
            **({"TemplateBody": template} if template else {"UsePreviousTemplate": True}),
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            RoleARN=ROLE,
        )["Id"]
    )


def revision(task_definition_arn: str, number: int) -> str:
    return f"{task_definition_arn.rsplit(':', 1)[0]}:{number}"


def outputs(cfn: Any, stack: str) -> dict[str, str]:
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def provision(cfn: Any, stack: str = "app", **parameters: str) -> dict[str, str]:
    cfn.execute_change_set(ChangeSetName=create_change_set(cfn, stack, "create", **parameters))
    return outputs(cfn, stack)


def changes(cfn: Any, change_set: str) -> dict[tuple[str, str], dict[str, Any]]:
    described = cfn.describe_change_set(ChangeSetName=change_set)
    return {(c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"]): c for c in described["Changes"]}


def status(cfn: Any, stack: str) -> str:
    return str(cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"])


def events(cfn: Any, stack: str) -> list[tuple[str, str, str | None]]:
    """(logical id, status, reason), oldest first."""
    found = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason")) for e in reversed(found)]


# ----------------------------------------------------------------------------- change sets


@covers("cfn_change_sets")
def test_a_create_change_set_reviews_every_resource_and_can_be_discarded(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn = aws("cloudformation")
    arn = create_change_set(cfn, "app", "create")
    assert status(cfn, "app") == "REVIEW_IN_PROGRESS"
    described = cfn.describe_change_set(ChangeSetName="create", StackName="app")
    assert (described["ChangeSetId"], described["Status"], described["ExecutionStatus"]) == (
        arn,
        "CREATE_COMPLETE",
        "AVAILABLE",
    )
    assert all(c["Type"] == "Resource" and c["ResourceChange"]["Action"] == "Add" for c in described["Changes"])
    listed = {
        (c["ResourceChange"]["LogicalResourceId"], c["ResourceChange"]["ResourceType"]) for c in described["Changes"]
    }
    assert listed == expected_resources()  # NatGateway2, its EIP and the HTTPS listener are conditional
    assert ("HttpsListener", "AWS::ElasticLoadBalancingV2::Listener") not in listed

    with_certificate = changes(cfn, create_change_set(cfn, "app-tls", "create", CertificateArn=CERTIFICATE))
    assert {logical for _, logical in with_certificate} == {n for n, _ in expected_resources("HasCertificate")}

    cfn.delete_change_set(ChangeSetName="create", StackName="app")
    with pytest.raises(cfn.exceptions.ChangeSetNotFoundException):
        cfn.describe_change_set(ChangeSetName="create", StackName="app")
    assert status(cfn, "app") == "REVIEW_IN_PROGRESS"
    cfn.delete_stack(StackName="app")
    with pytest.raises(ClientError) as gone:
        cfn.describe_stacks(StackName="app")
    assert gone.value.response["Error"]["Code"] == "ValidationError"
    assert "does not exist" in gone.value.response["Error"]["Message"]
    assert [s["StackName"] for s in cfn.describe_stacks()["Stacks"]] == ["app-tls"]


def _name_refused(name: str, *constraints: str) -> str:
    """CloudFormation's ValidationError text for a ChangeSetName breaking ``constraints``."""
    count = f"{len(constraints)} validation error{'s' if len(constraints) > 1 else ''} detected: "
    return count + "; ".join(
        f"Value '{name}' at 'changeSetName' failed to satisfy constraint: {c}" for c in constraints
    )


PATTERN = "Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
TOO_LONG = "Member must have length less than or equal to 128"


@covers("cfn_change_set_names")
@pytest.mark.parametrize(
    ("name", "constraints"),
    [
        ("stepdeploy-release_2026.01.05", (PATTERN,)),  # Step Functions execution names may hold _ and .
        ("stepdeploy-café", (PATTERN,)),  # moto's str.isalnum takes non-ASCII letters
        ("stepdeploy-v²", (PATTERN,)),  # ... and digits
        ("1-stepdeploy", (PATTERN,)),
        ("s" * 129, (TOO_LONG,)),
        ("s_" * 65, (PATTERN, TOO_LONG)),
    ],
)
def test_an_invalid_change_set_name_is_refused_and_changes_nothing(
    aws: Clients, _patch: tuple[str, ...], name: str, constraints: tuple[str, ...]
) -> None:
    cfn = aws("cloudformation")
    with pytest.raises(ClientError) as refused:
        create_change_set(cfn, "app", name)
    error = refused.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("ValidationError", _name_refused(name, *constraints))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert cfn.describe_stacks()["Stacks"] == []  # no stack in REVIEW_IN_PROGRESS, no change set


@covers("cfn_change_set_names")
def test_valid_change_set_names_up_to_128_characters_are_taken(aws: Clients, _patch: tuple[str, ...]) -> None:
    from stepdeploy.stack import change_set_name

    cfn = aws("cloudformation")
    longest = "S-" + "9" * 126
    create_change_set(cfn, "app", longest)
    assert cfn.describe_change_set(ChangeSetName=longest, StackName="app")["Status"] == "CREATE_COMPLETE"
    derived = change_set_name("release_2026.01.05:café")
    create_change_set(cfn, "app-2", derived)
    assert cfn.describe_change_set(ChangeSetName=derived, StackName="app-2")["ChangeSetName"] == derived


@covers("cfn_change_sets")
def test_iam_resources_need_capabilities(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn = aws("cloudformation")
    with pytest.raises(cfn.exceptions.InsufficientCapabilitiesException):
        cfn.create_change_set(
            StackName="app",
            ChangeSetName="create",
            ChangeSetType="CREATE",
            TemplateBody=TEMPLATE,
            Parameters=[
                {"ParameterKey": "ContainerImage", "ParameterValue": IMAGE},
                {"ParameterKey": "DeferDatabaseDeletionProtection", "ParameterValue": "true"},  # can roll back
            ],
        )


@covers("cfn_change_sets")
def test_an_update_change_set_lists_exactly_the_resources_whose_properties_differ(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn = aws("cloudformation")
    provision(cfn)

    unchanged = update_change_set(cfn, "app", "nothing")
    described = cfn.describe_change_set(ChangeSetName=unchanged)
    assert (described["Status"], described["ExecutionStatus"], described["StatusReason"]) == (
        "FAILED",
        "UNAVAILABLE",
        NO_CHANGES,
    )
    assert described["Changes"] == []
    resubmitted = cfn.describe_change_set(ChangeSetName=update_change_set(cfn, "app", "same", template=TEMPLATE))
    assert (resubmitted["Status"], resubmitted["StatusReason"]) == ("FAILED", NO_CHANGES)

    scaled = changes(cfn, update_change_set(cfn, "app", "scale", DesiredCount="3"))
    assert set(scaled) == {("Modify", "Service")}
    service = scaled["Modify", "Service"]["ResourceChange"]
    assert (service["Replacement"], service["Scope"], service["PhysicalResourceId"]) == (
        "False",
        ["Properties"],
        outputs(cfn, "app")["ServiceArn"],
    )
    assert [d["Target"]["Name"] for d in service["Details"]] == ["DesiredCount"]

    image = changes(cfn, update_change_set(cfn, "app", "image", ContainerImage=IMAGE_2))
    assert set(image) == {("Modify", "TaskDefinition"), ("Modify", "Service")}
    assert image["Modify", "TaskDefinition"]["ResourceChange"]["Replacement"] == "True"
    assert image["Modify", "Service"]["ResourceChange"]["Replacement"] == "False"
    [detail] = image["Modify", "Service"]["ResourceChange"]["Details"]
    assert (detail["Target"]["Name"], detail["Evaluation"]) == ("TaskDefinition", "Dynamic")

    tls = changes(cfn, update_change_set(cfn, "app", "tls", CertificateArn=CERTIFICATE))
    assert {("Add", "HttpsListener"), ("Modify", "HttpListener")} <= set(tls)
    assert tls["Modify", "HttpListener"]["ResourceChange"]["Replacement"] == "False"
    assert not any(action == "Remove" for action, _ in tls)

    nat = changes(cfn, update_change_set(cfn, "app", "nat", NatGatewayMode="per-az"))
    assert set(nat) == {("Add", "NatGateway2Eip"), ("Add", "NatGateway2"), ("Modify", "PrivateDefaultRoute2")}


@covers("cfn_change_sets")
def test_stack_tags_propagate_so_changing_them_modifies_every_tagged_resource(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    """CloudFormation propagates stack tags to the resources that take tags: a change set with other
    stack tags updates every one of them; one that omits Tags keeps the stack's and changes nothing."""
    cfn = aws("cloudformation")
    provision(cfn)
    kept = [{"ParameterKey": key, "UsePreviousValue": True} for key in PARAMETERS]

    def change_set(name: str, **extra: Any) -> str:
        return str(
            cfn.create_change_set(
                StackName="app",
                ChangeSetName=name,
                ChangeSetType="UPDATE",
                UsePreviousTemplate=True,
                Parameters=kept,
                Capabilities=CAPABILITIES,
                RoleARN=ROLE,
                **extra,
            )["Id"]
        )

    retagged = changes(cfn, change_set("retag", Tags=[{"Key": "stepdeploy:deployment", "Value": "d-1"}]))
    tagged = {name for name, res in RESOURCES.items() if "Tags" in (res.get("Properties") or {})}
    tagged &= {name for name, _ in expected_resources()}
    assert {name for _, name in retagged} == tagged
    assert {change["ResourceChange"]["Scope"][0] for change in retagged.values()} == {"Tags"}
    assert {change["ResourceChange"]["Replacement"] for change in retagged.values()} == {"False"}
    assert cfn.describe_change_set(ChangeSetName=change_set("untagged"))["StatusReason"] == NO_CHANGES


@covers("cfn_resource_types")
def test_a_scalable_target_brings_the_service_count_into_its_range(aws: Clients, _patch: tuple[str, ...]) -> None:
    """RegisterScalableTarget moves an active resource's current capacity into [min, max]: raising
    MinCapacity scales the ECS service out at once, and nothing else touches its count."""
    cfn, ecs = aws("cloudformation"), aws("ecs")
    out = provision(cfn)

    def count() -> int:
        (svc,) = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
        return int(svc["desiredCount"])

    assert count() == 2
    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "min3", MinCapacity="3"))
    assert status(cfn, "app") == "UPDATE_COMPLETE" and count() == 3
    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "max3", MaxCapacity="3", MinCapacity="1"))
    assert count() == 3, "within the range: left as it is"


# ----------------------------------------------------------------------------- execution


@covers("cfn_execution")
def test_an_update_that_moves_a_service_waits_for_its_deployment_and_rolls_back_when_it_fails(
    aws: Clients, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CloudFormation waits for an updated ECS service to reach a steady state: the update stays
    UPDATE_IN_PROGRESS while the deployment runs, completes with it, and when the deployment fails
    (circuit breaker) the Service resource fails and the stack is rolled back to the revision before."""
    cfn, ecs = aws("cloudformation"), aws("ecs")
    out = provision(cfn)
    state = {"now": "IN_PROGRESS"}
    seen: list[tuple[str, str, str]] = []

    def stability(cluster: str, service: str, task_definition: str) -> str:
        seen.append((cluster, service, task_definition))
        return "COMPLETED" if task_definition == state.get("stable") else state["now"]  # (the revision it ran)

    monkeypatch.setattr(compat.HOOKS, "service_stability", stability)

    def running() -> str:
        (svc,) = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
        return str(svc["taskDefinition"])

    first = running()
    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "release", ContainerImage=IMAGE_2))
    assert status(cfn, "app") == "UPDATE_IN_PROGRESS" and running() != first
    assert seen and seen[-1] == (out["ClusterName"], out["ServiceName"], running())
    state["now"] = "COMPLETED"
    assert status(cfn, "app") == "UPDATE_COMPLETE"
    released = state["stable"] = running()

    state["now"] = "IN_PROGRESS"
    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "broken", ContainerImage=IMAGE))
    state["now"] = "FAILED: tasks failed to start"
    assert status(cfn, "app") == "UPDATE_ROLLBACK_COMPLETE"
    assert running() == released, "CloudFormation put the service back on the revision before"
    reasons = [
        reason or "" for logical, st, reason in events(cfn, "app") if (logical, st) == ("Service", "UPDATE_FAILED")
    ]
    assert any("ECS Deployment Circuit Breaker was triggered" in r and "tasks failed to start" in r for r in reasons)

    scaled = update_change_set(cfn, "app", "scale", HealthCheckGracePeriodSeconds="90")
    cfn.execute_change_set(ChangeSetName=scaled)  # the task definition stays: nothing to wait for
    assert status(cfn, "app") == "UPDATE_COMPLETE"


@covers("cfn_execution")
def test_the_resources_that_depend_on_a_moved_service_wait_for_it_and_a_rollback_waits_too(
    aws: Clients, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on AWS, a resource that depends on an ECS service the update moved (ScalableTarget) is updated once the
    service is stable; when it then fails, the rollback moves the service back and waits for it in turn
    (UPDATE_ROLLBACK_IN_PROGRESS), ending UPDATE_ROLLBACK_FAILED when the service cannot get back."""
    cfn, ecs = aws("cloudformation"), aws("ecs")
    out = provision(cfn)
    now: dict[str, str] = {}

    def stability(cluster: str, service: str, task_definition: str) -> str:
        return now.get(task_definition, "IN_PROGRESS")

    monkeypatch.setattr(compat.HOOKS, "service_stability", stability)

    def running() -> str:
        (svc,) = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
        return str(svc["taskDefinition"])

    def updated(logical_id: str) -> int:
        return sum(1 for lid, st, _ in events(cfn, "app") if (lid, st) == (logical_id, "UPDATE_COMPLETE"))

    first, target_updates = running(), updated("ScalableTarget")
    release = update_change_set(cfn, "app", "release", ContainerImage=IMAGE_2, MinCapacity="3")
    cfn.execute_change_set(ChangeSetName=release)
    assert status(cfn, "app") == "UPDATE_IN_PROGRESS" and running() != first
    assert updated("ScalableTarget") == target_updates, "the scalable target waits for the service"
    now[running()] = "COMPLETED"
    assert status(cfn, "app") == "UPDATE_COMPLETE" and updated("ScalableTarget") == target_updates + 1

    released = running()
    del now[released]  # CloudFormation asks about it again when a rollback moves the service back to it
    failing = {("ScalableTarget", "UPDATE"): "refused (contract test)"}
    monkeypatch.setattr(
        compat.HOOKS,
        "stack_resource_failure",
        lambda stack, logical, kind, action: failing.pop((logical, action), None),
    )
    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "again", ContainerImage=IMAGE, MinCapacity="2"))
    moved = running()
    now[moved] = "COMPLETED"  # the service is stable: then the scalable target fails
    assert status(cfn, "app") == "UPDATE_ROLLBACK_IN_PROGRESS", "the rollback waits for the service to get back"
    assert running() == released
    now[released] = "FAILED: the rollback deployment was rolled back"
    assert status(cfn, "app") == "UPDATE_ROLLBACK_FAILED"
    reasons = [reason or "" for lid, st, reason in events(cfn, "app") if (lid, st) == ("Service", "UPDATE_FAILED")]
    assert any("did not stabilize" in r and "rollback deployment was rolled back" in r for r in reasons), reasons


@covers("cfn_operation_time")
def test_a_slow_update_stays_in_progress_until_its_time_and_can_be_cancelled(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    from stepdeploy_local import clock

    cfn, ecs = aws("cloudformation"), aws("ecs")
    out = provision(cfn)

    def desired() -> int:
        [svc] = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
        return int(svc["desiredCount"])

    with pytest.raises(
        ClientError, match="CancelUpdateStack cannot be called from current stack status CREATE_COMPLETE"
    ):
        cfn.cancel_update_stack(StackName="app")
    compat.HOOKS.stack_operation_seconds = lambda stack, action: 600.0 if action == "UPDATE" else 0.0
    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "scale", DesiredCount="3"))
    assert (status(cfn, "app"), desired()) == ("UPDATE_IN_PROGRESS", 2)
    clock.current().advance(590)
    assert (status(cfn, "app"), desired()) == ("UPDATE_IN_PROGRESS", 2)
    clock.current().advance(20)
    assert (status(cfn, "app"), desired()) == ("UPDATE_COMPLETE", 3)

    cancelled = update_change_set(cfn, "app", "scale-more", DesiredCount="4")
    cfn.execute_change_set(ChangeSetName=cancelled)
    assert status(cfn, "app") == "UPDATE_IN_PROGRESS"
    cfn.cancel_update_stack(StackName="app")
    assert (status(cfn, "app"), desired()) == ("UPDATE_ROLLBACK_COMPLETE", 3)
    history = events(cfn, "app")
    assert ("app", "UPDATE_ROLLBACK_IN_PROGRESS", "Stack update cancelled") in history
    assert any(status == "UPDATE_FAILED" and reason == "Resource update cancelled" for _, status, reason in history)
    assert history[-1][:2] == ("app", "UPDATE_ROLLBACK_COMPLETE")
    clock.current().advance(3600)  # a cancelled update is never applied later
    assert (status(cfn, "app"), desired()) == ("UPDATE_ROLLBACK_COMPLETE", 3)
    with pytest.raises(ClientError, match="current stack status UPDATE_ROLLBACK_COMPLETE"):
        cfn.cancel_update_stack(StackName="app")


@covers(
    "cfn_execution",
    "cfn_resource_types",
    "cfn_aurora_instances",
    "cfn_getatt_paths",
    "cfn_elbv2_attributes",
    "cfn_list_parameters",
    "cfn_physical_names",
    "cfn_stack_resources",
)
def test_executing_the_create_change_set_provisions_the_application_stack(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn, rds, app = aws("cloudformation"), aws("rds"), "stepdeploy-local-app-techchallenge"  # a long stack name
    arn = create_change_set(cfn, app, "create")
    cfn.execute_change_set(ChangeSetName=arn)
    assert cfn.describe_change_set(ChangeSetName=arn)["ExecutionStatus"] == "EXECUTE_COMPLETE"
    stack = cfn.describe_stacks(StackName=app)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    out = outputs(cfn, app)
    assert set(out) == set(yaml.load(TEMPLATE, Loader=_TemplateLoader)["Outputs"])
    assert (out["ContainerName"], out["ContainerPort"], out["DatabasePort"]) == ("app", "3000", "5432")
    assert out["HealthCheckUrl"] == f"http://{out['LoadBalancerDNSName']}/healthcheck/"
    alarms = ("target-5xx", "unhealthy-hosts", "unhealthy-hosts-alternate", "target-response-time-p90")
    assert out["AlarmNames"] == ",".join(f"{app}-{alarm}" for alarm in alarms)
    assert out["ServiceArn"].endswith(f"/{out['ClusterName']}/{out['ServiceName']}")
    assert not any("{" in value or "Fn::" in value for value in out.values())
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert (params["ContainerImage"], params["ContainerCommand"], params["DesiredCount"]) == (IMAGE, "serve", "2")

    listed = cfn.list_stack_resources(StackName=app)["StackResourceSummaries"]
    assert {(r["LogicalResourceId"], r["ResourceType"]) for r in listed} == expected_resources()
    service = cfn.describe_stack_resource(StackName=app, LogicalResourceId="Service")["StackResourceDetail"]
    assert (service["PhysicalResourceId"], service["ResourceType"]) == (out["ServiceArn"], "AWS::ECS::Service")

    history = events(cfn, app)
    assert history[0] == (app, "REVIEW_IN_PROGRESS", "User Initiated")
    assert history[-1] == (app, "CREATE_COMPLETE", None)
    completed = {logical for logical, state, _ in history if state == "CREATE_COMPLETE"}
    assert completed == {n for n, _ in expected_resources()} | {app}

    # Aurora PostgreSQL: the cluster, its managed secret, a writer and a reader in different AZs
    [cluster] = rds.describe_db_clusters(DBClusterIdentifier=out["DatabaseClusterIdentifier"])["DBClusters"]
    assert (cluster["Engine"], cluster["EngineVersion"], cluster["Status"]) == (
        "aurora-postgresql",
        "15.13",
        "available",
    )
    assert (cluster["StorageEncrypted"], cluster["DeletionProtection"], cluster["BackupRetentionPeriod"]) == (
        True,
        True,
        7,
    )
    assert (cluster["DatabaseName"], cluster["MasterUsername"], cluster["Port"]) == ("app", "postgres", 5432)
    assert cluster["Endpoint"] == out["DatabaseEndpoint"]
    assert cluster["MasterUserSecret"]["SecretArn"] == out["DatabaseSecretArn"]
    secret = aws("secretsmanager").describe_secret(SecretId=out["DatabaseSecretArn"])
    assert secret["ARN"] == out["DatabaseSecretArn"]
    members = {m["DBInstanceIdentifier"]: m["IsClusterWriter"] for m in cluster["DBClusterMembers"]}
    instances = rds.describe_db_instances(
        Filters=[{"Name": "db-cluster-id", "Values": [out["DatabaseClusterIdentifier"]]}]
    )
    placed = {
        i["DBInstanceIdentifier"]: (i["AvailabilityZone"], i["PubliclyAccessible"]) for i in instances["DBInstances"]
    }
    assert sorted(placed.values()) == [("us-east-1a", False), ("us-east-1b", False)]
    writer = next(i for i, (az, _) in placed.items() if az == "us-east-1a")
    assert members == {i: i == writer for i in placed}
    # generated names within AWS's limits despite the long stack name (RDS identifiers: 63, lower case)
    identifiers = [*placed, cluster["DBClusterIdentifier"]]
    assert all(len(i) <= 63 and i == i.lower() and i.startswith(app) for i in identifiers)
    roles = sorted(r["RoleName"] for r in aws("iam").list_roles()["Roles"])
    assert [r[len(app) + 1 : len(app) + 9] for r in roles] == ["Database", "LoadBala", "TaskExec", "TaskRole"]
    assert all(len(r) <= 64 for r in roles)


def _monitoring(rds: Any, cluster: str) -> list[tuple[int, str | None]]:
    found = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [cluster]}])["DBInstances"]
    return [(i.get("MonitoringInterval", 0), i.get("MonitoringRoleArn")) for i in found]


@covers("cfn_execution", "cfn_aurora_instances")
def test_database_instances_keep_enhanced_monitoring_with_rds_rule(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn, rds = aws("cloudformation"), aws("rds")
    out = provision(cfn)
    role = cfn.describe_stack_resource(StackName="app", LogicalResourceId="DatabaseMonitoringRole")
    role_arn = aws("iam").get_role(RoleName=role["StackResourceDetail"]["PhysicalResourceId"])["Role"]["Arn"]
    assert _monitoring(rds, out["DatabaseClusterIdentifier"]) == [(60, role_arn)] * 2

    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "off", DatabaseMonitoringInterval="0"))
    assert status(cfn, "app") == "UPDATE_COMPLETE"
    assert _monitoring(rds, out["DatabaseClusterIdentifier"]) == [(0, None)] * 2

    # RDS refuses an interval without a role: the instance fails and the creation rolls back
    no_role = TEMPLATE.replace(
        "MonitoringRoleArn: !If [DatabaseMonitoring, !GetAtt DatabaseMonitoringRole.Arn, !Ref AWS::NoValue]",
        "MonitoringRoleArn: !Ref AWS::NoValue",
    )
    assert no_role != TEMPLATE
    defer = {"DeferDatabaseDeletionProtection": "true"}  # so the failed creation can roll back
    cfn.execute_change_set(ChangeSetName=create_change_set(cfn, "bad", "c", template=no_role, **defer))
    assert status(cfn, "bad") == "ROLLBACK_COMPLETE"
    [reason] = [r for _, state, r in events(cfn, "bad") if state == "CREATE_FAILED"]
    assert "A MonitoringRoleARN value is required" in str(reason)


@covers("cfn_execution", "cfn_ecs_properties", "cfn_list_parameters")
def test_the_ecs_service_and_task_definition_keep_their_fargate_properties(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn, ecs = aws("cloudformation"), aws("ecs")
    out = provision(cfn, DeploymentStrategy="ROLLING")  # today's service, unchanged
    td = ecs.describe_task_definition(taskDefinition=out["TaskDefinitionArn"])["taskDefinition"]
    assert (td["networkMode"], td["requiresCompatibilities"], td["cpu"], td["memory"]) == (
        "awsvpc",
        ["FARGATE"],
        "256",
        "512",
    )
    assert td["executionRoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/app-TaskExecutionRole-")
    [container] = td["containerDefinitions"]
    assert (container["name"], container["image"], container["command"]) == ("app", IMAGE, ["serve"])
    assert container["portMappings"] == [{"containerPort": 3000, "protocol": "tcp"}]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert (env["VTT_LISTENPORT"], env["VTT_DBHOST"], env["VTT_DBPORT"]) == ("3000", out["DatabaseEndpoint"], "5432")
    assert container["secrets"] == [{"name": "VTT_DBPASSWORD", "valueFrom": f"{out['DatabaseSecretArn']}:password::"}]
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": out["LogGroupName"],
            "awslogs-region": REGION,
            "awslogs-stream-prefix": "techchallengeapp",
        },
    }

    [service] = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    assert (service["serviceArn"], service["launchType"], service["desiredCount"], service["runningCount"]) == (
        out["ServiceArn"],
        "FARGATE",
        2,
        2,
    )
    assert service["taskDefinition"] == out["TaskDefinitionArn"]
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert (network["subnets"], network["securityGroups"], network["assignPublicIp"]) == (
        out["PrivateSubnetIds"].split(","),
        [out["TaskSecurityGroupId"]],
        "DISABLED",
    )
    assert service["loadBalancers"] == [
        {"targetGroupArn": out["TargetGroupArn"], "containerName": "app", "containerPort": 3000}
    ]
    assert service["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        "strategy": "ROLLING",
    }
    assert service["healthCheckGracePeriodSeconds"] == 60
    assert [(d["status"], d["rolloutState"]) for d in service["deployments"]] == [("PRIMARY", "COMPLETED")]
    [cluster] = ecs.describe_clusters(clusters=[out["ClusterName"]])["clusters"]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]

    ecs.update_service(cluster=out["ClusterName"], service=out["ServiceName"], desiredCount=4)  # still works
    [service] = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    assert service["desiredCount"] == 4


@covers("cfn_execution", "cfn_resource_types", "cfn_elbv2_attributes")
def test_the_load_balancer_autoscaling_and_alarms_are_provisioned(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn, elb, scaling, cw = aws("cloudformation"), aws("elbv2"), aws("application-autoscaling"), aws("cloudwatch")
    out = provision(cfn)
    [lb] = elb.describe_load_balancers(LoadBalancerArns=[out["LoadBalancerArn"]])["LoadBalancers"]
    assert (lb["DNSName"], lb["Scheme"], lb["Type"]) == (out["LoadBalancerDNSName"], "internet-facing", "application")
    [tg] = elb.describe_target_groups(TargetGroupArns=[out["TargetGroupArn"]])["TargetGroups"]
    assert (tg["TargetType"], tg["Protocol"], tg["Port"], tg["HealthCheckPath"]) == (
        "ip",
        "HTTP",
        3000,
        "/healthcheck/",
    )
    listeners = {ls["Port"]: ls for ls in elb.describe_listeners(LoadBalancerArn=out["LoadBalancerArn"])["Listeners"]}
    assert {port: ls["Protocol"] for port, ls in listeners.items()} == {80: "HTTP", 8080: "HTTP"}
    assert listeners[80]["DefaultActions"][0]["TargetGroupArn"] == out["TargetGroupArn"]

    [target] = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert target["ResourceId"] == f"service/{out['ClusterName']}/{out['ServiceName']}"
    assert (target["ScalableDimension"], target["MinCapacity"], target["MaxCapacity"]) == (
        "ecs:service:DesiredCount",
        2,
        6,
    )
    policies = scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    tracking = {
        p["PolicyName"]: (
            p["PolicyType"],
            p["ResourceId"],
            p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"],
            p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
        )
        for p in policies
    }
    assert tracking == {
        "techchallengeapp-cpu-target-tracking": (
            "TargetTrackingScaling",
            target["ResourceId"],
            "ECSServiceAverageCPUUtilization",
            60,
        ),
        "techchallengeapp-memory-target-tracking": (
            "TargetTrackingScaling",
            target["ResourceId"],
            "ECSServiceAverageMemoryUtilization",
            70,
        ),
    }

    alarms = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNames=out["AlarmNames"].split(","))["MetricAlarms"]}
    assert set(alarms) == set(out["AlarmNames"].split(","))
    lb_name = out["LoadBalancerArn"].split(":loadbalancer/")[1]
    five = alarms["app-target-5xx"]
    assert (five["Namespace"], five["MetricName"], five["Statistic"], five["Threshold"]) == (
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
        "Sum",
        5.0,
    )
    assert (five["EvaluationPeriods"], five["Period"], five["TreatMissingData"]) == (2, 60, "notBreaching")
    assert five["Dimensions"] == [{"Name": "LoadBalancer", "Value": lb_name}]
    unhealthy = alarms["app-unhealthy-hosts"]["Dimensions"]
    assert unhealthy[0] == {"Name": "TargetGroup", "Value": out["TargetGroupArn"].split(":")[-1]}
    alternate = alarms["app-unhealthy-hosts-alternate"]["Dimensions"]
    assert alternate[0] == {"Name": "TargetGroup", "Value": out["AlternateTargetGroupArn"].split(":")[-1]}
    assert alarms["app-target-response-time-p90"]["ExtendedStatistic"] == "p90"


@covers("cfn_execution", "cfn_dynamic_references", "cfn_ecs_properties", "cfn_iam_roles")
def test_blue_green_resources_and_a_test_listener_open_only_to_the_generated_token(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn, elb, ecs, iam, ec2 = aws("cloudformation"), aws("elbv2"), aws("ecs"), aws("iam"), aws("ec2")
    out = provision(cfn, DeploymentStrategy="BLUE_GREEN")  # (the default is ROLLING for now)
    assert out["DeploymentStrategy"] == "BLUE_GREEN"
    assert out["TestUrl"] == f"http://{out['LoadBalancerDNSName']}:8080/healthcheck/"
    secret = json.loads(aws("secretsmanager").get_secret_value(SecretId=out["TestTrafficSecretArn"])["SecretString"])
    assert secret["header"] == "X-Stepdeploy-Test" and len(secret["token"]) == 48 and secret["token"].isalnum()

    weighted = [
        {"TargetGroupArn": out["TargetGroupArn"], "Weight": 100},
        {"TargetGroupArn": out["AlternateTargetGroupArn"], "Weight": 0},
    ]
    listeners = {ls["Port"]: ls for ls in elb.describe_listeners(LoadBalancerArn=out["LoadBalancerArn"])["Listeners"]}
    test = listeners[8080]
    assert test["DefaultActions"] == [
        {
            "Type": "fixed-response",
            "FixedResponseConfig": {"StatusCode": "403", "ContentType": "text/plain", "MessageBody": "Forbidden"},
        }
    ]
    [rule] = elb.describe_rules(RuleArns=[out["TestListenerRuleArn"]])["Rules"]
    assert [
        r["RuleArn"] for r in elb.describe_rules(ListenerArn=test["ListenerArn"])["Rules"] if not r["IsDefault"]
    ] == [rule["RuleArn"]]
    assert rule["Conditions"] == [
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": secret["header"], "Values": [secret["token"]]}}
    ]
    assert rule["Actions"][0]["ForwardConfig"]["TargetGroups"] == weighted
    [production] = elb.describe_rules(RuleArns=[out["ProductionListenerRuleArn"]])["Rules"]
    assert production["RuleArn"].split("/")[-2] == listeners[80]["ListenerArn"].split("/")[-1]
    assert production["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]
    assert production["Actions"][0]["ForwardConfig"]["TargetGroups"] == weighted

    groups = elb.describe_target_groups(TargetGroupArns=[out["TargetGroupArn"], out["AlternateTargetGroupArn"]])
    checks = {
        json.dumps([g[k] for k in ("TargetType", "Port", "HealthCheckPath", "HealthCheckIntervalSeconds", "Matcher")])
        for g in groups["TargetGroups"]
    }
    assert len(checks) == 1  # the same health check
    [group] = ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [_lb_group(elb, out)]}])[
        "SecurityGroups"
    ]
    assert {(p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in group["IpPermissions"]} == {
        (80, "0.0.0.0/0"),
        (443, "0.0.0.0/0"),
        (8080, "0.0.0.0/0"),
    }

    [service] = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    advanced = service["loadBalancers"][0]["advancedConfiguration"]
    assert (advanced["alternateTargetGroupArn"], advanced["productionListenerRule"], advanced["testListenerRule"]) == (
        out["AlternateTargetGroupArn"],
        out["ProductionListenerRuleArn"],
        out["TestListenerRuleArn"],
    )
    role = iam.get_role(RoleName=advanced["roleArn"].split("/")[-1])["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecs.amazonaws.com"}
    attached = iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonECSInfrastructureRolePolicyForLoadBalancers"]
    config = service["deploymentConfiguration"]
    assert (config["strategy"], config["bakeTimeInMinutes"]) == ("BLUE_GREEN", 5)
    assert "canaryConfiguration" not in config and "linearConfiguration" not in config
    assert [(h["targetType"], h["lifecycleStages"], h["timeoutConfiguration"]) for h in config["lifecycleHooks"]] == [
        ("PAUSE", [stage], {"timeoutInMinutes": 60, "action": "ROLLBACK"})
        for stage in ("POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT")
    ]


def _lb_group(elb: Any, out: dict[str, str]) -> str:
    [lb] = elb.describe_load_balancers(LoadBalancerArns=[out["LoadBalancerArn"]])["LoadBalancers"]
    return str(lb["SecurityGroups"][0])


@covers("cfn_execution", "cfn_ecs_properties")
def test_canary_and_linear_stacks_configure_only_their_own_strategy(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn, ecs = aws("cloudformation"), aws("ecs")
    for stack, strategy, block, expected in (
        ("canary", "CANARY", "canaryConfiguration", {"canaryPercent": 10, "canaryBakeTimeInMinutes": 5}),
        ("linear", "LINEAR", "linearConfiguration", {"stepPercent": 25, "stepBakeTimeInMinutes": 5}),
    ):
        out = provision(cfn, stack, DeploymentStrategy=strategy)
        [service] = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
        config = service["deploymentConfiguration"]
        assert config["strategy"] == strategy and out["DeploymentStrategy"] == strategy
        assert {k: float(v) for k, v in config[block].items()} == expected
        assert {"canaryConfiguration", "linearConfiguration"} & set(config) == {block}
        assert len(config["lifecycleHooks"]) == 2


def _secret_copy_template(key: str) -> str:
    return yaml.safe_dump(
        {
            "Resources": {
                "Source": {
                    "Type": "AWS::SecretsManager::Secret",
                    "Properties": {
                        "GenerateSecretString": {"SecretStringTemplate": "{}", "GenerateStringKey": "token"}
                    },
                },
                "Copy": {
                    "Type": "AWS::SecretsManager::Secret",
                    "Properties": {
                        "SecretString": {
                            "Fn::Sub": f"copied {{{{resolve:secretsmanager:${{Source}}:SecretString:{key}}}}}"
                        }
                    },
                },
            },
            "Outputs": {"Source": {"Value": {"Ref": "Source"}}, "Copy": {"Value": {"Ref": "Copy"}}},
        }
    )


@covers("cfn_dynamic_references", "cfn_execution")
def test_a_secrets_manager_dynamic_reference_is_resolved_when_the_resource_is_made(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn, secrets = aws("cloudformation"), aws("secretsmanager")
    body = _secret_copy_template("token")
    cfn.execute_change_set(
        ChangeSetName=cfn.create_change_set(
            StackName="s", ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=body
        )["Id"]
    )
    out = outputs(cfn, "s")
    token = json.loads(secrets.get_secret_value(SecretId=out["Source"])["SecretString"])["token"]
    assert secrets.get_secret_value(SecretId=out["Copy"])["SecretString"] == f"copied {token}"
    # the template keeps the reference: a new value of the secret alone is no change to the stack
    secrets.put_secret_value(SecretId=out["Source"], SecretString='{"token": "rotated"}')
    update = cfn.create_change_set(StackName="s", ChangeSetName="u", ChangeSetType="UPDATE", TemplateBody=body)["Id"]
    described = cfn.describe_change_set(ChangeSetName=update)
    assert (described["Status"], described["StatusReason"]) == ("FAILED", NO_CHANGES)

    # a key the secret does not have fails the resource (and rolls the creation back)
    cfn.execute_change_set(
        ChangeSetName=cfn.create_change_set(
            StackName="bad", ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=_secret_copy_template("nokey")
        )["Id"]
    )
    assert status(cfn, "bad") == "ROLLBACK_COMPLETE"
    [failed] = [(logical, reason) for logical, state, reason in events(cfn, "bad") if state == "CREATE_FAILED"]
    assert failed[0] == "Copy" and "has no JSON key 'nokey'" in str(failed[1])


@covers("cfn_deletions", "cfn_execution")
def test_a_listener_rule_changes_priority_in_place_and_goes_with_the_template(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn, elb = aws("cloudformation"), aws("elbv2")
    out = provision(cfn)
    listener = elb.describe_rules(RuleArns=[out["TestListenerRuleArn"]])["Rules"][0]["RuleArn"]
    doc = template.load(APP_TEMPLATE)  # intrinsics in their long form (JSON)
    doc["Resources"]["TestListenerRule"]["Properties"]["Priority"] = 7
    update = update_change_set(cfn, "app", "priority", template=json.dumps(doc))
    assert {(action, logical) for action, logical in changes(cfn, update)} == {("Modify", "TestListenerRule")}
    assert changes(cfn, update)[("Modify", "TestListenerRule")]["ResourceChange"]["Replacement"] == "False"
    cfn.execute_change_set(ChangeSetName=update)
    assert status(cfn, "app") == "UPDATE_COMPLETE"
    [rule] = elb.describe_rules(RuleArns=[out["TestListenerRuleArn"]])["Rules"]
    assert (rule["RuleArn"], rule["Priority"]) == (listener, "7")

    # without the test listener rule (the service no longer names it), the rule is deleted
    del doc["Resources"]["TestListenerRule"]
    del doc["Resources"]["ListenersReady"]["Metadata"]["TestListenerRule"]
    del doc["Outputs"]["TestListenerRuleArn"]
    advanced = doc["Resources"]["Service"]["Properties"]["LoadBalancers"][0]["AdvancedConfiguration"]
    del advanced["Fn::If"][2]["TestListenerRule"]
    update = update_change_set(cfn, "app", "norule", template=json.dumps(doc))
    assert ("Remove", "TestListenerRule") in changes(cfn, update)
    cfn.execute_change_set(ChangeSetName=update)
    assert status(cfn, "app") == "UPDATE_COMPLETE"
    test_listener = next(
        ls for ls in elb.describe_listeners(LoadBalancerArn=out["LoadBalancerArn"])["Listeners"] if ls["Port"] == 8080
    )
    assert [r["IsDefault"] for r in elb.describe_rules(ListenerArn=test_listener["ListenerArn"])["Rules"]] == [True]


def _role_template(policy: str, service: str) -> str:
    return yaml.safe_dump(
        {
            "Resources": {
                "Role": {
                    "Type": "AWS::IAM::Role",
                    "Properties": {
                        "AssumeRolePolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
                            ],
                        },
                        "ManagedPolicyArns": [f"arn:aws:iam::aws:policy/{policy}"],
                    },
                }
            },
            "Outputs": {"Role": {"Value": {"Ref": "Role"}}},
        }
    )


@covers("cfn_iam_roles", "cfn_execution")
def test_a_role_attaches_its_managed_policies_follows_updates_and_can_be_deleted(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn, iam = aws("cloudformation"), aws("iam")

    def run(stack: str, kind: str, body: str) -> None:
        cfn.execute_change_set(
            ChangeSetName=cfn.create_change_set(
                StackName=stack,
                ChangeSetName=f"c{kind}",
                ChangeSetType=kind,
                TemplateBody=body,
                Capabilities=["CAPABILITY_IAM"],
            )["Id"]
        )

    run("r", "CREATE", _role_template("AmazonECSInfrastructureRolePolicyForLoadBalancers", "ecs.amazonaws.com"))
    name = outputs(cfn, "r")["Role"]
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    assert attached == [
        {
            "PolicyName": "AmazonECSInfrastructureRolePolicyForLoadBalancers",
            "PolicyArn": "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers",
        }
    ]
    run("r", "UPDATE", _role_template("service-role/AmazonECSTaskExecutionRolePolicy", "ecs-tasks.amazonaws.com"))
    assert status(cfn, "r") == "UPDATE_COMPLETE"
    role = iam.get_role(RoleName=name)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]] == [
        "AmazonECSTaskExecutionRolePolicy"
    ]
    cfn.delete_stack(StackName="r")  # CloudFormation detaches the policies first
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []

    run("bad", "CREATE", _role_template("NoSuchPolicy", "ecs.amazonaws.com"))  # not an AWS managed policy
    assert status(cfn, "bad") == "ROLLBACK_COMPLETE"
    [reason] = [r for logical, state, r in events(cfn, "bad") if state == "CREATE_FAILED"]
    assert reason == "Policy arn:aws:iam::aws:policy/NoSuchPolicy does not exist or is not attachable."


@covers("cfn_execution", "cfn_ecs_properties")
def test_executing_an_update_change_set_applies_it(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn, ecs, scaling = aws("cloudformation"), aws("ecs"), aws("application-autoscaling")
    before = provision(cfn)
    arn = update_change_set(cfn, "app", "update", DesiredCount="3", MinCapacity="3", ContainerImage=IMAGE_2)
    assert set(changes(cfn, arn)) == {("Modify", "Service"), ("Modify", "TaskDefinition"), ("Modify", "ScalableTarget")}
    cfn.execute_change_set(ChangeSetName=arn)
    assert status(cfn, "app") == "UPDATE_COMPLETE"
    after = outputs(cfn, "app")
    assert after["TaskDefinitionArn"] == revision(before["TaskDefinitionArn"], 2)
    [service] = ecs.describe_services(cluster=after["ClusterName"], services=[after["ServiceName"]])["services"]
    assert (service["desiredCount"], service["taskDefinition"]) == (3, after["TaskDefinitionArn"])
    new = ecs.describe_task_definition(taskDefinition=after["TaskDefinitionArn"])["taskDefinition"]
    assert new["containerDefinitions"][0]["image"] == IMAGE_2
    old = ecs.describe_task_definition(taskDefinition=before["TaskDefinitionArn"])["taskDefinition"]
    assert old["status"] == "INACTIVE"  # the replaced revision is deregistered in the cleanup phase
    [target] = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (3, 6)
    history = events(cfn, "app")
    assert [e for e in history if e[0] == "app"][-3:] == [
        ("app", "UPDATE_IN_PROGRESS", "User Initiated"),
        ("app", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None),
        ("app", "UPDATE_COMPLETE", None),
    ]
    assert ("TaskDefinition", "DELETE_COMPLETE", None) in history  # the old revision, after the update

    removal = update_change_set(cfn, "app", "per-az", NatGatewayMode="per-az")
    cfn.execute_change_set(ChangeSetName=removal)
    back = update_change_set(cfn, "app", "single", NatGatewayMode="single")
    assert {action for action, _ in changes(cfn, back)} == {"Remove", "Modify"}
    cfn.execute_change_set(ChangeSetName=back)
    assert status(cfn, "app") == "UPDATE_COMPLETE"
    assert aws("ec2").describe_nat_gateways()["NatGateways"][-1]["State"] == "deleted"


@covers("cfn_execution", "cfn_ecs_properties")
def test_an_update_keeps_what_a_deployment_changed_outside_the_stack(aws: Clients, _patch: tuple[str, ...]) -> None:
    """As on AWS, a stack update sends the service's changed properties only: a revision a deployment
    registered and rolled out stays until the template's task definition itself changes."""
    cfn, ecs = aws("cloudformation"), aws("ecs")
    out = provision(cfn)
    td = ecs.describe_task_definition(taskDefinition=out["TaskDefinitionArn"])["taskDefinition"]
    containers = [{**td["containerDefinitions"][0], "image": IMAGE_2}]
    keep = ("networkMode", "requiresCompatibilities", "cpu", "memory", "executionRoleArn", "taskRoleArn")
    deployed = ecs.register_task_definition(
        family=td["family"], containerDefinitions=containers, **{k: td[k] for k in keep}
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=out["ClusterName"], service=out["ServiceName"], taskDefinition=deployed)

    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "scale", DesiredCount="3"))
    [service] = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    assert (service["desiredCount"], service["taskDefinition"]) == (3, deployed)

    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "image", ContainerImage=IMAGE_2))
    [service] = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    assert service["taskDefinition"] == outputs(cfn, "app")["TaskDefinitionArn"] == revision(deployed, 3)


@covers("cfn_execution", "cfn_resource_types")
def test_a_secrets_manager_secret_is_generated_updated_and_deleted(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn, secrets = aws("cloudformation"), aws("secretsmanager")
    template = {
        "Parameters": {"Purpose": {"Type": "String", "Default": "first"}},
        "Resources": {
            "Secret": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {
                    "Name": "app/credentials",
                    "Description": {"Ref": "Purpose"},
                    "GenerateSecretString": {
                        "SecretStringTemplate": '{"username": "app"}',
                        "GenerateStringKey": "password",
                        "PasswordLength": 24,
                        "ExcludePunctuation": True,
                    },
                },
            }
        },
        "Outputs": {"SecretArn": {"Value": {"Ref": "Secret"}}},
    }
    body = yaml.safe_dump(template)
    cfn.execute_change_set(
        ChangeSetName=cfn.create_change_set(
            StackName="s", ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=body
        )["Id"]
    )
    arn = outputs(cfn, "s")["SecretArn"]
    value = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    assert value["username"] == "app" and len(value["password"]) == 24 and value["password"].isalnum()
    update = cfn.create_change_set(
        StackName="s",
        ChangeSetName="u",
        ChangeSetType="UPDATE",
        TemplateBody=body,
        Parameters=[{"ParameterKey": "Purpose", "ParameterValue": "second"}],
    )["Id"]
    assert set(changes(cfn, update)) == {("Modify", "Secret")}
    cfn.execute_change_set(ChangeSetName=update)
    assert secrets.describe_secret(SecretId=arn)["Description"] == "second"
    cfn.delete_stack(StackName="s")
    assert secrets.list_secrets()["SecretList"] == []


@covers("cfn_vpc_properties", "cfn_execution", "cfn_deletions")
def test_network_properties_in_place_updates_and_a_protected_database_on_delete(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn, ec2, rds, logs = aws("cloudformation"), aws("ec2"), aws("rds"), aws("logs")
    out = provision(cfn)
    vpc = out["VpcId"]
    assert ec2.describe_vpc_attribute(VpcId=vpc, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    [tasks] = ec2.describe_security_groups(GroupIds=[out["TaskSecurityGroupId"]])["SecurityGroups"]
    egress = {
        (p["FromPort"], *[r["CidrIp"] for r in p["IpRanges"]], *[g["GroupId"][:3] for g in p["UserIdGroupPairs"]])
        for p in tasks["IpPermissionsEgress"]
    }
    assert egress == {(443, "0.0.0.0/0"), (5432, "sg-")}  # the template's egress replaced the default allow-all
    assert [(p["FromPort"], p["ToPort"]) for p in tasks["IpPermissions"]] == [(3000, 3000)]  # from the ALB
    for subnet in out["PrivateSubnetIds"].split(","):
        [table] = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])[
            "RouteTables"
        ]
        assert [r.get("NatGatewayId", "")[:4] for r in table["Routes"] if r["DestinationCidrBlock"] == "0.0.0.0/0"] == [
            "nat-"
        ]

    arn = update_change_set(cfn, "app", "rename", ApplicationName="renamed")
    renamed = changes(cfn, arn)
    replacement = {logical: c["ResourceChange"]["Replacement"] for (_, logical), c in renamed.items()}
    assert (replacement["Vpc"], replacement["PrivateSubnet1"], replacement["EcsCluster"]) == ("False", "False", "False")
    assert (replacement["LogGroup"], replacement["TaskDefinition"], replacement["TaskSecurityGroup"]) == ("True",) * 3
    cfn.execute_change_set(ChangeSetName=arn)
    after = outputs(cfn, "app")
    assert status(cfn, "app") == "UPDATE_COMPLETE" and after["VpcId"] == vpc
    tags = {t["Key"]: t["Value"] for t in ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"]}
    assert (tags["Name"], tags["aws:cloudformation:logical-id"]) == ("renamed-vpc", "Vpc")
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["/stepdeploy/app/renamed"]

    cfn.delete_stack(StackName="app")  # DeletionProtection (the template's default) keeps the database
    stack = cfn.describe_stacks(StackName="app")["Stacks"][0]
    assert (stack["StackStatus"], stack["StackStatusReason"]) == (
        "DELETE_FAILED",
        "The following resource(s) failed to delete: [DatabaseCluster]. ",
    )
    failed = [(logical, reason) for logical, state, reason in events(cfn, "app") if state == "DELETE_FAILED"]
    assert failed == [
        ("DatabaseCluster", "Cannot delete protected Cluster, please disable deletion protection and try again."),
        ("app", "The following resource(s) failed to delete: [DatabaseCluster]. "),
    ]
    [service] = aws("ecs").describe_services(cluster=after["ClusterName"], services=[after["ServiceName"]])["services"]
    assert service["status"] == "INACTIVE"  # what does not depend on the database is deleted
    rds.modify_db_cluster(DBClusterIdentifier=out["DatabaseClusterIdentifier"], DeletionProtection=False)
    cfn.delete_stack(StackName="app")
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName="app")
    assert rds.describe_db_clusters()["DBClusters"] == []
    [snapshot] = rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]  # DeletionPolicy
    assert snapshot["DBClusterIdentifier"] == out["DatabaseClusterIdentifier"]
    assert [v["IsDefault"] for v in ec2.describe_vpcs()["Vpcs"]] == [True]


# ----------------------------------------------------------------------------- failures


@covers("cfn_execution")
def test_a_failed_update_rolls_back_to_the_previous_properties(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn, ecs = aws("cloudformation"), aws("ecs")
    before = provision(cfn)
    calls: list[tuple[str, str, str, str]] = []

    def fail_the_service(stack: str, logical_id: str, resource_type: str, action: str) -> str | None:
        calls.append((stack, logical_id, resource_type, action))
        return "Service deployment failed: injected" if logical_id == "Service" and action == "UPDATE" else None

    compat.HOOKS.stack_resource_failure = fail_the_service
    arn = update_change_set(cfn, "app", "update", DesiredCount="3", ContainerImage=IMAGE_2)
    cfn.execute_change_set(ChangeSetName=arn)  # does not raise: the stack rolls back
    assert status(cfn, "app") == "UPDATE_ROLLBACK_COMPLETE"
    assert cfn.describe_change_set(ChangeSetName=arn)["ExecutionStatus"] == "EXECUTE_FAILED"
    assert calls[:2] == [
        ("app", "TaskDefinition", "AWS::ECS::TaskDefinition", "UPDATE"),
        ("app", "Service", "AWS::ECS::Service", "UPDATE"),
    ]
    [service] = ecs.describe_services(cluster=before["ClusterName"], services=[before["ServiceName"]])["services"]
    assert (service["desiredCount"], service["taskDefinition"]) == (2, before["TaskDefinitionArn"])
    assert outputs(cfn, "app") == before
    replacement = revision(before["TaskDefinitionArn"], 2)
    assert ecs.describe_task_definition(taskDefinition=replacement)["taskDefinition"]["status"] == "INACTIVE"

    history = events(cfn, "app")
    assert ("Service", "UPDATE_FAILED", "Service deployment failed: injected") in history
    stack_events = [(state, reason) for logical, state, reason in history if logical == "app"]
    assert stack_events[-4:] == [
        ("UPDATE_IN_PROGRESS", "User Initiated"),
        ("UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) failed to update: [Service]. "),
        ("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", None),
        ("UPDATE_ROLLBACK_COMPLETE", None),
    ]

    compat.HOOKS.stack_resource_failure = None  # the stack stays updatable after a rollback
    cfn.execute_change_set(ChangeSetName=update_change_set(cfn, "app", "again", DesiredCount="3"))
    assert status(cfn, "app") == "UPDATE_COMPLETE"


@covers("cfn_execution", "cfn_deletions")
def test_a_failed_create_rolls_back_and_the_stack_can_then_be_deleted(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn = aws("cloudformation")
    compat.HOOKS.stack_resource_failure = lambda stack, logical_id, resource_type, action: (
        "Resource handler returned message: injected" if logical_id == "Service" else None
    )
    cfn.execute_change_set(ChangeSetName=create_change_set(cfn, "app", "create", DatabaseDeletionProtection="false"))
    stack = cfn.describe_stacks(StackName="app")["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert stack["StackStatusReason"] == (
        "The following resource(s) failed to create: [Service]. Rollback requested by user."
    )
    assert "Outputs" not in stack
    history = events(cfn, "app")
    assert ("Service", "CREATE_FAILED", "Resource handler returned message: injected") in history
    assert (
        "app",
        "ROLLBACK_IN_PROGRESS",
        "The following resource(s) failed to create: [Service]. Rollback requested by user.",
    ) in history
    assert history[-1] == ("app", "ROLLBACK_COMPLETE", None)
    assert {logical for logical, state, _ in history if state == "DELETE_COMPLETE"} == {
        logical for logical, state, _ in history if state == "CREATE_COMPLETE"
    }
    # nothing the rollback deleted is left visible
    assert aws("rds").describe_db_clusters()["DBClusters"] == []
    assert aws("rds").describe_db_instances()["DBInstances"] == []
    assert aws("elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert aws("elbv2").describe_target_groups()["TargetGroups"] == []
    assert [v["IsDefault"] for v in aws("ec2").describe_vpcs()["Vpcs"]] == [True]
    assert aws("cloudwatch").describe_alarms()["MetricAlarms"] == []

    with pytest.raises(ClientError, match="ROLLBACK_COMPLETE state and can not be updated"):
        update_change_set(cfn, "app", "update", DesiredCount="3")
    cfn.delete_stack(StackName="app")
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName="app")


@covers("cfn_execution")
def test_a_moto_error_during_execution_rolls_back_with_its_message(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn, sqs = aws("cloudformation"), aws("sqs")
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "before-the-failure"}},
            "Service": {
                "Type": "AWS::ECS::Service",
                "DependsOn": "Queue",
                "Properties": {"Cluster": "no-such-cluster", "TaskDefinition": "no-such-family:1"},
            },
        }
    }
    arn = cfn.create_change_set(
        StackName="broken", ChangeSetName="create", ChangeSetType="CREATE", TemplateBody=yaml.safe_dump(template)
    )["Id"]
    cfn.execute_change_set(ChangeSetName=arn)
    assert status(cfn, "broken") == "ROLLBACK_COMPLETE"
    [(_, _, reason)] = [e for e in events(cfn, "broken") if e[1] == "CREATE_FAILED"]
    assert reason is not None and "Cluster not found" in reason
    assert sqs.list_queues().get("QueueUrls", []) == []


@covers("cfn_execution")
def test_a_protected_database_makes_the_create_rollback_fail(aws: Clients, _patch: tuple[str, ...]) -> None:
    """As on AWS: the rollback cannot delete a cluster with DeletionProtection (the template's default)."""
    cfn = aws("cloudformation")
    compat.HOOKS.stack_resource_failure = lambda stack, logical_id, resource_type, action: (
        "injected" if logical_id == "Service" else None
    )
    cfn.execute_change_set(ChangeSetName=create_change_set(cfn, "app", "create"))
    assert status(cfn, "app") == "ROLLBACK_FAILED"
    failed = [(logical, reason) for logical, state, reason in events(cfn, "app") if state == "DELETE_FAILED"]
    assert failed == [
        ("DatabaseCluster", "Cannot delete protected Cluster, please disable deletion protection and try again.")
    ]
    assert len(aws("rds").describe_db_clusters()["DBClusters"]) == 1


# ----------------------------------------------------------------------------- DeletionPolicy


def _database_then_a_queue(policy: str, protected: bool = False) -> str:
    """A cluster (with ``policy``) and a queue created after it: failing the queue rolls the creation back
    once the cluster exists."""
    template = {
        "Resources": {
            "Database": {
                "Type": "AWS::RDS::DBCluster",
                "DeletionPolicy": policy,
                "Properties": {
                    "Engine": "aurora-postgresql",
                    "EngineVersion": "15.13",
                    "MasterUsername": "postgres",
                    "ManageMasterUserPassword": True,
                    "DeletionProtection": protected,
                },
            },
            "Later": {"Type": "AWS::SQS::Queue", "DependsOn": "Database", "Properties": {"QueueName": "later"}},
        }
    }
    return yaml.safe_dump(template)


def _execute(cfn: Any, stack: str, template: str, kind: str = "CREATE") -> None:
    arn = cfn.create_change_set(StackName=stack, ChangeSetName=kind.lower(), ChangeSetType=kind, TemplateBody=template)
    cfn.execute_change_set(ChangeSetName=arn["Id"])


@covers("cfn_execution")
@pytest.mark.parametrize(
    ("policy", "kept", "snapshots", "event"),
    [
        ("Delete", False, 0, "DELETE_COMPLETE"),
        ("Snapshot", False, 1, "DELETE_COMPLETE"),  # a final snapshot, then the cluster goes
        ("Retain", True, 0, "DELETE_SKIPPED"),  # Retain applies to a rollback too
        ("RetainExceptOnCreate", False, 0, "DELETE_COMPLETE"),  # except in the operation that created it
    ],
)
def test_the_rollback_of_a_creation_honours_the_deletion_policy(
    aws: Clients, _patch: tuple[str, ...], policy: str, kept: bool, snapshots: int, event: str
) -> None:
    cfn, rds = aws("cloudformation"), aws("rds")
    compat.HOOKS.stack_resource_failure = lambda stack, logical_id, resource_type, action: (
        "injected" if (logical_id, action) == ("Later", "CREATE") else None
    )
    _execute(cfn, "db", _database_then_a_queue(policy))

    assert status(cfn, "db") == "ROLLBACK_COMPLETE"
    [(physical, state)] = [
        (e["PhysicalResourceId"], e["ResourceStatus"])
        for e in cfn.describe_stack_events(StackName="db")["StackEvents"]
        if e["LogicalResourceId"] == "Database" and e["ResourceStatus"] in ("DELETE_COMPLETE", "DELETE_SKIPPED")
    ]
    assert state == event
    assert [c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]] == ([physical] if kept else [])
    found = rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    assert [s["DBClusterIdentifier"] for s in found] == [physical] * snapshots
    assert cfn.list_stack_resources(StackName="db")["StackResourceSummaries"] == []

    cfn.delete_stack(StackName="db")  # the failed stack goes; what was retained stays
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName="db")
    assert len(rds.describe_db_clusters()["DBClusters"]) == int(kept)


@covers("cfn_execution")
def test_a_protected_cluster_fails_a_creation_rollback_unless_it_is_retained(
    aws: Clients, _patch: tuple[str, ...]
) -> None:
    cfn, rds = aws("cloudformation"), aws("rds")
    compat.HOOKS.stack_resource_failure = lambda stack, logical_id, resource_type, action: (
        "injected" if (logical_id, action) == ("Later", "CREATE") else None
    )
    _execute(cfn, "snap", _database_then_a_queue("Snapshot", protected=True))
    _execute(cfn, "keep", _database_then_a_queue("Retain", protected=True))

    assert status(cfn, "snap") == "ROLLBACK_FAILED"
    failed = [(logical, reason) for logical, state, reason in events(cfn, "snap") if state == "DELETE_FAILED"]
    refused = "Cannot delete protected Cluster, please disable deletion protection and try again."
    assert failed == [("Database", refused)]
    assert rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"] == []
    assert status(cfn, "keep") == "ROLLBACK_COMPLETE"  # Retain never asks RDS to delete it
    assert len(rds.describe_db_clusters()["DBClusters"]) == 2


@covers("cfn_execution", "cfn_deletions")
def test_retain_except_on_create_retains_on_stack_deletion_and_removal(aws: Clients, _patch: tuple[str, ...]) -> None:
    cfn, rds = aws("cloudformation"), aws("rds")
    _execute(cfn, "db", _database_then_a_queue("RetainExceptOnCreate", protected=True))
    assert status(cfn, "db") == "CREATE_COMPLETE"
    [cluster] = rds.describe_db_clusters()["DBClusters"]

    # a later operation that fails does not delete what an earlier one created
    compat.HOOKS.stack_resource_failure = lambda stack, logical_id, resource_type, action: (
        "injected" if (logical_id, action) == ("Later", "UPDATE") else None
    )
    changed = _database_then_a_queue("RetainExceptOnCreate", protected=True).replace("later", "renamed")
    _execute(cfn, "db", changed, kind="UPDATE")
    assert status(cfn, "db") == "UPDATE_ROLLBACK_COMPLETE"
    compat.HOOKS.stack_resource_failure = None

    stack_id = cfn.describe_stacks(StackName="db")["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName="db")  # protected, but retained: never deleted, so the deletion completes
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName="db")
    assert [c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]] == [
        cluster["DBClusterIdentifier"]
    ]
    assert rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"] == []
    deleted = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    assert next(e["ResourceStatus"] for e in deleted if e["LogicalResourceId"] == "Database") == "DELETE_SKIPPED"
