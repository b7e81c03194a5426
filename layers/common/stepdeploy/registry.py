"""The service registry: which ECR repository (and tags) deploy to which service, and how.

An entry lives in the registry DynamoDB table (changeable without redeploying code)::

    {
      "name": "techchallenge/web",                 # the target name (partition key)
      "repository": "techchallengeapp",            # ECR repository (GSI by-repository)
      "tag_filter": {"mode": "glob", "pattern": "v*"},   # exact | glob | regex
      "allow_digest_only": false,                  # deploy pushes that carry no tag?
      "deploy_on_push": true,                      # false: only pipeline/manual requests deploy (its
                                                   # ECR pushes end Ignored), e.g. for examples/pipeline
      "request": {"service": {...}, "health": {...}, "rollout": {...}}   # a DeploymentRequest template
    }
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidDeploymentRequest, TagFilterMismatch, UnregisteredRepository
from .models import Defaults, DeploymentRequest
from .triggers import _TARGET

#: a well-formed digest, to check that an entry's request template builds a valid request
_PROBE_DIGEST = "sha256:" + "0" * 64

FILTER_MODES = ("exact", "glob", "regex")
FIELDS = ("name", "repository", "tag_filter", "allow_digest_only", "deploy_on_push", "request")


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    repository: str
    filter_mode: str
    pattern: str
    allow_digest_only: bool
    request: Mapping[str, Any]
    deploy_on_push: bool = True

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RegistryEntry:
        """Validate a registry item; a broken entry is reported, never guessed around."""
        name = str(item.get("name", "?"))
        try:
            tag_filter = item.get("tag_filter") or {"mode": "glob", "pattern": "*"}
            mode, pattern = tag_filter["mode"], tag_filter["pattern"]
            if mode not in FILTER_MODES:
                raise ValueError(f"tag_filter.mode must be one of {', '.join(FILTER_MODES)}")
            if not isinstance(pattern, str):
                raise ValueError("tag_filter.pattern must be a string")
            unknown = sorted(set(item) - set(FIELDS))
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
            for flag in ("allow_digest_only", "deploy_on_push"):
                if not isinstance(item.get(flag, flag == "deploy_on_push"), bool):
                    raise ValueError(f"{flag} must be true or false")
            if mode == "regex":
                re.compile(pattern)
            entry = cls(
                name=name,
                repository=str(item["repository"]),
                filter_mode=mode,
                pattern=pattern,
                allow_digest_only=item.get("allow_digest_only", False),
                request=dict(item["request"]),
                deploy_on_push=item.get("deploy_on_push", True),
            )
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise InvalidDeploymentRequest(f"registry entry {name!r} is invalid: {exc}") from exc
        return entry

    def matches(self, tag: str | None) -> bool:
        if tag is None:
            return self.allow_digest_only
        if self.filter_mode == "exact":
            return tag == self.pattern
        if self.filter_mode == "glob":
            return fnmatch.fnmatchcase(tag, self.pattern)
        return re.fullmatch(self.pattern, tag) is not None

    def describe_filter(self) -> str:
        digest = "digest-only pushes allowed" if self.allow_digest_only else "digest-only pushes not deployed"
        return f"{self.filter_mode} {self.pattern!r}, {digest}"

    def build_request(
        self,
        image: Mapping[str, Any],
        trigger: str,
        reason: str | None,
        defaults: Defaults,
        plan: bool = False,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> DeploymentRequest:
        """The entry's request for this image. A request's own ``strategy`` or ``approval`` fields are laid over
        the entry's (the entry keeps the service's wiring, e.g. the test listener URL), then validated."""
        body = {**self.request, "image": {"repository": self.repository, **image}, "trigger": trigger}
        if reason:
            body["reason"] = reason
        if plan:
            body["plan"] = True
        for key, fields in (overrides or {}).items():
            body[key] = {**(self.request.get(key) or {}), **fields}
        try:
            return DeploymentRequest.from_input(body, defaults)
        except InvalidDeploymentRequest as exc:
            given = f" with the request's {' and '.join(sorted(overrides))}" if overrides else ""
            raise InvalidDeploymentRequest(f"registry entry {self.name!r}{given}: {exc}") from exc


def validate_entry(item: Mapping[str, Any], defaults: Defaults) -> RegistryEntry:
    """Check an entry when it is written as a deployment would when it reads it: the name a request
    targets it by, the entry's fields, and a request built from its template (any image). Raises
    InvalidDeploymentRequest naming what is wrong."""
    name = item.get("name")
    if not isinstance(name, str) or not _TARGET.fullmatch(name):
        raise InvalidDeploymentRequest(f"registry entry name {str(name)[:80]!r} is invalid: expected {_TARGET.pattern}")
    entry = RegistryEntry.from_item(item)
    entry.build_request({"digest": _PROBE_DIGEST}, "manual", None, defaults)
    return entry


def select(entries: Sequence[RegistryEntry], repository: str, tag: str | None) -> RegistryEntry:
    """The one entry that covers (repository, tag). Raises the named rejection otherwise."""
    candidates = [e for e in entries if e.repository == repository]
    if not candidates:
        raise UnregisteredRepository(f"repository {repository!r} is not in the stepdeploy registry: nothing deployed")
    matching = [e for e in candidates if e.matches(tag)]
    if not matching:
        filters = "; ".join(f"{e.name}: {e.describe_filter()}" for e in candidates)
        what = f"tag {tag!r}" if tag else "a push without a tag"
        raise TagFilterMismatch(f"{what} of {repository!r} matches no registry filter ({filters}): nothing deployed")
    if len(matching) > 1:
        names = ", ".join(e.name for e in matching)
        what = f"{repository}:{tag}" if tag else f"a push of {repository} without a tag"
        raise InvalidDeploymentRequest(
            f"{what} matches several registry entries ({names}); make their tag filters disjoint"
        )
    return matching[0]
