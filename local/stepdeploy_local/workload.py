"""The workload: how an image behaves once deployed, and a real HTTP server standing in for the ALB.

An image's behaviour is an :class:`ImageProfile`, chosen when the image is pushed to the local
world or changed later through ``World.faults``. The profiles cover the failure modes a deploy
pipeline meets: the TechChallengeApp "HTTP 200 but the database is down" case, HTTP 500, slow
responses, tasks that never become healthy (circuit breaker), rollouts that never finish, and images
that flap between healthy and unhealthy over virtual time.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ImageProfile:
    name: str
    status: int = 200
    body: str = "OK"
    latency_ms: int = 0
    targets: str = "healthy"  # target health once its tasks run: healthy | unhealthy
    rollout: str = "complete"  # complete | fail (circuit breaker) | stall
    rollout_seconds: int = 120  # virtual seconds until COMPLETED (or FAILED)
    alarms: tuple[str, ...] = ()  # alarms that go into ALARM while this image serves traffic
    init_seconds: int = 45  # virtual seconds a one-off task (database initialisation) of this image runs
    init_exit_code: int = 0  # and its exit code
    flap_seconds: int = 0  # > 0: healthy and unhealthy (HTTP 500, targets unhealthy) in turn, this long each
    error_every: int = 0  # > 0: every error_every-th request it serves answers HTTP 500 (its targets stay healthy)

    def with_changes(self, **changes: object) -> ImageProfile:
        return replace(self, **changes)  # type: ignore[arg-type]

    def at(self, virtual_time: float) -> ImageProfile:
        """How the image behaves at that moment: a flapping image is in its unhealthy half every other
        ``flap_seconds`` of virtual time (an intermittent fault: health probes see it come and go)."""
        if self.flap_seconds <= 0 or int(virtual_time // self.flap_seconds) % 2 == 0:
            return self
        return replace(self, status=500, body="Internal Server Error", targets="unhealthy")

    def request(self, n: int) -> ImageProfile:
        """How the image answers the ``n``-th request (from 0) sent to it: an image that fails a share of its
        requests answers HTTP 500 to every ``error_every``-th one, deterministically (a health probe, a few
        requests, mostly passes; users and the load balancer's metrics see the share)."""
        if self.error_every <= 0 or (n + 1) % self.error_every:
            return self
        return replace(self, status=500, body="Internal Server Error")


PROFILES: dict[str, ImageProfile] = {
    "healthy": ImageProfile("healthy"),
    "db-down": ImageProfile("db-down", body="Error: db connection down"),
    "http-500": ImageProfile("http-500", status=500, body="Internal Server Error", targets="unhealthy"),
    "slow": ImageProfile("slow", latency_ms=1500),
    "never-healthy": ImageProfile(
        "never-healthy",
        status=503,
        body="Service Unavailable",
        targets="unhealthy",
        rollout="fail",
        rollout_seconds=240,
    ),
    "stalled": ImageProfile("stalled", rollout="stall"),
    "alarming": ImageProfile("alarming", alarms=("*",)),
    "init-fails": ImageProfile("init-fails", init_exit_code=1),
    "flapping": ImageProfile("flapping", flap_seconds=15),
    "errors-10pct": ImageProfile("errors-10pct", error_every=10),
    "sluggish": ImageProfile("sluggish", latency_ms=400),  # slower than blue, well under a probe's latency limit
}


def profile(name_or_profile: str | ImageProfile) -> ImageProfile:
    if isinstance(name_or_profile, ImageProfile):
        return name_or_profile
    try:
        return PROFILES[name_or_profile]
    except KeyError:
        raise ValueError(f"unknown image profile {name_or_profile!r}; known: {', '.join(PROFILES)}") from None


#: how often a listener's loop looks whether it was closed
SHUTDOWN_POLL_SECONDS = 0.02


class _Server(http.server.ThreadingHTTPServer):
    """A listener's server: HTTP, or HTTPS with ``tls`` (the handshake runs on the request's own thread; a
    client that refuses the certificate ends its connection, as it does with an ALB)."""

    daemon_threads = True

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        super().__init__(("127.0.0.1", 0), handler)

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            secured = self.tls.wrap_socket(request, server_side=True)
        except OSError:  # the handshake failed: the client did not trust the certificate, or left
            return
        with secured:
            super().finish_request(secured, client_address)

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client that went away mid-answer: nothing to report

    def serve(self) -> None:
        """Serve until closed; ``shutdown()`` waits for the loop to see it, up to one poll interval (the
        default 0.5 s would be half a second per listener for every world that closes)."""
        self.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)


class WorkloadServer:
    """HTTP server on 127.0.0.1 answering as the image that currently serves the service.

    ``serving`` returns the profile of the image the load balancer routes to right now (the world's
    rollout model decides), or None when no task is serving (HTTP 503, as an ALB answers). With
    ``required_header`` (name, value), a request without it gets the listener's default answer, 404
    (a test listener whose only rule matches that header). An image that fails a share of its requests
    (``error_every``) counts the requests this server sends it. With ``tls`` (an HTTPS listener's
    certificate), it answers HTTPS.
    """

    def __init__(
        self,
        serving: Callable[[], ImageProfile | None],
        health_path: str,
        required_header: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.health_path = health_path
        self._served: dict[str, int] = {}  # image profile name -> requests this server sent it
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                refused = required_header is not None and self.headers.get(required_header[0]) != required_header[1]
                current = None if refused else owner._nth(serving())
                if refused:  # no listener rule matched: the listener's default action, a fixed 404
                    status, body, latency = 404, "Not Found", 0
                elif current is None:
                    status, body, latency = 503, "503 Service Temporarily Unavailable", 0
                elif self.path.split("?")[0] == owner.health_path:
                    status, body, latency = current.status, current.body, current.latency_ms
                else:
                    status, body, latency = (
                        (200 if current.status < 500 else current.status),
                        "todo app",
                        current.latency_ms,
                    )
                if latency:
                    time.sleep(latency / 1000)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                return

        self._server = _Server(Handler, tls)
        self._thread = threading.Thread(target=self._server.serve, name="workload-http", daemon=True)
        self._thread.start()

    def _nth(self, current: ImageProfile | None) -> ImageProfile | None:
        if current is None or current.error_every <= 0:
            return current
        with self._lock:
            n = self._served.get(current.name, 0)
            self._served[current.name] = n + 1
        return current.request(n)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "http" if self._server.tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}{self.health_path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class RedirectServer:
    """An HTTP listener whose default action redirects (the application stack's port 80 with a certificate):
    every request gets ``status_code`` to the same host and path on ``protocol``://host:``port``."""

    def __init__(self, protocol: str, port: str, status_code: int) -> None:
        default = {"HTTP": "80", "HTTPS": "443"}.get(protocol)
        suffix = "" if port in ("#{port}", default) else f":{port}"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
                self.send_response(status_code)
                self.send_header("Location", f"{protocol.lower()}://{host}{suffix}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                return

        self._server = _Server(Handler, None)
        self._thread = threading.Thread(target=self._server.serve, name="redirect-http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
