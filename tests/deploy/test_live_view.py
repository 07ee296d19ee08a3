"""The live view in the browser (enet.deploy.live, issue 31 items 4-6).

Unit tests talk HTTP over raw sockets (the paths are sent byte for byte, so
traversal attempts reach the server unnormalised); the browser test drives
Debian's headless Chromium through Playwright against "the pipeline", a
fixture: a synthetic 4-camera rig at 10 fps (enet.deploy.live_bench), or
``enet-run`` itself on four live cameras (three test:// patterns and, where
GStreamer's RTSP server runs, an RTSP camera the test takes away).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from enet.deploy.live_bench import (DEMO_CLASSES, DEMO_PALETTE, SyntheticRig, expected_stats, find_chromium,
                                     launch_browser, summarise)
from enet.deploy.live import LiveView, LiveViewError, parse_live_uri
from enet.errors import EnetError

CAMS = ["front", "rear", "left", "right"]


# -- parse_live_uri ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("uri, want", [
    ("http://@:8080?token=abc", ("0.0.0.0", 8080, "abc")),
    ("http://@:8080", ("0.0.0.0", 8080, None)),
    ("http://@", ("0.0.0.0", 8080, None)),
    ("http://:8080", ("127.0.0.1", 8080, None)),
    ("http://:8080/", ("127.0.0.1", 8080, None)),
    ("http://127.0.0.1:8080", ("127.0.0.1", 8080, None)),
    ("http://192.168.1.5:9000?token=s3cr%20t", ("192.168.1.5", 9000, "s3cr t")),
    ("http://localhost:0", ("localhost", 0, None)),
    ("http://[::1]:8081", ("::1", 8081, None)),
    ("HTTP://:8080", ("127.0.0.1", 8080, None)),
])
def test_parse_live_uri(uri: str, want: tuple) -> None:
    assert parse_live_uri(uri) == want


@pytest.mark.parametrize("uri", [
    "https://:8080", "webrtc://@:8554/out", "rtsp://:8080", ":8080", "http://:80x", "http://:99999",
    "http://:8080/page", "http://:8080?token=", "http://:8080?tok=1", "http://:8080?token=a&token=b",
    "http://user@host:8080", "http://@host:8080", "http://[::1:8080", "http://:8080#x", "http://:8080/../etc",
])
def test_parse_live_uri_rejects_in_one_line(uri: str) -> None:
    with pytest.raises(EnetError) as e:
        parse_live_uri(uri)
    assert isinstance(e.value, LiveViewError)
    assert "\n" not in str(e.value) and "http://" in str(e.value)


# -- helpers -------------------------------------------------------------------------------------------------------

def _view(**kw) -> LiveView:
    kw.setdefault("cameras", CAMS[:2])
    return LiveView("127.0.0.1", 0, classes=DEMO_CLASSES, palette=DEMO_PALETTE, **kw)


def _request(port: int, target: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, bytes]:
    """Status and body of one request, the target sent as given."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{head}\r\n".encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


class SseClient:
    """A viewer of ``/events`` that reads (unless told not to) and parses each event's JSON."""

    def __init__(self, port: int, query: str = "", rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(20)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET /events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.name = "%s:%s" % self.sock.getsockname()[:2]
        self.f = None

    def open(self) -> SseClient:
        self.f = self.sock.makefile("rb")
        status = self.f.readline()
        assert b" 200 " in status, status
        while self.f.readline() not in (b"\r\n", b"\n", b""):
            pass
        return self

    def next(self) -> dict:
        data = []
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("stream closed")
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data: "):
                data.append(line[6:])
            elif not line and data:
                return json.loads(b"\n".join(data))

    def until(self, pred, timeout: float = 20.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ev = self.next()
            if pred(ev):
                return ev
        raise AssertionError("no such event in time")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.f is not None:
                self.f.close()
            self.sock.close()


def _frame(seq: int, h: int = 60, w: int = 80) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = seq % 256
    img[: h // 2, :, 2] = 255  # top half red in BGR
    return img


def _wait(pred, timeout: float = 20.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- serving -------------------------------------------------------------------------------------------------------

def test_start_binds_127_by_default_and_fails_in_one_line_on_a_busy_port() -> None:
    with _view() as view:
        assert view.host == "127.0.0.1" and view.port > 0
        assert view.url == f"http://127.0.0.1:{view.port}/"
        other = LiveView("127.0.0.1", view.port, cameras=["a"], classes=["x"], palette=[(1, 2, 3)])
        with pytest.raises(LiveViewError) as e:
            other.start()
        msg = str(e.value)
        assert "\n" not in msg and f"127.0.0.1:{view.port}" in msg
        other.close()


def test_start_makes_no_dns_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPServer looks its address up (socket.getfqdn): on a network without DNS that can hang; not here."""
    def no_dns(*a, **k):
        raise AssertionError("DNS lookup")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    monkeypatch.setattr(socket, "gethostbyaddr", no_dns)
    with LiveView("0.0.0.0", 0, cameras=["a"], classes=["x"], palette=[(1, 2, 3)]) as view:
        assert _request(view.port, "/")[0] == 200


def test_url_names_the_token_and_the_machine_for_all_interfaces() -> None:
    with LiveView("0.0.0.0", 0, token="t0k", cameras=["a"], classes=["x"], palette=[(1, 2, 3)]) as view:
        assert view.url.endswith(f":{view.port}/?token=t0k") and "0.0.0.0" not in view.url
    with _view(token="a b&c") as view:
        host, port, token = parse_live_uri(view.url)
        assert (host, port, token) == ("127.0.0.1", view.port, "a b&c")
        assert _request(view.port, view.url.split(str(view.port), 1)[1])[0] == 200


@pytest.mark.parametrize("target", [
    "/index.html", "/favicon.ico", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
    "//etc/passwd", "/events/../../../etc/passwd", "/events/x", "/./", "/deploy/live.py",
    "http://127.0.0.1/etc/passwd", "/\\..\\..\\windows\\win.ini",
])
def test_only_its_own_routes_are_served(target: str) -> None:
    with _view() as view:
        status, body = _request(view.port, target)
        assert status == 404, target
        assert b"root:" not in body and b"import" not in body


def test_page_is_self_contained_with_a_strict_policy() -> None:
    with _view() as view:
        with socket.create_connection(("127.0.0.1", view.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        assert b" 200 " in head.split(b"\r\n")[0]
        assert b"Content-Security-Policy: default-src 'none'" in head
        assert b"<canvas" in body and b"EventSource" in body
        # no external asset: no URL to another origin, no src= of a file
        assert b"http://" not in body and b"https://" not in body and b" src=" not in body
        status, _ = _request(view.port, "/", method="HEAD")
        assert status == 200
        status, _ = _request(view.port, "/", method="POST")
        assert status == 501


def test_token_is_required_when_set() -> None:
    with _view(token="s3cret") as view:
        for target, headers in [("/", {}), ("/?token=wrong", {}), ("/events", {}), ("/events?token=s3cre", {}),
                                ("/", {"X-Enet-Token": "nope"}), ("/", {"Authorization": "Bearer x"})]:
            assert _request(view.port, target, headers)[0] == 403, (target, headers)
        assert _request(view.port, "/?token=s3cret")[0] == 200
        assert _request(view.port, "/", {"X-Enet-Token": "s3cret"})[0] == 200
        assert _request(view.port, "/", {"Authorization": "Bearer s3cret"})[0] == 200
        assert _request(view.port, "/nothing?token=s3cret")[0] == 404
        v = SseClient(view.port, "?token=s3cret").open()
        try:
            assert v.next()["type"] == "hello"
        finally:
            v.close()


def test_two_viewers_both_receive_every_camera_with_timestamps_and_numbers() -> None:
    cv2 = pytest.importorskip("cv2")
    with _view() as view:
        a, b = SseClient(view.port).open(), SseClient(view.port).open()
        try:
            for v in (a, b):
                hello = v.next()
                assert hello["type"] == "hello" and hello["cameras"] == CAMS[:2]
                assert hello["classes"] == list(DEMO_CLASSES) and hello["palette"][3] == list(DEMO_PALETTE[3])
            _wait(lambda: len(view.viewer_stats()) == 2, what="two viewers")
            t0 = time.time()
            fr = [0.5, 0.25, 0.25] + [0.0] * (len(DEMO_CLASSES) - 3)
            view.publish("rear", _frame(7), captured_at=t0, fractions=fr,
                         stats={"fps": 9.5, "latency_p50_ms": 41.0, "latency_p95_ms": float("nan"), "dropped": 3,
                                "frames": 120, "other": "ignored"})
            for v in (a, b):
                ev = v.until(lambda e: e["type"] == "frame")
                assert ev["cam"] == 1 and ev["seq"] == 1 and ev["captured_at"] == pytest.approx(t0)
                assert t0 <= ev["encoded_at"] <= ev["sent_at"] <= time.time()
                assert ev["stats"] == {"fps": 9.5, "latency_p50_ms": 41.0, "latency_p95_ms": None, "dropped": 3,
                                       "frames": 120}
                assert ev["fractions"][:3] == [0.5, 0.25, 0.25]
                img = cv2.imdecode(np.frombuffer(base64.b64decode(ev["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
                assert img.shape == (60, 80, 3) and (ev["w"], ev["h"]) == (80, 60)
                assert img[5, 5, 2] > 200 and img[50, 5, 2] < 50  # BGR kept: the top half is red
            view.publish("front", _frame(1), captured_at=time.time())
            for v in (a, b):
                assert v.until(lambda e: e["type"] == "frame")["cam"] == 0
            assert view.encoded == 2  # once per frame for both viewers
        finally:
            a.close()
            b.close()


def test_no_viewer_no_encoding_and_a_late_viewer_gets_the_newest_frames() -> None:
    with _view() as view:
        for i in range(5):
            view.publish("front", _frame(i), captured_at=time.time())
        view.publish("rear", _frame(9), captured_at=time.time())
        time.sleep(0.3)
        assert view.encoded == 0
        v = SseClient(view.port).open()
        try:
            got = {}
            while len(got) < 2:
                ev = v.until(lambda e: e["type"] == "frame")
                got[ev["cam"]] = ev["seq"]
            assert got == {0: 5, 1: 1}
            assert view.encoded == 2
        finally:
            v.close()


def test_state_reaches_viewers_and_bad_calls_fail_in_one_line() -> None:
    with _view() as view:
        v = SseClient(view.port).open()
        try:
            hello = v.next()
            assert hello["states"] == ["live", "live"]
            view.set_state("rear", "reconnecting")
            assert v.until(lambda e: e["type"] == "state" and e["state"] != "live") == {
                "type": "state", "cam": 1, "state": "reconnecting"}
            for call in (lambda: view.set_state("rear", "sleeping"), lambda: view.set_state("side", "live"),
                         lambda: view.publish("side", _frame(0), captured_at=0.0),
                         lambda: view.publish("front", np.zeros((4, 4), np.uint8), captured_at=0.0)):
                with pytest.raises(LiveViewError) as e:
                    call()
                assert "\n" not in str(e.value)
        finally:
            v.close()


def test_a_stalled_viewer_drops_its_own_frames_and_slows_no_one() -> None:
    """A viewer that never reads (its socket buffers full) neither holds publish() nor the other viewer."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)  # ~250 kB as JPEG: buffers fill fast
    with _view(cameras=["front"]) as view:
        stalled = SseClient(view.port, rcvbuf=4096)  # sends its request, never reads a byte
        reader = SseClient(view.port).open()
        try:
            _wait(lambda: len(view.viewer_stats()) == 2, what="two viewers")
            n = 150
            done = threading.Event()
            seen = []

            def read() -> None:
                with contextlib.suppress(Exception):
                    while True:
                        ev = reader.next()
                        if ev["type"] == "frame":
                            seen.append(ev["seq"])
                            if ev["seq"] == n:
                                return

            t = threading.Thread(target=read, daemon=True)
            t.start()

            def publish_all() -> None:
                for i in range(1, n + 1):
                    noise[0, 0, 0] = i % 256
                    view.publish("front", noise, captured_at=time.time())
                    time.sleep(0.01)
                done.set()

            p = threading.Thread(target=publish_all, daemon=True)
            p.start()
            p.join(timeout=120)
            assert done.is_set(), "publish() was held up"
            t.join(timeout=60)
            assert seen and seen[-1] == n, "the reading viewer did not get the newest frame"
            assert len(seen) > 1
            stats = {s["address"]: s for s in view.viewer_stats()}
            st = stats[stalled.name]
            assert st["dropped"] > 0 and st["sent"] < n, st  # it lost frames, for itself only
        finally:
            stalled.close()
            reader.close()


def test_viewers_are_bounded_and_close_frees_everything() -> None:
    view = _view(max_viewers=1).start()
    port = view.port
    v = SseClient(port).open()
    try:
        _wait(lambda: len(view.viewer_stats()) == 1, what="the viewer")
        assert _request(port, "/events")[0] == 503
        v.next()
    finally:
        view.close()
        view.close()  # idempotent
    with pytest.raises(EOFError):
        for _ in range(20):
            v.next()
    v.close()
    _wait(lambda: not [t for t in threading.enumerate() if t.name.startswith("enet-live")], what="threads to end")
    again = LiveView("127.0.0.1", port, cameras=["a"], classes=["x"], palette=[(1, 2, 3)]).start()  # port free
    again.close()
    with pytest.raises(LiveViewError):
        view.start()


def test_idle_connections_are_bounded() -> None:
    """Connections that send nothing hold at most max_viewers + 16 threads; one more is closed unanswered."""
    with _view(max_viewers=1, stall_timeout_s=60) as view:
        idle = [socket.create_connection(("127.0.0.1", view.port), timeout=10) for _ in range(1 + 16)]
        try:
            with socket.create_connection(("127.0.0.1", view.port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(1024) == b""
        finally:
            for s in idle:
                s.close()

        def page_served() -> bool:
            with contextlib.suppress(OSError, IndexError, ValueError):
                return _request(view.port, "/")[0] == 200
            return False

        _wait(page_served, what="the page once the idle connections went")


def test_nan_and_numpy_numbers_are_valid_json() -> None:
    with _view() as view:
        v = SseClient(view.port).open()
        try:
            view.publish("front", _frame(1), captured_at=time.time(), fractions=np.array([np.nan, 0.5]),
                         stats={"fps": np.float32(9.5), "frames": np.int64(3), "dropped": float("inf")})
            ev = v.until(lambda e: e["type"] == "frame")
            assert ev["stats"] == {"fps": 9.5, "frames": 3, "dropped": None}
            assert ev["fractions"] == [None, 0.5]
        finally:
            v.close()


# -- the real browser (issue 31 item 6) -------------------------------------------------------------------------

def _browser_or_skip() -> str:
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright is not installed (pip install 'enet-rt[dev]')")
    return exe


class Pipeline:
    """What the browser test watches: a URL, the camera names, and how to take a camera away.

    ``expected(camera, seq)`` gives the numbers published with a camera's
    ``seq``-th frame, or None where only their plausibility can be checked.
    """

    def __init__(self, url: str, cameras: list[str], take_away=None, expected=None, viewers=None) -> None:
        self.url = url
        self.cameras = cameras
        self.take_away = take_away
        self.expected = expected
        self.viewers = viewers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["synthetic", pytest.param("enet-run", marks=pytest.mark.slow)])
def pipeline(request):
    """A 4-camera rig at 10 fps serving the live view: synthetic, or the real enet-run on four live cameras."""
    _browser_or_skip()
    if request.param == "synthetic":
        view = LiveView("127.0.0.1", 0, token="t0k3n", cameras=CAMS, classes=DEMO_CLASSES,
                        palette=DEMO_PALETTE).start()
        rig = SyntheticRig(view, fps=10.0).start()
        try:
            yield Pipeline(view.url, CAMS, take_away=rig.take_away, expected=lambda cam, seq: expected_stats(seq),
                           viewers=view.viewer_stats)
        finally:
            rig.close()
            view.close()
        return
    # four live cameras that run until stopped (the shipped clip lasts 7 s): three test:// patterns and, where
    # GStreamer's RTSP server runs, an RTSP camera second, whose server the test kills ("a camera taken away")
    from tests.deploy.test_rig_rtsp import Server

    server = None
    try:
        server = Server(_free_port(), "rtspcam").start()
    except pytest.skip.Exception:
        server = None
    pattern = "test://?size=480x360&fps=10&live=1"
    cams = [pattern, server.url if server else pattern, pattern, pattern]
    port = _free_port()
    exe = Path(sys.executable).with_name("enet-run")
    cmd = [str(exe), *cams, "--live", "--no-display", "--input-latency", "0", f"http://127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(lambda: proc.poll() is not None or _port_open(port), timeout=120, what="enet-run to serve")
        if proc.poll() is not None:
            pytest.fail(f"enet-run exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        yield Pipeline(f"http://127.0.0.1:{port}/", [], take_away=(lambda _name: server.stop()) if server else None,
                       expected=None)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if server is not None:
            server.stop()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


_TILES_JS = """() => Array.from(document.querySelectorAll('#cams .cam')).map((t) => {
  const txt = (k) => t.querySelector('.' + k).textContent;
  const c = t.querySelector('canvas');
  return {name: t.dataset.camera, seq: Number(t.dataset.seq || 0), state: txt('state'),
          reconnecting: t.classList.contains('reconnecting'), fps: txt('fps'), p50: txt('p50'), p95: txt('p95'),
          dropped: txt('dropped'), frames: txt('frames'), screen: txt('screen'),
          pixels: c.toDataURL('image/png')};
})"""


def _tiles(page) -> dict[str, dict]:
    tiles = page.evaluate(_TILES_JS)
    for t in tiles:
        t["pixels"] = hashlib.sha256(t.pop("pixels").encode()).hexdigest()
    return {t["name"]: t for t in tiles}


def _num(text: str) -> float:
    return float(text) if text not in ("", "\u2013") else math.nan


@pytest.mark.slow
def test_browser_shows_every_camera_live(pipeline: Pipeline, capsys) -> None:
    exe = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="enet-live-test-") as profile, sync_playwright() as pw:
        ctx = launch_browser(pw, profile, exe)
        try:
            pages = [ctx.new_page(), ctx.new_page()]  # two viewers
            for p in pages:
                p.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}"))
                p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                p.goto(pipeline.url)
            for p in pages:
                p.wait_for_function("() => window.enetLive && window.enetLive.connected", timeout=20000)
            cameras = pipeline.cameras or pages[0].evaluate("() => window.enetLive.config.cameras")
            assert len(cameras) >= 3
            if pipeline.viewers:
                assert len(pipeline.viewers()) == 2

            # each camera's image updates: several distinct frames on the canvas within a few seconds, both pages
            for p in pages:
                seen: dict[str, set] = {c: set() for c in cameras}
                end = time.monotonic() + 20
                while min(len(s) for s in seen.values()) < 5 and time.monotonic() < end:
                    for name, t in _tiles(p).items():
                        seen[name].add(t["pixels"])
                    time.sleep(0.15)
                assert min(len(s) for s in seen.values()) >= 5, {c: len(s) for c, s in seen.items()}

            # the numbers shown are those published with the frame shown
            for p in pages:
                for name, t in _tiles(p).items():
                    assert t["state"] == "live" and t["seq"] > 0, t
                    if pipeline.expected is not None:
                        want = pipeline.expected(name, t["seq"])
                        assert _num(t["fps"]) == pytest.approx(want["fps"], abs=0.051), t
                        assert _num(t["p50"]) == pytest.approx(want["latency_p50_ms"], abs=0.51), t
                        assert _num(t["p95"]) == pytest.approx(want["latency_p95_ms"], abs=0.51), t
                        assert _num(t["dropped"]) == want["dropped"] and _num(t["frames"]) == want["frames"], t
                    else:
                        assert 0 <= _num(t["fps"]) < 1000 and _num(t["frames"]) >= 1, t
                        assert _num(t["p95"]) >= _num(t["p50"]) >= 0 and _num(t["dropped"]) >= 0, t
                    assert _num(t["screen"]) >= 0, t

            # a camera taken away is shown as reconnecting while the others keep updating
            if pipeline.take_away is not None:
                gone = cameras[1]
                pipeline.take_away(gone)
                for p in pages:
                    p.wait_for_function(
                        "(n) => { const t = document.querySelector(`#cams .cam[data-camera='${n}']`);"
                        " return t.classList.contains('reconnecting') &&"
                        " t.querySelector('.state').textContent === 'reconnecting'; }", arg=gone, timeout=10000)
                others = [c for c in cameras if c != gone]

                def others_advance(p, seqs):
                    p.wait_for_function(
                        "([names, seqs]) => names.every((n, i) => Number(document.querySelector("
                        "`#cams .cam[data-camera='${n}']`).dataset.seq) >= seqs[i] + 5)",
                        arg=[others, [seqs[c]["seq"] for c in others]], timeout=20000)

                for p in pages:
                    # a frame it captured before it went away may still come out of inference once
                    others_advance(p, _tiles(p))
                    settled = _tiles(p)
                    others_advance(p, settled)
                    now = _tiles(p)
                    assert now[gone]["seq"] == settled[gone]["seq"] and now[gone]["reconnecting"]
                    assert all(not now[c]["reconnecting"] and now[c]["state"] == "live" for c in cameras if c != gone)

            # the page measures and shows its latency (capture to screen, from the server's timestamps)
            for p in pages:
                assert p.inner_text("#screen").startswith("frame to screen p50 ")
            samples = [s for p in pages for s in p.evaluate("() => window.enetLive.samples")]
            lat = summarise(samples)
            assert lat["frames"] > 0 and lat["p50_ms"] >= 0
            shot = os.environ.get("ENET_SCREENSHOT")
            if shot:
                pages[0].set_viewport_size({"width": 1280, "height": 660})
                pages[0].screenshot(path=shot, full_page=True)
            with capsys.disabled():
                print(f"\nlive view, 2 viewers, {len(cameras)} cameras: frame to screen p50 {lat['p50_ms']:.0f} ms, "
                      f"p95 {lat['p95_ms']:.0f} ms over {lat['frames']} frames (capture to sent p50/p95 "
                      f"{lat['server_p50_ms']:.0f}/{lat['server_p95_ms']:.0f} ms, sent to shown "
                      f"{lat['browser_p50_ms']:.0f}/{lat['browser_p95_ms']:.0f} ms)")
            assert not problems, problems
        finally:
            ctx.close()
