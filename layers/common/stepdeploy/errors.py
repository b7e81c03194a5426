"""The error vocabulary of the deploy workflow.

Every class name here is an ``ErrorEquals`` name in ``statemachine/deploy.asl.json`` and the
``Error`` an execution can end with. A contract test keeps the two lists identical.

Lambda reports an unhandled exception to Step Functions as ``Error = <class name>`` and
``Cause = {"errorMessage": ..., "errorType": ...}``, so the message of each error is written for
the human who reads the failed execution: what happened and what to do next.
"""

from __future__ import annotations


class DeploymentError(Exception):
    """Base class: a deployment-level failure with a human-readable cause."""


class InvalidDeploymentRequest(DeploymentError):
    """The input is malformed or refers to something that does not exist. Nothing was changed."""


class UnregisteredRepository(DeploymentError):
    """No registry entry covers the pushed repository (or named target). Nothing was changed."""


class TagFilterMismatch(DeploymentError):
    """The repository is registered, but the tag does not match its filter. Nothing was changed."""


class PushIgnored(DeploymentError):
    """Not a failure: an ECR push that no registry entry deploys (unregistered repository, tag outside
    the filter, or an entry with ``deploy_on_push: false``). The execution ends SUCCEEDED in ``Ignored``;
    nothing was changed or recorded."""


class DeploymentInProgress(DeploymentError):
    """Another deployment held the service's lock for longer than the queue timeout. Nothing was changed."""


class PreviouslyFailed(DeploymentError):
    """This image already failed on this service (its earlier deployment rolled back, failed, or left no
    outcome): it is not deployed again unless the request says ``redeploy: true``. Nothing was changed."""


class DatabaseInitUncertain(DeploymentError):
    """An earlier database initialisation started but never reported how it ended: it may have run. It is
    destructive, so it is not run again until a person checks. Nothing was changed."""


class DatabaseInitRefused(DeploymentError):
    """The stack exists but stepdeploy never initialised its database: the init command (destructive by
    default) would run against a database that may hold data, and the request does not set
    ``$.stack.allow_destructive_init``. Nothing was changed."""


class InfraUpdateFailed(DeploymentError):
    """The application stack's change set failed, or its update failed and CloudFormation rolled it back."""


class StackStuck(InfraUpdateFailed):
    """The application stack is in a failed state CloudFormation cannot leave by itself (a rollback that failed:
    *_ROLLBACK_FAILED; DELETE_FAILED): a person must fix it, and is alerted (CRITICAL)."""


class DatabaseInitFailed(DeploymentError):
    """The one-off database initialisation task failed (or exited non-zero); the schema is not recorded."""


class RolloutFailed(DeploymentError):
    """ECS reported the rollout FAILED, or the service is not running the deployed revision."""


class RolloutTimedOut(DeploymentError):
    """The rollout was still in progress when its deadline passed."""


class HookTimedOut(DeploymentError):
    """A PAUSE lifecycle hook timed out before stepdeploy answered it (its polls stalled or failed): ECS took the
    service deployment back by the hook's timeout action (ROLLBACK)."""


class HealthCheckFailed(DeploymentError):
    """A health gate (HTTP probe, target health) failed during the bake window."""


class AlarmTriggered(DeploymentError):
    """A configured CloudWatch alarm was in ALARM during the bake window."""


class RollbackFailed(DeploymentError):
    """The rollback could not be completed or the restored revision failed its gates."""


class ApprovalRejected(DeploymentError):
    """A person rejected the held release (or no one answered and its on_timeout is REJECT): taken back."""


#: Errors raised by stepdeploy code and named in the state machine, in one place.
WORKFLOW_ERRORS: tuple[type[DeploymentError], ...] = (
    InvalidDeploymentRequest,
    UnregisteredRepository,
    TagFilterMismatch,
    PushIgnored,
    DeploymentInProgress,
    PreviouslyFailed,
    DatabaseInitUncertain,
    DatabaseInitRefused,
    InfraUpdateFailed,
    StackStuck,
    DatabaseInitFailed,
    RolloutFailed,
    RolloutTimedOut,
    HookTimedOut,
    HealthCheckFailed,
    AlarmTriggered,
    RollbackFailed,
    ApprovalRejected,
)

ERROR_NAMES: frozenset[str] = frozenset(cls.__name__ for cls in WORKFLOW_ERRORS)
