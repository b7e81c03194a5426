"""Synthetic user traffic: a steady request rate on a service's production listener, in virtual time.

No HTTP is sent: requests are computed from the timeline of production weights (which revision the
listener rule sends each request to, by deterministic weighted round robin) and how each revision's
image answers (workload.ImageProfile). A request fails as a user sees it when the answer is not 2xx or
its body fails the health body check (stepdeploy's default: exactly ``OK``); with no task serving, the
load balancer answers 503.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .deployments import WeightedRoundRobin
from .workload import ImageProfile

#: requests per virtual second on the production listener
DEFAULT_RATE = 10.0


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    weights: dict[str, float]  # revision -> percent of production traffic


@dataclass
class DeploymentTraffic:
    """The user requests one deployment's window saw (from its start to its end, or now)."""

    deployment: str  # the service deployment ARN (ROLLING: the ECS deployment id)
    strategy: str
    new_revision: str
    started: float
    ended: float
    requests: int = 0
    failed: int = 0
    to_new_revision: int = 0
    by_revision: dict[str, int] = field(default_factory=dict)
    first_failure: float | None = None  # virtual time of the first failed request
    last_failure: float | None = None
    #: virtual time of the first good request after the last failed one, once one revision takes 100 %
    restored: float | None = None


@dataclass
class UserTraffic:
    """Every deployment's user requests, and the totals a benchmark reports."""

    rate: float
    deployments: list[DeploymentTraffic]

    @property
    def requests(self) -> int:
        return sum(d.requests for d in self.deployments)

    @property
    def failed(self) -> int:
        return sum(d.failed for d in self.deployments)

    @property
    def to_new_revision(self) -> int:
        return sum(d.to_new_revision for d in self.deployments)

    @property
    def to_release_revision(self) -> int:
        """Requests the first deployment's new revision served, over every deployment (a rolling release's
        rollback is a deployment of its own, whose new revision is the old image)."""
        if not self.deployments:
            return 0
        new = min(self.deployments, key=lambda d: d.started).new_revision
        return sum(d.by_revision.get(new, 0) for d in self.deployments)

    @property
    def first_failure(self) -> float | None:
        return min((d.first_failure for d in self.deployments if d.first_failure is not None), default=None)

    @property
    def restored(self) -> float | None:
        """When users stopped seeing errors: the restore that followed the last failed request."""
        failing = [d for d in self.deployments if d.last_failure is not None]
        return max(failing, key=lambda d: d.last_failure or 0.0).restored if failing else None

    @property
    def restore_seconds(self) -> float | None:
        first, restored = self.first_failure, self.restored
        return None if first is None or restored is None else restored - first

    def during(self, start: float, end: float) -> UserTraffic:
        """The deployments that started in [start, end] (virtual s): one release's, rollback included."""
        return UserTraffic(self.rate, [d for d in self.deployments if start <= d.started <= end])


def fails(answer: ImageProfile | None, expected_body: str) -> bool:
    if answer is None:
        return True
    return not 200 <= answer.status < 300 or answer.body.strip() != expected_body.strip()


def single(weights: dict[str, float]) -> bool:
    """One revision takes all the traffic (a canary step, 90/10, has not restored anything yet)."""
    return sorted(w for w in weights.values() if w > 0) == [100.0]


def count(
    traffic: DeploymentTraffic,
    segments: list[Segment],
    answer: Callable[[str, float], ImageProfile | None],
    rate: float,
    expected_body: str = "OK",
) -> DeploymentTraffic:
    """Send ``rate`` requests per virtual second through the segments; count them into ``traffic``."""
    for request in requests(traffic.started, segments, answer, rate):
        at, revision = request.at, request.revision
        traffic.requests += 1
        if revision is not None:
            traffic.by_revision[revision] = traffic.by_revision.get(revision, 0) + 1
            traffic.to_new_revision += revision == traffic.new_revision
        if fails(request.answer, expected_body):
            traffic.failed += 1
            traffic.first_failure = at if traffic.first_failure is None else traffic.first_failure
            traffic.last_failure, traffic.restored = at, None
        elif traffic.last_failure is not None and traffic.restored is None and request.alone:
            traffic.restored = at
    return traffic


@dataclass(frozen=True)
class Request:
    at: float  # virtual time
    revision: str | None  # where the listener rule's weights sent it (None: no target group had weight)
    answer: ImageProfile | None  # how that revision answered it (None: nothing answered)
    alone: bool = False  # one revision took all the traffic then (see single)


def requests(
    start: float, segments: list[Segment], answer: Callable[[str, float], ImageProfile | None], rate: float
) -> Iterator[Request]:
    """``rate`` requests per virtual second from ``start`` through the segments, each sent to a revision by
    deterministic weighted round robin, answered as that revision's image answers its n-th request."""
    chooser = WeightedRoundRobin()
    served: dict[str, int] = {}
    k = 0
    for segment in segments:
        alone = single(segment.weights)
        while start + k / rate < segment.end:
            at = start + k / rate
            k += 1
            if at < segment.start:
                continue
            revision = chooser.pick(segment.weights)
            reply = answer(revision, at) if revision is not None else None
            if revision is not None and reply is not None:
                reply = reply.request(served.get(revision, 0))
                served[revision] = served.get(revision, 0) + 1
            yield Request(at, revision, reply, alone)


def segments_of(weights: list[tuple[float, dict[str, float]]], end: float) -> list[Segment]:
    """Consecutive (time, weights) changes as segments up to ``end``."""
    out = []
    for i, (start, shares) in enumerate(weights):
        stop = weights[i + 1][0] if i + 1 < len(weights) else end
        if stop > start:
            out.append(Segment(start, min(stop, end), shares))
    return out


#: the AWS/ApplicationELB metrics of a target group the world answers, as one sample per request its targets
#: answered (None: that request adds no sample). Statistics follow from the samples as on CloudWatch: RequestCount
#: and the HTTPCode_Target_* counts are only useful as Sum (Minimum, Maximum and Average are 1); TargetResponseTime
#: is seconds, Average or a percentile.
ALB_TARGET_METRICS: dict[str, Callable[[ImageProfile], float | None]] = {
    "RequestCount": lambda a: 1.0,
    "HTTPCode_Target_2XX_Count": lambda a: 1.0 if 200 <= a.status < 300 else None,
    "HTTPCode_Target_3XX_Count": lambda a: 1.0 if 300 <= a.status < 400 else None,
    "HTTPCode_Target_4XX_Count": lambda a: 1.0 if 400 <= a.status < 500 else None,
    "HTTPCode_Target_5XX_Count": lambda a: 1.0 if a.status >= 500 else None,
    "TargetResponseTime": lambda a: a.latency_ms / 1000,
}


def metric_samples(
    metric: str, served: Iterable[Request], start: float, period: int
) -> list[tuple[float, list[float]]] | None:
    """One target group's ``metric`` per ``period`` from ``start`` (start of the period, its samples) from the
    requests its targets answered, oldest first; a period without a sample has no datapoint (the ALB reports a
    metric only when it has data). None: not a metric the world models."""
    sample = ALB_TARGET_METRICS.get(metric)
    if sample is None:
        return None
    periods: dict[float, list[float]] = {}
    for request in served:
        value = sample(request.answer) if request.answer is not None else None
        if value is not None:
            periods.setdefault(start + period * ((request.at - start) // period), []).append(value)
    return sorted(periods.items())
