"""HTTP server of the sandbox: a local stand-in for the marketing platforms.

Layout of URLs:

* ``/<platform>/...`` is handed to the platform module registered in
  :data:`PLATFORMS` (``/batch/2.11/catalogs/...`` -> :mod:`.batch`,
  ``/yotpo/core/v3/stores/<id>/customers`` -> :mod:`.yotpo`). Adding a platform
  means writing one module (see the package docstring) and adding one line to
  :data:`PLATFORMS`.
* ``/_sandbox/...`` are admin/inspection endpoints (no auth; not part of any
  real API): health, reset, stats, rate-limit settings, faults, the clock
  (``GET``, ``POST {"advance_seconds": n}``), and per-platform inspection under
  ``/_sandbox/<platform>/...``.

Every platform request goes through: fault lookup (slow / drop_before / status
/ timeout / drop_after, see :mod:`.faults`) -> platform handler (auth, rate limiting via
:class:`~.platform_interface.HandlerContext`, validation, one SQLite
transaction) -> response. State lives in one SQLite file (WAL,
``synchronous=NORMAL``) guarded by one lock (:mod:`.store`). Header values are
never logged nor echoed; the in-memory request log used for stats
(:mod:`.stats`) holds method, path, status, item counts and timings only.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .emulator_kit import Clock
from .faults import FaultRegistry
from .platform_interface import HandlerContext, Platform, Request, Response, error_response, parse_json
from .ratelimit import DEFAULT_ITEMS_PER_SECOND, DEFAULT_REQUESTS_PER_SECOND, RateLimiter
from .stats import Stats
from .store import Store

DEFAULT_STATE_PATH = "data/sandbox/state.sqlite"
MAX_BODY_BYTES = 64 * 1024 * 1024
_VERSION_RE = re.compile(r"v?\d+(\.\d+)*")

#: platform name (first path segment) -> "module:Class", imported lazily and built as ``Class(store, clock)``.
PLATFORMS: dict[str, str] = {
    "batch": ".batch:BatchPlatform",
    "yotpo": ".yotpo:YotpoPlatform",
    "connectif": ".connectif:ConnectifPlatform",
    "dotdigital": ".dotdigital:DotdigitalPlatform",
    "synerise": ".synerise:SynerisePlatform",
    "http": ".http_sink:HttpSinkPlatform",
}


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "activation-pipeline-sandbox/1"
    disable_nagle_algorithm = True
    timeout = 120
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def _dispatch(self) -> None:
        self.server.app.handle_http(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.app.verbose:  # method, path and status only: never headers nor query
            sys.stderr.write(f"{self.command} {urlsplit(self.path).path} {code}\n")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.verbose:
            sys.stderr.write("sandbox: " + (format % args) + "\n")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SandboxServer) -> None:
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, opened: bool) -> None:
        with self._conns_lock:
            (self._conns.add if opened else self._conns.discard)(conn)

    def close_all(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            _hard_close(conn)


def _hard_close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise ValueError("request body too large")
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    if length > MAX_BODY_BYTES:
        raise ValueError("request body too large")
    return handler.rfile.read(length) if length > 0 else b""


# --------------------------------------------------------------------------- the application


def _load_platform(spec: str) -> Callable[[Store, Clock], Platform]:
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name, package=__package__), attr)


def _env_rate_limit_enabled() -> bool:
    return os.environ.get("SANDBOX_RATE_LIMIT", "on").strip().lower() not in ("off", "0", "false", "no")


class SandboxServer:
    """The sandbox application plus its HTTP server; see :func:`start_sandbox`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_path: str | Path = DEFAULT_STATE_PATH,
        rate_limit: bool = True,
        requests_per_second: float | None = None,
        items_per_second: float | None = None,
        verbose: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.verbose = verbose
        self.state_path = Path(state_path)
        self.clock = clock or Clock()
        self.store = Store(state_path)
        self.platforms: dict[str, Platform] = {n: _load_platform(s)(self.store, self.clock) for n, s in PLATFORMS.items()}
        self.faults = FaultRegistry(self.platforms)
        self.limiter = RateLimiter(
            rate_limit and _env_rate_limit_enabled(),
            requests_per_second or DEFAULT_REQUESTS_PER_SECOND,
            items_per_second or DEFAULT_ITEMS_PER_SECOND,
            self.clock.monotonic,
        )
        self.stats = Stats(list(self.platforms))
        try:
            self.httpd = _HTTPServer((host, port), self)
        except OSError:
            self.store.close()
            raise
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()
        self._stopped = False

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Serve in a background daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._serving.set()
        try:
            self.httpd.serve_forever(poll_interval=0.1)
        finally:
            self._serving.clear()

    def stop(self) -> None:
        """Stop serving, drop open connections, close the database. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._serving.is_set():
            self.httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.httpd.close_all()
        self.httpd.server_close()
        self.store.close()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- dispatch

    def handle_http(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        segments = [unquote(s) for s in split.path.split("/") if s]
        try:
            body = _read_body(handler)
        except ValueError as exc:
            handler.close_connection = True
            self._send(handler, error_response(400, "INVALID_PARAMETER", f"Unreadable request body: {exc}"))
            return
        req = Request(handler.command, split.path, segments, dict(parse_qsl(split.query, keep_blank_values=True)), handler.headers, body)
        if segments and segments[0] == "_sandbox":
            try:
                resp = self._admin(req, segments[1:])
            except Exception as exc:  # an admin bug must not kill the connection silently
                traceback.print_exc()
                resp = error_response(500, "SANDBOX_ERROR", f"{type(exc).__name__}: {exc}")
            self._send(handler, resp)
        elif segments and segments[0] in self.platforms:
            self._handle_platform(handler, req, self.platforms[segments[0]])
        else:
            self._send(handler, error_response(404, "NOT_FOUND", f"No route for {req.method} {req.path}"))

    def _handle_platform(self, handler: BaseHTTPRequestHandler, req: Request, platform: Platform) -> None:
        started = time.perf_counter()
        req.segments = req.segments[1:]
        rest = req.segments[1:] if req.segments and _VERSION_RE.fullmatch(req.segments[0]) else req.segments
        stats_path = "/" + "/".join(rest)
        fault = self.faults.take(platform.name, req.path)
        kind = fault.kind if fault else None
        ctx: HandlerContext | None = None
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "drop_before":
            self._drop(handler)
            self.stats.record(platform.name, req.method, stats_path, None, None, kind, time.perf_counter() - started)
            return
        if fault is not None and fault.kind == "status":
            resp = platform.fault_response(int(fault.status or 500), fault.retry_after)
        elif fault is not None and fault.kind == "timeout":
            if self._hold(handler, fault.seconds):  # the client gave up first: nobody to answer
                self._drop(handler)
                self.stats.record(platform.name, req.method, stats_path, None, None, kind, time.perf_counter() - started)
                return
            resp = platform.fault_response(504, None)
        else:
            ctx = HandlerContext(self.limiter, self.faults.rejected_ids(platform.name, req.path))
            try:
                resp = platform.handle(req, ctx)
            except Exception:
                traceback.print_exc()
                resp = platform.fault_response(500, None)
        if fault is not None and fault.kind == "drop_after":
            self._drop(handler)
            self.stats.record(platform.name, req.method, stats_path, None, ctx, kind, time.perf_counter() - started)
            return
        # counted before the answer leaves: a client reading /_sandbox/stats right after it sees it
        self.stats.record(platform.name, req.method, stats_path, resp.status, ctx, kind, time.perf_counter() - started)
        self._send(handler, resp)

    @staticmethod
    def _hold(handler: BaseHTTPRequestHandler, seconds: float) -> bool:
        """Keep the request waiting up to ``seconds``; True as soon as the client hangs up."""
        conn = handler.connection
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([conn], [], [], min(left, 0.5))
            if not readable:
                continue
            try:
                if not conn.recv(1, socket.MSG_PEEK):
                    return True
            except OSError:
                return True
            time.sleep(max(0.0, deadline - time.monotonic()))  # it sent more bytes: just wait out the hold
        return False

    @staticmethod
    def _drop(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        _hard_close(handler.connection)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, resp: Response) -> None:
        body = resp.body
        payload = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", **resp.headers, "Content-Length": str(len(payload))}
        handler.send_response(resp.status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    # ----------------------------------------------------------------- admin

    def _admin(self, req: Request, segs: list[str]) -> Response:
        if segs and segs[0] in self.platforms:
            return self.platforms[segs[0]].admin(req, segs[1:])
        route = (req.method, "/".join(segs))
        try:
            spec = parse_json(req.body) if req.body else {}
        except ValueError as exc:
            return error_response(400, "MALFORMED_JSON", str(exc))
        try:
            if route == ("GET", "health"):
                return Response(200, {"ok": True, "platforms": list(self.platforms)})
            if route == ("POST", "reset"):
                self.clock.reset()
                for platform in self.platforms.values():
                    platform.reset()
                self.faults.clear()
                self.limiter.reset()
            if route in (("POST", "reset"), ("POST", "stats/reset")):
                self.stats.reset()
                return Response(200, {"ok": True})
            if route == ("GET", "stats"):
                return Response(200, self.stats.to_json())
            if route in (("GET", "ratelimit"), ("POST", "ratelimit")):
                if req.method == "POST":
                    self.limiter.configure_json(spec)
                return Response(200, self.limiter.to_json())
            if route in (("GET", "clock"), ("POST", "clock")):
                if req.method == "POST":
                    self._advance_clock(spec)
                return Response(200, {"offset_seconds": self.clock.offset, "now": self.clock.iso()})
            if route == ("GET", "faults"):
                return Response(200, {"faults": self.faults.to_json()})
            if route == ("POST", "faults"):
                return Response(201, {"faults": self.faults.add_json(spec)})
            if route == ("DELETE", "faults"):
                self.faults.clear()
                return Response(200, {"ok": True, "faults": []})
        except ValueError as exc:  # includes FaultSpecError
            return error_response(400, "INVALID_PARAMETER", str(exc))
        return error_response(404, "NOT_FOUND", f"No admin route for {req.method} {req.path}")

    def _advance_clock(self, spec: Any) -> None:
        seconds = spec.get("advance_seconds") if isinstance(spec, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 10 * 365 * 86400:
            raise ValueError('body must be {"advance_seconds": n} with 0 <= n <= ten years')
        self.clock.advance(float(seconds))


def start_sandbox(
    port: int = 0,
    state_path: str | Path = DEFAULT_STATE_PATH,
    rate_limit: bool = True,
    host: str = "127.0.0.1",
    requests_per_second: float | None = None,
    items_per_second: float | None = None,
    verbose: bool = False,
    clock: Clock | None = None,
) -> SandboxServer:
    """Start a sandbox in a background thread and return it (``.url``, ``.port``, ``.clock``, ``.stop()``).

    ``port=0`` picks a free port. ``rate_limit=False`` or env ``SANDBOX_RATE_LIMIT=off``
    disables rate limiting (it can be switched again at run time via
    ``POST /_sandbox/ratelimit``). ``clock`` is the time every emulator reads (a fresh
    :class:`~.emulator_kit.Clock` by default). Usable as a context manager.
    """
    server = SandboxServer(host, port, state_path, rate_limit, requests_per_second, items_per_second, verbose, clock)
    return server.start()
