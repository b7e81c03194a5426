"""Named errors the command ends with: a person reads the name and the cause, never a stack trace."""

from __future__ import annotations

import click


class CliError(click.ClickException):
    """A refused or failed command: ``<Name>: <cause>`` on stderr (or JSON with --output json), exit 1."""

    exit_code = 1

    @property
    def name(self) -> str:
        return type(self).__name__


class StackNotFound(CliError):
    """stepdeploy's CloudFormation stack (``--stack``) does not exist or lacks an output the command needs."""


class UnknownTarget(CliError):
    """No registry entry has this name."""


class InvalidRegistryEntry(CliError):
    """A registry entry the workflow would refuse (the workflow's own validation said so)."""


class NothingToDo(CliError):
    """No running deployment to watch or abort, no verified image to roll back to, no such deployment."""


class AwsError(CliError):
    """An AWS call failed (credentials, permissions, endpoint)."""
