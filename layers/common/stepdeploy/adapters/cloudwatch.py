"""CloudWatch: the state of the alarms a deployment is gated on."""

from __future__ import annotations

from collections.abc import Sequence

from .clients import client


def alarm_states(names: Sequence[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    for start in range(0, len(names), 100):
        paginator = client("cloudwatch").get_paginator("describe_alarms")
        for page in paginator.paginate(
            AlarmNames=list(names[start : start + 100]), AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        ):
            for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                states[alarm["AlarmName"]] = alarm["StateValue"]
    return states
