"""A loopback TCP proxy the test controls, for putting a real server behind a fault.

Modes:
- ``pass``: bytes flow both ways (the default).
- ``refuse``: new connections are refused (the port stays bound but does not listen) and
  the open ones are reset, as when the server's host is up and the server is not.
- ``freeze``: connections are accepted and kept open, but no byte is forwarded either way,
  as when the server is stopped or the network drops packets without a reset. Going back
  to ``pass`` lets the held bytes through.

Every loop waits with a short timeout and ends when the proxy is closed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator

MODES = ("pass", "refuse", "freeze")
_TICK = 0.05  # seconds between checks of the mode in every loop


class TcpProxy:
    """Forward 127.0.0.1:<port> to ``target`` (host, port)."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1"):
        self.target = target
        self.host = host
        self._mode = "pass"
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thawed = threading.Condition(self._lock)
        self._connections: set[_Pair] = set()
        self.accepted = 0
        self._listener = self._bind()
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._acceptor.start()

    # -- control --------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self._lock:
            previous, self._mode = self._mode, mode
            if mode == "refuse" and previous != "refuse":
                pairs = list(self._connections)
                # A bound socket that does not listen answers every SYN with a reset.
                self._listener.close()
                self._listener = self._bind(self.port)
            elif previous == "refuse" and mode != "refuse":
                pairs = []
                self._listener.listen(64)
            else:
                pairs = []
            self._thawed.notify_all()
        for pair in pairs:
            pair.reset()

    def pass_(self) -> None:
        self.set_mode("pass")

    def refuse(self) -> None:
        self.set_mode("refuse")

    def freeze(self) -> None:
        self.set_mode("freeze")

    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            pairs = list(self._connections)
            self._thawed.notify_all()
        for pair in pairs:
            pair.reset()
        self._listener.close()
        self._acceptor.join(timeout=2)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------

    def _bind(self, port: int = 0) -> socket.socket:
        deadline = time.monotonic() + 2
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
                return sock
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(_TICK)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                listener, mode = self._listener, self._mode
            if mode == "refuse":
                time.sleep(_TICK)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], _TICK)
                if not ready:
                    continue
                client, _ = listener.accept()
            except OSError:
                continue  # the listener was replaced or closed meanwhile
            self.accepted += 1
            threading.Thread(
                target=self._serve, args=(client,), name="tcp-proxy-conn", daemon=True
            ).start()

    def _wait_while_frozen(self) -> bool:
        """Block while frozen; False when the proxy closed or refuses meanwhile."""
        with self._lock:
            while self._mode == "freeze" and not self._closed.is_set():
                self._thawed.wait(_TICK)
            return self._mode == "pass" and not self._closed.is_set()

    def _serve(self, client: socket.socket) -> None:
        # A frozen proxy holds a new connection without dialling the server.
        if not self._wait_while_frozen():
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            _reset(client)
            return
        pair = _Pair(client, upstream)
        with self._lock:
            if self._closed.is_set() or self._mode == "refuse":
                pair.reset()
                return
            self._connections.add(pair)
        try:
            self._pump(pair)
        finally:
            with self._lock:
                self._connections.discard(pair)
            pair.close()

    def _pump(self, pair: _Pair) -> None:
        ends = {pair.client: pair.upstream, pair.upstream: pair.client}
        while not self._closed.is_set() and not pair.done:
            if not self._wait_while_frozen():
                return
            try:
                ready, _, _ = select.select(list(ends), [], [], _TICK)
            except (OSError, ValueError):
                return
            if self._mode != "pass":
                continue  # the mode changed while waiting: hold these bytes
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    ends[sock].sendall(data)
                except OSError:
                    return


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client = client
        self.upstream = upstream
        self.done = False

    def reset(self) -> None:
        self.done = True
        _reset(self.client)
        _reset(self.upstream)

    def close(self) -> None:
        self.done = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed peer would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def proxy_to(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()
