"""Contract for every fix in stepdeploy_local.compat: each behaviour the local world relies on.

moto is pinned exactly; an upgrade must pass these before the pin moves. Each test names the
patch it covers (compat.PATCHES keys), and one test checks that none is left uncovered.
"""

from __future__ import annotations

import json
import time
from importlib import import_module
from importlib.metadata import version
from typing import Any

import pytest
from stepdeploy_local import World, compat
from stepdeploy_local.world import AppService

COVERED: set[str] = set()


def covers(*names: str) -> Any:
    COVERED.update(names)
    return pytest.mark.parametrize("_patch", [names], ids=["+".join(names)])


def _machine(world: World, definition: dict[str, Any]) -> str:
    role = world.client("iam").create_role(
        RoleName=f"r{len(definition['States'])}{id(definition)}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    return str(
        world.client("stepfunctions").create_state_machine(
            name=f"contract-{id(definition)}", definition=json.dumps(definition), roleArn=role
        )["stateMachineArn"]
    )


def _run(world: World, machine: str, payload: dict[str, Any] | None = None, name: str | None = None) -> Any:
    sfn = world.client("stepfunctions")
    kwargs = {"stateMachineArn": machine, "input": json.dumps(payload or {})}
    if name:
        kwargs["name"] = name
    return world.wait(sfn.start_execution(**kwargs)["executionArn"], timeout=30)


def test_moto_is_the_pinned_version() -> None:
    assert version("moto") == "5.2.5", "compat patches were verified against moto 5.2.5 only"


@covers("wait_state", "timestamps")
def test_wait_states_advance_the_virtual_clock(world: World, _patch: tuple[str, ...]) -> None:
    machine = _machine(world, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}})
    result = _run(world, machine)
    assert result.status == "SUCCEEDED"
    # (without the patch this would block for an hour; world.wait gives up after 30 s of wall time)
    assert 3600 <= result.virtual_seconds < 3660  # DescribeExecution start/stop on the virtual clock
    entered = result.events[1]["timestamp"]
    exited = next(e for e in result.events if e["type"] == "WaitStateExited")["timestamp"]
    assert (exited - entered).total_seconds() >= 3600  # history events on the virtual clock


@covers("wait_state")
def test_a_pause_holds_one_execution_at_a_wait_state_until_released(world: World, _patch: tuple[str, ...]) -> None:
    machine = _machine(
        world,
        {
            "StartAt": "First",
            "States": {
                "First": {"Type": "Wait", "Seconds": 60, "Next": "Held"},
                "Held": {"Type": "Wait", "Seconds": 600, "End": True},
            },
        },
    )
    sfn = world.client("stepfunctions")
    pause = world.pause_at("Held")
    held = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    assert pause.reached() == held
    other = _run(world, machine)  # only the first execution to arrive is held
    assert other.status == "SUCCEEDED"
    waited = world.clock.waited_seconds
    time.sleep(0.2)
    assert sfn.describe_execution(executionArn=held)["status"] == "RUNNING"
    assert world.clock.waited_seconds == waited  # held in wall time: the clock does not move for it

    pause.release()
    assert world.wait(held).status == "SUCCEEDED"
    assert world.clock.waited_seconds == waited + 600

    stopped_pause = world.pause_at("Held")
    stopped = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    assert stopped_pause.reached() == stopped
    sfn.stop_execution(executionArn=stopped, error="Operator")
    assert world.wait(stopped).status == "ABORTED"  # a stop ends the hold; nothing waits for release


@covers("retry_sleep", "lambda_invoke")
def test_retry_intervals_advance_the_virtual_clock(world: World, _patch: tuple[str, ...]) -> None:
    fn = world.runtime.by_logical_id("CheckRolloutFunction")
    world.faults.fail_lambda("CheckRolloutFunction", "Boom", times=2)
    machine = _machine(
        world,
        {
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task",
                    "Resource": fn.arn,
                    "End": True,
                    "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 600, "MaxAttempts": 2, "BackoffRate": 2}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        },
    )
    result = _run(world, machine)
    # two injected failures, retried after 600 s and 1200 s, then the real handler ran (and failed on {})
    assert [e["type"] for e in result.events].count("LambdaFunctionFailed") == 3
    assert result.virtual_seconds >= 1800
    failures = [e for e in result.events if e["type"] == "LambdaFunctionFailed"]
    assert failures[-1]["lambdaFunctionFailedEventDetails"]["error"] == "KeyError"  # the handler itself ran


@covers("execution_name")
def test_start_execution_without_a_name_gets_a_uuid(world: World, _patch: tuple[str, ...]) -> None:
    machine = _machine(world, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    a, b = _run(world, machine), _run(world, machine)
    assert a.name != b.name and len(a.name) == 36 and a.name != "None"


@covers("lambda_invoke")
def test_lambda_invoke_runs_the_handler_in_process(world: World, _patch: tuple[str, ...]) -> None:
    fn = world.runtime.by_logical_id("NormalizeRequestFunction")
    out = world.client("lambda").invoke(FunctionName=fn.name, Payload=json.dumps({"input": {}, "deployment_id": "x"}))
    assert out["FunctionError"] == "Handled"
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "InvalidDeploymentRequest"
    assert body["errorMessage"].startswith("$: unrecognised input")


@covers("ecs_rollouts")
def test_update_service_starts_a_rollout_that_completes_in_virtual_time(
    world: World, app: AppService, _patch: tuple[str, ...]
) -> None:
    ecs = world.client("ecs")
    world.push_image(app.repository, "v2")
    td = ecs.describe_task_definition(taskDefinition=app.running_task_definition())["taskDefinition"]
    td["containerDefinitions"][0]["image"] = world.image_uri(app.repository, "v2")
    new = ecs.register_task_definition(
        family=td["family"],
        containerDefinitions=td["containerDefinitions"],
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=app.cluster, service=app.service, taskDefinition=new)
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    assert [(d["status"], d["rolloutState"]) for d in svc["deployments"]] == [
        ("PRIMARY", "IN_PROGRESS"),
        ("ACTIVE", "COMPLETED"),
    ]
    assert svc["deployments"][0]["taskDefinition"] == new
    world.clock.advance(120)
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    assert [(d["status"], d["rolloutState"], d["runningCount"]) for d in svc["deployments"]] == [
        ("PRIMARY", "COMPLETED", 2)
    ]


@covers("ecs_rollouts")
def test_force_new_deployment_starts_new_tasks_of_the_same_revision(
    world: World, app: AppService, _patch: tuple[str, ...]
) -> None:
    """moto 5.2.5 only renames the deployment in place; as on ECS, a forced deployment is a new PRIMARY
    (IN_PROGRESS) of the same revision while the old tasks keep serving (ACTIVE) until it completes."""
    ecs = world.client("ecs")
    running = app.running_task_definition()
    [old] = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]["deployments"]
    out = ecs.update_service(cluster=app.cluster, service=app.service, taskDefinition=running, forceNewDeployment=True)
    deployments = out["service"]["deployments"]
    assert [(d["status"], d["taskDefinition"], d["rolloutState"]) for d in deployments] == [
        ("PRIMARY", running, "IN_PROGRESS"),
        ("ACTIVE", running, "COMPLETED"),
    ]
    assert deployments[0]["id"] != old["id"] and deployments[1]["id"] == old["id"]
    world.clock.advance(120)
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    assert [(d["id"], d["rolloutState"]) for d in svc["deployments"]] == [(deployments[0]["id"], "COMPLETED")]


@covers("target_health")
def test_target_health_follows_the_serving_image(world: World, app: AppService, _patch: tuple[str, ...]) -> None:
    elb = world.client("elbv2")

    def states() -> list[str]:
        out = elb.describe_target_health(TargetGroupArn=app.target_group_arn)["TargetHealthDescriptions"]
        return sorted(d["TargetHealth"]["State"] for d in out)

    assert states() == ["healthy", "healthy"]
    world.faults.set_image_profile(app.repository, "v1", "http-500")
    assert states() == ["unhealthy", "unhealthy"]


@covers("event_targets")
def test_eventbridge_delivers_to_state_machine_targets(world: World, _patch: tuple[str, ...]) -> None:
    machine = _machine(world, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    events = world.client("events")
    events.put_rule(Name="contract-rule", EventPattern=json.dumps({"source": ["contract.test"]}))
    events.put_targets(Rule="contract-rule", Targets=[{"Id": "m", "Arn": machine}])
    [arn] = world.put_events({"Source": "contract.test", "DetailType": "x", "Detail": json.dumps({"k": 1})})
    result = world.wait(arn)
    assert result.status == "SUCCEEDED"
    assert result.input["detail"] == {"k": 1} and result.input["source"] == "contract.test"
    assert result.input["time"].endswith("Z") and "T" in result.input["time"]  # ISO-8601, as EventBridge sends
    assert world.put_events({"Source": "other", "DetailType": "x", "Detail": "{}"}) == []  # pattern still applies


@covers("execution_status_events")
def test_execution_end_emits_a_status_change_event(world: World, _patch: tuple[str, ...]) -> None:
    url = _status_queue(world)
    machine = _machine(world, {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope"}}})
    result = _run(world, machine)
    detail = _status_change(world, url)
    assert detail == {"executionArn": result.arn, "stateMachineArn": machine, "name": result.name, "status": "FAILED"}


def _status_queue(world: World) -> str:
    """A queue that receives every 'Step Functions Execution Status Change' event."""
    sqs, events = world.client("sqs"), world.client("events")
    url = str(sqs.create_queue(QueueName="status-changes")["QueueUrl"])
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="status",
        EventPattern=json.dumps({"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"]}),
    )
    events.put_targets(Rule="status", Targets=[{"Id": "q", "Arn": qarn}])
    return url


def _status_change(world: World, url: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for _ in range(100):  # the event is emitted right after the status flips (asynchronously, as on AWS)
        messages = world.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
        if messages:
            break
        time.sleep(0.02)
    [message] = messages
    return dict(json.loads(message["Body"])["detail"])


@covers("codepipeline_jobs")
def test_codepipeline_job_apis_are_emulated(world: World, _patch: tuple[str, ...]) -> None:
    compat.JOBS.create("job-1", {"actionConfiguration": {"configuration": {"UserParameters": "{}"}}})
    cp = world.client("codepipeline")
    assert cp.get_job_details(jobId="job-1")["jobDetails"]["data"]["actionConfiguration"]["configuration"] == {
        "UserParameters": "{}"
    }
    cp.put_job_success_result(jobId="job-1", continuationToken="t-1")
    cp.put_job_failure_result(jobId="job-1", failureDetails={"type": "JobFailed", "message": "m"})
    assert [r["kind"] for r in compat.JOBS.jobs["job-1"]["results"]] == ["success", "failure"]
    assert compat.JOBS.jobs["job-1"]["results"][0]["continuationToken"] == "t-1"
    with pytest.raises(cp.exceptions.JobNotFoundException):
        cp.put_job_success_result(jobId="nope")


@covers("codepipeline_jobs")
def test_a_codepipeline_job_takes_one_final_result(world: World, _patch: tuple[str, ...]) -> None:
    """As on AWS (PutJobSuccessResult / PutJobFailureResult API reference, Errors: InvalidJobStateException):
    a result is accepted only while the job is InProgress; a final result ends that."""
    cp = world.client("codepipeline")
    compat.JOBS.create("job-2", {})
    cp.put_job_success_result(jobId="job-2", continuationToken="t-1")  # continues: still InProgress
    cp.put_job_success_result(jobId="job-2")  # final
    assert compat.JOBS.jobs["job-2"]["status"] == "Succeeded"
    for refused in (
        lambda: cp.put_job_failure_result(jobId="job-2", failureDetails={"type": "JobFailed", "message": "m"}),
        lambda: cp.put_job_success_result(jobId="job-2", continuationToken="t-2"),
        lambda: cp.put_job_success_result(jobId="job-2"),
    ):
        with pytest.raises(cp.exceptions.InvalidJobStateException):
            refused()
    compat.JOBS.create("job-3", {})
    cp.put_job_failure_result(jobId="job-3", failureDetails={"type": "JobFailed", "message": "m"})
    with pytest.raises(cp.exceptions.InvalidJobStateException):
        cp.put_job_success_result(jobId="job-3")
    assert [r["kind"] for r in compat.JOBS.jobs["job-3"]["results"]] == ["failure"]


@covers("execution_history_order")
def test_execution_history_pages_newest_first_with_reverse_order(world: World, _patch: tuple[str, ...]) -> None:
    machine = _machine(
        world, {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True}}}
    )
    result = _run(world, machine)
    sfn = world.client("stepfunctions")
    oldest_first = sfn.get_execution_history(executionArn=result.arn)["events"]
    assert oldest_first[0]["type"] == "ExecutionStarted" and len(oldest_first) > 4
    pages, kwargs = [], {"executionArn": result.arn, "reverseOrder": True, "maxResults": 2}
    while True:
        out = sfn.get_execution_history(**kwargs)
        assert len(out["events"]) <= 2
        pages += out["events"]
        if "nextToken" not in out:
            break
        kwargs["nextToken"] = out["nextToken"]
    assert [e["id"] for e in pages] == [e["id"] for e in reversed(oldest_first)]
    assert pages[0]["type"] == "ExecutionSucceeded"


@covers("cfn_cidr")
def test_cloudformation_evaluates_fn_cidr(world: World, _patch: tuple[str, ...]) -> None:
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.20.0.0/16"}},
            "B": {
                "Type": "AWS::EC2::Subnet",
                "Properties": {
                    "VpcId": {"Ref": "Vpc"},
                    "CidrBlock": {"Fn::Select": [1, {"Fn::Cidr": [{"Fn::GetAtt": ["Vpc", "CidrBlock"]}, 4, 8]}]},
                },
            },
        }
    }
    world.client("cloudformation").create_stack(StackName="cidr", TemplateBody=json.dumps(template))
    subnets = world.client("ec2").describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["10.20.1.0/24"]}])
    assert len(subnets["Subnets"]) == 1


def _one_off_setup(world: World, image_profile: str) -> dict[str, Any]:
    """A cluster, a Fargate task definition running ``image_profile`` and a VPC to run it in."""
    world.push_image("oneoff", "v1", image_profile)
    ec2, ecs = world.client("ec2"), world.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="oneoff", Description="oneoff", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName="oneoff")
    td = ecs.register_task_definition(
        family="oneoff",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": world.image_uri("oneoff", "v1"), "command": ["serve"]}],
    )["taskDefinition"]["taskDefinitionArn"]
    return {"cluster": "oneoff", "task_definition": td, "subnets": [subnet], "groups": [group]}


def _run_task_sync_machine(world: World, timeout: int = 3600) -> str:
    return _machine(
        world,
        {
            "StartAt": "Run",
            "States": {
                "Run": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::ecs:runTask.sync",
                    "TimeoutSeconds": timeout,
                    "Parameters": {
                        "Cluster.$": "$.cluster",
                        "TaskDefinition.$": "$.task_definition",
                        "LaunchType": "FARGATE",
                        "NetworkConfiguration": {
                            "AwsvpcConfiguration": {"Subnets.$": "$.subnets", "SecurityGroups.$": "$.groups"}
                        },
                        "Overrides": {"ContainerOverrides": [{"Name": "app", "Command": ["updatedb", "-s"]}]},
                    },
                    "End": True,
                }
            },
        },
    )


@covers("ecs_tasks", "service_casing")
def test_run_task_sync_waits_for_the_task_to_stop_on_the_virtual_clock(world: World, _patch: tuple[str, ...]) -> None:
    setup = _one_off_setup(world, "healthy")
    result = _run(world, _run_task_sync_machine(world), setup)
    assert result.status == "SUCCEEDED", result.error
    task = result.output
    assert task["LastStatus"] == "STOPPED"
    assert [(c["Name"], c["ExitCode"]) for c in task["Containers"]] == [("app", 0)]
    assert result.virtual_seconds >= 45  # the image's init_seconds passed on the virtual clock
    (run,) = world.one_off_runs
    assert run.command == ["updatedb", "-s"] and run.exit_code == 0 and run.cluster == "oneoff"


@covers("ecs_tasks")
def test_a_failing_one_off_task_reports_its_exit_code(world: World, _patch: tuple[str, ...]) -> None:
    setup = _one_off_setup(world, "init-fails")
    result = _run(world, _run_task_sync_machine(world), setup)
    task = result.output
    assert [(c["Name"], c["ExitCode"]) for c in task["Containers"]] == [("app", 1)]


@covers("ecs_run_task_failures")
def test_run_task_can_fail_placement_and_start_nothing(world: World, _patch: tuple[str, ...]) -> None:
    setup = _one_off_setup(world, "healthy")
    ecs = world.client("ecs")
    network = {"awsvpcConfiguration": {"subnets": setup["subnets"], "securityGroups": setup["groups"]}}
    run = {"cluster": "oneoff", "taskDefinition": setup["task_definition"], "launchType": "FARGATE"}
    world.faults.fail_run_task_placement(times=1, reason="RESOURCE:ENI")
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):  # refusals come before placement
        ecs.run_task(**{**run, "cluster": "nowhere"}, networkConfiguration=network)

    failed = ecs.run_task(**run, networkConfiguration=network)
    cluster_arn = ecs.describe_clusters(clusters=["oneoff"])["clusters"][0]["clusterArn"]
    assert (failed["tasks"], failed["failures"]) == ([], [{"arn": cluster_arn, "reason": "RESOURCE:ENI"}])
    assert ecs.list_tasks(cluster="oneoff")["taskArns"] == []
    assert world.faults.placement_failures == [("oneoff", setup["task_definition"], "RESOURCE:ENI")]

    placed = ecs.run_task(**run, networkConfiguration=network)  # the fault was for one call
    assert (len(placed["tasks"]), placed["failures"]) == (1, [])


@covers("ecs_run_task_failures", "ecs_tasks")
def test_run_task_sync_fails_with_amazon_ecs_unknown_on_placement_failures(
    world: World, _patch: tuple[str, ...]
) -> None:
    setup = _one_off_setup(world, "healthy")
    world.faults.fail_run_task_placement(times=1, reason="RESOURCE:ENI")
    result = _run(world, _run_task_sync_machine(world), setup)

    assert (result.status, result.error) == ("FAILED", "AmazonECS.Unknown")
    cause = json.loads(result.cause)
    assert cause["Tasks"] == [] and [f["Reason"] for f in cause["Failures"]] == ["RESOURCE:ENI"]
    assert world.one_off_runs == []

    result = _run(world, _run_task_sync_machine(world), setup)  # placement succeeds again
    assert result.status == "SUCCEEDED", result.error
    assert [r.exit_code for r in world.one_off_runs] == [0]


@covers("alb_endpoints")
def test_alb_dns_names_answer_through_the_world(world: World, _patch: tuple[str, ...]) -> None:
    import socket
    import urllib.request

    app = world.create_service(cluster="front", service="door", repository="frontdoor")
    dns = world.client("elbv2").describe_load_balancers(Names=["door-alb"])["LoadBalancers"][0]["DNSName"]
    port = int(app.health_url.split(":")[2].split("/")[0])
    world.endpoints[(dns, 80)] = ("127.0.0.1", port)
    with urllib.request.urlopen(f"http://{dns}/healthcheck/", timeout=5) as answer:
        assert (answer.status, answer.read()) == (200, b"OK")
    with pytest.raises(OSError):  # unrouted names still go to the real resolver (nothing listens there)
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def _loop_machine(world: World) -> str:
    """Hop is entered twice: Seen? sends the first pass through Mark and back."""
    return _machine(
        world,
        {
            "StartAt": "Hop",
            "States": {
                "Hop": {"Type": "Pass", "Next": "Seen?"},
                "Seen?": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.n", "IsPresent": True, "Next": "Done"}],
                    "Default": "Mark",
                },
                "Mark": {"Type": "Pass", "Result": 1, "ResultPath": "$.n", "Next": "Hop"},
                "Done": {"Type": "Succeed"},
            },
        },
    )


def _exits(result: Any, state: str) -> int:
    return sum(1 for e in result.events if e.get("stateExitedEventDetails", {}).get("name") == state)


@covers("state_hooks")
def test_a_pause_holds_an_execution_as_it_enters_any_state(world: World, _patch: tuple[str, ...]) -> None:
    machine, sfn = _loop_machine(world), world.client("stepfunctions")
    pause = world.pause_at("Hop", arrival=2)
    held = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    assert pause.reached() == held
    world.wait_for_state(held, "Hop")
    time.sleep(0.2)
    assert sfn.describe_execution(executionArn=held)["status"] == "RUNNING"
    assert world.arrivals(held, "Hop") == 2 and world.arrivals(held, "Mark") == 1
    pause.release()
    assert world.wait(held).status == "SUCCEEDED"

    stopped_pause = world.pause_at("Hop", arrival=2)
    stopped = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    assert stopped_pause.reached() == stopped
    sfn.stop_execution(executionArn=stopped, error="Operator")
    result = world.wait(stopped)
    assert result.status == "ABORTED"
    assert _exits(result, "Hop") == 1  # the held entry never ran
    with pytest.raises(ValueError, match="no state named 'Nowhere'"):
        world.pause_at("Nowhere")


def _lambda_machine(world: World, retry_on: str, timeout: int = 120) -> str:
    fn = world.runtime.by_logical_id("CheckRolloutFunction")
    return _machine(
        world,
        {
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task",
                    "Resource": fn.arn,
                    "TimeoutSeconds": timeout,
                    "End": True,
                    "Retry": [{"ErrorEquals": [retry_on], "IntervalSeconds": 1, "MaxAttempts": 2}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        },
    )


def _failures(result: Any) -> list[str]:
    kinds = ("LambdaFunctionFailed", "LambdaFunctionTimedOut", "TaskFailed", "TaskTimedOut")
    return [next(iter(e.values()))["error"] for e in result.events if e["type"] in kinds for e in [_details(e)]]


def _details(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k.endswith("EventDetails")}


@covers("task_attempts", "lambda_invoke")
def test_fail_task_fails_the_attempts_of_one_arrival_of_a_state(world: World, _patch: tuple[str, ...]) -> None:
    machine = _lambda_machine(world, "Boom")
    world.faults.fail_task("T", "Boom", times=3)  # outlasts the two retries: caught
    result = _run(world, machine)
    assert _failures(result) == ["Boom", "Boom", "Boom"]
    assert result.output["Error"] == "Boom"
    assert [i.error for i in world.runtime.invocations] == ["Boom"] * 3  # the handler never ran

    world.faults.fail_task("T", "Boom", times=2)
    result = _run(world, machine)
    assert _failures(result)[:2] == ["Boom", "Boom"] and len(_failures(result)) == 3  # the third ran the handler
    assert world.runtime.invocations[-1].error not in (None, "Boom")
    with pytest.raises(ValueError, match="Caught is a Pass state"):
        world.faults.fail_task("Caught")


@covers("task_attempts")
def test_time_out_task_runs_the_handler_and_fails_with_states_timeout(world: World, _patch: tuple[str, ...]) -> None:
    machine = _lambda_machine(world, "Nothing", timeout=300)
    world.faults.time_out_task("T")
    result = _run(world, machine)
    assert _failures(result) == ["States.Timeout"]
    assert [e["type"] for e in result.events if e["type"].startswith("LambdaFunctionTimed")] == [
        "LambdaFunctionTimedOut"
    ]
    assert len(world.runtime.invocations) == 1  # the handler ran
    assert result.virtual_seconds >= 300  # the clock reached the state's deadline


@covers("task_attempts", "ecs_tasks")
def test_time_out_task_fails_a_run_task_sync_while_the_task_runs_on(world: World, _patch: tuple[str, ...]) -> None:
    setup, machine = _one_off_setup(world, "healthy"), _run_task_sync_machine(world)
    world.faults.time_out_task("Run")
    result = _run(world, machine, setup)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert [e["type"] for e in result.events if e["type"] == "TaskTimedOut"] == ["TaskTimedOut"]
    tasks = world.client("ecs").list_tasks(cluster="oneoff", desiredStatus="RUNNING")["taskArns"]
    assert len(tasks) == 1 and world.one_off_runs == []  # started, and still running


@covers("execution_timeout", "wait_state", "execution_status_events")
def test_a_wait_past_the_execution_timeout_ends_it_timed_out_at_the_deadline(
    world: World, _patch: tuple[str, ...]
) -> None:
    url = _status_queue(world)
    machine = _machine(
        world,
        {
            "TimeoutSeconds": 100,
            "StartAt": "W1",
            "States": {
                "W1": {"Type": "Wait", "Seconds": 60, "Next": "W2"},
                "W2": {"Type": "Wait", "Seconds": 60, "Next": "After"},
                "After": {"Type": "Pass", "End": True},
            },
        },
    )
    result = _run(world, machine)
    assert (result.status, result.error) == ("TIMED_OUT", "States.Timeout")
    assert 100 <= result.virtual_seconds < 110  # ended at the deadline, not after the second Wait
    assert result.path == ["W1", "W2"] and result.events[-1]["type"] == "ExecutionTimedOut"
    assert _status_change(world, url)["status"] == "TIMED_OUT"


@covers("execution_timeout", "task_attempts")
def test_a_transition_past_the_execution_timeout_ends_it_timed_out(world: World, _patch: tuple[str, ...]) -> None:
    fn = world.runtime.by_logical_id("CheckRolloutFunction")
    machine = _machine(
        world,
        {
            "TimeoutSeconds": 100,
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": 60, "Next": "T"},
                "T": {
                    "Type": "Task",
                    "Resource": fn.arn,
                    "TimeoutSeconds": 50,
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "After"}],
                    "End": True,
                },
                "After": {"Type": "Pass", "End": True},
            },
        },
    )
    world.faults.time_out_task("T")  # T ends at 110 s
    result = _run(world, machine)
    assert (result.status, result.error) == ("TIMED_OUT", "States.Timeout")
    assert result.path == ["W", "T"]  # After was never entered


@covers("task_attempts", "ecs_tasks")
def test_a_run_task_sync_longer_than_its_timeout_fails_with_states_timeout(
    world: World, _patch: tuple[str, ...]
) -> None:
    setup = _one_off_setup(world, "healthy")  # the task runs 45 virtual seconds
    result = _run(world, _run_task_sync_machine(world, timeout=30), setup)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert 30 <= result.virtual_seconds < 40
    assert world.one_off_runs == []  # still running when the state gave up


def test_every_patch_is_covered() -> None:
    import_module("test_emulator_cloudformation")  # the CloudFormation patches' tests (registers their covers)
    assert set(compat.PATCHES) == COVERED


@covers("sqs_queue_alarms")
def test_a_queue_depth_alarm_goes_to_alarm_and_notifies_its_topic(world: World, _patch: tuple[str, ...]) -> None:
    sqs, sns, cw = world.client("sqs"), world.client("sns"), world.client("cloudwatch")
    url = sqs.create_queue(QueueName="contract-dlq")["QueueUrl"]
    observer = sqs.create_queue(QueueName="contract-alarm-observer")["QueueUrl"]
    observer_arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name="contract-alarms")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=observer_arn)
    cw.put_metric_alarm(
        AlarmName="contract-dlq-depth",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": "contract-dlq"}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=[topic],
    )

    def state() -> str:
        return str(cw.describe_alarms(AlarmNames=["contract-dlq-depth"])["MetricAlarms"][0]["StateValue"])

    sqs.send_message(QueueUrl=url, MessageBody="lost event")
    assert state() == "ALARM"
    [note] = sqs.receive_message(QueueUrl=observer)["Messages"]
    message = json.loads(json.loads(note["Body"])["Message"])
    assert (message["AlarmName"], message["NewStateValue"], message["OldStateValue"]) == (
        "contract-dlq-depth",
        "ALARM",
        "OK",
    )
    assert message["Trigger"]["Dimensions"] == [{"name": "QueueName", "value": "contract-dlq"}]
    [lost] = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=lost["ReceiptHandle"])
    assert state() == "OK"
