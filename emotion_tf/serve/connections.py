"""Connection limits for uvicorn: a cap on open connections and a deadline for request headers.

uvicorn accepts every connection and waits for its headers forever, so idle or slow-header
sockets pile up until the process runs out of file descriptors and real clients time out.
`GuardedListener` (the listening socket) and `guarded_protocol` (uvicorn's h11 protocol) add:
- at most `max_connections` open connections, counted from accept to close: at the cap the
  oldest *idle* connection (no request in progress) is closed to make room, or, when every
  connection is busy, the new one is answered 503 and closed. `fitting_connection_cap` keeps
  the cap below the file descriptor limit, so idle sockets can never starve real clients;
- a request's headers must arrive within `header_timeout_s` of the connection opening (or of the
  previous response on a kept-alive connection), else the connection is closed.
Stalled request bodies are the app's business (408, see emotion_tf.serve.app); idle kept-alive
connections close after uvicorn's `timeout_keep_alive`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import resource
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from emotion_tf.errors import ConfigError

log = logging.getLogger(__name__)

_BUSY_BODY = b'{"error": "server has too many open connections; retry later"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n"
) + _BUSY_BODY
_FD_RESERVE = 32  # descriptors kept free for model files, logs and the listening socket


@dataclasses.dataclass
class ConnectionLimits:
    """The `serve` options --max-connections, --header-timeout and --keep-alive."""

    max_connections: int = 1000
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0

    def validate(self) -> None:
        if self.max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1. Received: {self.max_connections}")
        if self.header_timeout_s <= 0:
            raise ConfigError(f"header_timeout_s must be > 0. Received: {self.header_timeout_s}")


def open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 64


def fitting_connection_cap(wanted: int) -> int:
    """`wanted`, lowered so that open connections can never exhaust the descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    room = soft - open_descriptors() - _FD_RESERVE
    if room < wanted:
        log.warning(
            "at most %d connections (file descriptor limit %d; raise it with ulimit -n for more)",
            max(room, 1),
            soft,
        )
    return max(1, min(wanted, room))


class ConnectionGuard:
    """Open connections, counted from accept to close, and the rules applied to them."""

    def __init__(self, limits: ConnectionLimits, on_count: Callable[[int], None] | None = None):
        limits.validate()
        self.limits = limits
        self.on_count = on_count
        self.open = 0  # accepted sockets not yet closed (some may not have a protocol yet)
        self.live: dict[Any, float] = {}  # protocol -> when its connection opened

    def changed(self, delta: int) -> None:
        self.open += delta
        if self.on_count is not None:
            self.on_count(self.open)

    def evict_oldest_idle(self) -> bool:
        """Close the oldest connection with no request in progress; False if none is idle."""
        idle = [protocol for protocol in self.live if protocol.idle()]
        if not idle:
            return False
        oldest = min(idle, key=self.live.__getitem__)
        del self.live[oldest]
        oldest.transport.close()  # asyncio closes the socket before it accepts again
        return True


class GuardedListener(socket.socket):
    """A listening socket that accepts only while the connections fit under the cap.

    asyncio accepts a burst of pending connections before any of them reaches its protocol;
    gating `accept` itself is what keeps the descriptors in use under the limit. At the cap,
    the oldest idle connection is closed first (and this accept retried on the next loop
    turn); when every connection is busy, the new one is answered 503 and closed at once.
    """

    guard: ConnectionGuard

    def accept(self) -> tuple[socket.socket, Any]:
        if self.guard.open >= self.guard.limits.max_connections:
            # asyncio calls accept until it would block: at the cap, make room only for a
            # connection that is really waiting, never on that last call with nobody there.
            if not select.select([self], [], [], 0)[0]:
                raise BlockingIOError
            if self.guard.evict_oldest_idle():
                raise BlockingIOError  # the evicted socket closes first; then we come back
            conn, _ = super().accept()
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(_BUSY)
            conn.close()
            raise BlockingIOError
        conn, address = super().accept()
        self.guard.changed(+1)
        return conn, address


def bind_listener(host: str, port: int, guard: ConnectionGuard) -> GuardedListener:
    """A `GuardedListener` bound (not yet listening) to host:port; OSError if it is taken."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = GuardedListener(family, socket.SOCK_STREAM)
    sock.guard = guard
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def guarded_protocol(guard: ConnectionGuard) -> type[H11Protocol]:
    """uvicorn's h11 protocol class under `guard` (pass it as `uvicorn.Config(http=)`)."""

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            guard.live[self] = time.monotonic()
            self._header_timer: Any = None
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            guard.live.pop(self, None)
            guard.changed(-1)
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

        def idle(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(
                guard.limits.header_timeout_s, self._header_deadline, self.cycle
            )

        def _header_deadline(self, cycle_when_armed: Any) -> None:
            """Close the connection if no new request arrived since the timer was armed."""
            self._header_timer = None
            if self.cycle is cycle_when_armed and self.idle() and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol
