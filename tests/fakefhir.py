"""A misbehaving FHIR server on 127.0.0.1, for the fault tests of fetch-on-miss.

Each fault is a base URL: `http://127.0.0.1:PORT/<fault>` answers every read and search
below it in that one bad way. Every answer loop is bounded, and each handler records
when the client stopped reading (its socket closed), so a test can tell whether the
client cancelled its work or left a thread draining the answer.

Faults:
  ok             small, valid answers (a searchset with one Observation, a Patient)
  huge           a 64 MB searchset, with Content-Length
  huge-chunked   64 MB without Content-Length (chunked), so only the reader can stop it
  gzip-bomb      1 GB of JSON-looking bytes in a ~1 MB gzip body
  endless        a chunked answer that never ends, as fast as the socket takes it
  drip           headers at once, then one body byte every 0.1 s
  drip-headers   the status line, then one header byte every 0.1 s
  frozen         accepts the request and never answers
  number-bomb    valid JSON whose Observation value is 10**5000
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MB = 1024 * 1024
HUGE_BYTES = 64 * MB
BOMB_MEMBER_BYTES = 64 * MB  # one gzip member; the bomb repeats it
BOMB_MEMBERS = 16  # 1 GB decompressed
DRIP_INTERVAL = 0.1
MAX_SECONDS = 60.0  # no handler runs longer, whatever the client does

FAULTS = (
    "ok",
    "huge",
    "huge-chunked",
    "gzip-bomb",
    "endless",
    "drip",
    "drip-headers",
    "frozen",
    "number-bomb",
)

_bomb_member: bytes | None = None
_bomb_lock = threading.Lock()


def bomb_member() -> bytes:
    """64 MB of `{"a":"aaaa...` gzipped (~64 KB), made once per process."""
    global _bomb_member
    with _bomb_lock:
        if _bomb_member is None:
            _bomb_member = gzip.compress(
                b'{"resourceType":"Bundle","a":"' + b"a" * BOMB_MEMBER_BYTES, compresslevel=9
            )
        return _bomb_member


def observation(oid: str, value: object = 1.9) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "19123-9"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-01T08:00:00Z",
        "valueQuantity": {"value": value, "unit": "mg/dL"},
    }


def searchset(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


@dataclass
class Exchange:
    """One request the fake server answered, and when its client went away."""

    fault: str
    path: str
    started: float
    closed: float | None = None  # monotonic time the client's socket was seen closed
    sent: int = 0  # bytes of body written before that


@dataclass
class FakeFhir:
    port: int
    exchanges: list[Exchange] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def base(self, fault: str) -> str:
        return f"http://127.0.0.1:{self.port}/{fault}"

    def of(self, fault: str) -> list[Exchange]:
        with self.lock:
            return [e for e in self.exchanges if e.fault == fault]

    def wait_closed(self, fault: str, timeout: float) -> list[Exchange]:
        """The exchanges of `fault`, once all are closed or `timeout` has passed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = self.of(fault)
            if found and all(e.closed is not None for e in found):
                break
            time.sleep(0.02)
        return self.of(fault)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet test output

    def do_GET(self) -> None:  # noqa: N802
        fault, _, rest = self.path.lstrip("/").partition("/")
        exchange = Exchange(fault, rest, time.monotonic())
        fake = self.server.fake
        with fake.lock:
            fake.exchanges.append(exchange)
        self.connection.settimeout(MAX_SECONDS)
        try:
            getattr(self, "_" + fault.replace("-", "_"), self._unknown)(exchange, rest)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            pass
        finally:
            exchange.closed = exchange.closed or time.monotonic()
            self.close_connection = True

    # -- helpers ----------------------------------------------------------------------------

    def _json(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")  # one exchange per connection, said so
        self.end_headers()
        self.wfile.write(data)

    def _start(self, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _chunk(self, exchange: Exchange, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        exchange.sent += len(data)

    def _client_gone(self, exchange: Exchange) -> bool:
        """True once the client has closed or shut down its end."""
        try:
            self.connection.setblocking(False)
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            finally:
                self.connection.setblocking(True)
                self.connection.settimeout(MAX_SECONDS)
        except BlockingIOError:
            return False
        except OSError:
            peeked = b""
        if peeked == b"":
            exchange.closed = time.monotonic()
            return True
        return False

    def _bounded(self) -> Iterator[int]:
        end = time.monotonic() + MAX_SECONDS
        i = 0
        while time.monotonic() < end and not self.server.fake.stopping.is_set():
            yield i
            i += 1

    # -- faults -----------------------------------------------------------------------------

    def _unknown(self, exchange: Exchange, rest: str) -> None:
        self._json({"resourceType": "OperationOutcome", "issue": []}, status=404)

    def _ok(self, exchange: Exchange, rest: str) -> None:
        if rest.startswith("Patient/"):
            self._json({"resourceType": "Patient", "id": "p1", "gender": "female"})
        elif rest.startswith("Observation"):
            self._json(searchset(observation("o1")))
        else:
            self._json(searchset())

    def _number_bomb(self, exchange: Exchange, rest: str) -> None:
        if rest.startswith("Observation"):
            body = json.dumps(searchset(observation("o1", 1.9))).replace("1.9", "1" + "0" * 5000)
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        else:
            self._ok(exchange, rest)

    def _huge(self, exchange: Exchange, rest: str) -> None:
        self._start({"Content-Length": str(HUGE_BYTES)})
        block = b" " * MB
        for _ in range(HUGE_BYTES // MB):
            self.wfile.write(block)
            exchange.sent += len(block)

    def _huge_chunked(self, exchange: Exchange, rest: str) -> None:
        self._start({"Transfer-Encoding": "chunked"})
        block = b" " * (256 * 1024)
        for _ in range(HUGE_BYTES // len(block)):
            self._chunk(exchange, block)
        self.wfile.write(b"0\r\n\r\n")

    def _gzip_bomb(self, exchange: Exchange, rest: str) -> None:
        member = bomb_member()
        self._start({"Content-Encoding": "gzip", "Content-Length": str(len(member) * BOMB_MEMBERS)})
        for _ in range(BOMB_MEMBERS):
            self.wfile.write(member)
            exchange.sent += len(member)

    def _endless(self, exchange: Exchange, rest: str) -> None:
        self._start({"Transfer-Encoding": "chunked"})
        self._chunk(exchange, b'{"resourceType":"Bundle","type":"searchset","entry":[')
        block = b'{"resource":{"resourceType":"Observation"}},' * 1000
        for _ in self._bounded():
            self._chunk(exchange, block)

    def _drip(self, exchange: Exchange, rest: str) -> None:
        self._start({"Transfer-Encoding": "chunked"})
        for _ in self._bounded():
            if self._client_gone(exchange):
                return
            self._chunk(exchange, b" ")
            self.wfile.flush()
            time.sleep(DRIP_INTERVAL)

    def _drip_headers(self, exchange: Exchange, rest: str) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in self._bounded():
            if self._client_gone(exchange):
                return
            self.wfile.write(b"X")
            self.wfile.flush()
            time.sleep(DRIP_INTERVAL)

    def _frozen(self, exchange: Exchange, rest: str) -> None:
        for _ in self._bounded():
            if self._client_gone(exchange):
                return
            time.sleep(DRIP_INTERVAL)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeFhir


@contextmanager
def running() -> Iterator[FakeFhir]:
    """The fake server on a free loopback port, stopped (all handlers ended) on exit."""
    bomb_member()  # made now, not inside a client's deadline
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeFhir(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="fake-fhir", daemon=True)
    thread.start()
    try:
        yield server.fake
    finally:
        server.fake.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    """A loopback port nobody listens on (for "the server is away")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
