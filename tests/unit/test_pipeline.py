"""The CodePipeline job action's execution names: a job's execution names its job, and only a job id."""

from __future__ import annotations

import pytest
from stepdeploy import pipeline

JOB = "c0d76431-b0e7-4a1e-97e3-e8ee786eb6f6"


def test_an_execution_names_the_job_that_started_it() -> None:
    assert pipeline.job_of_execution(pipeline.execution_name(JOB)) == JOB


@pytest.mark.parametrize("name", [JOB, "codepipeline-nope", f"codepipeline-{JOB}x", f"manual-{JOB}", ""])
def test_other_executions_name_no_job(name: str) -> None:
    assert pipeline.job_of_execution(name) is None


@pytest.mark.parametrize("job", ["job-1", JOB.upper(), f"{JOB}/../x"])
def test_a_job_id_that_is_not_one_is_refused(job: str) -> None:
    with pytest.raises(pipeline.JobConfigurationError, match="is not a CodePipeline job id"):
        pipeline.execution_name(job)


def test_a_skip_is_reported_as_a_skip_not_as_a_deployment() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:sd-deploy:codepipeline-" + JOB
    output = {"outcome": "SKIPPED", "reason": "Duplicate", "detail": "sha256:ab was already deployed"}
    report = pipeline.report_for("SUCCEEDED", None, None, arn, output)
    assert (report.kind, report.message) == ("success", "SKIPPED (Duplicate): sha256:ab was already deployed")
    deployed = pipeline.report_for("SUCCEEDED", None, None, arn, {"outcome": "DEPLOYED", "detail": "v2 runs"})
    assert deployed.message == f"DEPLOYED: v2 runs ({arn})"
