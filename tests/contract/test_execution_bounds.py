"""Every execution ends inside the state machine's TimeoutSeconds and the 25,000-event history limit,
whatever the input (issue 10, failure 7): a proof from the ASL's loops and the input ranges.

The bound is an over-approximation: every Task state outside a loop is taken at its worst (all its
retry attempts, each running to its TimeoutSeconds, plus the retry delays), once per phase it can run
in. Each loop is bounded by its deadline on the clock (the workflow measures a loop's elapsed time as the
larger of its counted waits and the clock, so slow Lambda calls and retries count against it) plus one
last iteration; its iterations by the deadline over the shortest wait. Every cycle of the ASL graph must
pass through a Wait state of :data:`LOOPS`, so a new loop cannot escape the proof.

Known limit: history events inside loops count one attempt per Task per iteration (a loop whose every
call is retried is not covered; such retries would also eat its deadline).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from stepdeploy.decisions import follow_deadline, follow_poll_limit
from stepdeploy.models import INT_RANGES, MAX_BAKE_SECONDS, MAX_SHIFT_SECONDS, HealthPolicy, RolloutPolicy, StrategySpec

ROOT = Path(__file__).resolve().parents[2]
HISTORY_LIMIT = 25_000


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _template_range(name: str) -> tuple[int, int]:
    params = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)["Parameters"][name]
    return int(params["MinValue"]), int(params["MaxValue"])


@dataclass(frozen=True)
class Loop:
    """A polling loop: its Wait state, the states of one iteration, its deadline and its waits (seconds,
    from the input ranges), and how many times one execution can run it (deploy and rollback phases)."""

    wait_state: str
    iteration: tuple[str, ...]
    deadline: int
    min_wait: int
    max_wait: int
    runs: int
    max_iterations: int | None = None  # a bound besides the deadline (the bake's max_checks)
    #: loops of which one execution runs one: the worst case counts the costlier only
    group: str | None = None


#: In the deploy phase an execution polls a rolling update (WaitRollout) or follows a service deployment
#: (WaitDeployment), never both: DeployKind chooses one (test_deploy_loops_are_exclusive). Loops of one group count
#: the costlier only.


def _worst_follow() -> tuple[int, int]:
    """The longest and the most-polled service deployment any input allows (decisions.follow_deadline/poll_limit)."""
    rollout = RolloutPolicy(INT_RANGES["rollout.timeout_seconds"][1], INT_RANGES["rollout.poll_seconds"][0])
    health = HealthPolicy(
        None, 200, None, "exact", 30, INT_RANGES["health.interval_seconds"][0], 1, 1, MAX_BAKE_SECONDS // 5, 1
    )
    health = HealthPolicy(**{**health.__dict__, "max_checks": INT_RANGES["health.max_checks"][1]})
    strategy = StrategySpec(type="LINEAR", step_percent=50.0, step_bake_minutes=0, bake_minutes=MAX_SHIFT_SECONDS // 60)
    assert strategy.shift_seconds() == MAX_SHIFT_SECONDS
    return follow_deadline(rollout, health, strategy), follow_poll_limit(rollout, health, strategy)


def loops() -> list[Loop]:
    queue_min, _ = _template_range("QueuePollSeconds")
    _, queue_max_poll = _template_range("QueuePollSeconds")
    _, queue_timeout = _template_range("QueueTimeoutSeconds")
    stack_deadline = 2 * INT_RANGES["stack.timeout_seconds"][1]  # a cancelled update is awaited up to 2x
    stack_poll = INT_RANGES["stack.poll_seconds"]
    rollout_poll = INT_RANGES["rollout.poll_seconds"]
    interval = INT_RANGES["health.interval_seconds"]
    max_checks = INT_RANGES["health.max_checks"][1]
    return [
        Loop("QueueWait", ("Guard", "GuardDecision"), queue_timeout, queue_min, queue_max_poll, 1),
        Loop("WaitStack", ("EnsureStack", "StackDecision"), stack_deadline, *stack_poll, 1),
        Loop("WaitRollbackStack", ("RollbackStack", "RollbackStackDecision"), stack_deadline, *stack_poll, 1),
        Loop(  # the rollback phase
            "WaitRollout", ("CheckRollout", "RolloutDone"), INT_RANGES["rollout.timeout_seconds"][1], *rollout_poll, 1
        ),
        Loop(  # the deploy phase of a rolling update
            "WaitRollout",
            ("CheckRollout", "RolloutDone"),
            INT_RANGES["rollout.timeout_seconds"][1],
            *rollout_poll,
            1,
            group="deploy",
        ),
        Loop("WaitBake", ("CheckHealth", "BakeDone"), MAX_BAKE_SECONDS, *interval, 2, max_checks),
        Loop(
            "WaitDeployment",
            ("FollowDeployment", "DeploymentDone"),
            _worst_follow()[0],
            interval[0],
            max(interval[1], rollout_poll[1]),
            1,
            _worst_follow()[1],
            group="deploy",
        ),
    ]


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads((ROOT / "statemachine" / "deploy.asl.json").read_text())


def _next(state: dict[str, Any]) -> set[str]:
    out = {state["Next"]} if "Next" in state else set()
    out |= {c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])}
    return out | ({state["Default"]} if "Default" in state else set())


def task_attempts(state: dict[str, Any]) -> int:
    return 1 + sum(int(r.get("MaxAttempts", 3)) for r in state.get("Retry", []))


#: The approval pauses: one execution waits in one of them (ROLLING before UpdateService, at the test-traffic hook
#: of a followed deployment, or at that hook of the deployment a stack update started: a stack release goes on to
#: VERIFY, never to ApprovalDecision), once (FollowDeployment and EnsureStack ask once), each at most the longest
#: approval timeout.
APPROVAL_STATES = ("AwaitApproval", "AwaitReleaseApproval", "AwaitStackApproval")


def task_seconds(state: dict[str, Any]) -> float:
    """One arrival at a Task, at its worst: every attempt to its timeout, every retry delay at its cap.
    A service integration (``arn:aws:states:::``) retries only errors of its API call (RunTask refused or
    placed nothing), which come back at once (counted as 60 s); only its last attempt can run to the
    timeout (a States.Timeout is not retried)."""
    delays = 0.0
    for rule in state.get("Retry", []):
        interval, rate, cap = rule.get("IntervalSeconds", 1), rule.get("BackoffRate", 2.0), rule.get("MaxDelaySeconds")
        for attempt in range(int(rule.get("MaxAttempts", 3))):
            delay = interval * rate**attempt
            delays += min(delay, cap) if cap else delay
    if "TimeoutSecondsPath" in state:
        assert state["TimeoutSecondsPath"] == "$.request.approval.timeout_seconds"
        timeout = 60 * INT_RANGES["approval.timeout_minutes"][1]
    else:
        timeout = int(state.get("TimeoutSeconds", 60))
    if state["Resource"].startswith("arn:aws:states:::"):
        return (task_attempts(state) - 1) * 60 + timeout + delays
    return task_attempts(state) * timeout + delays


def state_events(state: dict[str, Any], attempts: int) -> int:
    """History events of one arrival: entered + exited, and for a Task scheduled/started/ended per attempt."""
    return 2 + (3 * attempts if state["Type"] == "Task" else 0)


def worst_case(asl: dict[str, Any]) -> tuple[float, int]:
    states = asl["States"]
    in_loops = {s for loop in loops() for s in (loop.wait_state, *loop.iteration)}
    seconds, events = 0.0, 0
    by_group: dict[str, tuple[float, int]] = {}
    for loop in loops():
        iteration = [states[s] for s in (loop.wait_state, *loop.iteration)]
        worst_iteration = loop.max_wait + sum(task_seconds(s) for s in iteration if s["Type"] == "Task")
        iterations = loop.deadline // loop.min_wait + 2  # (the last wait may be shortened to the deadline)
        if loop.max_iterations is not None:
            iterations = min(iterations, loop.max_iterations + 1)
        cost = (
            loop.runs * (loop.deadline + worst_iteration),
            loop.runs * iterations * sum(state_events(s, 1) for s in iteration),
        )
        if loop.group is None:
            seconds, events = seconds + cost[0], events + cost[1]
        else:  # alternatives: the costlier counts
            had = by_group.get(loop.group, (0.0, 0))
            by_group[loop.group] = (max(had[0], cost[0]), max(had[1], cost[1]))
    seconds += sum(g[0] for g in by_group.values())
    events += sum(g[1] for g in by_group.values())
    cyclic = _on_cycles(states)
    approval = max(
        (task_seconds(states[n]), state_events(states[n], task_attempts(states[n]))) for n in APPROVAL_STATES
    )
    seconds, events = seconds + approval[0], events + approval[1]
    for name, state in states.items():
        if name in in_loops or name in APPROVAL_STATES:
            continue
        runs = 2 if name in cyclic else 1  # (on a cycle through WaitRollout: once per phase, deploy and rollback)
        if state["Type"] == "Task":
            seconds += runs * task_seconds(state)
        if state["Type"] == "Wait":
            raise AssertionError(f"Wait state {name} is not in a bounded loop")
        events += runs * state_events(state, task_attempts(state) if state["Type"] == "Task" else 1)
    return seconds, events + 3  # ExecutionStarted, ExecutionSucceeded/Failed, one spare


def _on_cycles(states: dict[str, Any]) -> set[str]:
    """States that lie on some cycle of the graph (they can be entered more than once)."""
    reach: dict[str, set[str]] = {}
    for start in states:
        seen, todo = set(), list(_next(states[start]))
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(_next(states[node]))
        reach[start] = seen
    return {n for n in states if n in reach[n]}


def test_every_cycle_passes_through_a_bounded_loop(asl: dict[str, Any]) -> None:
    """Remove the bounded loops' Wait states: what remains must have no cycle."""
    states = asl["States"]
    waits = {loop.wait_state for loop in loops()}
    assert waits <= set(states)
    graph = {n: {m for m in _next(s) if m not in waits} for n, s in states.items() if n not in waits}
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in done:
            return
        assert node not in visiting, f"a loop without a bound: {' -> '.join([*path, node])}"
        visiting.add(node)
        for nxt in graph.get(node, ()):
            visit(nxt, [*path, node])
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node, [])


def test_each_loop_iteration_is_what_the_asl_says(asl: dict[str, Any]) -> None:
    """The states listed for each loop are the ones between its Wait state and the Wait again."""
    states = asl["States"]
    for loop in loops():
        assert states[loop.wait_state]["Type"] == "Wait"
        assert states[loop.wait_state]["Next"] == loop.iteration[0]
        for a, b in zip(loop.iteration, loop.iteration[1:], strict=False):
            assert b in _next(states[a]), (a, b)
        assert loop.wait_state in _next(states[loop.iteration[-1]])


def test_no_input_can_outlast_the_execution_timeout_or_the_history_limit(asl: dict[str, Any]) -> None:
    seconds, events = worst_case(asl)
    print(f"worst case: {seconds:.0f} s of {asl['TimeoutSeconds']} s, {events} of {HISTORY_LIMIT} events")
    assert seconds < asl["TimeoutSeconds"], f"worst case {seconds:.0f} s exceeds TimeoutSeconds"
    assert events < HISTORY_LIMIT, f"worst case {events} events exceed the history limit"


def test_the_lock_lease_outlives_every_execution(asl: dict[str, Any]) -> None:
    """A lease shorter than an execution could let a second deployment take a live lock."""
    text = (ROOT / "template.yaml").read_text()
    lease = int(text.split('LOCK_LEASE_SECONDS: "', 1)[1].split('"', 1)[0])
    assert lease > asl["TimeoutSeconds"]


def test_deploy_loops_are_exclusive(asl: dict[str, Any]) -> None:
    """The grouping above: only DeployKind chooses between the two deploy-phase loops, and leaving the followed
    deployment never enters WaitRollout except through the rollback (OnFailure)."""
    states = asl["States"]
    assert {c["Next"] for c in states["DeployKind"]["Choices"]} | {states["DeployKind"]["Default"]} == {
        "WaitDeployment",
        "WaitRollout",
    }
    assert {n for n, s in states.items() if "WaitDeployment" in _next(s)} == {
        "DeployKind",
        "DeploymentDone",
        "AwaitReleaseApproval",
    }
    follow_exits = _next(states["FollowDeployment"]) | _next(states["DeploymentDone"])
    allowed = {
        "DeploymentDone",
        "WaitDeployment",
        "RecordSucceeded",
        "CheckHealth",
        "OnFailure",
        "AwaitReleaseApproval",
    }
    assert follow_exits <= allowed
    assert _next(states["AwaitReleaseApproval"]) == {"WaitDeployment"}  # and FollowDeployment asks once
