"""The stand-in metadata server: what Wakame-vdc's (EC2-style) server tells a new instance.

It serves ``/latest/meta-data/`` with ``instance-id``, ``local-hostname`` (and ``hostname``),
and ``public-keys/0/openssh-key``: a host name and a public key made for this boot, so that
seeing them in the instance proves it fetched and applied them. Every request is recorded with
its time, path and answer; anything else is a 404, as on the real server.
"""

from __future__ import annotations

import http.server
import secrets
import threading
import time
from dataclasses import dataclass, field

PREFIX = "/latest/meta-data/"


@dataclass(frozen=True)
class Request:
    at: float  # time.monotonic()
    path: str
    status: int


@dataclass
class Offer:
    """What this boot's instance is given."""

    hostname: str
    public_key: str  # an OpenSSH public key line
    instance_id: str = field(default_factory=lambda: "i-" + secrets.token_hex(4))

    def routes(self) -> dict[str, bytes]:
        return {
            "": b"instance-id\nlocal-hostname\nhostname\npublic-keys/\n",
            "instance-id": self.instance_id.encode(),
            "local-hostname": self.hostname.encode(),
            "hostname": self.hostname.encode(),
            "public-keys/": b"0=vdc-boot-check",
            "public-keys/0/": b"openssh-key",
            "public-keys/0/openssh-key": self.public_key.encode() + b"\n",
        }


def fresh_hostname() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "vdc-check-" + "".join(secrets.choice(alphabet) for _ in range(6))


class MetadataServer:
    """Serves an :class:`Offer` on 127.0.0.1 (a free port) from a thread; :meth:`close` stops it."""

    def __init__(self, offer: Offer) -> None:
        self.offer = offer
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        routes = offer.routes()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = self.path[len(PREFIX) :] if self.path.startswith(PREFIX) else None
                body = routes.get(key) if key is not None else None
                status = 200 if body is not None else 404
                payload = body if body is not None else b"Not Found\n"
                with server.lock:
                    server.requests.append(Request(time.monotonic(), self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metadata-server", daemon=True)
        self.thread.start()

    def first(self, key: str, status: int = 200) -> float | None:
        """When ``key`` was first served with ``status`` (monotonic), or None."""
        with self.lock:
            return next((r.at for r in self.requests if r.path == PREFIX + key and r.status == status), None)

    def snapshot(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
