"""Contract for every fix in stepdeploy_local.compat: each behaviour the local world relies on.

moto is pinned exactly; an upgrade must pass these before the pin moves. Each test names the
patch it covers (compat.PATCHES keys), and one test checks that none is left uncovered.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from importlib import import_module
from importlib.metadata import version
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepdeploy_local import World, compat
from stepdeploy_local.world import ACCOUNT_ID, AppService

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


def test_worlds_one_after_another_share_the_service_models_they_loaded() -> None:
    import boto3

    loaders = []
    for _ in range(2):
        with World(function_log_level="ERROR") as world:
            assert world.client("stepfunctions").list_state_machines()["stateMachines"]
            loaders.append(boto3.DEFAULT_SESSION._session.get_component("data_loader"))  # type: ignore[union-attr]
    assert loaders[0] is loaders[1]  # moto gives each mock a new default session: not a new loader


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


def _token_machine(world: World, queue_url: str) -> str:
    return _machine(
        world,
        {
            "StartAt": "Hold",
            "States": {
                "Hold": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token"}},
                    "TimeoutSecondsPath": "$.timeout",
                    "End": True,
                }
            },
        },
    )


def _held_token(world: World, queue_url: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for message in world.client("sqs").receive_message(QueueUrl=queue_url).get("Messages", []):
            return str(json.loads(message["Body"])["token"])
        time.sleep(0.02)
    raise TimeoutError("no task token was sent")


@covers("task_tokens")
def test_task_tokens_are_answered_as_on_aws(world: World, _patch: tuple[str, ...]) -> None:
    """Tokens are long opaque base64; SendTaskSuccess resumes the task with its output; bad output is InvalidOutput
    (the task keeps waiting); SendTaskFailure fails it with error and cause; a closed task's token is TaskTimedOut;
    a malformed or never-issued token is InvalidToken."""
    sfn, sqs = world.client("stepfunctions"), world.client("sqs")
    queue = sqs.create_queue(QueueName="tokens")["QueueUrl"]
    machine = _token_machine(world, queue)
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"timeout": 600}))["executionArn"]
    token = _held_token(world, queue)
    assert compat.TASK_TOKEN.fullmatch(token) and len(token) > 500
    with pytest.raises(sfn.exceptions.InvalidOutput):
        sfn.send_task_success(taskToken=token, output="not json")
    sfn.send_task_success(taskToken=token, output='{"approved": true}')
    result = world.wait(arn, timeout=30)
    assert result.status == "SUCCEEDED" and result.output == {"approved": True}
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=token, output="{}")
    for bad in ("abc", "AQ" + "A" * 600):
        with pytest.raises(sfn.exceptions.InvalidToken):
            sfn.send_task_failure(taskToken=bad, error="X")

    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"timeout": 600}))["executionArn"]
    sfn.send_task_failure(taskToken=_held_token(world, queue), error="ApprovalRejected", cause="bob: no")
    result = world.wait(arn, timeout=30)
    assert (result.status, result.error, result.cause) == ("FAILED", "ApprovalRejected", "bob: no")


@covers("task_tokens")
def test_a_task_token_times_out_on_the_virtual_clock_and_a_stop_abandons_it(
    world: World, _patch: tuple[str, ...]
) -> None:
    sfn, sqs = world.client("stepfunctions"), world.client("sqs")
    queue = sqs.create_queue(QueueName="tokens")["QueueUrl"]
    machine = _token_machine(world, queue)
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"timeout": 3600}))["executionArn"]
    token = _held_token(world, queue)
    world.clock.advance(3601)
    result = world.wait(arn, timeout=30)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=token, output="{}")

    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"timeout": 3600}))["executionArn"]
    token = _held_token(world, queue)
    sfn.stop_execution(executionArn=arn, error="Operator", cause="stop")
    assert world.wait(arn, timeout=30).status == "ABORTED"
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=token, output="{}")


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


@covers("event_targets", "event_time")
def test_an_event_without_a_time_is_stamped_on_the_virtual_clock(world: World, _patch: tuple[str, ...]) -> None:
    machine = _machine(world, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    events = world.client("events")
    events.put_rule(Name="contract-time", EventPattern=json.dumps({"source": ["contract.time"]}))
    events.put_targets(Rule="contract-time", Targets=[{"Id": "m", "Arn": machine}])
    world.clock.advance(7200)  # (a deployment's waits)
    before = world.clock.time()
    [arn] = world.put_events({"Source": "contract.time", "DetailType": "x", "Detail": "{}"})
    stamped = _dt.datetime.strptime(world.wait(arn).input["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.UTC)
    assert before - 1 <= stamped.timestamp() <= world.clock.time()  # not wall time, two hours behind


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


@covers("execution_history_order")
def test_wait_reports_each_event_once_when_events_arrive_between_history_pages(
    world: World, _patch: tuple[str, ...]
) -> None:
    states: dict[str, Any] = {f"P{i}": {"Type": "Pass", "Next": f"P{i + 1}"} for i in range(20)}
    states["P20"] = {"Type": "Pass", "Next": "Held"}
    states["Held"] = {"Type": "Pass", "Next": "Q0"}
    states.update({f"Q{i}": {"Type": "Pass", "Next": f"Q{i + 1}"} for i in range(20)})
    states["Q20"] = {"Type": "Pass", "End": True}
    machine, sfn = _machine(world, {"StartAt": "P0", "States": states}), world.client("stepfunctions")
    pause = world.pause_at("Held")
    arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    assert pause.reached() == arn

    released: list[bool] = []

    def finish_between_pages(**_: Any) -> None:  # the first page is read: let the execution add 40 more
        if not released:
            released.append(True)
            pause.release()
            while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                time.sleep(0.01)

    sfn.meta.events.register("after-call.sfn.GetExecutionHistory", finish_between_pages)
    try:
        reported: list[int] = []
        result = world.wait(arn, on_event=lambda event, _t: reported.append(event["id"]))
    finally:
        sfn.meta.events.unregister("after-call.sfn.GetExecutionHistory", finish_between_pages)
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    assert result.status == "SUCCEEDED" and len(history) > 80
    assert reported == [e["id"] for e in result.events] == [e["id"] for e in history]


@covers("asl_parse_cache")
def test_a_definition_is_parsed_once_and_each_execution_gets_its_own_program(
    world: World, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    parses: list[int] = []
    original = ASLParser.state_machine
    builds: list[int] = []
    build = Preprocessor.visitProgram_decl

    def state_machine(self: Any) -> Any:
        parses.append(1)
        return original(self)

    def program_decl(self: Any, ctx: Any) -> Any:
        builds.append(1)
        return build(self, ctx)

    monkeypatch.setattr(ASLParser, "state_machine", state_machine)
    monkeypatch.setattr(Preprocessor, "visitProgram_decl", program_decl)
    definition = {
        "StartAt": "Greet",
        "States": {"Greet": {"Type": "Pass", "Parameters": {"msg.$": "States.Format('hi {}', $.who)"}, "End": True}},
    }
    machine = _machine(world, definition)
    outputs = [_run(world, machine, {"who": who}).output for who in ("ann", "bob")]
    assert outputs == [{"msg": "hi ann"}, {"msg": "hi bob"}]
    assert len(parses) == 1  # at CreateStateMachine; the executions reuse its parse tree
    assert len(builds) == 1  # ... and copies of the program built from it
    text = json.dumps(definition)
    (first, tree), (second, same_tree) = AmazonStateLanguageParser.parse(text), AmazonStateLanguageParser.parse(text)
    assert first is not second and tree is same_tree  # one tree, a program per execution
    assert first.states is not second.states and first.states.states.keys() == second.states.states.keys()
    for _ in range(2):  # a definition that does not parse is refused every time
        with pytest.raises(ASLParserException):
            AmazonStateLanguageParser.parse('{"StartAt": "A", "States": {"A": ')

    programs, seen = [], len(parses)  # CreateStateMachine of a definition kept: no program to throw away
    unpickle = compat.pickle.loads
    monkeypatch.setattr(compat.pickle, "loads", lambda data: programs.append(1) or unpickle(data))
    _machine(world, dict(definition))  # (a new dict: a new machine name, the same definition text)
    assert programs == [] and len(parses) == seen
    with pytest.raises(ClientError, match="ASLParserException"):  # ... and one that does not parse is refused
        _machine(world, {"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": True}}, "Comment": ["x"]})


@covers("asl_parse_cache")
def test_a_definition_in_use_stays_kept_while_others_come_and_go(
    _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    compat.apply()
    parses: list[int] = []
    original = ASLParser.state_machine
    monkeypatch.setattr(ASLParser, "state_machine", lambda self: parses.append(1) or original(self))

    def definition(name: str) -> str:
        return json.dumps({"StartAt": name, "States": {name: {"Type": "Pass", "End": True}}})

    used = definition(f"Used{time.monotonic_ns()}")
    AmazonStateLanguageParser.parse(used)
    for n in range(2 * compat._PARSE_TREES_KEPT):  # as many other definitions as are kept, twice over
        AmazonStateLanguageParser.parse(definition(f"Other{n}x{time.monotonic_ns()}"))
        AmazonStateLanguageParser.parse(used)  # ... while the world's own runs executions in between
    assert len(parses) == 1 + 2 * compat._PARSE_TREES_KEPT  # the one in use was parsed once


@covers("action_names")
def test_each_response_class_s_methods_are_listed_once(
    world: World, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core import responses, utils

    listed: list[type] = []
    original = utils.method_names_from_class
    monkeypatch.setattr(utils, "method_names_from_class", lambda clazz: listed.append(clazz) or original(clazz))

    class Fresh(responses.BaseResponse):
        def greet(self) -> str:
            return "hi"

    names = [responses.method_names_from_class(Fresh) for _ in range(3)]  # type: ignore[attr-defined]
    assert listed == [Fresh] and "greet" in names[0] and names[0] is names[2]
    sqs = world.client("sqs")  # requests still reach their methods
    urls = [sqs.create_queue(QueueName=f"listed-{n}")["QueueUrl"] for n in range(2)]
    assert set(urls) <= set(sqs.list_queues()["QueueUrls"])
    with pytest.raises(ClientError, match="does not exist"):
        sqs.get_queue_url(QueueName="never-made")


@covers("json_path_cache")
def test_each_json_path_is_parsed_once_and_reads_each_execution_s_own_input(
    world: World, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jsonpath_ng.exceptions import JsonPathParserError
    from jsonpath_ng.parser import JsonPathParser
    from moto.stepfunctions.parser.asl.utils import json_path

    parsed: list[str] = []
    original = JsonPathParser.parse

    def parse(self: Any, string: str, lexer: Any = None) -> Any:
        parsed.append(string)
        return original(self, string, lexer)

    monkeypatch.setattr(JsonPathParser, "parse", parse)
    key = f"who{time.monotonic_ns()}"  # paths no other test has parsed in this process
    name, said = f"$.{key}.name", f"$.{key}_said"
    definition = {
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Choice",
                "Choices": [{"Variable": name, "StringEquals": "ann", "Next": "Ann"}],
                "Default": "Other",
            },
            "Ann": {"Type": "Pass", "Parameters": {"hi.$": name}, "ResultPath": said, "End": True},
            "Other": {"Type": "Pass", "Parameters": {"bye.$": name}, "ResultPath": said, "End": True},
        },
    }
    machine = _machine(world, definition)
    runs = [_run(world, machine, {key: {"name": who}}) for who in ("ann", "bob", "ann", "bob")]
    assert [run.output[f"{key}_said"] for run in runs] == [{"hi": "ann"}, {"bye": "bob"}, {"hi": "ann"}, {"bye": "bob"}]
    assert sorted(parsed) == sorted([name, said])  # once each, over four executions
    for _ in range(2):  # a path that does not parse fails every time
        with pytest.raises(JsonPathParserError):
            json_path.extract_json("$.[", {})


@covers("json_data_copies")
def test_every_state_reads_its_own_copy_of_the_state_data(
    world: World, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy
    import sys

    copies: list[str] = []  # the modules that called copy.deepcopy
    deepcopy = copy.deepcopy

    def counted(value: Any, memo: Any = None) -> Any:
        copies.append(sys._getframe(1).f_code.co_filename.rsplit("/", 1)[-1])
        return deepcopy(value, memo)

    both = {"a.$": "$.doc", "b.$": "$.doc"}
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {"Type": "Pass", "Parameters": both, "ResultPath": "$.two", "Next": "A"},
            "A": {"Type": "Pass", "Result": "changed", "ResultPath": "$.two.a.items[0]", "Next": "Keep"},
            "Keep": {"Type": "Pass", "InputPath": "$.two", "End": True},
        },
    }
    machine = _machine(world, definition)
    doc = {"items": ["x", 1, 2.5, True, None, {"deep": ["y"]}], "name": "café"}
    monkeypatch.setattr(copy, "deepcopy", counted)
    result = _run(world, machine, {"doc": doc})
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"a": {**doc, "items": ["changed", *doc["items"][1:]]}, "b": doc}  # b is its own copy
    assert {"states.py", "string_expression.py"} & set(copies) == set()  # JSON data read and kept is copied as JSON


@covers("serializer_member_keys")
def test_responses_are_serialised_as_moto_does_without_asking_the_alias_providers_again(
    world: World, app: AppService, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core import serialize

    world.push_image(app.repository, "v2", "healthy")
    execution = world.deploy(app.request("v2"))
    sfn = world.client("stepfunctions")
    calls: dict[str, Any] = {  # dicts (json), objects with response transformers (json, query), objects (query)
        "history": lambda: sfn.get_execution_history(executionArn=execution.arn, maxResults=1000),
        "definitions": lambda: world.client("ecs").describe_task_definition(taskDefinition=f"{app.service}:1"),
        "stacks": lambda: world.client("cloudformation").describe_stacks(StackName=world.stack_name),
        "alarms": lambda: world.client("cloudwatch").describe_alarms(),
        "groups": lambda: world.client("elbv2").describe_target_groups(),
    }

    def answers() -> dict[str, Any]:
        out = {name: call() for name, call in calls.items()}
        for answer in out.values():
            answer.pop("ResponseMetadata")
        return out

    patched = serialize.ResponseSerializer.get_value
    answers()  # the keys of every member are known from here on
    asked: list[str] = []
    original_keys = serialize.XFormedAttributePicker.get_possible_keys

    def get_possible_keys(self: Any, context: Any) -> Any:
        asked.append(context.key)
        return original_keys(self, context)

    monkeypatch.setattr(serialize.XFormedAttributePicker, "get_possible_keys", get_possible_keys)
    fast = answers()
    assert not asked  # the alias providers were asked once per member shape and value type
    assert len(fast["history"]["events"]) > 20 and fast["alarms"]["MetricAlarms"] and fast["groups"]["TargetGroups"]
    monkeypatch.setattr(serialize.ResponseSerializer, "get_value", patched.__wrapped__)
    assert answers() == fast  # moto's own lookup answers the same
    assert asked


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


@covers("lambda_task_clients", "lambda_invoke")
def test_the_lambda_tasks_of_a_world_invoke_through_one_client(
    world: World, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    used: list[Any] = []  # the client of each Lambda Task attempt
    client_for = lambda_eval_utils.boto_client_for  # type: ignore[attr-defined]

    def recorded(*args: Any, **kwargs: Any) -> Any:
        used.append(client_for(*args, **kwargs))
        return used[-1]

    monkeypatch.setattr(lambda_eval_utils, "boto_client_for", recorded)
    machine = _lambda_machine(world, "Boom")
    results = [_run(world, machine) for _ in range(3)]
    assert [r.status for r in results] == ["SUCCEEDED"] * 3 and len(world.runtime.invocations) == 3
    assert len(used) == 3 and all(client is used[0] for client in used)


@covers("sns_signing_key")
def test_sns_signs_every_notification_with_one_key(
    world: World, _patch: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import models as sns_models

    made: list[int] = []
    generate = sns_models.rsa.generate_private_key

    def generate_private_key(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return generate(*args, **kwargs)

    monkeypatch.setattr(sns_models.rsa, "generate_private_key", generate_private_key)
    sns, sqs = world.client("sns"), world.client("sqs")
    bodies = []
    for name in ("one", "two"):
        topic = sns.create_topic(Name=f"signed-{name}")["TopicArn"]
        url = sqs.create_queue(QueueName=f"signed-{name}")["QueueUrl"]
        queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue)
        sns.publish(TopicArn=topic, Message=f"hello {name}")
        bodies.append(json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"]))
    keys = sns_models.sns_backends[DEFAULT_ACCOUNT_ID][world.region]._message_public_keys
    public = []
    for body in bodies:
        cert = x509.load_pem_x509_certificate(keys[body["SigningCertURL"].rsplit("/", 1)[-1]])
        signed = "".join(f"{k}\n{body[k]}\n" for k in ("Message", "MessageId", "Timestamp", "TopicArn", "Type"))
        cert.public_key().verify(
            base64.b64decode(body["Signature"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        public.append(cert.public_key().public_numbers())
    assert public[0] == public[1] and len(made) <= 1  # one key (made now, or by an earlier world)


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


# ---- ECS blue/green, canary and linear service deployments


def _new_revision(world: World, app: AppService, tag: str, image_profile: str = "healthy") -> str:
    ecs = world.client("ecs")
    world.push_image(app.repository, tag, image_profile)
    td = ecs.describe_task_definition(taskDefinition=app.running_task_definition())["taskDefinition"]
    td["containerDefinitions"][0]["image"] = world.image_uri(app.repository, tag)
    return str(
        ecs.register_task_definition(
            family=td["family"],
            containerDefinitions=td["containerDefinitions"],
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
        )["taskDefinition"]["taskDefinitionArn"]
    )


def _start(world: World, app: AppService, tag: str, image_profile: str = "healthy") -> tuple[str, str]:
    """UpdateService to a new revision; returns (its task definition, the service deployment ARN)."""
    ecs = world.client("ecs")
    new = _new_revision(world, app, tag, image_profile)
    answer = ecs.update_service(cluster=app.cluster, service=app.service, taskDefinition=new)
    listed = ecs.list_service_deployments(cluster=app.cluster, service=app.service, status=["IN_PROGRESS"])
    arn = str(listed["serviceDeployments"][0]["serviceDeploymentArn"])
    assert answer["service"]["currentServiceDeployment"] == arn
    return new, arn


def _deployment(world: World, arn: str) -> dict[str, Any]:
    out = world.client("ecs").describe_service_deployments(serviceDeploymentArns=[arn])
    return dict(out["serviceDeployments"][0])


def _awaiting(deployment: dict[str, Any]) -> str:
    [hook] = [h for h in deployment["lifecycleHookDetails"] if h["status"] == "AWAITING_ACTION"]
    return str(hook["hookId"])


def _weights(world: World, app: AppService, rule: str) -> list[int]:
    svc = world.client("ecs").describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    arn = svc["loadBalancers"][0]["advancedConfiguration"][rule]
    [found] = world.client("elbv2").describe_rules(RuleArns=[arn])["Rules"]
    return [g["Weight"] for g in found["Actions"][0]["ForwardConfig"]["TargetGroups"]]


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"X-Stepdeploy-Test": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


@covers("ecs_deployment_configuration")
def test_create_and_update_service_store_the_deployment_strategy(world: World, _patch: tuple[str, ...]) -> None:
    """moto 5.2.5 drops CreateService's deploymentConfiguration; DescribeServices returns what was asked."""
    app = world.create_service(strategy="CANARY", canary_percent=12.5, canary_bake_minutes=3, bake_minutes=7)
    ecs = world.client("ecs")
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    config = svc["deploymentConfiguration"]
    assert config["strategy"] == "CANARY" and config["bakeTimeInMinutes"] == 7
    assert config["canaryConfiguration"] == {"canaryPercent": 12.5, "canaryBakeTimeInMinutes": 3}
    assert [h["lifecycleStages"] for h in config["lifecycleHooks"]] == [
        ["POST_TEST_TRAFFIC_SHIFT"],
        ["POST_PRODUCTION_TRAFFIC_SHIFT"],
    ]
    assert all(h["timeoutConfiguration"]["action"] == "ROLLBACK" for h in config["lifecycleHooks"])
    advanced = svc["loadBalancers"][0]["advancedConfiguration"]
    assert set(advanced) == {"alternateTargetGroupArn", "productionListenerRule", "testListenerRule", "roleArn"}
    assert app.strategy == "CANARY" and app.test_token and app.test_url and len(app.hooks) == 2
    linear = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 1}}
    out = ecs.update_service(cluster=app.cluster, service=app.service, deploymentConfiguration=linear)
    assert out["service"]["deploymentConfiguration"] == linear


@covers("ecs_deployment_configuration")
def test_a_deployment_configuration_ecs_refuses_is_refused_and_changes_nothing(
    world: World, app: AppService, _patch: tuple[str, ...]
) -> None:
    ecs = world.client("ecs")
    hook = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    refused = {
        "without advancedConfiguration": {"strategy": "BLUE_GREEN"},
        "unknown strategy": {"strategy": "RED_BLACK"},
        "canary below 0.1": {"strategy": "ROLLING", "canaryConfiguration": {"canaryPercent": 0.05}},
        "canary not in 0.1 steps": {"strategy": "ROLLING", "canaryConfiguration": {"canaryPercent": 2.55}},
        "step below 3": {"strategy": "ROLLING", "linearConfiguration": {"stepPercent": 2}},
        "bake over 1440": {"strategy": "ROLLING", "bakeTimeInMinutes": 1441},
        "canary over 100": {"strategy": "ROLLING", "canaryConfiguration": {"canaryPercent": 100.5}},
        "step over 100": {"strategy": "ROLLING", "linearConfiguration": {"stepPercent": 101}},
        "AWS_LAMBDA hook (a world limit)": {"lifecycleHooks": [{**hook, "targetType": "AWS_LAMBDA"}]},
        "unknown hook stage": {"lifecycleHooks": [{**hook, "lifecycleStages": ["SCALE_UP"]}]},
    }
    before = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    for case, config in refused.items():
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            ecs.update_service(cluster=app.cluster, service=app.service, deploymentConfiguration=config)
            pytest.fail(case)
    after = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    assert after["deploymentConfiguration"] == before["deploymentConfiguration"]
    assert "strategy" not in after["deploymentConfiguration"]  # ROLLING, as created
    advanced = {"alternateTargetGroupArn": app.target_group_arn, "productionListenerRule": "arn:rule"}  # no roleArn
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="roleArn"):
        ecs.update_service(
            cluster=app.cluster,
            service=app.service,
            deploymentConfiguration={"strategy": "BLUE_GREEN"},
            loadBalancers=[{**before["loadBalancers"][0], "advancedConfiguration": advanced}],
        )


@covers("ecs_service_deployments", "ecs_rollouts")
def test_a_blue_green_deployment_walks_the_lifecycle_and_pauses_at_its_hooks(
    world: World, _patch: tuple[str, ...]
) -> None:
    app = world.create_service(strategy="BLUE_GREEN", bake_minutes=5)
    ecs = world.client("ecs")
    blue_td = app.running_task_definition()
    new, arn = _start(world, app, "v2")
    assert arn.startswith(f"arn:aws:ecs:{world.region}:123456789012:service-deployment/{app.cluster}/{app.service}/")
    deployment = _deployment(world, arn)
    assert (deployment["status"], deployment["lifecycleStage"]) == ("IN_PROGRESS", "SCALE_UP")
    [source] = deployment["sourceServiceRevisions"]
    target = deployment["targetServiceRevision"]
    assert target["arn"].startswith(f"arn:aws:ecs:{world.region}:123456789012:service-revision/{app.cluster}/")
    revisions = ecs.describe_service_revisions(serviceRevisionArns=[source["arn"], target["arn"]])["serviceRevisions"]
    assert [r["taskDefinition"] for r in revisions] == [blue_td, new]
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    assert svc["taskDefinition"] == new
    assert [(d["status"], d["taskDefinition"]) for d in svc["deployments"]] == [("PRIMARY", new), ("ACTIVE", blue_td)]
    assert svc["currentServiceDeployment"] == arn  # as UpdateService's answer says too (the product follows it)

    world.clock.advance(120)  # the image's rollout_seconds: green runs, test traffic on green, paused
    deployment = _deployment(world, arn)
    assert deployment["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    [hook] = deployment["lifecycleHookDetails"]
    assert (hook["targetType"], hook["status"], hook["timeoutAction"]) == ("PAUSE", "AWAITING_ACTION", "ROLLBACK")
    assert hook["hookId"].startswith("ecs-pause-")
    target = deployment["targetServiceRevision"]
    assert (target["requestedTestTrafficWeight"], target["requestedProductionTrafficWeight"]) == (100.0, 0.0)
    assert target["runningTaskCount"] == 2
    assert _weights(world, app, "testListenerRule") == [0, 100]
    assert _weights(world, app, "productionListenerRule") == [100, 0]
    world.clock.advance(600)  # a paused deployment waits (until its hook's timeout, 60 minutes)
    assert _deployment(world, arn)["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"

    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action="CONTINUE")
    deployment = _deployment(world, arn)
    assert deployment["lifecycleStage"] == "POST_PRODUCTION_TRAFFIC_SHIFT"
    assert deployment["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
    assert _weights(world, app, "productionListenerRule") == [0, 100]
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="not AWAITING_ACTION"):
        ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action="CONTINUE")
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(deployment), action="CONTINUE")
    assert _deployment(world, arn)["lifecycleStage"] == "BAKE_TIME"
    world.clock.advance(300)
    deployment = _deployment(world, arn)
    assert deployment["status"] == "SUCCESSFUL" and "finishedAt" in deployment
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    assert [(d["status"], d["taskDefinition"], d["rolloutState"]) for d in svc["deployments"]] == [
        ("PRIMARY", new, "COMPLETED")
    ]
    # green became blue: the next deployment's green goes to the first target group
    assert _weights(world, app, "productionListenerRule") == [100, 0]
    [rule] = world.client("elbv2").describe_rules(
        RuleArns=[svc["loadBalancers"][0]["advancedConfiguration"]["productionListenerRule"]]
    )["Rules"]
    assert rule["Actions"][0]["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"] != app.target_group_arn
    assert [
        d["status"]
        for d in ecs.list_service_deployments(cluster=app.cluster, service=app.service)["serviceDeployments"]
    ] == ["SUCCESSFUL"]
    assert (
        ecs.list_service_deployments(cluster=app.cluster, service=app.service, status=["IN_PROGRESS"])[
            "serviceDeployments"
        ]
        == []
    )


@covers("ecs_service_deployments")
def test_canary_and_linear_shift_production_traffic_in_steps(world: World, _patch: tuple[str, ...]) -> None:
    canary = world.create_service(strategy="CANARY", canary_percent=10, canary_bake_minutes=5)
    ecs = world.client("ecs")
    _, arn = _start(world, canary, "v2")
    world.clock.advance(120)
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(_deployment(world, arn)))
    assert _weights(world, canary, "productionListenerRule") == [90, 10]
    world.clock.advance(299)
    assert _deployment(world, arn)["targetServiceRevision"]["requestedProductionTrafficWeight"] == 10.0
    world.clock.advance(1)
    deployment = _deployment(world, arn)
    assert (deployment["lifecycleStage"], _weights(world, canary, "productionListenerRule")) == (
        "POST_PRODUCTION_TRAFFIC_SHIFT",
        [0, 100],
    )

    linear = world.create_service(
        cluster="lin", service="lin", repository="linapp", strategy="LINEAR", step_percent=30, step_bake_minutes=1
    )
    _, arn = _start(world, linear, "v2")
    world.clock.advance(120)
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(_deployment(world, arn)))
    seen = []
    for _ in range(4):
        seen.append(_deployment(world, arn)["targetServiceRevision"]["requestedProductionTrafficWeight"])
        world.clock.advance(60)
    assert seen == [30.0, 60.0, 90.0, 100.0]


@covers("ecs_service_deployments")
def test_a_rollback_puts_traffic_back_on_blue_at_once(world: World, _patch: tuple[str, ...]) -> None:
    app = world.create_service(strategy="BLUE_GREEN")
    ecs = world.client("ecs")
    blue_td = app.running_task_definition()
    _, arn = _start(world, app, "v2", "db-down")
    world.clock.advance(120)
    hook = _awaiting(_deployment(world, arn))
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook, action="ROLLBACK")
    deployment = _deployment(world, arn)
    assert deployment["status"] == "ROLLBACK_IN_PROGRESS"
    assert deployment["rollback"]["serviceRevisionArn"] == deployment["sourceServiceRevisions"][0]["arn"]
    assert _weights(world, app, "testListenerRule") == [100, 0]
    world.clock.advance(5)
    deployment = _deployment(world, arn)
    assert deployment["status"] == "ROLLBACK_SUCCESSFUL"
    assert deployment["targetServiceRevision"]["runningTaskCount"] == 0  # green tasks stopped
    assert [h["status"] for h in deployment["lifecycleHookDetails"]] == ["FAILED"]
    assert app.running_task_definition() == blue_td
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook, action="CONTINUE")

    _, arn = _start(world, app, "v3")  # StopServiceDeployment rolls back at any stage
    world.clock.advance(10)
    ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    world.clock.advance(5)
    assert _deployment(world, arn)["status"] == "ROLLBACK_SUCCESSFUL"
    with pytest.raises(ClientError, match="ConflictException"):
        ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    with pytest.raises(ClientError, match="ServiceDeploymentNotFoundException"):
        ecs.continue_service_deployment(serviceDeploymentArn=arn + "x", hookId=hook)

    _, arn = _start(world, app, "v4", "never-healthy")  # the circuit breaker trips during SCALE_UP
    world.clock.advance(240)
    deployment = _deployment(world, arn)
    assert deployment["status"] == "ROLLBACK_IN_PROGRESS" and "circuit breaker" in deployment["statusReason"]
    assert deployment["deploymentCircuitBreaker"]["status"] == "TRIGGERED"

    _, arn = _start(world, app, "v5")  # a hook's timeout applies its action (ROLLBACK) at expiresAt
    world.clock.advance(120 + 3600 + 10)
    deployment = _deployment(world, arn)
    assert [h["status"] for h in deployment["lifecycleHookDetails"]] == ["TIMED_OUT"]
    assert deployment["status"] == "ROLLBACK_SUCCESSFUL" and "timed out" in deployment["statusReason"]


@covers("ecs_service_deployments")
def test_a_deployment_alarm_rolls_back_while_the_new_revision_takes_production_traffic(
    world: World, _patch: tuple[str, ...]
) -> None:
    """deploymentConfiguration.alarms (enable, rollback): an alarm in ALARM before any production traffic changes
    nothing; during BAKE_TIME it takes the deployment back to blue, and DescribeServiceDeployments names it."""
    app = world.create_service(strategy="BLUE_GREEN", bake_minutes=5)
    ecs, cw = world.client("ecs"), world.client("cloudwatch")
    config = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0][
        "deploymentConfiguration"
    ]
    alarm = app.alarm_names[0]
    ecs.update_service(
        cluster=app.cluster,
        service=app.service,
        deploymentConfiguration={**config, "alarms": {"alarmNames": [alarm], "enable": True, "rollback": True}},
    )
    _, arn = _start(world, app, "v2")
    world.clock.advance(120)
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    deployment = _deployment(world, arn)  # at POST_TEST_TRAFFIC_SHIFT: 0 % production
    assert deployment["status"] == "IN_PROGRESS" and deployment["alarms"]["status"] == "MONITORING"
    cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test")
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(deployment))
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(_deployment(world, arn)))
    world.clock.advance(60)
    assert _deployment(world, arn)["lifecycleStage"] == "BAKE_TIME"
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    deployment = _deployment(world, arn)
    assert deployment["status"] == "ROLLBACK_IN_PROGRESS" and alarm in deployment["statusReason"]
    assert deployment["alarms"] == {"status": "TRIGGERED", "alarmNames": [alarm], "triggeredAlarmNames": [alarm]}
    assert _weights(world, app, "productionListenerRule") == [100, 0]


@covers("ecs_service_deployments", "target_health", "alb_endpoints")
def test_a_rollback_made_to_fail_ends_rollback_failed_and_nothing_serves(world: World, _patch: tuple[str, ...]) -> None:
    """faults.fail_service_rollback: the next rollback ends ROLLBACK_FAILED (a Completed state, as on AWS) with
    its reason; the source revision's tasks stopped: no target is registered and the listener answers 503."""
    app = world.create_service(strategy="BLUE_GREEN")
    ecs = world.client("ecs")
    world.faults.fail_service_rollback(app, reason="Rollback failed: the source revision's tasks failed to start.")
    _, arn = _start(world, app, "v2", "db-down")
    world.clock.advance(120)
    hook = _awaiting(_deployment(world, arn))
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook, action="ROLLBACK")
    assert _deployment(world, arn)["status"] == "ROLLBACK_IN_PROGRESS"
    world.clock.advance(5)
    deployment = _deployment(world, arn)
    assert (deployment["status"], deployment["statusReason"]) == (
        "ROLLBACK_FAILED",
        "Rollback failed: the source revision's tasks failed to start.",
    )
    assert "finishedAt" in deployment
    assert (
        ecs.list_service_deployments(cluster=app.cluster, service=app.service, status=["IN_PROGRESS"])[
            "serviceDeployments"
        ]
        == []
    )
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    assert svc["runningCount"] == 0
    groups = [app.target_group_arn, svc["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"]]
    elb = world.client("elbv2")
    assert [elb.describe_target_health(TargetGroupArn=g)["TargetHealthDescriptions"] for g in groups] == [[], []]
    assert _get(app.production_url)[0] == 503

    _, arn = _start(world, app, "v3")  # the fault is spent: the next rollback succeeds
    world.clock.advance(10)
    ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    world.clock.advance(5)
    assert _deployment(world, arn)["status"] == "ROLLBACK_SUCCESSFUL"


@covers("ecs_service_deployments", "event_targets")
def test_service_deployments_emit_the_ecs_events(world: World, _patch: tuple[str, ...]) -> None:
    sqs, events = world.client("sqs"), world.client("events")
    url = sqs.create_queue(QueueName="ecs-events")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change", "ECS Hook State Change"]}
    events.put_rule(Name="ecs-events", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="ecs-events", Targets=[{"Id": "q", "Arn": queue}])
    app = world.create_service(strategy="BLUE_GREEN")
    _, arn = _start(world, app, "v2")
    world.clock.advance(120)
    _deployment(world, arn)
    received = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert [(e["detail-type"], e["detail"]["eventName"]) for e in received] == [
        ("ECS Deployment State Change", "SERVICE_DEPLOYMENT_IN_PROGRESS"),
        ("ECS Hook State Change", "HOOK_AWAITING_ACTION"),
    ]
    hook = received[1]["detail"]
    assert hook["serviceDeploymentArn"] == arn and hook["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert hook["hookId"] == _awaiting(_deployment(world, arn))
    assert sorted(hook["testTrafficWeights"].values()) == [0.0, 100.0]
    assert received[0]["resources"] == [hook["serviceArn"]]


@covers("ecs_service_deployments", "target_health", "alb_endpoints")
def test_each_listener_answers_by_its_rule_weights_and_target_groups_show_their_revision(
    world: World, _patch: tuple[str, ...]
) -> None:
    app = world.create_service(strategy="CANARY", canary_percent=20, canary_bake_minutes=10)
    ecs, elb = world.client("ecs"), world.client("elbv2")
    _, arn = _start(world, app, "v2", "db-down")
    world.clock.advance(120)
    assert app.test_url is not None
    assert _get(app.test_url) == (404, "Not Found")  # the test rule requires its header
    assert _get(app.test_url, app.test_token) == (200, "Error: db connection down")  # green behind the test rule
    assert {_get(app.production_url) for _ in range(5)} == {(200, "OK")}  # blue: 0 % production on green
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    green_tg = svc["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"]
    health = elb.describe_target_health(TargetGroupArn=green_tg)["TargetHealthDescriptions"]
    assert [h["TargetHealth"]["State"] for h in health] == ["healthy", "healthy"]
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(_deployment(world, arn)))
    bodies = [_get(app.production_url)[1] for _ in range(10)]  # deterministic weighted round robin: 2 in 10
    assert bodies.count("Error: db connection down") == 2 and bodies.count("OK") == 8


@covers("ecs_service_deployments", "ecs_rollouts")
def test_user_traffic_counts_requests_per_revision_and_failures(world: World, _patch: tuple[str, ...]) -> None:
    app = world.create_service(strategy="CANARY", canary_percent=10, canary_bake_minutes=5)
    ecs = world.client("ecs")
    _, arn = _start(world, app, "v2", "db-down")
    world.clock.advance(120)
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(_deployment(world, arn)))
    canary_at = world.clock.time()
    world.clock.advance(30)
    ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    world.clock.advance(5)
    traffic = world.user_traffic(app, rate=10)
    [only] = traffic.deployments
    assert only.deployment == arn and only.strategy == "CANARY"
    assert 1540 <= traffic.requests <= 1560  # 10 per virtual second over ~155 s
    assert traffic.failed == traffic.to_new_revision == 30  # 10 % of 30 s at 10 requests/s, all bad
    assert traffic.first_failure is not None and traffic.restored is not None
    assert canary_at <= traffic.first_failure < canary_at + 1
    assert 29 <= traffic.restore_seconds <= 31  # type: ignore[operator]

    rolling = world.create_service(cluster="r", service="r", repository="rapp")  # ROLLING: unchanged model
    new = _new_revision(world, rolling, "v2", "db-down")
    ecs.update_service(cluster=rolling.cluster, service=rolling.service, taskDefinition=new)
    world.clock.advance(200)
    traffic = world.user_traffic(rolling, rate=1)
    assert traffic.deployments[0].strategy == "ROLLING"
    assert 79 <= traffic.failed <= 81  # after the 120 s rollout, every request reaches the bad image
    assert traffic.failed == traffic.to_new_revision and traffic.restored is None


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


def _alb_query(query_id: str, metric: str, stat: str, dimensions: dict[str, str]) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/ApplicationELB",
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            },
            "Period": 60,
            "Stat": stat,
        },
    }


@covers("alb_metrics", "ecs_service_deployments")
def test_alb_metrics_per_target_group_follow_the_user_traffic(world: World, _patch: tuple[str, ...]) -> None:
    """GetMetricData answers AWS/ApplicationELB per target group (dimensions LoadBalancer ``app/<name>/<id>`` and
    TargetGroup ``targetgroup/<name>/<id>``, as the ALB publishes them) from the world's production traffic: the
    canary's share of the requests, its images' 5XX and response times, per minute on the virtual clock."""
    app = world.create_service(strategy="CANARY", canary_percent=10, canary_bake_minutes=5, image_profile="slow")
    ecs, elb, cw = world.client("ecs"), world.client("elbv2"), world.client("cloudwatch")
    _, arn = _start(world, app, "v2", "errors-10pct")
    world.clock.advance(120)
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(_deployment(world, arn)))
    assert _weights(world, app, "productionListenerRule") == [90, 10]
    world.clock.advance(180)  # three minutes of the canary step
    svc = ecs.describe_services(cluster=app.cluster, services=[app.service])["services"][0]
    green_arn = svc["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"]
    [group] = elb.describe_target_groups(TargetGroupArns=[green_arn])["TargetGroups"]
    balancer = group["LoadBalancerArns"][0].split(":loadbalancer/", 1)[1]
    assert balancer.startswith("app/web-alb/")
    groups = {"blue": app.target_group_arn.rsplit(":", 1)[1], "green": green_arn.rsplit(":", 1)[1]}
    assert groups["green"].startswith("targetgroup/")
    queries = [
        _alb_query(f"{metric[:4].lower()}_{color}", metric, stat, {"LoadBalancer": balancer, "TargetGroup": value})
        for color, value in groups.items()
        for metric, stat in (
            ("RequestCount", "Sum"),
            ("HTTPCode_Target_5XX_Count", "Sum"),
            ("TargetResponseTime", "Average"),
        )
    ]
    queries.append(_alb_query("lb_only", "RequestCount", "Sum", {"LoadBalancer": balancer}))  # not modelled
    now = world.clock.time()
    cw.put_metric_data(Namespace="Contract", MetricData=[{"MetricName": "M", "Value": 7.0, "Timestamp": now - 30}])
    queries.append(
        {
            "Id": "custom",
            "MetricStat": {"Metric": {"Namespace": "Contract", "MetricName": "M"}, "Period": 60, "Stat": "Sum"},
        }
    )
    start = _dt.datetime.fromtimestamp(now - 300, tz=_dt.UTC)
    out = cw.get_metric_data(
        MetricDataQueries=queries, StartTime=start, EndTime=_dt.datetime.fromtimestamp(now, tz=_dt.UTC)
    )
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    totals = {k: sum(r["Values"]) for k, r in results.items()}

    assert 175 <= totals["requ_green"] <= 185  # 10 % of 10 requests/s over the canary's 180 s
    assert 0.09 <= totals["http_green"] / totals["requ_green"] <= 0.11  # every 10th request answered 500
    assert totals["requ_blue"] > 2500  # the other 90 %, and all of it before the canary
    assert results["http_blue"]["Values"] == []  # reported only when nonzero
    assert set(results["targ_blue"]["Values"]) == {1.5} and set(results["targ_green"]["Values"]) == {0.0}  # seconds
    for result in (results["requ_blue"], results["requ_green"]):
        stamps = [t.timestamp() for t in result["Timestamps"]]
        assert stamps == sorted(stamps, reverse=True)  # TimestampDescending, the default
        assert all(t % 60 == 0 and start.timestamp() - 60 < t < now for t in stamps)  # minutes, virtual clock
    assert 3 <= len(results["requ_green"]["Timestamps"]) <= 4 < len(results["requ_blue"]["Timestamps"]) <= 6
    assert results["lb_only"]["Values"] == [] and results["custom"]["Values"] == [7.0]  # moto answers those
    early = cw.get_metric_data(
        MetricDataQueries=[queries[0], queries[3]],
        StartTime=_dt.datetime.fromtimestamp(now - 300, tz=_dt.UTC),
        EndTime=_dt.datetime.fromtimestamp(now - 185, tz=_dt.UTC),
    )["MetricDataResults"]
    assert [r["Values"] for r in early][1] == []  # green served no production request before the canary step


@covers("unsigned_requests")
def test_requests_the_world_answers_in_process_go_unsigned_to_its_account_and_region(_patch: tuple[str, ...]) -> None:
    import boto3

    sent: list[dict[str, str]] = []

    class Refused(Exception):
        pass

    def watch(client: Any, refuse: bool = False) -> Any:
        """Record the headers of each request ``client`` sends; refuse it before it leaves (no network)."""

        def before_send(request: Any, **_: Any) -> None:
            sent.append({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})
            if refuse:
                raise Refused

        client.meta.events.register_first("before-send", before_send)
        return client

    with World(region="eu-west-1", function_log_level="ERROR") as world:
        sqs = watch(world.client("sqs"))
        url = sqs.create_queue(QueueName="unsigned")["QueueUrl"]
        assert "Authorization" not in sent[-1] and "X-Amz-Date" not in sent[-1]
        assert url.split("/")[-2:] == [ACCOUNT_ID, "unsigned"] and ".eu-west-1." in url
        assert url in sqs.list_queues(QueueNamePrefix="unsig")["QueueUrls"]  # answered from its region
        role = world.client("iam").create_role(RoleName="unsigned", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        assert role == f"arn:aws:iam::{ACCOUNT_ID}:role/unsigned"
        assert "X-Amz-Signature=" in sqs.generate_presigned_url("list_queues", ExpiresIn=60)  # presigned: signed
        s3 = watch(world.client("s3"))
        s3.create_bucket(Bucket="signed", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_object(Bucket="signed", Key="k", Body=b"v")
        assert s3.get_object(Bucket="signed", Key="k")["Body"].read() == b"v"  # S3: signed, not anonymous
        assert "Authorization" in sent[-1]
        served = watch(boto3.client("sqs", region_name="eu-west-1", endpoint_url="http://127.0.0.1:9"), refuse=True)
        with pytest.raises(Refused):
            served.list_queues()  # another endpoint (a served world reads the region from the signature): signed
        assert "eu-west-1/sqs/aws4_request" in sent[-1]["Authorization"]
    outside = boto3.client("sqs", region_name="eu-west-1", aws_access_key_id="k", aws_secret_access_key="s")
    with pytest.raises(Refused):
        watch(outside, refuse=True).list_queues()  # no world: signed
    assert "Authorization" in sent[-1]


@covers("unsigned_requests")
def test_requests_with_a_key_moto_issued_stay_signed_and_keep_their_identity(
    world: World, _patch: tuple[str, ...]
) -> None:
    """moto finds the caller from the access key: an assumed role's (here in another account) or an IAM user's.
    Unsigned, their requests would be the default account's anonymous user."""
    import boto3

    def as_(key: dict[str, str], service: str) -> Any:
        secret = {"aws_secret_access_key": key["SecretAccessKey"], "aws_session_token": key.get("SessionToken")}
        return boto3.client(service, region_name=world.region, aws_access_key_id=key["AccessKeyId"], **secret)

    role = "arn:aws:iam::111111111111:role/deployer"
    assumed = world.client("sts").assume_role(RoleArn=role, RoleSessionName="release")["Credentials"]
    assert as_(assumed, "sts").get_caller_identity()["Arn"] == "arn:aws:sts::111111111111:assumed-role/deployer/release"
    assert "/111111111111/made-there" in as_(assumed, "sqs").create_queue(QueueName="made-there")["QueueUrl"]
    iam = world.client("iam")
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    assert as_(key, "sts").get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/alice"
    assert iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"]["ServiceName"] == "sts"


@covers("unsigned_requests")
def test_requests_moto_authenticates_stay_signed(world: World, _patch: tuple[str, ...]) -> None:
    from moto.core import set_initial_no_auth_action_count

    @set_initial_no_auth_action_count(0)
    def list_queues() -> None:
        world.client("sqs").list_queues()

    with pytest.raises(ClientError, match="InvalidClientTokenId"):  # the world's key is no IAM user's
        list_queues()
