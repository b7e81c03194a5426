"""HTTP probe through the load balancer (standard library only)."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from ..decisions import ProbeResult

MAX_BODY_BYTES = 64 * 1024


def probe(url: str, timeout_seconds: float, headers: Mapping[str, str] | None = None) -> ProbeResult:
    # the URL was validated as http(s) by DeploymentRequest.from_input
    sent = {"User-Agent": "stepdeploy-health-gate/1", **(headers or {})}
    request = urllib.request.Request(url, headers=sent)  # noqa: S310
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:  # noqa: S310 (http(s) only, validated)
            body = response.read(MAX_BODY_BYTES).decode("utf-8", "replace")
            status = response.status
    except urllib.error.HTTPError as exc:
        body = exc.read(MAX_BODY_BYTES).decode("utf-8", "replace") if exc.fp else ""
        status = exc.code
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return ProbeResult(
            status=None,
            body="",
            latency_ms=int((time.monotonic() - started) * 1000),
            error=_unverified(reason)
            if isinstance(reason, ssl.SSLCertVerificationError)
            else f"{type(reason).__name__}: {reason}",
        )
    return ProbeResult(status=status, body=body, latency_ms=int((time.monotonic() - started) * 1000))


def _unverified(reason: ssl.SSLCertVerificationError) -> str:
    return (
        f"TLS certificate verification failed: {reason.verify_message} (the load balancer's certificate must "
        "be valid for the URL's host name and chain to a CA the functions trust: a public CA, or a private "
        "one through SSL_CERT_FILE)"
    )
