"""A live view in the browser: every camera's overlay, its numbers and the class fractions, on one page.

``enet-run ... http://@:8080`` serves one HTML page (inline JS and CSS, no
external asset: it works on a car's isolated network) and one event stream
per viewer. The stream is Server-Sent Events (``text/event-stream``, the
browser's ``EventSource``): each event is a JSON object holding a camera's
newest overlay as base64 JPEG, the server's timestamps (``captured_at``,
``encoded_at``, ``sent_at``, Unix seconds), the camera's numbers and its
class fractions. SSE rather than MJPEG (an ``<img>`` cannot carry a frame's
timestamps, so the page could not measure its latency) and rather than
WebRTC (needs an encoder, ICE and a signalling server, and cannot be tested
here); every stock browser plays it, and EventSource reconnects by itself.

Safety (the defaults a car needs):

- it listens on 127.0.0.1 unless an address (``http://192.168.1.5:8080``) or
  ``@`` (all interfaces) is given;
- an optional access token (``?token=...`` in the URL, or an
  ``X-Enet-Token`` / ``Authorization: Bearer`` header), compared in constant
  time; 403 without it;
- it serves its own two routes, ``/`` and ``/events``, and nothing else
  (404): no path from a request ever reaches the file system;
- each viewer has its own mailbox of one slot per camera (newest wins): a
  slow or stalled browser drops frames for itself only, and ``publish()``
  never waits for a viewer; a viewer whose socket takes no data for
  ``stall_timeout_s`` is disconnected;
- at most ``max_viewers`` viewers at once (503 beyond) and 16 other
  connections (closed unanswered beyond), request reading and writing
  bounded by the same timeout; all threads are daemons and
  :meth:`LiveView.close` stops them.

JPEG encoding runs on one thread of its own, only while a viewer is
connected, once per published frame for all viewers.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import math
import socket
import socketserver
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np

from enet._lazy import require
from enet.deploy.errors import SinkError

log = logging.getLogger(__name__)

STATES = ("live", "reconnecting", "ended")
DEFAULT_PORT = 8080
ALL_INTERFACES = "0.0.0.0"
LOCALHOST = "127.0.0.1"
_KEEPALIVE_S = 10.0  # an SSE comment this often keeps idle proxies and the browser's connection open
_SPARE_CONNECTIONS = 16  # connections beside the viewers' streams (page loads, refused requests)
STAT_KEYS = ("fps", "latency_p50_ms", "latency_p95_ms", "dropped", "frames")


class LiveViewError(SinkError):
    """The live view's URI is wrong or its address cannot be served."""


def parse_live_uri(uri: str) -> tuple[str, int, str | None]:
    """``http://[host|@][:port][/][?token=...]`` -> ``(host, port, token)``.

    ``@`` means all interfaces (``0.0.0.0``, jetson-inference's
    ``webrtc://@:8554`` convention); no host means 127.0.0.1; the port
    defaults to 8080 (0: any free port). An IPv6 address goes in brackets.

    Raises:
        LiveViewError: anything else, in one line.
    """
    def bad(why: str) -> LiveViewError:
        return LiveViewError(f"live view {uri!r}: {why}; expected http://[address|@][:port][?token=SECRET], "
                             "e.g. http://@:8080 (all interfaces) or http://:8080 (this machine only)")

    try:
        parts = urlsplit(uri.strip())
    except ValueError as exc:
        raise bad(str(exc)) from None
    if parts.scheme.lower() != "http":
        raise bad(f"the scheme is {parts.scheme or '(none)'}:// , not http://")
    if parts.path not in ("", "/"):
        raise bad(f"it has a path ({parts.path}); the page is served at /")
    if parts.fragment:
        raise bad("it has a #fragment")
    netloc = parts.netloc
    if netloc.startswith("@"):
        host, rest = ALL_INTERFACES, netloc[1:]
        if rest and not rest.startswith(":"):
            raise bad("@ stands for all interfaces and takes no name after it")
    elif "@" in netloc:
        raise bad("user names are not supported (give the token as ?token=...)")
    else:
        host, rest = "", netloc
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise bad("an IPv6 address is missing its ]")
            host, rest = rest[1:end], rest[end + 1:]
            if not host:
                raise bad("an empty IPv6 address")
        elif ":" in rest:
            host, rest = rest.split(":", 1)
            rest = ":" + rest
        else:
            host, rest = rest, ""
        host = host or LOCALHOST
    port = DEFAULT_PORT
    if rest:
        if not rest.startswith(":") or not rest[1:].isdigit():
            raise bad(f"the port {rest[1:] or '(empty)'!r} is not a number")
        port = int(rest[1:])
        if not 0 <= port <= 65535:
            raise bad(f"the port {port} is outside 0-65535")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise bad(f"the query {parts.query!r} is malformed") from None
    unknown = sorted(set(query) - {"token"})
    if unknown:
        raise bad(f"unknown option {', '.join(unknown)}")
    token = None
    if "token" in query:
        values = query["token"]
        if len(values) != 1 or not values[0]:
            raise bad("give one non-empty token")
        token = values[0]
    return host, port, token


def _finite(x: Any) -> Any:
    """A JSON-safe number: NaN and infinities become null (JavaScript's JSON.parse refuses them)."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return None


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


class _Camera:
    """One camera's newest frame (raw and encoded) and state; guarded by the view's lock."""

    def __init__(self, index: int, name: str) -> None:
        self.index = index
        self.name = name
        self.frame: np.ndarray | None = None  # newest published overlay (BGR), a private copy
        self.seq = 0                          # frames published
        self.meta: dict[str, Any] = {}
        self.encoded_seq = 0                  # the seq of ``message``
        self.message: bytes | None = None     # the frame event's JSON after its opening brace
        self.state = "live"


class _Viewer:
    """A connected browser: a mailbox of one slot per key (newest wins) and its counters."""

    def __init__(self, conn: socket.socket, address: str) -> None:
        self.conn = conn
        self.address = address
        self.cond = threading.Condition()
        self.slots: dict[Any, bytes] = {}
        self.closed = False
        self.sent = 0     # frame events written to the socket
        self.dropped = 0  # frame events replaced in the mailbox before they were written

    def put(self, key: Any, event: bytes, *, frame: bool = True) -> None:
        with self.cond:
            if frame and key in self.slots:
                self.dropped += 1
            self.slots[key] = event
            self.cond.notify()

    def take(self, timeout: float) -> list[tuple[Any, bytes]]:
        with self.cond:
            if not self.slots and not self.closed:
                self.cond.wait(timeout)
            items = sorted(self.slots.items(), key=lambda kv: (kv[0][0] != "s", kv[0][1]))  # states first
            self.slots = {}
            return items

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()


class LiveView:
    """Serves the live page; the pipeline calls :meth:`publish` with each camera's overlay.

    Args:
        host: address to listen on (``127.0.0.1``; ``0.0.0.0`` for all interfaces; see :func:`parse_live_uri`).
        port: TCP port (0: any free one; :attr:`url` names the one taken).
        token: access token the page and its stream require (None: none).
        cameras: camera names, in the order the page shows them.
        classes: class names (``meta["classes"]``), for the legend and the chart.
        palette: RGB colour per class (``meta["palette"]``), values 0 to 255
        jpeg_quality: 1-100.
        max_viewers: browsers connected at once; more get 503.
        stall_timeout_s: a viewer whose socket accepts nothing for this long (and a request not
            read within it) is disconnected.
    """

    def __init__(self, host: str = LOCALHOST, port: int = DEFAULT_PORT, *, token: str | None = None,
                 cameras: Sequence[str], classes: Sequence[str], palette: Sequence[Sequence[int]],
                 jpeg_quality: int = 80, max_viewers: int = 8, stall_timeout_s: float = 10.0) -> None:
        names = [str(c) for c in cameras]
        if not names or len(set(names)) != len(names) or not all(names):
            raise LiveViewError(f"live view: camera names must be distinct and non-empty, got {names}")
        if len(palette) < len(classes):
            raise LiveViewError(f"live view: {len(classes)} classes but {len(palette)} palette colours")
        if not 1 <= int(jpeg_quality) <= 100:
            raise LiveViewError(f"live view: JPEG quality {jpeg_quality} is outside 1-100")
        self.host = host
        self.port = int(port)
        self.token = token or None
        self.cameras = names
        self.classes = [str(c) for c in classes]
        self.palette = [[int(np.clip(int(v), 0, 255)) for v in list(c)[:3]] for c in list(palette)[:len(classes)]]
        self.jpeg_quality = int(jpeg_quality)
        self.max_viewers = int(max_viewers)
        self.stall_timeout_s = float(stall_timeout_s)
        self._cams = [_Camera(i, n) for i, n in enumerate(names)]
        self._by_name = {c.name: c for c in self._cams}
        self._lock = threading.Condition()  # guards cameras and viewers; wakes the encoder
        self._viewers: list[_Viewer] = []
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._handlers: set[threading.Thread] = set()
        self._closed = False
        self.encoded = 0  # JPEG encodings done (one per frame published while a viewer was connected)

    # -- the pipeline's side ---------------------------------------------------------------------------------

    def publish(self, camera: str, overlay: np.ndarray, *, captured_at: float,
                stats: dict[str, Any] | None = None, fractions: Sequence[float] | None = None) -> None:
        """Hand the newest overlay of ``camera`` to the viewers; returns after a copy.

        Args:
            camera: one of ``cameras``.
            overlay: BGR uint8 ``(H, W, 3)`` (OpenCV's order: pass ``rgb[..., ::-1]`` for an RGB
                frame; the copy made here makes it contiguous).
            captured_at: the frame's capture time, ``time.time()`` seconds.
            stats: ``fps``, ``latency_p50_ms``, ``latency_p95_ms``, ``dropped``, ``frames`` (others ignored).
            fractions: share of pixels per class, in ``classes`` order.

        Raises:
            LiveViewError: an unknown camera or not an ``(H, W, 3)`` uint8 image.
        """
        cam = self._camera(camera)
        if overlay.ndim != 3 or overlay.shape[2] != 3 or overlay.dtype != np.uint8:
            raise LiveViewError(f"live view: camera {camera!r} gave a {overlay.dtype} {overlay.shape} image; "
                                "expected uint8 (H, W, 3) BGR")
        frame = np.array(overlay, dtype=np.uint8, order="C", copy=True)
        meta = {
            "captured_at": _finite(float(captured_at)),
            "stats": {k: _finite(stats[k]) for k in STAT_KEYS if stats and k in stats},
            "fractions": [None if not math.isfinite(float(f)) else round(float(f), 4)
                          for f in (() if fractions is None else np.asarray(fractions, dtype=np.float64).ravel())],
        }
        with self._lock:
            cam.frame = frame
            cam.seq += 1
            cam.meta = meta
            if self._viewers:
                self._lock.notify_all()

    def set_state(self, camera: str, state: str) -> None:
        """Show ``camera`` as ``live``, ``reconnecting`` (its source is gone, being reopened) or ``ended``."""
        if state not in STATES:
            raise LiveViewError(f"live view: unknown state {state!r}; choose one of {', '.join(STATES)}")
        cam = self._camera(camera)
        with self._lock:  # delivered under the lock: two calls reach every viewer in their order
            cam.state = state
            event = self._state_event(cam)
            for v in self._viewers:
                v.put(("s", cam.index), event, frame=False)

    def _camera(self, camera: str) -> _Camera:
        try:
            return self._by_name[camera]
        except KeyError:
            raise LiveViewError(f"live view: unknown camera {camera!r}; the cameras are "
                                f"{', '.join(self.cameras)}") from None

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self) -> LiveView:
        """Bind and serve (daemon threads); returns self.

        Raises:
            LiveViewError: the address cannot be bound (in use, not this machine's, no permission).
        """
        if self._closed:
            raise LiveViewError("live view: start() after close()")
        if self._server is not None:
            return self
        require("cv2")  # the JPEG encoder: fail here, in one line, not later in a thread
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_cls = type("_LiveServer", (_Server,), {"address_family": family})
        try:
            server = server_cls((self.host, self.port), _Handler)
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise LiveViewError(f"cannot serve the live view on {self._hostport(self.host, self.port)}: {why}; "
                                "choose another port or address (http://:8081, http://@:8080)") from None
        server.view = self
        server.slots = threading.BoundedSemaphore(self.max_viewers + _SPARE_CONNECTIONS)
        self._server = server
        self.port = server.server_address[1]
        serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                 name="enet-live-http", daemon=True)
        encode = threading.Thread(target=self._encode_loop, name="enet-live-jpeg", daemon=True)
        self._threads = [serve, encode]
        for t in self._threads:
            t.start()
        log.info("live view at %s", self.url)
        return self

    @staticmethod
    def _hostport(host: str, port: int) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def url(self) -> str:
        """The page's address (with the token when there is one); for ``0.0.0.0`` this machine's name."""
        host = self.host
        if host in (ALL_INTERFACES, "::"):
            host = socket.gethostname() or LOCALHOST
        tail = f"?token={quote(self.token, safe='')}" if self.token else ""
        return f"http://{self._hostport(host, self.port)}/{tail}"

    def viewer_stats(self) -> list[dict[str, Any]]:
        """Per connected viewer: ``address`` (``host:port``), ``sent`` and ``dropped`` frame events."""
        with self._lock:
            viewers = list(self._viewers)
        return [{"address": v.address, "sent": v.sent, "dropped": v.dropped} for v in viewers]

    def close(self) -> None:
        """Disconnect the viewers and stop serving; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            viewers = list(self._viewers)
            self._lock.notify_all()
        for v in viewers:
            v.close()
            with contextlib.suppress(OSError):
                v.conn.shutdown(socket.SHUT_RDWR)  # a write blocked on a stalled viewer returns now
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for t in self._threads + list(self._handlers):
            t.join(timeout=2.0)
        self._threads = []

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events --------------------------------------------------------------------------------------------------

    def _hello(self) -> bytes:
        with self._lock:
            states = [c.state for c in self._cams]
        return _json({"type": "hello", "cameras": self.cameras, "classes": self.classes, "palette": self.palette,
                      "states": states, "server_time": time.time()})

    def _state_event(self, cam: _Camera) -> bytes:
        return _json({"type": "state", "cam": cam.index, "state": cam.state})

    def _add_viewer(self, viewer: _Viewer) -> bool:
        with self._lock:
            if self._closed or len(self._viewers) >= self.max_viewers:
                return False
            self._viewers.append(viewer)
            cached = [(c.index, c.message) for c in self._cams if c.message is not None and c.encoded_seq == c.seq]
            self._lock.notify_all()  # the encoder encodes what no one has seen yet
        for index, message in cached:
            viewer.put(("f", index), message)
        return True

    def _remove_viewer(self, viewer: _Viewer) -> None:
        with self._lock:
            with contextlib.suppress(ValueError):
                self._viewers.remove(viewer)

    def _encode_loop(self) -> None:
        cv2 = None
        while True:
            with self._lock:
                while not self._closed and not (self._viewers and any(c.seq != c.encoded_seq for c in self._cams)):
                    self._lock.wait(1.0)
                if self._closed:
                    return
                todo = [(c, c.seq, c.frame, c.meta) for c in self._cams if c.seq != c.encoded_seq]
            if cv2 is None:
                cv2 = require("cv2")
            for cam, seq, frame, meta in todo:
                try:
                    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                except Exception as exc:  # noqa: BLE001 - cv2.error: one bad frame must not stop the view
                    log.warning("live view: camera %s: JPEG encoding failed (%s)", cam.name, exc)
                    ok = False
                body = None
                if ok:
                    head = _json({"type": "frame", "cam": cam.index, "seq": seq, "w": int(frame.shape[1]),
                                  "h": int(frame.shape[0]), "encoded_at": time.time(), **meta})
                    body = head[1:-1] + b',"jpeg":"' + base64.b64encode(jpeg.tobytes()) + b'"}'
                with self._lock:
                    cam.encoded_seq = seq
                    if body is None:
                        continue
                    cam.message = body
                    self.encoded += 1
                    viewers = list(self._viewers)
                for v in viewers:
                    v.put(("f", cam.index), body)

    def _serve_events(self, handler: _Handler) -> None:
        viewer = _Viewer(handler.connection, "%s:%s" % tuple(handler.client_address[:2]))
        if not self._add_viewer(viewer):
            handler.send_error(503, "too many viewers")
            return
        self._handlers.add(threading.current_thread())
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
            handler.send_header("Connection", "close")
            handler.security_headers()
            handler.end_headers()
            out = handler.wfile
            out.write(b"retry: 1000\n\ndata: " + self._hello() + b"\n\n")
            with self._lock:
                states = [self._state_event(c) for c in self._cams]
            for i, ev in enumerate(states):
                viewer.put(("s", i), ev, frame=False)
            while True:
                items = viewer.take(_KEEPALIVE_S)
                if viewer.closed or self._closed:
                    break
                if not items:
                    out.write(b": keepalive\n\n")
                    continue
                chunks = []
                for key, event in items:
                    if key[0] == "f":
                        chunks.append(b'data: {"sent_at":%.6f,' % time.time() + event + b"\n\n")
                    else:
                        chunks.append(b"data: " + event + b"\n\n")
                out.write(b"".join(chunks))
                viewer.sent += sum(1 for key, _ in items if key[0] == "f")
        except (OSError, ValueError) as exc:  # the browser went away, or stalled past the timeout
            log.debug("live view: viewer %s left (%s)", viewer.address, exc)
        finally:
            self._remove_viewer(viewer)
            self._handlers.discard(threading.current_thread())


class _Server(ThreadingHTTPServer):
    """One daemon thread per connection, at most ``slots`` at once (a connection beyond is closed unanswered)."""

    daemon_threads = True
    block_on_close = False
    view: LiveView
    slots: threading.BoundedSemaphore

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the address up in DNS (socket.getfqdn), which can hang for seconds
        # on a car's network without a resolver; the name is not used here
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            log.debug("live view: too many connections; %s refused", client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "enet-live"
    sys_version = ""

    def setup(self) -> None:
        self.timeout = self.server.view.stall_timeout_s  # bounds reading the request and each write
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("live view %s: " + format, self.client_address[0], *args)

    def security_headers(self) -> None:
        from enet.deploy.live_page import CSP

        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # the token is in the URL
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", CSP)

    def _authorised(self, query: str) -> bool:
        token = self.server.view.token
        if token is None:
            return True
        given = []
        with contextlib.suppress(ValueError):
            given += parse_qs(query, keep_blank_values=True).get("token", [])
        header = self.headers.get("X-Enet-Token")
        if header:
            given.append(header)
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        want = token.encode("utf-8")
        ok = False
        for g in given:
            ok |= hmac.compare_digest(g.encode("utf-8", "replace"), want)
        return ok

    def _route(self, head: bool) -> None:
        parts = urlsplit(self.path)
        if parts.path not in ("/", "/events"):
            self.send_error(404, "not found")
            return
        if not self._authorised(parts.query):
            self.send_error(403, "a token is required: open the URL enet-run printed")
            return
        if parts.path == "/events":
            if head:
                self.send_error(405, "GET the event stream")
                return
            self.server.view._serve_events(self)
            return
        from enet.deploy.live_page import PAGE

        body = PAGE.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.security_headers()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
        self._route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)
