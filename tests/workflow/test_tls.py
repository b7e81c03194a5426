"""TLS end to end: an application stack with a certificate serves HTTPS in the local world, and its health gates
probe it with certificate verification on. The world's CA is trusted only through SSL_CERT_FILE (the standard
configuration a private CA needs); without it, or with a certificate for another name, the gate fails with a
cause that says certificate verification failed, and the deployment ends as any failed gate ends it."""

from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from stepdeploy_local import World
from stepdeploy_local.world import StackApp

DOMAIN = "todo.example.com"
HEALTH_URL = f"https://{DOMAIN}/healthcheck/"


def https_app(world: World, certificate_arn: str, domain: str | None = DOMAIN) -> StackApp:
    world.push_image("techchallengeapp", "v1")
    parameters = {"CertificateArn": certificate_arn}
    parameters |= {"DomainName": domain} if domain else {}
    return world.stack_app("techchallenge", parameters=parameters)


def requested_certificate(world: World, domain: str = DOMAIN) -> str:
    """An ACM-issued certificate (RequestCertificate): the world's CA signs what its listeners serve."""
    return str(world.client("acm").request_certificate(DomainName=domain)["CertificateArn"])


def served_certificate(host: str, port: int = 443) -> dict[str, object]:
    context = ssl.create_default_context()
    with socket.create_connection((host, port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=host) as s:
        return s.getpeercert() or {}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def untrusting_world() -> Iterator[World]:
    """A world whose functions were never told to trust its CA (SSL_CERT_FILE left as it was)."""
    with World(function_log_level="ERROR", trust_world_ca=False) as w:
        yield w


def test_a_stack_with_a_certificate_passes_its_gates_over_https(world: World) -> None:
    """Provisioning (v1) and the next release (v2) both pass their gates over HTTPS."""
    app = https_app(world, requested_certificate(world))
    world.push_image(app.repository, "v2")

    results = [world.deploy(app.request(tag)) for tag in ("v1", "v2")]

    assert [r.status for r in results] == ["SUCCEEDED", "SUCCEEDED"], [r.cause for r in results]
    assert world.digest_of(app.repository, "v2") in app.service().running_image()
    outputs = app.outputs()
    assert (outputs["HealthCheckUrl"], outputs["TestUrl"]) == (HEALTH_URL, f"https://{DOMAIN}:8080/healthcheck/")
    issuer = dict(pair[0] for pair in served_certificate(DOMAIN)["issuer"])  # type: ignore[attr-defined]
    assert issuer["commonName"] == "stepdeploy local world CA"
    with urllib.request.urlopen(HEALTH_URL, timeout=5) as answer:  # verified through SSL_CERT_FILE
        assert (answer.status, answer.read()) == (200, b"OK")
    # plain HTTP only redirects (301) to the same path over HTTPS
    with pytest.raises(urllib.error.HTTPError) as redirect:
        urllib.request.build_opener(_NoRedirect()).open(f"http://{DOMAIN}/healthcheck/?a=1", timeout=5)
    assert (redirect.value.code, redirect.value.headers["Location"]) == (301, f"{HEALTH_URL}?a=1")


def test_without_the_ca_trusted_the_gate_fails_on_certificate_verification(untrusting_world: World) -> None:
    world = untrusting_world
    app = https_app(world, requested_certificate(world))

    result = world.deploy(app.request("v1"))

    assert result.status == "FAILED"
    assert result.error == "HealthCheckFailed", result.cause
    assert f"GET {HEALTH_URL} failed: TLS certificate verification failed: unable to get local issuer" in (
        result.cause or ""
    )
    assert "Traceback" not in (result.cause or "")


def test_a_certificate_no_longer_trusted_fails_the_next_release_which_rolls_back(world: World) -> None:
    """An imported certificate (the world's CA signed it) passes; once the functions' trust store lacks that CA,
    the next release fails its gate and is rolled back as any failing gate is; the rollback's own gate cannot
    verify the certificate either, so the deployment ends RollbackFailed (a person is needed) with that cause."""
    app = https_app(world, world.issue_certificate(DOMAIN))
    assert world.deploy(app.request("v1")).status == "SUCCEEDED"
    world.push_image(app.repository, "v2")
    assert world.ca is not None
    empty = world.ca.directory / "empty-bundle.pem"
    empty.write_text("")
    os.environ["SSL_CERT_FILE"] = str(empty)  # the world restores the environment when it closes

    result = world.deploy(app.request("v2"))

    assert (result.status, result.error) == ("FAILED", "RollbackFailed"), result.cause
    # (the stack deploys BLUE_GREEN: the gate fails at the test-traffic hook, CloudFormation rolls the stack back)
    assert "KeepStackFailure" in result.path
    assert (result.cause or "").count("failed: TLS certificate verification failed") == 2, result.cause
    assert world.digest_of(app.repository, "v1") in app.service().running_image()


def test_a_certificate_for_another_name_fails_the_gate_on_the_host_name(world: World) -> None:
    """Without DomainName, HealthCheckUrl names the load balancer, which the certificate does not cover."""
    app = https_app(world, requested_certificate(world), domain=None)

    result = world.deploy(app.request("v1"))

    assert result.status == "FAILED"
    assert "TLS certificate verification failed: Hostname mismatch" in (result.cause or ""), result.cause
