"""What the benchmark ran on: device facts, software versions, Jetson power.

Every probe is a pure parser (tested on sample text) plus a thin reader that
runs a command or reads a file and never raises: a probe that cannot answer
records ``None`` and, where it matters, a warning.

Jetson sources (L4T / JetPack):

- board model: ``/proc/device-tree/model`` (NUL-terminated);
- L4T release: ``/etc/nv_tegra_release``;
- power mode: ``nvpmodel -q`` (not on TX1, which predates nvpmodel);
- clocks locked: ``jetson_clocks --show`` (needs root) or, failing that, the
  cpufreq/devfreq ``min == max`` check in sysfs that ``jetson_clocks`` leaves;
- power: ``tegrastats`` rails, in :mod:`enet.bench.tegrastats`.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
import typing
from typing import Any

log = logging.getLogger(__name__)

Runner = typing.Callable[[typing.Sequence[str]], typing.Optional[str]]  # typing.: run time on Python 3.8


def run_command(cmd: Sequence[str], timeout: float = 5.0) -> str | None:
    """stdout of ``cmd``, or None when it is missing, fails or times out."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


# ---------------------------------------------------------------- versions

def package_version(dist: str, module: str | None = None) -> str | None:
    """Installed version of ``dist``; falls back to ``module.__version__``.

    JetPack's TensorRT is a system package without pip metadata, hence the
    fallback import (only reached when pip knows nothing of it).
    """
    from importlib import metadata
    from importlib.util import find_spec

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        pass
    module = module or dist
    try:
        if find_spec(module) is None:
            return None
        import importlib

        return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except Exception:  # noqa: BLE001 - a broken install reads as "not installed"
        return None


def versions() -> dict[str, str | None]:
    """Toolkit and runtime versions every report records (None: not installed)."""
    tensorrt = package_version("tensorrt")
    if tensorrt is None:  # TensorRT wheels also ship as tensorrt-cu12 etc.
        for dist in ("tensorrt-cu12", "tensorrt-cu11", "tensorrt_libs"):
            tensorrt = package_version(dist, "tensorrt") or tensorrt
    return {
        "enet-rt": package_version("enet-rt", "enet"),
        "python": platform.python_version(),
        "numpy": package_version("numpy"),
        "torch": package_version("torch"),
        "onnx": package_version("onnx"),
        "onnxruntime": package_version("onnxruntime") or package_version("onnxruntime-gpu", "onnxruntime"),
        "openvino": package_version("openvino"),
        "tensorrt": tensorrt,
    }


# --------------------------------------------------------------------- CPU

def parse_cpuinfo(text: str) -> dict[str, Any]:
    """``/proc/cpuinfo`` -> model name, logical and physical core counts."""
    model = None
    logical = 0
    cores: set[tuple[str, str]] = set()
    phys = core = None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if phys is not None and core is not None:
                cores.add((phys, core))
            phys = core = None
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            logical += 1
        elif key in ("model name", "hardware", "cpu model") and not model:
            model = value
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
    return {"model": model, "logical_cores": logical or None, "physical_cores": len(cores) or None}


#: ``/proc/cpuinfo`` flags -> the ISA names ``enet-bench`` prints with every CPU figure (first match wins).
_ISA_FLAGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("VNNI", ("avx512_vnni", "avx_vnni")),
    ("BF16", ("avx512_bf16", "amx_bf16")),
    ("AMX", ("amx_tile", "amx_int8")),
    ("NEON", ("asimd",)),
    ("dot-product", ("asimddp",)),
    ("I8MM", ("i8mm",)),
    ("SVE", ("sve",)),
)


def cpu_isa(cpuinfo: str | None = None, *, root: Path = Path("/"), environ: Mapping[str, str] | None = None) -> str:
    """The vector ISA of this CPU as the bench names it: ``"AVX2 AVX-512 VNNI BF16"``; ``"unknown"``.

    With ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) set, OpenVINO's and oneDNN's kernels are
    those of the level it names, and the text says so: ``"AVX2 AVX-512 VNNI BF16, kernels capped at
    AVX2 (ONEDNN_MAX_CPU_ISA)"`` (how docs/bench.md emulates an AVX2-only CPU).

    Args:
        cpuinfo: ``/proc/cpuinfo`` text (tests); read from ``root`` when None.
        environ: the environment (tests; default ``os.environ``).
    """
    from enet.cpus import kernel_isa_cap

    text = cpuinfo if cpuinfo is not None else (_read(root / "proc/cpuinfo") or "")
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    names = [name for name, keys in _ISA_FLAGS if any(k in flags for k in keys)]
    if names and "AVX-512" not in names and "AVX2" in names:
        names.insert(1, "no AVX-512")
    text = " ".join(names) or "unknown"
    cap = kernel_isa_cap(environ)
    return text if cap is None else f"{text}, kernels capped at {cap[0]} ({cap[1]})"


def cpu_info(threads: int | None = None, *, root: Path = Path("/")) -> dict[str, Any]:
    """CPU model, cores, ISA and the inference threads in use."""
    info = parse_cpuinfo(_read(root / "proc/cpuinfo") or "")
    info["isa"] = cpu_isa(root=root)
    if not info["model"]:
        info["model"] = platform.processor() or platform.machine() or None
    info["logical_cores"] = info["logical_cores"] or os.cpu_count()
    try:
        info["available_cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["available_cores"] = os.cpu_count()
    if threads is None:
        # PyTorch's pool size, only when it is loaded already: probing must not
        # import torch (an .onnx/.engine run has none)
        torch = sys.modules.get("torch")
        try:
            threads = torch.get_num_threads() if torch is not None else None
        except Exception:  # noqa: BLE001
            threads = None
    info["threads_used"] = threads
    info["machine"] = platform.machine()
    info["os"] = f"{platform.system()} {platform.release()}"
    return info


# ----------------------------------------------------------------- desktop

NVSMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem",
                "power.limit", "pstate")


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi --query-gpu=<NVSMI_FIELDS> --format=csv,noheader,nounits`` -> one dict per GPU."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(NVSMI_FIELDS):
            continue
        gpu: dict[str, Any] = {}
        for key, value in zip(NVSMI_FIELDS, parts):
            if value in ("[N/A]", "N/A", "[Not Supported]", ""):
                gpu[key] = None
                continue
            if key.startswith("clocks") or key == "power.limit":
                try:
                    gpu[key] = float(value)
                except ValueError:
                    gpu[key] = None
            else:
                gpu[key] = value
        gpus.append(gpu)
    return gpus


def desktop_info(run: Runner = run_command) -> dict[str, Any]:
    """GPU name, driver and clocks (MHz) from nvidia-smi; None fields when absent."""
    out = run(["nvidia-smi", f"--query-gpu={','.join(NVSMI_FIELDS)}", "--format=csv,noheader,nounits"])
    gpus = parse_nvidia_smi(out) if out else []
    info: dict[str, Any] = {"gpus": gpus, "warnings": []}
    if not gpus:
        info["warnings"].append("nvidia-smi is not available; GPU name, driver and clocks not recorded")
        return info
    g = gpus[0]
    info.update({"gpu": g.get("name"), "driver": g.get("driver_version"),
                 "sm_clock_mhz": g.get("clocks.sm"), "sm_clock_max_mhz": g.get("clocks.max.sm"),
                 "mem_clock_mhz": g.get("clocks.mem"), "mem_clock_max_mhz": g.get("clocks.max.mem")})
    return info


# ------------------------------------------------------------------ Jetson

def parse_device_tree_model(raw: str | None) -> str | None:
    """``/proc/device-tree/model`` holds a NUL-terminated string."""
    if not raw:
        return None
    model = raw.replace("\x00", "").strip()
    return model or None


def parse_nv_tegra_release(text: str | None) -> str | None:
    """``# R32 (release), REVISION: 7.1, ...`` -> ``"32.7.1"``."""
    if not text:
        return None
    m = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def parse_nvpmodel(text: str | None) -> dict[str, Any] | None:
    """``nvpmodel -q`` -> ``{"name": "MAXN", "id": 0}``.

    The output is ``NV Power Mode: <name>`` then the mode id on its own line,
    sometimes after ``NV Fan Mode:...`` lines.
    """
    if not text:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        m = re.match(r"NV Power Mode\s*:\s*(\S.*)$", ln)
        if m:
            mode_id = None
            if i + 1 < len(lines) and lines[i + 1].isdigit():
                mode_id = int(lines[i + 1])
            return {"name": m.group(1).strip(), "id": mode_id}
    return None


def parse_jetson_clocks_show(text: str | None) -> dict[str, Any] | None:
    """``jetson_clocks --show`` -> ``{"locked": bool, "unlocked": [...], "gpu_mhz": ...}``.

    ``jetson_clocks`` pins every online CPU, the GPU and the EMC at their
    maximum: MinFreq == MaxFreq (and ``FreqOverride=1`` for the EMC).
    """
    if not text:
        return None
    unlocked: list[str] = []
    seen = False
    gpu_mhz = None
    for ln in text.splitlines():
        ln = ln.strip()
        fields = dict(re.findall(r"(\w+)=(\S+)", ln))
        m = re.match(r"(cpu\d+|GPU|EMC)\b", ln)
        if not m or "MaxFreq" not in fields:
            continue
        name = m.group(1)
        if name.startswith("cpu") and fields.get("Online", "1") == "0":
            continue
        seen = True
        if fields.get("MinFreq") != fields.get("MaxFreq"):
            if name == "EMC" and fields.get("FreqOverride") == "1":
                continue
            unlocked.append(name)
        if name == "GPU":
            try:
                gpu_mhz = int(fields.get("CurrentFreq", "")) / 1e6
            except ValueError:
                pass
    if not seen:
        return None
    return {"locked": not unlocked, "unlocked": unlocked, "gpu_mhz": gpu_mhz, "source": "jetson_clocks --show"}


#: devfreq node names of Jetson GPUs (TX1, TX2, Xavier, Orin).
_GPU_DEVFREQ = ("57000000.gpu", "17000000.gp10b", "17000000.gv11b", "17000000.ga10b", "gpu")


def clocks_locked_sysfs(root: Path = Path("/")) -> dict[str, Any] | None:
    """The sysfs trace ``jetson_clocks`` leaves: min == max for online CPUs and the GPU."""
    unlocked: list[str] = []
    seen = False
    for cpu in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*")):
        online = _read(cpu / "online")
        if online is not None and online.strip() == "0":
            continue
        lo, hi = _read(cpu / "cpufreq/scaling_min_freq"), _read(cpu / "cpufreq/scaling_max_freq")
        if lo is None or hi is None:
            continue
        seen = True
        if lo.strip() != hi.strip():
            unlocked.append(cpu.name)
    for dev in sorted((root / "sys/class/devfreq").glob("*")):
        if not any(dev.name == n or dev.name.endswith(n) for n in _GPU_DEVFREQ):
            continue
        lo, hi = _read(dev / "min_freq"), _read(dev / "max_freq")
        if lo is None or hi is None:
            continue
        seen = True
        if lo.strip() != hi.strip():
            unlocked.append("GPU")
    if not seen:
        return None
    return {"locked": not unlocked, "unlocked": unlocked, "source": "sysfs"}


def is_jetson(root: Path = Path("/")) -> bool:
    """True on an NVIDIA Jetson (L4T release file or a Jetson device-tree model)."""
    if (root / "etc/nv_tegra_release").is_file():
        return True
    model = parse_device_tree_model(_read(root / "proc/device-tree/model")) or ""
    return "jetson" in model.lower() or "tegra" in model.lower()


def jetson_info(*, root: Path = Path("/"), run: Runner = run_command) -> dict[str, Any]:
    """Board model, L4T release, nvpmodel mode and whether clocks are locked (with warnings)."""
    warnings: list[str] = []
    info: dict[str, Any] = {
        "board": parse_device_tree_model(_read(root / "proc/device-tree/model")),
        "l4t": parse_nv_tegra_release(_read(root / "etc/nv_tegra_release")),
        "nvpmodel": parse_nvpmodel(run(["nvpmodel", "-q"])),
    }
    if info["nvpmodel"] is None:
        warnings.append("nvpmodel -q gave no power mode (TX1 has no nvpmodel); power mode not recorded")
    clocks = parse_jetson_clocks_show(run(["jetson_clocks", "--show"])) or clocks_locked_sysfs(root)
    info["clocks"] = clocks
    if clocks is None:
        warnings.append("could not tell whether clocks are locked; run 'sudo jetson_clocks' before benchmarking")
    elif not clocks["locked"]:
        warnings.append(
            f"clocks are not locked ({', '.join(clocks['unlocked'])} scale with load); run "
            "'sudo jetson_clocks' for repeatable timings"
        )
    info["warnings"] = warnings
    return info


# ---------------------------------------------------------------- devices

DEVICE_KINDS = ("auto", "cpu", "desktop", "jetson")


def detect_device_kind(*, root: Path = Path("/"), run: Runner = run_command) -> str:
    """``jetson`` on L4T, ``desktop`` when nvidia-smi lists a GPU, else ``cpu``."""
    if is_jetson(root):
        return "jetson"
    out = run(["nvidia-smi", "-L"])
    if out and "GPU" in out:
        return "desktop"
    return "cpu"


def device_info(kind: str, *, threads: int | None = None, root: Path = Path("/"),
                run: Runner = run_command) -> dict[str, Any]:
    """All facts for ``kind`` (``cpu|desktop|jetson``); the CPU is always recorded."""
    info: dict[str, Any] = {"kind": kind, "hostname": platform.node(), "cpu": cpu_info(threads, root=root)}
    warnings: list[str] = []
    if kind == "desktop":
        info["gpu"] = desktop_info(run)
        warnings += info["gpu"].pop("warnings")
    elif kind == "jetson":
        info["jetson"] = jetson_info(root=root, run=run)
        warnings += info["jetson"].pop("warnings")
    info["warnings"] = warnings
    return info


def device_label(info: dict[str, Any]) -> str:
    """One line naming the machine, for report titles."""
    cpu = info.get("cpu", {})
    cores = cpu.get("available_cores") or cpu.get("logical_cores")
    n = cpu.get("threads_used")
    # no --threads and no torch loaded: each runtime (ONNX Runtime, OpenVINO) picks its own pool size
    threads = f"{n} thread{'s' if n != 1 else ''} used" if n else "each runtime's default threads"
    isa = f", {cpu['isa']}" if cpu.get("isa") else ""
    cpu_txt = f"{cpu.get('model') or 'unknown CPU'} ({cores} cores available{isa}, {threads})"
    if info.get("kind") == "jetson":
        j = info.get("jetson", {})
        mode = (j.get("nvpmodel") or {}).get("name", "mode unknown")
        locked = (j.get("clocks") or {}).get("locked")
        clocks = "clocks locked" if locked else ("clocks NOT locked" if locked is False else "clocks unknown")
        return f"{j.get('board') or 'Jetson'} (L4T {j.get('l4t') or '?'}, nvpmodel {mode}, {clocks})"
    if info.get("kind") == "desktop":
        g = info.get("gpu", {})
        return f"{g.get('gpu') or 'NVIDIA GPU'} (driver {g.get('driver') or '?'}), CPU {cpu_txt}"
    return f"CPU {cpu_txt}"
