"""Bounded waits with real RTSP cameras (issue 31 items 2-3, issue 29.16): a local gst-rtsp-server
process serves an endless test pattern; the tests kill it, freeze it (SIGSTOP: the socket stays open) or
listen without ever answering. The times asserted are the issue's own bounds (give up within 8 s of the
last frame with --reconnect-timeout 5; reported reconnecting within 3 s), with the process's real clock."""

from __future__ import annotations

import _thread
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch  # noqa: F401 - before gi (see enet.deploy.gst.gst)

pytestmark = pytest.mark.gstreamer

_GUARD_S = 30.0  # a guard against a hung test, never a measurement


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m enet.deploy.rtsp_serve pattern:96x64@10`` in a process of its own."""

    def __init__(self, port: int, path: str = "cam") -> None:
        self.port, self.path = port, path
        self.url = f"rtsp://127.0.0.1:{port}/{path}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        self.proc = subprocess.Popen([sys.executable, "-m", "enet.deploy.rtsp_serve", "pattern:96x64@10",
                                      "--port", str(self.port), "--path", self.path],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # printed once it listens
        if "rtsp_serve:" not in line:
            err = self.proc.stderr.read()[-500:] if self.proc.poll() is not None else ""
            self.stop()
            pytest.skip(f"cannot serve RTSP here (gst-rtsp-server, x264enc): {line.strip()} {err}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with_cont = getattr(self, "stopped", False)
            if with_cont:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def freeze(self) -> None:
        self.stopped = True
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.stopped = False
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def servers():
    made: list[Server] = []

    def make(path: str = "cam", port: int | None = None) -> Server:
        s = Server(port or _free_port(), path)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop()


def _config(tiny, **kw):
    from enet.deploy.cli import RunConfig

    return RunConfig(model=str(tiny), backend="torch", threads=1, input_latency=0, **kw)


def test_a_frozen_camera_is_given_up_within_8_s(servers, tiny_checkpoint):
    """--reconnect-timeout 5, the server frozen mid-stream (SIGSTOP, socket open): the run ends within 8 s
    of the last frame, and its message states the real time (issue: 121 s, saying 5 s)."""
    from enet.deploy.cli import run
    from enet.deploy.errors import SourceError

    srv = servers()
    last = []

    def on_frame(n, rec):
        last[:] = [time.monotonic()]
        if n == 5:
            srv.freeze()

    with pytest.raises(SourceError) as exc:
        run(_config(tiny_checkpoint, input=srv.url, reconnect_timeout=5.0, on_frame=on_frame))
    gave_up_after = time.monotonic() - last[0]
    said = float(re.search(r"no frame from \S+ for ([0-9.]+) s", str(exc.value)).group(1))
    assert gave_up_after < 8.0, (gave_up_after, str(exc.value))
    # the message counts from the last frame's read; this test's clock from its output, after inference
    assert 5.0 <= said < 8.0 and said > gave_up_after - 0.5, (said, gave_up_after)


def test_a_silent_camera_is_given_up_within_the_timeout(tiny_checkpoint):
    """A camera that accepts the connection and never answers (a hung RTSP camera): within 8 s."""
    from enet.deploy.cli import run
    from enet.deploy.errors import SourceError

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel accepts; nobody answers
        port = listener.getsockname()[1]
        t = time.monotonic()
        with pytest.raises(SourceError) as exc:
            run(_config(tiny_checkpoint, input=f"rtsp://127.0.0.1:{port}/cam", reconnect_timeout=5.0))
        took = time.monotonic() - t
    said = float(re.search(r"for ([0-9.]+) s", str(exc.value)).group(1))
    assert took < 8.0 and 5.0 <= said <= took + 0.1, (took, str(exc.value))


def test_no_camera_holds_another_hostage(servers, tiny_checkpoint, monkeypatch):
    """One camera's server killed, another's frozen: both reported reconnecting within 3 s of their last
    frame while the third keeps delivering; both come back when their source returns."""
    import enet.deploy.rigrun as rigrun
    from enet.deploy.cli import run
    from enet.deploy.rigfile import CameraSpec
    from tests.deploy.test_rig import FakeLiveView, _fake_parse

    killed, frozen = servers("killed"), servers("frozen")
    FakeLiveView.made.clear()
    states: list[tuple[float, str, str]] = []

    class View(FakeLiveView):
        def set_state(self, camera, state):
            states.append((time.monotonic(), camera, state))

    monkeypatch.setattr(rigrun, "live_view_api", lambda: (View, _fake_parse))
    frames: dict[str, list[float]] = {"killed": [], "frozen": [], "pattern": []}
    phase = {"t_gone": None, "t_back": None}

    def on_frame(n, rec):
        frames[rec["camera"]].append(time.monotonic())

    def script():
        deadline = time.monotonic() + _GUARD_S
        while min(len(v) for v in frames.values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        killed.stop()
        frozen.freeze()
        phase["t_gone"] = time.monotonic()
        time.sleep(4.0)  # both are gone; the pattern camera goes on
        killed.proc = None
        servers("killed", port=killed.port)
        frozen.thaw()
        phase["t_back"] = time.monotonic()
        while time.monotonic() < deadline:
            if {"killed", "frozen"} <= {c for t, c, s in states if s == "live" and t > phase["t_gone"]}:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        # enet-run's Ctrl-C: a clean stop. Raised as Python's SIGINT in the main thread, not sent by the OS:
        # a real signal runs CPython's C handler on the thread's alternate signal stack, which a library an
        # earlier test loaded may have left too small for an AVX-512 CPU's register save (a segfault in
        # _dl_runtime_resolve_xsavec, seen only after tests/api and tests/bench in one process)
        _thread.interrupt_main(signal.SIGINT)

    cams = [CameraSpec("killed", killed.url), CameraSpec("frozen", frozen.url),
            CameraSpec("pattern", "test://?size=96x64&fps=10&live=1")]
    th = threading.Thread(target=script, daemon=True)
    th.start()
    s = run(_config(tiny_checkpoint, input="", cameras=cams, outputs=["http://127.0.0.1:1"], on_frame=on_frame,
                    reconnect_timeout=30.0, stall_timeout=2.0))
    th.join(_GUARD_S)
    assert s.stopped_by == "SIGINT"
    t_gone = phase["t_gone"]
    for cam in ("killed", "frozen"):
        last = max(t for t in frames[cam] if t <= t_gone + 0.5)
        told = [t for t, c, st in states if c == cam and st == "reconnecting" and t >= last]
        assert told and told[0] - last < 3.0, (cam, told and told[0] - last)
        assert any(c == cam and st == "live" and t > told[0] for t, c, st in states), states  # it came back
        assert any(t > phase["t_back"] for t in frames[cam])  # and delivers again
    during = [t for t in frames["pattern"] if t_gone <= t <= t_gone + 4.0]
    assert len(during) >= 10, len(during)  # the pattern camera kept going (10 fps; generous under load)
    by = {c["name"]: c for c in s.cameras}
    assert by["killed"]["reconnects"] >= 1 and by["frozen"]["reconnects"] >= 1
