"""Provisioning end to end: the application stack from an empty account, updates through change
sets, the one-off database initialisation, plan mode, and failed infrastructure updates.

The real ASL and handlers run in the local world; the stack is stacks/app.yaml, created by
CloudFormation (moto + compat) through the change sets EnsureStack makes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stepdeploy import stack as app_stack
from stepdeploy_local import World
from stepdeploy_local.world import ExecutionResult, StackApp


@pytest.fixture
def stack_app(world: World) -> StackApp:
    """A stack that deploys ROLLING (the stack path's rollouts, circuit breaker and rollback through the stack;
    the default, BLUE_GREEN, is in test_stack_blue_green.py)."""
    world.push_image("techchallengeapp", "v1")
    return world.stack_app("techchallenge", parameters={"DeploymentStrategy": "ROLLING"})


@pytest.fixture
def provisioned(world: World, stack_app: StackApp) -> StackApp:
    result = world.deploy(stack_app.request("v1"))
    assert result.status == "SUCCEEDED", result.cause
    return stack_app


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def severities(notes: list[dict[str, Any]], result: ExecutionResult) -> list[str]:
    """The severity of each notification (world.notifications(), which drains them) about one execution."""
    return [n["attributes"]["severity"] for n in notes if n["message"].get("deployment_id") == result.name]


def control_items(world: World) -> list[dict[str, Any]]:
    table = world.outputs["ControlTableName"]
    return list(world.client("dynamodb").scan(TableName=table)["Items"])


def leftover_change_sets(world: World, app: StackApp, result: ExecutionResult) -> list[str]:
    """Change sets this deployment made that still exist (unexecuted ones must be deleted)."""
    summaries = world.client("cloudformation").list_change_sets(StackName=app.stack_name)["Summaries"]
    mine = app_stack.change_set_name(result.name)
    return [
        s["ChangeSetName"]
        for s in summaries
        if s["ChangeSetName"].startswith(mine) and s.get("ExecutionStatus") != "EXECUTE_COMPLETE"
    ]


def stack_status(world: World, app: StackApp) -> str | None:
    cfn = world.client("cloudformation")
    try:
        return str(cfn.describe_stacks(StackName=app.stack_name)["Stacks"][0]["StackStatus"])
    except cfn.exceptions.ClientError:
        return None


def test_first_deploy_provisions_everything_from_an_empty_account(world: World, stack_app: StackApp) -> None:
    assert stack_status(world, stack_app) is None
    result = world.deploy(stack_app.request("v1"))

    assert result.status == "SUCCEEDED", result.cause
    # created with the database's deletion protection deferred, which an update then switched on
    cfn = world.client("cloudformation")
    (stack,) = cfn.describe_stacks(StackName=stack_app.stack_name)["Stacks"]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert (parameters["DatabaseDeletionProtection"], parameters["DeferDatabaseDeletionProtection"]) == (
        "true",
        "false",
    )
    stack_events = [
        e["ResourceStatus"]
        for e in reversed(cfn.describe_stack_events(StackName=stack_app.stack_name)["StackEvents"])
        if e["LogicalResourceId"] == stack_app.stack_name and e["ResourceStatus"].endswith("_COMPLETE")
    ]
    assert stack_events == ["CREATE_COMPLETE", "UPDATE_COMPLETE"]
    path = result.path
    assert path[:4] == ["Normalize", "Guard", "GuardDecision", "EnsureStack"]
    assert "InitDatabase" in path and "RecordDatabaseInit" in path
    assert path.index("GuardImage") < path.index("PrepareVerify") < path.index("InitDatabase")
    assert "RegisterRevision" not in path, "the stack created the service with the image: nothing to register"
    assert path[-2:] == ["RecordSucceeded", "Deployed"]

    record = world.record(stack_app, result.name)
    assert record is not None and record["outcome"] == "SUCCEEDED"
    assert record["stack"]["operation"] == "CREATE"
    assert {c["logical_id"] for c in record["stack"]["changes"]} >= {"DatabaseCluster", "Service", "LoadBalancer"}
    assert record["database_initialised"] is True
    assert all(g["passed"] for g in record["gate_results"])

    (run,) = world.one_off_runs
    assert run.command == ["updatedb", "-s"] and run.exit_code == 0

    service = stack_app.service()
    assert service.running_image() == world.image_uri("techchallengeapp", "v1")
    assert service.health_url.startswith("http://") and ".elb.amazonaws.com/healthcheck/" in service.health_url


def test_describe_calls_show_every_resource_after_provisioning(world: World, provisioned: StackApp) -> None:
    out = provisioned.outputs()
    rds = world.client("rds")
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier=out["DatabaseClusterIdentifier"])["DBClusters"]
    assert cluster["Engine"] == "aurora-postgresql" and cluster["StorageEncrypted"] and cluster["DeletionProtection"]
    members = cluster["DBClusterMembers"]
    assert len(members) == 2 and sorted(m["IsClusterWriter"] for m in members) == [False, True]
    instances = [
        rds.describe_db_instances(DBInstanceIdentifier=m["DBInstanceIdentifier"])["DBInstances"][0] for m in members
    ]
    assert len({i["AvailabilityZone"] for i in instances}) == 2
    assert not any(i["PubliclyAccessible"] for i in instances)
    secret = world.client("secretsmanager").describe_secret(SecretId=out["DatabaseSecretArn"])
    assert secret["ARN"] == cluster["MasterUserSecret"]["SecretArn"]

    ecs = world.client("ecs")
    (svc,) = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    assert svc["launchType"] == "FARGATE"
    vpc = svc["networkConfiguration"]["awsvpcConfiguration"]
    assert sorted(vpc["subnets"]) == sorted(out["PrivateSubnetIds"].split(","))
    assert vpc["assignPublicIp"] == "DISABLED"
    assert svc["loadBalancers"][0]["targetGroupArn"] == out["TargetGroupArn"]
    assert svc["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    assert td["requiresCompatibilities"] == ["FARGATE"] and td["networkMode"] == "awsvpc"
    (container,) = td["containerDefinitions"]
    assert [s["name"] for s in container["secrets"]] == ["VTT_DBPASSWORD"]

    elb = world.client("elbv2")
    (tg,) = elb.describe_target_groups(TargetGroupArns=[out["TargetGroupArn"]])["TargetGroups"]
    assert tg["TargetType"] == "ip" and tg["HealthCheckPath"] == "/healthcheck/"
    assert elb.describe_listeners(LoadBalancerArn=out["LoadBalancerArn"])["Listeners"]

    scaling = world.client("application-autoscaling")
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert target["MinCapacity"] == 2
    policies = scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    assert len(policies) == 2

    alarms = world.client("cloudwatch").describe_alarms(AlarmNames=out["AlarmNames"].split(","))["MetricAlarms"]
    assert len(alarms) == 4  # 5xx, unhealthy hosts in each target group, response time


def stack_image(world: World, app: StackApp) -> str:
    stack = world.client("cloudformation").describe_stacks(StackName=app.stack_name)["Stacks"][0]
    return next(p["ParameterValue"] for p in stack["Parameters"] if p["ParameterKey"] == "ContainerImage")


def test_a_release_is_one_change_set_and_one_rollout(world: World, provisioned: StackApp) -> None:
    """The stack owns the task definition: a release changes ContainerImage, and CloudFormation's update
    of the service is the only rollout (no revision of stepdeploy's own, no re-pin, no stack tags)."""
    rollouts = len(provisioned.service().rollouts())
    world.push_image("techchallengeapp", "v2")
    result = world.deploy(provisioned.request("v2"))

    assert result.status == "SUCCEEDED", result.cause
    assert "InitDatabase" not in result.path, "the schema was initialised once; never again"
    assert "RegisterRevision" not in result.path and "Deploy" not in result.path
    record = world.record(provisioned, result.name)
    assert record is not None and record["stack"]["operation"] == "UPDATE"
    assert {c["logical_id"] for c in record["stack"]["changes"]} == {"TaskDefinition", "Service"}
    service = provisioned.service()
    assert service.running_image() == world.image_uri("techchallengeapp", "v2")
    assert len(service.rollouts()) == rollouts + 1, "exactly one ECS rollout for the release"
    assert stack_image(world, provisioned) == service.running_image(), "the stack says what runs"
    assert (
        record["new_task_definition"] == service.running_task_definition() == provisioned.outputs()["TaskDefinitionArn"]
    )
    assert len(world.one_off_runs) == 1
    assert leftover_change_sets(world, provisioned, result) == []


def test_execution_names_with_underscores_and_dots_name_valid_change_sets(world: World, stack_app: StackApp) -> None:
    """Step Functions execution names may hold ``_`` and ``.`` (CodePipeline prefixes, release names);
    CloudFormation change-set names may not: EnsureStack derives a valid one, unique per deployment."""
    created = world.deploy(stack_app.request("v1"), name="release_2026.01.05-first")
    assert created.status == "SUCCEEDED", created.cause
    assert stack_status(world, stack_app) == "UPDATE_COMPLETE"  # (the deferred protection switched on)
    world.push_image("techchallengeapp", "v2")
    updated = world.deploy(
        stack_app.request("v2", stack={"parameters": {"HealthCheckGracePeriodSeconds": 90}}),
        name="release_2026.01.06_v2.hotfix",
    )

    assert updated.status == "SUCCEEDED", updated.cause
    record = world.record(stack_app, updated.name)
    assert record is not None and record["stack"]["operation"] == "UPDATE"
    assert "Service" in {c["logical_id"] for c in record["stack"]["changes"]}
    assert stack_app.service().running_image() == world.image_uri("techchallengeapp", "v2")
    executed = {
        s["ChangeSetName"]
        for s in world.client("cloudformation").list_change_sets(StackName=stack_app.stack_name)["Summaries"]
    }
    assert executed <= {
        app_stack.change_set_name(created.name),
        app_stack.change_set_name(created.name, "-protect"),
        app_stack.change_set_name(updated.name),
    }


def test_deploying_what_runs_changes_nothing(world: World, provisioned: StackApp) -> None:
    world.push_image("techchallengeapp", "v2")
    assert world.deploy(provisioned.request("v2")).status == "SUCCEEDED"
    rollouts = len(provisioned.service().rollouts())
    result = world.deploy(provisioned.request("v2"))

    assert result.status == "SUCCEEDED", result.cause
    assert result.path[-1] == "Skipped"
    record = world.record(provisioned, result.name)
    assert record is not None and record["skip_reason"] == "AlreadyRunning"
    assert record["stack"]["operation"] == "NONE" and record["stack"]["changes"] == []
    assert len(provisioned.service().rollouts()) == rollouts, "no rollout for a no-op"
    assert leftover_change_sets(world, provisioned, result) == []


def test_an_infrastructure_change_keeps_the_image_and_the_scaled_count(world: World, provisioned: StackApp) -> None:
    world.push_image("techchallengeapp", "v2")
    assert world.deploy(provisioned.request("v2")).status == "SUCCEEDED"
    out = provisioned.outputs()
    ecs = world.client("ecs")
    ecs.update_service(cluster=out["ClusterName"], service=out["ServiceName"], desiredCount=5)  # as autoscaling
    rollouts = len(provisioned.service().rollouts())
    result = world.deploy(provisioned.request("v2", stack={"parameters": {"HealthCheckGracePeriodSeconds": 90}}))

    assert result.status == "SUCCEEDED", result.cause
    record = world.record(provisioned, result.name)
    assert record is not None and record["stack"]["operation"] == "UPDATE"
    assert {c["logical_id"] for c in record["stack"]["changes"]} == {"Service"}
    (svc,) = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    assert svc["healthCheckGracePeriodSeconds"] == 90
    assert svc["desiredCount"] == 5, "an infrastructure change never resets what autoscaling chose"
    assert provisioned.service().running_image() == world.image_uri("techchallengeapp", "v2"), "v1 came back"
    assert len(provisioned.service().rollouts()) == rollouts, "an infrastructure change is no release"
    assert stack_image(world, provisioned) == world.image_uri("techchallengeapp", "v2")
    assert "PrepareVerify" in result.path, "a stack change is verified by the gates"


def test_a_failed_infrastructure_update_is_rolled_back_and_named(world: World, provisioned: StackApp) -> None:
    world.faults.fail_stack_resource("Service", "Resource handler returned message: invalid desired count")
    result = world.deploy(provisioned.request("v1", stack={"parameters": {"HealthCheckGracePeriodSeconds": 90}}))

    assert (result.status, result.error) == ("FAILED", "InfraUpdateFailed")
    assert "Service (AWS::ECS::Service): Resource handler returned message: invalid desired count" in (
        result.cause or ""
    )
    assert stack_status(world, provisioned) == "UPDATE_ROLLBACK_COMPLETE"
    out = provisioned.outputs()
    (svc,) = world.client("ecs").describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])[
        "services"
    ]
    assert svc["desiredCount"] == 2
    assert not [i for i in control_items(world) if i["item"]["S"] == "LOCK"], "the lock was released"
    record = world.record(provisioned, result.name)
    assert record is not None and record["outcome"] == "FAILED" and record["error"] == "InfraUpdateFailed"

    # the stack is usable again: the next deployment updates it
    world.push_image("techchallengeapp", "v2")
    assert world.deploy(provisioned.request("v2")).status == "SUCCEEDED"


def test_an_update_past_its_deadline_is_cancelled_and_rolled_back(world: World, provisioned: StackApp) -> None:
    world.faults.slow_stack_operations(7200, "UPDATE")  # an update that hangs (e.g. a stuck replacement)
    change = {"parameters": {"HealthCheckGracePeriodSeconds": 90}, "timeout_seconds": 600, "poll_seconds": 60}
    result = world.deploy(provisioned.request("v1", stack=change))

    assert (result.status, result.error) == ("FAILED", "InfraUpdateFailed")
    assert (
        "did not finish within its 600 s deadline: stepdeploy cancelled it, and CloudFormation rolled it back "
        "(UPDATE_ROLLBACK_COMPLETE; the service runs the revision it ran before)" in (result.cause or "")
    )
    assert "Resource update cancelled" in (result.cause or "")
    assert stack_status(world, provisioned) == "UPDATE_ROLLBACK_COMPLETE"
    assert 9 <= result.path.count("WaitStack") <= 12, "polled to the deadline, then until the rollback ended"
    assert "RegisterRevision" not in result.path and "Deploy" not in result.path
    assert not [i for i in control_items(world) if i["item"]["S"] == "LOCK"], "the lock was released"
    record = world.record(provisioned, result.name)
    assert record is not None and record["outcome"] == "FAILED" and record["error"] == "InfraUpdateFailed"

    world.faults.slow_stack_operations(0)
    world.push_image("techchallengeapp", "v2")
    assert world.deploy(provisioned.request("v2")).status == "SUCCEEDED"
    out = provisioned.outputs()
    (svc,) = world.client("ecs").describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])[
        "services"
    ]
    assert svc["desiredCount"] == 2, "the cancelled change was never applied"


def test_a_slow_creation_is_polled_until_it_completes(world: World, stack_app: StackApp) -> None:
    world.faults.slow_stack_operations(900, "CREATE")  # Aurora takes its time
    result = world.deploy(stack_app.request("v1"))

    assert result.status == "SUCCEEDED", result.cause
    assert result.path.count("WaitStack") >= 900 // 30, "polled every DefaultStackPollSeconds until CREATE_COMPLETE"
    assert stack_status(world, stack_app) == "UPDATE_COMPLETE"
    assert len(world.one_off_runs) == 1


def test_plan_mode_leaves_no_trace(world: World, stack_app: StackApp) -> None:
    before = control_items(world)
    result = world.deploy(stack_app.request("v1", plan=True))

    assert result.status == "SUCCEEDED", result.cause
    assert result.path[-2:] == ["PlanStack", "Planned"]
    plan = result.output
    assert plan is not None
    assert plan["plan"]["stack"]["operation"] == "CREATE"
    assert {c["logical_id"] for c in plan["plan"]["stack"]["changes"]} >= {"DatabaseCluster", "Service"}
    assert plan["plan"]["image"] == world.image_uri("techchallengeapp", "v1")
    assert stack_status(world, stack_app) is None, "the CREATE change set's stack was deleted"
    assert control_items(world) == before, "no lock, no claim, no record of any kind"
    assert world.record(stack_app, result.name) is None
    assert world.one_off_runs == []


def test_plan_mode_on_a_provisioned_stack_lists_the_change(world: World, provisioned: StackApp) -> None:
    change = {"parameters": {"HealthCheckGracePeriodSeconds": 90}}
    result = world.deploy(provisioned.request("v1", plan=True, stack=change))

    assert result.status == "SUCCEEDED", result.cause
    assert result.output is not None
    stack_plan = result.output["plan"]["stack"]
    assert stack_plan["operation"] == "UPDATE" and "Service" in {c["logical_id"] for c in stack_plan["changes"]}
    assert stack_status(world, provisioned) == "UPDATE_COMPLETE"
    assert leftover_change_sets(world, provisioned, result) == []
    out = provisioned.outputs()
    (svc,) = world.client("ecs").describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])[
        "services"
    ]
    assert svc["desiredCount"] == 2


def test_a_failed_database_initialisation_is_named_and_retried_next_time(world: World) -> None:
    world.push_image("techchallengeapp", "v1", "init-fails")
    app = world.stack_app("techchallenge")
    result = world.deploy(app.request("v1"))

    assert (result.status, result.error) == ("FAILED", "DatabaseInitFailed")
    assert "exited with code 1" in (result.cause or "")
    assert "the stack was created" in (result.cause or "")
    # (released: the next deployment initialises this database stepdeploy created, no consent asked)
    assert [i["status"]["S"] for i in control_items(world) if i["item"]["S"] == "SCHEMA"] == ["RELEASED"]

    world.push_image("techchallengeapp", "v1-fixed")
    result = world.deploy(app.request("v1-fixed"))
    assert result.status == "SUCCEEDED", result.cause
    assert [r.exit_code for r in world.one_off_runs] == [1, 0]
    assert [i for i in control_items(world) if i["item"]["S"] == "SCHEMA"]


def test_a_database_init_task_that_fails_placement_once_is_retried_and_runs_once(
    world: World, stack_app: StackApp
) -> None:
    world.faults.fail_run_task_placement(times=1, reason="RESOURCE:ENI")
    result = world.deploy(stack_app.request("v1"))

    assert result.status == "SUCCEEDED", result.cause
    assert [reason for _, _, reason in world.faults.placement_failures] == ["RESOURCE:ENI"]
    (run,) = world.one_off_runs  # placed on the retry, and run exactly once
    assert run.command == ["updatedb", "-s"] and run.exit_code == 0
    record = world.record(stack_app, result.name)
    assert record is not None and record["database_initialised"] is True


def test_a_database_init_task_that_never_gets_placed_fails_named(world: World, stack_app: StackApp) -> None:
    world.faults.fail_run_task_placement(times=50, reason="RESOURCE:ENI")
    result = world.deploy(stack_app.request("v1"))

    assert (result.status, result.error) == ("FAILED", "DatabaseInitFailed")
    assert "AmazonECS.Unknown" in (result.cause or "") and "RESOURCE:ENI" in (result.cause or "")
    asl = json.loads((Path(__file__).resolve().parents[2] / "statemachine/deploy.asl.json").read_text())
    (retrier,) = [r for r in asl["States"]["InitDatabase"]["Retry"] if r["ErrorEquals"] == ["AmazonECS.Unknown"]]
    assert len(world.faults.placement_failures) == 1 + retrier["MaxAttempts"], "retried, within its bound"
    assert world.one_off_runs == [], "no task ever started"
    assert [i["status"]["S"] for i in control_items(world) if i["item"]["S"] == "SCHEMA"] == ["RELEASED"]


def test_the_same_image_after_a_failed_database_init_is_initialised_and_verified(world: World) -> None:
    """A failed init leaves the image running but never verified: deploying it again must run the init
    and the gates, not skip it as AlreadyRunning (issue 10, failure 1)."""
    world.push_image("techchallengeapp", "v1")
    app = world.stack_app("techchallenge")
    world.faults.fail_run_task_placement(times=5)  # the first try and InitDatabase's 4 retries
    failed = world.deploy(app.request("v1"))
    assert (failed.status, failed.error) == ("FAILED", "DatabaseInitFailed")

    result = world.deploy(app.request("v1"))

    assert result.status == "SUCCEEDED", result.cause
    assert "InitDatabase" in result.path and "CheckHealth" in result.path and "Skipped" not in result.path
    record = world.record(app, result.name)
    assert record is not None and record["outcome"] == "SUCCEEDED" and record["database_initialised"]
    assert [r.exit_code for r in world.one_off_runs] == [0]
    assert [i for i in control_items(world) if i["item"]["S"] == "SCHEMA"]


def test_a_release_whose_tasks_never_start_is_rolled_back_by_cloudformation(
    world: World, provisioned: StackApp
) -> None:
    """CloudFormation waits for the service's deployment: when the circuit breaker fails it, the update
    fails and CloudFormation rolls the stack back, so the service and the stack are on v1 again."""
    service = provisioned.service()
    before, rollouts = service.running_task_definition(), len(service.rollouts())
    world.push_image("techchallengeapp", "v2", "never-healthy")
    result = world.deploy(provisioned.request("v2"))

    assert (result.status, result.error) == ("FAILED", "InfraUpdateFailed")
    cause = result.cause or ""
    assert "ECS Deployment Circuit Breaker was triggered" in cause and "rolled it back" in cause, cause
    assert "the service runs the revision it ran before" in cause
    assert "WaitRollout" not in result.path, "CloudFormation waited for the rollout, not the workflow"
    assert stack_status(world, provisioned) == "UPDATE_ROLLBACK_COMPLETE"
    assert service.running_task_definition() == before
    assert stack_image(world, provisioned) == service.running_image() == world.image_uri("techchallengeapp", "v1")
    assert len(service.rollouts()) == rollouts + 1, "one rollout: the release (ECS's circuit breaker restored v1)"
    assert not [i for i in control_items(world) if i["item"]["S"] == "LOCK"], "the lock was released"


def test_a_release_whose_stack_rollback_fails_says_a_person_is_needed_not_that_it_rolled_back(
    world: World, provisioned: StackApp
) -> None:
    """The circuit breaker fails the update and CloudFormation cannot get the service back to v1 (its tasks no
    longer start either): the stack ends UPDATE_ROLLBACK_FAILED, and the cause says so, with nothing after it
    claiming that the stack was rolled back."""
    world.push_image("techchallengeapp", "v2", "never-healthy")
    world.faults.set_image_profile("techchallengeapp", "v1", "never-healthy")
    result = world.deploy(provisioned.request("v2"))

    assert (result.status, result.error) == ("FAILED", "StackStuck")
    assert stack_status(world, provisioned) == "UPDATE_ROLLBACK_FAILED"
    cause = result.cause or ""
    assert "could not roll it back (UPDATE_ROLLBACK_FAILED): the stack needs a person" in cause, cause
    assert "rolled the stack back" not in cause and "runs the revision it ran before" not in cause, cause
    assert "stepdeploy deployed nothing after the stack update" in cause
    assert severities(world.notifications(), result) == ["CRITICAL"], "a person is needed: alerted"


def last_digest(world: World, app: StackApp) -> str | None:
    last = [i for i in control_items(world) if i["service"]["S"] == app.key and i["item"]["S"] == "LAST"]
    return last[0]["digest"]["S"] if last else None


def test_a_release_whose_stack_update_failed_can_be_retried(world: World, provisioned: StackApp) -> None:
    """Nothing of a release whose stack update failed ran: its digest claim goes with it, so the same
    request deploys next time instead of being a Duplicate that keeps the old image."""
    world.push_image("techchallengeapp", "v2")
    world.faults.fail_stack_resource("Service", "Resource handler returned message: throttled")
    request = provisioned.request("v2", stack={"parameters": {"HealthCheckGracePeriodSeconds": 90}})
    assert world.deploy(request).error == "InfraUpdateFailed"

    result = world.deploy(request)

    assert result.status == "SUCCEEDED", result.cause
    assert provisioned.service().running_image() == world.image_uri("techchallengeapp", "v2")
    record = world.record(provisioned, result.name)
    assert record is not None and record.get("skip_reason") is None and record["stack"]["operation"] == "UPDATE"


def test_an_infrastructure_change_with_a_rolled_back_image_is_refused_whole(
    world: World, provisioned: StackApp
) -> None:
    """A request whose image rolled back earlier is refused (PreviouslyFailed) before its infrastructure
    change is applied: it never ends SUCCEEDED while the image it names is not running (issue 10, failure 3),
    and the stale-image guard keeps the last verified image."""
    world.push_image("techchallengeapp", "v2", "db-down")
    assert world.deploy(provisioned.request("v2")).error == "HealthCheckFailed"
    v1 = world.image_uri("techchallengeapp", "v1")

    result = world.deploy(provisioned.request("v2", stack={"parameters": {"HealthCheckGracePeriodSeconds": 90}}))

    assert (result.status, result.error) == ("FAILED", "PreviouslyFailed")
    assert "EnsureStack" not in result.path
    parameters = world.client("cloudformation").describe_stacks(StackName=provisioned.stack_name)["Stacks"][0]
    assert {"ParameterKey": "HealthCheckGracePeriodSeconds", "ParameterValue": "90"} not in parameters["Parameters"]
    assert provisioned.service().running_image() == v1
    assert last_digest(world, provisioned) == v1.rsplit("@", 1)[1]


def test_a_release_queued_behind_a_busy_stack_can_still_roll_back(world: World, provisioned: StackApp) -> None:
    """Normalize may read the stack mid-update; under the lock the Guard reads what runs, so a broken
    release queued behind another is rolled back to the release before it, not left running."""
    world.push_image("techchallengeapp", "v2")
    world.push_image("techchallengeapp", "v3", "db-down")
    world.faults.slow_stack_operations(300, "UPDATE")
    first = world.start_deployment(provisioned.request("v2"))
    world.wait_for_state(first, "WaitStack")
    second = world.start_deployment(provisioned.request("v3"))
    world.wait_for_state(second, "QueueWait")
    assert world.wait(first).status == "SUCCEEDED"

    result = world.wait(second, timeout=300)

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed"), result.cause
    assert "rolled back through the stack" in (result.cause or "")
    assert provisioned.service().running_image() == world.image_uri("techchallengeapp", "v2")


def test_verify_mode_with_nothing_older_fails_without_a_rollback(world: World, provisioned: StackApp) -> None:
    world.register(provisioned)
    world.faults.set_image_profile("techchallengeapp", "v1", "db-down")
    rollouts = len(provisioned.service().rollouts())

    result = world.deploy({"mode": "verify", "target": provisioned.name})

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed")
    assert "no earlier revision to roll back to" in (result.cause or "")
    assert "RollbackStack" not in result.path
    assert len(provisioned.service().rollouts()) == rollouts
    record = world.record(provisioned, result.name)
    assert record is not None and record["running_task_definition"] == provisioned.service().running_task_definition()


def test_a_broken_image_after_provisioning_is_rolled_back(world: World, provisioned: StackApp) -> None:
    world.push_image("techchallengeapp", "v2", "db-down")
    result = world.deploy(provisioned.request("v2"))

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed")
    assert "rolled back through the stack to" in (result.cause or "")
    assert "RollbackStack" in result.path and "Rollback" not in result.path
    service = provisioned.service()
    assert service.running_image() == world.image_uri("techchallengeapp", "v1")
    assert stack_image(world, provisioned) == service.running_image(), "the stack says what runs"
    assert service.rollouts()[-2:] == [
        world.record(provisioned, result.name)["new_task_definition"],  # type: ignore[index]
        service.running_task_definition(),
    ], "the release, then the rollback: one rollout each"


def test_a_broken_first_image_fails_with_nothing_to_roll_back_to(world: World) -> None:
    world.push_image("techchallengeapp", "v1", "db-down")
    app = world.stack_app("techchallenge")
    result = world.deploy(app.request("v1"))

    assert (result.status, result.error) == ("FAILED", "HealthCheckFailed")
    assert "no earlier revision to roll back to" in (result.cause or "")
    assert "Rollback" not in result.path
    # found by the full fault matrix: the service keeps running an image that failed its gates, so the cause
    # and the notification say a person is needed (it read "fix forward" at WARNING)
    assert "A person is needed" in (result.cause or "")
    assert severities(world.notifications(), result) == ["CRITICAL"]


def test_bad_stack_parameters_change_nothing(world: World, stack_app: StackApp) -> None:
    result = world.deploy(stack_app.request("v1", stack={"parameters": {"DesiredCount": 0}}))

    assert (result.status, result.error) == ("FAILED", "InvalidDeploymentRequest")
    assert "$.stack.parameters.DesiredCount: must be at least 1" in (result.cause or "")
    assert stack_status(world, stack_app) is None
    assert control_items(world) == []


def test_an_ecr_push_provisions_through_the_registry(world: World, stack_app: StackApp) -> None:
    world.register(stack_app, tag_filter={"mode": "glob", "pattern": "v*"})
    (arn,) = world.put_events(world.ecr_push_event("techchallengeapp", "v1"))
    result: ExecutionResult = world.wait(arn)

    assert result.status == "SUCCEEDED", result.cause
    assert stack_status(world, stack_app) == "UPDATE_COMPLETE"
    record = world.record(stack_app, result.name)
    assert record is not None and record["trigger"] == "ecr" and record["stack"]["operation"] == "CREATE"


def test_a_failed_creation_is_cleaned_up_by_the_next_deployment(world: World) -> None:
    world.push_image("techchallengeapp", "v1")
    app = world.stack_app("scratch", parameters={"DatabaseDeletionProtection": "false"})
    world.faults.fail_stack_resource("Service", "Resource handler returned message: no free IPs", action="CREATE")
    result = world.deploy(app.request("v1"))

    assert (result.status, result.error) == ("FAILED", "InfraUpdateFailed")
    assert "Service (AWS::ECS::Service): Resource handler returned message: no free IPs" in (result.cause or "")
    assert stack_status(world, app) == "ROLLBACK_COMPLETE"

    result = world.deploy(app.request("v1"))  # deletes the failed stack, then creates it again
    assert result.status == "SUCCEEDED", result.cause
    assert stack_status(world, app) == "CREATE_COMPLETE"
    assert len(world.one_off_runs) == 1


def test_a_failed_first_provisioning_with_deletion_protection_is_retried_by_the_next_deployment(
    world: World, stack_app: StackApp
) -> None:
    """The database's deletion protection (on by default) is switched on only once the first creation has
    succeeded: a creation that fails after the database exists rolls back (ROLLBACK_COMPLETE, instead of a
    ROLLBACK_FAILED that needs a person), and the next deployment deletes the failed stack and creates it again.
    """
    rds = world.client("rds")
    world.faults.fail_stack_resource("Service", "Resource handler returned message: no free IPs", action="CREATE")
    failed = world.deploy(stack_app.request("v1"))

    assert (failed.status, failed.error) == ("FAILED", "InfraUpdateFailed")
    assert "CloudFormation rolled it back (ROLLBACK_COMPLETE)" in (failed.cause or "")
    assert "Service (AWS::ECS::Service): Resource handler returned message: no free IPs" in (failed.cause or "")
    assert stack_status(world, stack_app) == "ROLLBACK_COMPLETE"
    assert rds.describe_db_clusters()["DBClusters"] == []
    # DeletionPolicy Snapshot: the rollback kept the (never used) cluster's final snapshot
    (kept,) = rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    assert world.one_off_runs == []

    result = world.deploy(stack_app.request("v1"))  # deletes the failed stack, then creates it again

    assert result.status == "SUCCEEDED", result.cause
    assert stack_status(world, stack_app) == "UPDATE_COMPLETE"
    assert [run.command for run in world.one_off_runs] == [["updatedb", "-s"]], "the database is initialised once"
    (cluster,) = rds.describe_db_clusters()["DBClusters"]
    assert cluster["DeletionProtection"] is True, "protected once its creation succeeded"
    assert cluster["DBClusterIdentifier"] == stack_app.outputs()["DatabaseClusterIdentifier"]
    assert cluster["DBClusterIdentifier"] != kept["DBClusterIdentifier"], "a new cluster: no name collision"
    assert rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"] == [kept], "nothing lost"
    record = world.record(stack_app, result.name)
    assert record is not None and record["stack"]["operation"] == "CREATE" and record["database_initialised"]


def test_a_failed_protection_update_after_the_creation_is_retried_by_the_next_deployment(
    world: World, stack_app: StackApp
) -> None:
    rds = world.client("rds")
    world.faults.fail_stack_resource("DatabaseCluster", "Resource handler returned message: throttled", "UPDATE")
    failed = world.deploy(stack_app.request("v1"))

    assert (failed.status, failed.error) == ("FAILED", "InfraUpdateFailed")
    cause = failed.cause or ""
    assert "was created, but the update that switches on its database's deletion protection failed" in cause
    assert "DatabaseCluster (AWS::RDS::DBCluster): Resource handler returned message: throttled" in cause
    assert stack_status(world, stack_app) == "UPDATE_ROLLBACK_COMPLETE"
    (cluster,) = rds.describe_db_clusters()["DBClusters"]
    assert cluster["DeletionProtection"] is False
    assert world.one_off_runs == []

    result = world.deploy(stack_app.request("v1"))  # its update switches the protection on

    assert result.status == "SUCCEEDED", result.cause
    (again,) = rds.describe_db_clusters()["DBClusters"]
    assert again["DBClusterIdentifier"] == cluster["DBClusterIdentifier"] and again["DeletionProtection"] is True
    assert [run.command for run in world.one_off_runs] == [["updatedb", "-s"]]


def test_a_stack_stuck_in_a_failed_rollback_needs_a_person(world: World, stack_app: StackApp) -> None:
    """When CloudFormation cannot delete what a failed creation made (ROLLBACK_FAILED), stepdeploy says so
    and changes nothing."""
    world.faults.fail_stack_resource("Service", "no free IPs", action="CREATE")
    world.faults.fail_stack_resource("LoadBalancer", "load balancer is in use", action="DELETE")
    first = world.deploy(stack_app.request("v1"))
    assert first.error == "StackStuck" and stack_status(world, stack_app) == "ROLLBACK_FAILED"

    result = world.deploy(stack_app.request("v1"))
    assert (result.status, result.error) == ("FAILED", "StackStuck")
    notes = world.notifications()  # a person is needed: alerted each time
    assert [severities(notes, stuck) for stuck in (first, result)] == [["CRITICAL"], ["CRITICAL"]]
    cause = result.cause or ""
    assert f"stack {stack_app.stack_name} is ROLLBACK_FAILED: LoadBalancer (AWS::ElasticLoadBalancingV2::" in cause
    assert "load balancer is in use" in cause and "the operation failed first on Service" in cause
    assert "needs a person" in cause
    assert stack_status(world, stack_app) == "ROLLBACK_FAILED"
    assert not [i for i in control_items(world) if i["item"]["S"] == "LOCK"]

    before = control_items(world)
    plan = world.deploy(stack_app.request("v1", plan=True))  # a plan fails the same way, and leaves no trace
    assert (plan.status, plan.error) == ("FAILED", "StackStuck")
    assert "needs a person" in (plan.cause or "") and "plan mode: nothing was recorded" in (plan.cause or "")
    assert world.record(stack_app, plan.name) is None
    assert control_items(world) == before


def test_plan_mode_without_a_stack_describes_the_deploy_and_changes_nothing(world: World) -> None:
    app = world.create_service(tag="v1")
    world.push_image(app.repository, "v2")
    before_td, before_items = app.running_task_definition(), control_items(world)
    result = world.deploy(app.request("v2", plan=True))

    assert result.status == "SUCCEEDED", result.cause
    assert result.path == ["Normalize", "Guard", "GuardDecision", "PlanDeploy", "Planned"]
    assert result.output is not None
    plan = result.output["plan"]
    assert plan["image"] == world.image_uri(app.repository, "v2") and "stack" not in plan
    assert plan["image_action"].startswith("register a new task-definition revision")
    assert plan["running"]["image"] == world.image_uri(app.repository, "v1")
    assert app.running_task_definition() == before_td
    assert control_items(world) == before_items
    ecs = world.client("ecs")
    assert len(ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]) == 1
    assert world.record(app, result.name) is None


def test_an_existing_database_stepdeploy_never_initialised_is_not_wiped_without_consent(world: World) -> None:
    world.push_image("techchallengeapp", "v1")
    world.push_image("techchallengeapp", "v2")
    onboarded = world.stack_app("techchallenge", init_command=[])  # its database initialised (and used) elsewhere
    assert world.deploy(onboarded.request("v1")).status == "SUCCEEDED"
    assert world.one_off_runs == []
    running, status = onboarded.service().running_image(), stack_status(world, onboarded)

    default_init = world.stack_app("techchallenge")  # a second onboarding with the default init (updatedb -s)
    refused = world.deploy(default_init.request("v2"))
    assert (refused.status, refused.error) == ("FAILED", "DatabaseInitRefused"), refused.cause
    assert "allow_destructive_init" in (refused.cause or "") and "updatedb -s" in (refused.cause or "")
    assert world.one_off_runs == [], "the database was not touched"
    assert onboarded.service().running_image() == running and stack_status(world, onboarded) == status

    allowed = world.deploy(default_init.request("v2", stack={"allow_destructive_init": True}))
    assert allowed.status == "SUCCEEDED", allowed.cause
    assert [run.command for run in world.one_off_runs] == [["updatedb", "-s"]]
    again = world.deploy(default_init.request("v1", stack={"allow_destructive_init": True}))
    assert again.status == "SUCCEEDED" and len(world.one_off_runs) == 1, "at most once, even with consent"


def test_a_stack_update_whose_image_step_fails_says_a_person_is_needed(world: World, provisioned: StackApp) -> None:
    """Found by the full fault matrix (stack-broken, GuardImage failing): the stack's update replaced the task
    definition, so the service runs v2, and then the image step failed before any gate. The record read "the image
    was not deployed" at WARNING; the service runs an unverified revision, so a person is needed (CRITICAL)."""
    world.push_image("techchallengeapp", "v2")
    world.faults.fail_task("GuardImage", "RuntimeError", times=7)
    result = world.deploy(provisioned.request("v2"))
    assert result.status == "FAILED" and "RecordNotChanged" in result.path
    assert provisioned.service().running_image().endswith(world.digest_of("techchallengeapp", "v2"))
    assert "A person is needed" in (result.cause or "") and "not passed its gates" in (result.cause or "")
    assert severities(world.notifications(), result) == ["CRITICAL"]
