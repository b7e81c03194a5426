"""CloudWatch: the state of the alarms a deployment is gated on."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from ..decisions import TargetGroupStats
from .clients import client

#: the ALB metrics of one target group compared between revisions: (query id, metric, statistic)
_TARGET_GROUP_METRICS = (
    ("requests", "RequestCount", "Sum"),
    ("errors", "HTTPCode_Target_5XX_Count", "Sum"),
    ("latency", "TargetResponseTime", "Average"),
)


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


def target_group_stats(load_balancer_arn: str, target_group_arn: str, start: float, end: float) -> TargetGroupStats:
    """The ALB's per-target-group metrics (dimensions LoadBalancer + TargetGroup) from ``start`` to ``end``."""
    dimensions = [
        {"Name": "LoadBalancer", "Value": load_balancer_arn.split(":loadbalancer/", 1)[-1]},
        {"Name": "TargetGroup", "Value": target_group_arn.rsplit(":", 1)[-1]},
    ]
    queries = [
        {
            "Id": query,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": dimensions},
                "Period": 60,
                "Stat": stat,
            },
        }
        for query, metric, stat in _TARGET_GROUP_METRICS
    ]
    out = client("cloudwatch").get_metric_data(
        MetricDataQueries=queries,
        StartTime=datetime.datetime.fromtimestamp(start, tz=datetime.UTC),
        EndTime=datetime.datetime.fromtimestamp(end, tz=datetime.UTC),
    )
    values = {r["Id"]: [float(v) for v in r.get("Values", [])] for r in out.get("MetricDataResults", [])}
    latency = values.get("latency") or []
    return TargetGroupStats(
        requests=sum(values.get("requests") or []),
        errors=sum(values.get("errors") or []),
        response_time=sum(latency) / len(latency) if latency else None,
    )
