"""The samples in events/ against the local world: they are AWS examples (an ALB's DNS name, a target group
ARN of an account), so the world fills in its own service's health URL, target group and alarms in their
place; everything else (names, repositories, tags, digests, regions) is used as the sample has it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import template
from .world import AppService, World

EVENTS = template.ROOT / "events"
WEB_ENTRY = EVENTS / "registry" / "techchallenge-web.json"
#: what the samples' image (``image.digest``, ``ImageURI``, ``image-digest``) is built from: pushed with this
#: content (``World.push_image``), a repository's v2 has the samples' digest, as on ECR a digest is the
#: manifest's hash
SAMPLE_IMAGE = "techchallenge v2 (events/)"


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def localise(request: dict[str, Any], app: AppService) -> dict[str, Any]:
    """``request`` (a request or an entry's ``request``) with ``app``'s health URL, target group and alarms
    in place of the sample's (the fields the sample has; the rest unchanged)."""
    health = dict(request.get("health") or {})
    world_values = {
        "url": app.health_url,
        "target_group_arn": app.target_group_arn,
        "alarm_names": list(app.alarm_names),
    }
    health.update({k: v for k, v in world_values.items() if k in health})
    return {**request, "health": health} if "health" in request else dict(request)


def register_web(world: World, app: AppService, path: Path = WEB_ENTRY) -> str:
    """Register the sample entry ``path`` for ``app`` (localised), validated as ``stepdeploy register``
    validates it. Returns the target name."""
    from stepdeploy.adapters import registry as registry_table
    from stepdeploy.models import Defaults
    from stepdeploy.registry import validate_entry

    entry = load(path)
    entry["request"] = localise(entry["request"], app)
    validate_entry(entry, Defaults())
    registry_table.put_entry(world.outputs["RegistryTableName"], entry)
    return str(entry["name"])


def create_web(world: World) -> AppService:
    """The plain service the sample entry names (``cluster``/``service``/``container``, ``repository``),
    running v1, with v2 built from :data:`SAMPLE_IMAGE`; registered from the sample."""
    entry = load(WEB_ENTRY)
    service = entry["request"]["service"]
    app = world.create_service(
        cluster=service["cluster"],
        service=service["service"],
        container=service["container"],
        repository=entry["repository"],
    )
    world.push_image(app.repository, "v2", "healthy", content=SAMPLE_IMAGE)
    register_web(world, app)
    return app
