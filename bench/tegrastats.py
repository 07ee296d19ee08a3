"""Jetson power from ``tegrastats``: a parser for one line and a background sampler.

Rail names and units differ by module: TX1/TX2 and Xavier NX print
``VDD_IN cur/avg`` in mW without units, Nano ``POM_5V_IN cur/avg``, AGX
Xavier only per-rail ``GPU``, ``CPU``, ``SOC``, ``CV``, ``VDDRQ``, ``SYS5V``,
Orin (JetPack 5/6) ``NAME curmW/avgmW``, with ``VDD_IN`` on Orin NX/Nano and
only ``VDD_GPU_SOC``, ``VDD_CPU_CV``, ``VIN_SYS_5V0`` ... on AGX Orin. The
module input rail is used when present; otherwise all rails are summed (as
jetson-stats does).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Rails that measure the whole module input, in order of preference.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "LFB"}
_RAIL_RE = re.compile(
    r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?:/(\d+(?:\.\d+)?)(?:mW)?)?(?=\s|$)"
)
_GR3D_RE = re.compile(r"GR3D_FREQ (\d+)%(?:@\[?(\d+))?")
_RAM_RE = re.compile(r"\bRAM (\d+)/(\d+)MB")
_TEMP_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")


@dataclass
class TegraSample:
    """One parsed tegrastats line.

    Attributes:
        rails: rail name -> instantaneous power in mW.
        total_mw: module power in mW (input rail, or the sum of all rails).
        total_source: the rail used, or ``"sum(A+B+...)"``; None without rails.
        gpu_util: GR3D load in percent; gpu_mhz its frequency when printed.
    """

    rails: dict[str, float] = field(default_factory=dict)
    total_mw: float | None = None
    total_source: str | None = None
    gpu_util: float | None = None
    gpu_mhz: float | None = None
    ram_used_mb: float | None = None
    temps_c: dict[str, float] = field(default_factory=dict)


def parse_tegrastats(line: str) -> TegraSample:
    """Parse one tegrastats line from any Jetson generation (see module docstring)."""
    s = TegraSample()
    for name, cur, _avg, _extra in _RAIL_RE.findall(line):
        if name in _NOT_RAILS:
            continue
        s.rails[name] = float(cur)
    for name in TOTAL_RAILS:
        if name in s.rails:
            s.total_mw, s.total_source = s.rails[name], name
            break
    else:
        if s.rails:
            s.total_mw = sum(s.rails.values())
            s.total_source = "sum(" + "+".join(s.rails) + ")"
    m = _GR3D_RE.search(line)
    if m:
        s.gpu_util = float(m.group(1))
        s.gpu_mhz = float(m.group(2)) if m.group(2) else None
    m = _RAM_RE.search(line)
    if m:
        s.ram_used_mb = float(m.group(1))
    s.temps_c = {k: float(v) for k, v in _TEMP_RE.findall(line)}
    return s


class TegrastatsSampler:
    """Run ``tegrastats`` in the background and average module power over a window.

    Usage::

        with TegrastatsSampler() as ts:
            ...warm up...
            ts.mark()          # start of the measured window
            ...measure...
            summary = ts.summary(frames=n)

    Args:
        interval_ms: tegrastats ``--interval``.
        command: the command to run (tests pass a script printing sample lines).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.command = list(command) if command else ["tegrastats", "--interval", str(interval_ms)]
        self._clock = clock
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._samples: list[tuple[float, TegraSample]] = []
        self._t0: float | None = None
        self._t1: float | None = None
        self.error: str | None = None

    def start(self) -> TegrastatsSampler:
        if shutil.which(self.command[0]) is None:
            self.error = f"{self.command[0]} not found; power and energy not measured"
            return self
        try:
            self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          text=True, bufsize=1)
        except OSError as exc:
            self.error = f"cannot run {self.command[0]} ({exc.strerror}); power and energy not measured"
            return self
        self._thread = threading.Thread(target=self._reader, name="tegrastats", daemon=True)
        self._thread.start()
        return self

    def _reader(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_tegrastats(line)
            with self._lock:
                self._samples.append((self._clock(), sample))

    def feed(self, line: str, t: float | None = None) -> None:
        """Add a line as if tegrastats printed it (tests, log replay)."""
        with self._lock:
            self._samples.append((self._clock() if t is None else t, parse_tegrastats(line)))

    def mark(self) -> None:
        """Start of the measured window; samples before it are ignored."""
        self._t0 = self._clock()
        self._t1 = None

    def end(self) -> None:
        """End of the measured window (default: when summary() is called)."""
        self._t1 = self._clock()

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> TegrastatsSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def window(self) -> list[TegraSample]:
        t0 = self._t0 if self._t0 is not None else float("-inf")
        t1 = self._t1 if self._t1 is not None else float("inf")
        with self._lock:
            return [s for t, s in self._samples if t0 <= t <= t1]

    def summary(self, *, frames: int, seconds: float) -> dict[str, Any]:
        """Average power (W) over the window and energy per frame (J) for ``frames`` in ``seconds``."""
        if self._t1 is None:
            self.end()
        samples = [s for s in self.window() if s.total_mw is not None]
        if not samples:
            reason = self.error or "tegrastats printed no power rails during the run"
            return {"power_w": None, "energy_j_per_frame": None, "samples": 0, "reason": reason}
        power_w = sum(s.total_mw for s in samples) / len(samples) / 1000.0  # type: ignore[misc]
        return {
            "power_w": power_w,
            "energy_j_per_frame": power_w * seconds / frames if frames else None,
            "samples": len(samples),
            "rail": samples[-1].total_source,
            "gpu_util_mean": (sum(s.gpu_util for s in samples if s.gpu_util is not None)
                              / max(1, sum(1 for s in samples if s.gpu_util is not None))),
        }
