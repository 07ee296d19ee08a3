"""How late the live view's browsers show each frame: p50/p95 of capture-to-screen with several viewers.

A benchmark, not a test: a synthetic rig (:class:`SyntheticRig`, also the
browser test's stand-in pipeline) publishes 480x360 overlays at 10 fps per
camera into a :class:`~enet.deploy.live.LiveView`; headless Chromium
(Debian's ``chromium``, driven by Playwright, nothing downloaded) opens the
page in ``--viewers`` tabs; after a warm-up, each page's measured
``shown_at - captured_at`` (``window.enetLive.samples``, same machine clock)
is collected and summarised::

    python -m enet.deploy.live_bench --cameras 4 --viewers 2 --seconds 20

Needs the dev extra (``playwright``) and ``/usr/bin/chromium``
(``apt-get install chromium``). Numbers measured here live in docs/deploy.md.
It sits in ``enet.deploy`` beside the view it drives (``enet.bench`` may not
import ``enet.deploy``: tests/test_layers.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Chromium's flags for a closed network: without the background-networking ones it tries to reach
#: Google's services at start-up, which this kind of network refuses.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                  "--disable-backgrounding-occluded-windows")

#: CamVid's 11 classes and the shipped model's colours, for a rig without a model.
DEMO_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                "Pedestrian", "Bicyclist")
DEMO_PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
                (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))

_SHARES = np.array([0.16, 0.22, 0.02, 0.3, 0.1, 0.1, 0.01, 0.02, 0.03, 0.02, 0.02])


def find_chromium() -> str | None:
    """The Chromium binary to drive: $ENET_CHROMIUM when set (None if it is not one), else
    /usr/bin/chromium or chromium on PATH; None without one."""
    env = os.environ.get("ENET_CHROMIUM")
    for cand in ((env,) if env else ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def expected_stats(seq: int) -> dict[str, float]:
    """The numbers :class:`SyntheticRig` publishes with a camera's ``seq``-th frame (1-based)."""
    return {"fps": 9.0 + (seq % 10) / 10.0, "latency_p50_ms": 40.0 + seq % 7, "latency_p95_ms": 80.0 + seq % 13,
            "dropped": seq // 50, "frames": seq}


class SyntheticRig:
    """Cameras that publish synthetic overlays into a live view, each on its own thread.

    Frame ``seq`` of a camera is bands of class colours that move with time,
    the camera's name and ``seq`` written on it, published with
    :func:`expected_stats` ``(seq)`` and the bands' class fractions.

    Args:
        view: a started :class:`~enet.deploy.live.LiveView` whose cameras these are.
        fps: frames per second per camera.
        size: ``(width, height)``.
    """

    def __init__(self, view: Any, *, fps: float = 10.0, size: tuple[int, int] = (480, 360)) -> None:
        self.view = view
        self.fps = fps
        self.size = size
        self.published = {c: 0 for c in view.cameras}
        self._paused: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(c, i), name=f"rig-{c}", daemon=True)
                         for i, c in enumerate(view.cameras)]

    def start(self) -> SyntheticRig:
        for t in self._threads:
            t.start()
        return self

    def take_away(self, camera: str) -> None:
        """The camera's source is gone: it stops publishing and is shown as reconnecting."""
        self._paused.add(camera)
        self.view.set_state(camera, "reconnecting")

    def bring_back(self, camera: str) -> None:
        self.view.set_state(camera, "live")
        self._paused.discard(camera)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5.0)

    def _frame(self, camera: str, index: int, seq: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        from enet._lazy import require

        cv2 = require("cv2")
        w, h = self.size
        k = len(DEMO_CLASSES)
        cum = np.cumsum(_SHARES[:k]) / np.sum(_SHARES[:k])
        u = (np.arange(h) / h + 0.01 * seq + 0.25 * index) % 1.0
        rows = np.minimum(np.searchsorted(cum, u), k - 1)[:, None]        # class bands drift down
        wide = int(w * (0.2 + 0.15 * np.sin(seq / 15.0 + index)))
        cols = (np.arange(w)[None, :] + 8 * seq) % w < wide                 # a car-coloured block slides right
        labels = np.where(cols, 8 % k, rows).astype(np.int64)
        bgr = np.asarray(DEMO_PALETTE, dtype=np.uint8)[labels][..., ::-1].copy()
        cv2.putText(bgr, f"{camera} #{seq}", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2,
                    cv2.LINE_AA)
        fractions = np.bincount(labels.ravel(), minlength=n)[:n] / labels.size
        return bgr, fractions

    def _run(self, camera: str, index: int) -> None:
        period = 1.0 / self.fps
        nxt = time.monotonic()
        n = len(self.view.classes)
        while not self._stop.is_set():
            nxt += period
            if camera not in self._paused:
                captured_at = time.time()
                seq = self.published[camera] + 1
                frame, fractions = self._frame(camera, index, seq, n)
                self.view.publish(camera, frame, captured_at=captured_at, stats=expected_stats(seq),
                                  fractions=fractions.tolist())
                self.published[camera] = seq
            delay = nxt - time.monotonic()
            if delay < -period:  # fell behind (a busy machine): skip ahead, as a camera would
                nxt = time.monotonic()
            self._stop.wait(max(0.0, delay))


def launch_browser(playwright: Any, user_data_dir: str, executable: str | None = None) -> Any:
    """A headless Chromium context (Playwright's persistent context: a fresh ``--user-data-dir``)."""
    return playwright.chromium.launch_persistent_context(
        user_data_dir, executable_path=executable or find_chromium(), headless=True, args=list(CHROMIUM_FLAGS),
        viewport={"width": 1280, "height": 1000})


def summarise(samples: Sequence[dict[str, Any]]) -> dict[str, float]:
    """p50/p95 (ms) of capture-to-screen and of its parts, over page samples of ``window.enetLive``."""
    def q(xs: list[float], p: float) -> float:
        if not xs:
            return float("nan")
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    total = [s["latency_ms"] for s in samples]
    server = [1000 * (s["sent_at"] - s["captured_at"]) for s in samples]
    browser = [1000 * (s["shown_at"] - s["sent_at"]) for s in samples]
    return {"frames": len(samples), "p50_ms": q(total, 0.5), "p95_ms": q(total, 0.95), "max_ms": max(total or [0]),
            "server_p50_ms": q(server, 0.5), "server_p95_ms": q(server, 0.95),
            "browser_p50_ms": q(browser, 0.5), "browser_p95_ms": q(browser, 0.95)}


def measure(*, cameras: int = 4, viewers: int = 2, seconds: float = 20.0, warmup: float = 3.0,
            fps: float = 10.0, size: tuple[int, int] = (480, 360)) -> dict[str, Any]:
    """Run the rig and ``viewers`` pages; returns :func:`summarise` per viewer and over all."""
    from playwright.sync_api import sync_playwright

    from enet.deploy.live import LiveView

    names = ["front", "rear", "left", "right", "cam4", "cam5", "cam6", "cam7"][:cameras]
    names += [f"cam{i}" for i in range(len(names), cameras)]
    view = LiveView("127.0.0.1", 0, cameras=names, classes=DEMO_CLASSES, palette=DEMO_PALETTE).start()
    rig = SyntheticRig(view, fps=fps, size=size).start()
    try:
        with tempfile.TemporaryDirectory(prefix="enet-live-bench-") as profile, sync_playwright() as pw:
            ctx = launch_browser(pw, profile)
            try:
                pages = [ctx.new_page() for _ in range(viewers)]
                for p in pages:
                    p.goto(view.url)
                time.sleep(warmup)
                start = time.time()
                time.sleep(seconds)
                per = [p.evaluate("(t) => window.enetLive.samples.filter((s) => s.captured_at >= t)", start)
                       for p in pages]
            finally:
                ctx.close()
    finally:
        rig.close()
        view.close()
    result: dict[str, Any] = {"cameras": cameras, "viewers": viewers, "seconds": seconds, "fps": fps,
                              "size": size, "all": summarise([s for v in per for s in v])}
    result["per_viewer"] = [summarise(v) for v in per]
    result["shown_fps_per_camera"] = [len(v) / seconds / cameras for v in per]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m enet.deploy.live_bench", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m enet.deploy.live_bench --cameras 4 --viewers 2 --seconds 20")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--viewers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=10.0)
    args = ap.parse_args(argv)
    if find_chromium() is None:
        ap.error("no Chromium found (apt-get install chromium, or set ENET_CHROMIUM)")
    r = measure(cameras=args.cameras, viewers=args.viewers, seconds=args.seconds, fps=args.fps)
    a = r["all"]
    print(f"live view: {args.cameras} cameras x {args.fps:g} fps at {r['size'][0]}x{r['size'][1]}, "
          f"{args.viewers} viewers, {args.seconds:g} s")
    print(f"capture to screen: p50 {a['p50_ms']:.0f} ms, p95 {a['p95_ms']:.0f} ms, max {a['max_ms']:.0f} ms "
          f"over {a['frames']} frames shown")
    print(f"  server (capture to sent): p50 {a['server_p50_ms']:.0f} ms, p95 {a['server_p95_ms']:.0f} ms; "
          f"browser (sent to shown): p50 {a['browser_p50_ms']:.0f} ms, p95 {a['browser_p95_ms']:.0f} ms")
    for i, (v, f) in enumerate(zip(r["per_viewer"], r["shown_fps_per_camera"])):
        print(f"  viewer {i + 1}: p50 {v['p50_ms']:.0f} ms, p95 {v['p95_ms']:.0f} ms, "
              f"{f:.1f} fps shown per camera")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
