"""Amazon ECR: resolve a tag or digest to an immutable image URI."""

from __future__ import annotations

from ..errors import InvalidDeploymentRequest
from ..models import ImageSpec, ResolvedImage
from .clients import client


def resolve_image(spec: ImageSpec) -> ResolvedImage:
    ecr = client("ecr")
    try:
        repo = ecr.describe_repositories(repositoryNames=[spec.repository])["repositories"][0]
    except ecr.exceptions.RepositoryNotFoundException as exc:
        raise InvalidDeploymentRequest(f"$.image.repository: ECR repository {spec.repository!r} not found") from exc
    image_id = {"imageDigest": spec.digest} if spec.digest else {"imageTag": spec.tag}
    try:
        details = ecr.describe_images(repositoryName=spec.repository, imageIds=[image_id])["imageDetails"]
    except ecr.exceptions.ImageNotFoundException as exc:
        raise InvalidDeploymentRequest(
            f"$.image: {spec.repository}:{spec.tag or spec.digest} not found in ECR"
        ) from exc
    if not details:
        raise InvalidDeploymentRequest(f"$.image: {spec.repository}:{spec.tag or spec.digest} not found in ECR")
    detail = details[0]
    digest = str(detail["imageDigest"])
    if spec.digest and spec.tag and spec.tag not in detail.get("imageTags", []):
        raise InvalidDeploymentRequest(f"$.image: digest {spec.digest} is not tagged {spec.tag!r}")
    return ResolvedImage(
        repository=spec.repository,
        digest=digest,
        uri=f"{repo['repositoryUri']}@{digest}",
        tag=spec.tag,
    )
