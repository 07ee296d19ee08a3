"""Device probes on sample text: tegrastats, nvpmodel, jetson_clocks, sysfs, cpuinfo, nvidia-smi.

The sample lines are written for these tests in the formats NVIDIA's L4T
documentation ("tegrastats utility" reported statistics) and public tools
(jetson-stats) describe for each Jetson generation; the numbers are made up.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from enet.bench import probes, tegrastats

# Jetson TX1, L4T R28.2: no power rails in tegrastats (the INA3221 is read from sysfs only).
TX1_R28 = ("RAM 1476/3983MB (lfb 512x4MB) CPU [4%@204,1%@204,0%@204,0%@204] EMC_FREQ 5%@1600 "
           "GR3D_FREQ 0%@76 APE 25 PLL@31C CPU@34C PMIC@100C GPU@33C AO@40.5C thermal@33.2C")
# Jetson TX2, L4T R32: unitless cur/avg mW, VDD_IN is the module input.
TX2_R32 = ("RAM 2211/7854MB (lfb 1077x4MB) SWAP 0/3927MB (cached 0MB) CPU [6%@345,off,off,3%@345,2%@345,1%@345] "
           "EMC_FREQ 1%@1866 GR3D_FREQ 45%@1300 APE 150 PLL@34C MCPU@34C PMIC@100C Tboard@30C GPU@32.5C "
           "BCPU@34C thermal@33.1C Tdiode@31.25C VDD_SYS_GPU 1524/1377 VDD_SYS_SOC 686/670 VDD_4V0_WIFI 0/0 "
           "VDD_IN 4869/4712 VDD_SYS_CPU 305/298 VDD_SYS_DDR 820/801")
# Jetson Nano, JetPack 4.6: POM_5V_IN is the module input.
NANO_JP46 = ("RAM 1890/3964MB (lfb 4x2MB) SWAP 120/1982MB (cached 4MB) IRAM 0/252kB(lfb 252kB) "
             "CPU [12%@1479,8%@1479,10%@1479,9%@1479] EMC_FREQ 14%@1600 GR3D_FREQ 88%@921 APE 25 "
             "PLL@41C CPU@44.5C PMIC@50C GPU@43C AO@49C thermal@43.75C POM_5V_IN 5112/4980 "
             "POM_5V_GPU 2311/2240 POM_5V_CPU 701/688")
# Jetson AGX Xavier, JetPack 4.x: per-rail only, no input rail -> sum of rails.
AGX_XAVIER = ("RAM 3271/15823MB (lfb 2811x4MB) SWAP 0/7911MB (cached 0MB) "
              "CPU [9%@2265,4%@2265,3%@2265,2%@2265,off,off,off,off] EMC_FREQ 11%@2133 GR3D_FREQ 97%@1377 "
              "APE 150 MTS fg 0% bg 0% AO@33C GPU@36.5C Tdiode@35.25C PMIC@100C AUX@32.5C CPU@35C "
              "thermal@34.4C Tboard@33C GPU 9123/8870 CPU 1220/1190 SOC 2441/2399 CV 0/0 VDDRQ 1372/1340 "
              "SYS5V 2612/2590")
# Jetson Xavier NX, JetPack 4.x: VDD_IN.
XAVIER_NX = ("RAM 2801/7772MB (lfb 831x4MB) SWAP 0/3886MB (cached 0MB) "
             "CPU [10%@1907,5%@1907,4%@1907,3%@1907,2%@1907,2%@1907] EMC_FREQ 9%@1600 GR3D_FREQ 76%@1109 "
             "APE 150 MTS fg 0% bg 0% AO@36.5C GPU@38C PMIC@100C AUX@36C CPU@38.5C thermal@37.55C "
             "VDD_IN 7421/7302 VDD_CPU_GPU_CV 3102/3010 VDD_SOC 1544/1520")
# Jetson Orin Nano / Orin NX, JetPack 5/6: units printed, VDD_IN, bracketed GPU frequency.
ORIN_NANO = ("11-25-2026 06:40:01 RAM 3410/7620MB (lfb 6x4MB) SWAP 0/3810MB (cached 0MB) "
             "CPU [14%@1510,9%@1510,11%@1510,7%@1510,5%@1510,6%@1510] EMC_FREQ 21%@2133 GR3D_FREQ 93%@[624] "
             "NVDEC off NVJPG off VIC off OFA off APE 200 cpu@51.2C soc2@48.9C soc0@49.6C gpu@52.4C tj@52.4C "
             "soc1@49.1C VDD_IN 9412mW/8977mW VDD_CPU_GPU_CV 4011mW/3790mW VDD_SOC 2310mW/2251mW")
# Jetson AGX Orin, JetPack 5/6: no input rail -> sum of rails; two GPCs.
AGX_ORIN = ("RAM 6022/30536MB (lfb 5932x4MB) SWAP 0/15268MB (cached 0MB) "
            "CPU [8%@2201,6%@2201,5%@2201,4%@2201,3%@2201,2%@2201,2%@2201,1%@2201,off,off,off,off] "
            "EMC_FREQ 15%@3199 GR3D_FREQ 91%@[1300,1300] NVENC off NVDEC off NVJPG off NVJPG1 off VIC off "
            "OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@47.5C soc2@44.1C soc0@45.2C gpu@46.8C "
            "tj@47.5C soc1@44.7C VDD_GPU_SOC 12030mW/11800mW VDD_CPU_CV 2410mW/2390mW "
            "VIN_SYS_5V0 4880mW/4850mW VDDQ_VDD2_1V8AO 1210mW/1200mW")


@pytest.mark.parametrize("line, total_mw, source", [
    (TX2_R32, 4869.0, "VDD_IN"),
    (NANO_JP46, 5112.0, "POM_5V_IN"),
    (XAVIER_NX, 7421.0, "VDD_IN"),
    (ORIN_NANO, 9412.0, "VDD_IN"),
    (AGX_XAVIER, 9123.0 + 1220 + 2441 + 0 + 1372 + 2612, "sum(GPU+CPU+SOC+CV+VDDRQ+SYS5V)"),
    (AGX_ORIN, 12030.0 + 2410 + 4880 + 1210, "sum(VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO)"),
])
def test_tegrastats_power(line, total_mw, source):
    s = tegrastats.parse_tegrastats(line)
    assert s.total_mw == pytest.approx(total_mw)
    assert s.total_source == source
    assert "RAM" not in s.rails and "SWAP" not in s.rails and "IRAM" not in s.rails


def test_tegrastats_tx1_has_no_rails_but_gpu_and_ram():
    s = tegrastats.parse_tegrastats(TX1_R28)
    assert s.rails == {} and s.total_mw is None and s.total_source is None
    assert s.gpu_util == 0.0 and s.gpu_mhz == 76.0
    assert s.ram_used_mb == 1476.0
    assert s.temps_c["GPU"] == 33.0 and s.temps_c["AO"] == 40.5


def test_tegrastats_gpu_fields_across_formats():
    assert (tegrastats.parse_tegrastats(ORIN_NANO).gpu_util, tegrastats.parse_tegrastats(ORIN_NANO).gpu_mhz) == (93.0, 624.0)
    assert tegrastats.parse_tegrastats(AGX_ORIN).gpu_mhz == 1300.0
    assert tegrastats.parse_tegrastats(AGX_XAVIER).gpu_util == 97.0
    assert tegrastats.parse_tegrastats(ORIN_NANO).temps_c["tj"] == 52.4


def test_tegrastats_instant_avg_max_triplets():
    s = tegrastats.parse_tegrastats("RAM 100/1000MB VDD_IN 5000mW/4500mW/6000mW VDD_SOC 1500mW/1400mW/1600mW")
    assert s.rails == {"VDD_IN": 5000.0, "VDD_SOC": 1500.0} and s.total_mw == 5000.0


def test_tegrastats_garbage_line():
    s = tegrastats.parse_tegrastats("tegrastats: permission denied\n")
    assert s.total_mw is None and s.rails == {}


def test_sampler_window_and_energy_with_fake_clock():
    now = [0.0]
    ts = tegrastats.TegrastatsSampler(command=["tegrastats"], clock=lambda: now[0])
    ts.feed(TX2_R32.replace("VDD_IN 4869/", "VDD_IN 99999/"), t=0.5)  # warm-up: outside the window
    now[0] = 1.0
    ts.mark()
    ts.feed(XAVIER_NX, t=1.2)  # 7421 mW
    ts.feed(XAVIER_NX.replace("VDD_IN 7421/", "VDD_IN 7579/"), t=1.4)  # 7579 mW
    ts.feed(TX1_R28, t=1.5)  # no rails: ignored
    now[0] = 2.0
    ts.end()
    ts.feed(XAVIER_NX.replace("VDD_IN 7421/", "VDD_IN 1/"), t=2.5)  # after the window
    summary = ts.summary(frames=100, seconds=2.0)
    assert summary["samples"] == 2
    assert summary["power_w"] == pytest.approx(7.5)
    assert summary["energy_j_per_frame"] == pytest.approx(7.5 * 2.0 / 100)
    assert summary["rail"] == "VDD_IN"


def test_sampler_without_rails_or_command():
    ts = tegrastats.TegrastatsSampler(command=["enet-no-such-tegrastats"]).start()
    assert ts.error and "not found" in ts.error
    ts.mark()
    s = ts.summary(frames=10, seconds=1.0)
    assert s["power_w"] is None and "not found" in s["reason"]
    ts.stop()


def test_sampler_reads_a_real_subprocess():
    script = ("import time\n"
              f"for _ in range(3): print({ORIN_NANO!r}, flush=True)\n"
              "time.sleep(30)\n")
    ts = tegrastats.TegrastatsSampler(command=[sys.executable, "-u", "-c", script])
    ts.mark()
    with ts:
        deadline = time.monotonic() + 20
        while len(ts.window()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        ts.end()
    s = ts.summary(frames=3, seconds=1.0)
    assert s["samples"] == 3 and s["power_w"] == pytest.approx(9.412)
    assert ts._proc is None  # stopped and reaped


# ---------------------------------------------------------------- nvpmodel, jetson_clocks

@pytest.mark.parametrize("text, name, mode_id", [
    ("NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n", "MAXN", 0),  # AGX Xavier, JetPack 4
    ("NV Power Mode: MODE_15W_6CORE\n2\n", "MODE_15W_6CORE", 2),  # Xavier NX
    ("NV Power Mode: 7W\n1\n", "7W", 1),  # Orin Nano
    ("NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN\n", "MAXN", None),
])
def test_parse_nvpmodel(text, name, mode_id):
    assert probes.parse_nvpmodel(text) == {"name": name, "id": mode_id}


def test_parse_nvpmodel_missing():
    assert probes.parse_nvpmodel(None) is None
    assert probes.parse_nvpmodel("nvpmodel: command not found") is None


CLOCKS_LOCKED = """SOC family:tegra194  Machine:NVIDIA Jetson Xavier NX Developer Kit
Online CPUs: 0-5
cpu0: Online=1 Governor=schedutil MinFreq=1907200 MaxFreq=1907200 CurrentFreq=1907200 IdleStates: C1=0 c6=0
cpu1: Online=1 Governor=schedutil MinFreq=1907200 MaxFreq=1907200 CurrentFreq=1907200 IdleStates: C1=0 c6=0
cpu4: Online=0 Governor=schedutil MinFreq=115200 MaxFreq=1907200 CurrentFreq=115200 IdleStates: C1=1 c6=1
GPU MinFreq=1109250000 MaxFreq=1109250000 CurrentFreq=1109250000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=1
Fan: PWM=255
NV Power Mode: MODE_15W_6CORE
"""
CLOCKS_UNLOCKED = """SOC family:tegra234  Machine:NVIDIA Orin Nano Developer Kit
Online CPUs: 0-5
cpu0: Online=1 Governor=schedutil MinFreq=115200 MaxFreq=1510400 CurrentFreq=729600 IdleStates: WFI=1 c7=1
cpu1: Online=1 Governor=schedutil MinFreq=115200 MaxFreq=1510400 CurrentFreq=729600 IdleStates: WFI=1 c7=1
GPU MinFreq=306000000 MaxFreq=624750000 CurrentFreq=306000000
EMC MinFreq=204000000 MaxFreq=2133000000 CurrentFreq=2133000000 FreqOverride=0
NV Power Mode: 15W
"""


def test_jetson_clocks_show():
    locked = probes.parse_jetson_clocks_show(CLOCKS_LOCKED)
    assert locked["locked"] is True and locked["unlocked"] == []
    assert locked["gpu_mhz"] == pytest.approx(1109.25)
    unlocked = probes.parse_jetson_clocks_show(CLOCKS_UNLOCKED)
    assert unlocked["locked"] is False
    assert unlocked["unlocked"] == ["cpu0", "cpu1", "GPU", "EMC"]
    assert probes.parse_jetson_clocks_show("Error: must be run as root") is None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_jetson_root(tmp_path: Path, *, locked: bool) -> Path:
    root = tmp_path / "root"
    _write(root / "proc/device-tree/model", "NVIDIA Jetson Xavier NX Developer Kit\x00")
    _write(root / "etc/nv_tegra_release",
           "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t186ref, EABI: aarch64, DATE: Sat Feb 19\n")
    for i in range(2):
        _write(root / f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_min_freq", "1907200\n" if locked else "115200\n")
        _write(root / f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_max_freq", "1907200\n")
    _write(root / "sys/devices/system/cpu/cpu5/online", "0\n")
    _write(root / "sys/devices/system/cpu/cpu5/cpufreq/scaling_min_freq", "115200\n")
    _write(root / "sys/devices/system/cpu/cpu5/cpufreq/scaling_max_freq", "1907200\n")
    gpu = root / "sys/class/devfreq/17000000.gv11b"
    _write(gpu / "min_freq", "1109250000\n" if locked else "114750000\n")
    _write(gpu / "max_freq", "1109250000\n")
    _write(root / "sys/class/devfreq/15340000.vic/min_freq", "1\n")  # not a GPU: ignored
    _write(root / "sys/class/devfreq/15340000.vic/max_freq", "2\n")
    _write(root / "proc/cpuinfo", "processor\t: 0\nmodel name\t: ARMv8 Processor rev 0 (v8l)\n\n"
                                  "processor\t: 1\nmodel name\t: ARMv8 Processor rev 0 (v8l)\n")
    return root


def test_clocks_sysfs(tmp_path):
    assert probes.clocks_locked_sysfs(fake_jetson_root(tmp_path / "a", locked=True))["locked"] is True
    res = probes.clocks_locked_sysfs(fake_jetson_root(tmp_path / "b", locked=False))
    assert res["locked"] is False and res["unlocked"] == ["cpu0", "cpu1", "GPU"]
    assert probes.clocks_locked_sysfs(tmp_path / "empty") is None


def test_jetson_info_and_label(tmp_path):
    root = fake_jetson_root(tmp_path, locked=False)
    outputs = {"nvpmodel": "NV Power Mode: MODE_15W_6CORE\n2\n", "jetson_clocks": None}  # --show needs root
    info = probes.device_info("jetson", threads=2, root=root, run=lambda cmd: outputs.get(cmd[0]))
    j = info["jetson"]
    assert j["board"] == "NVIDIA Jetson Xavier NX Developer Kit"
    assert j["l4t"] == "32.7.1"
    assert j["nvpmodel"] == {"name": "MODE_15W_6CORE", "id": 2}
    assert j["clocks"]["source"] == "sysfs" and j["clocks"]["locked"] is False
    assert any("jetson_clocks" in w and "not locked" in w for w in info["warnings"])
    assert info["cpu"]["threads_used"] == 2 and info["cpu"]["model"] == "ARMv8 Processor rev 0 (v8l)"
    label = probes.device_label(info)
    assert "Xavier NX" in label and "MODE_15W_6CORE" in label and "NOT locked" in label
    assert probes.is_jetson(root)
    assert probes.detect_device_kind(root=root, run=lambda cmd: None) == "jetson"


def test_jetson_info_tx1_without_nvpmodel(tmp_path):
    root = fake_jetson_root(tmp_path, locked=True)
    info = probes.jetson_info(root=root, run=lambda cmd: CLOCKS_LOCKED if cmd[0] == "jetson_clocks" else None)
    assert info["nvpmodel"] is None and info["clocks"]["source"] == "jetson_clocks --show"
    assert info["clocks"]["locked"] is True
    assert any("nvpmodel" in w for w in info["warnings"]) and not any("not locked" in w for w in info["warnings"])


# ---------------------------------------------------------------- CPU and desktop

CPUINFO_X86 = "".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n"
    f"physical id\t: 0\ncore id\t: {i // 2}\n\n" for i in range(4))


def test_parse_cpuinfo():
    info = probes.parse_cpuinfo(CPUINFO_X86)
    assert info == {"model": "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "logical_cores": 4, "physical_cores": 2}
    assert probes.parse_cpuinfo("") == {"model": None, "logical_cores": None, "physical_cores": None}


def test_cpu_device_info_here():
    info = probes.device_info("cpu", threads=3)
    assert info["kind"] == "cpu" and info["cpu"]["threads_used"] == 3 and info["cpu"]["logical_cores"] >= 1
    assert probes.device_label(info).startswith("CPU ")


def test_desktop_info():
    line = "NVIDIA GeForce RTX 3090, 550.54.14, 1395, 2100, 9751, 9751, 350.00, P2\n"
    info = probes.device_info("desktop", run=lambda cmd: line if cmd[0] == "nvidia-smi" else None)
    g = info["gpu"]
    assert g["gpu"] == "NVIDIA GeForce RTX 3090" and g["driver"] == "550.54.14"
    assert g["sm_clock_mhz"] == 1395.0 and g["sm_clock_max_mhz"] == 2100.0
    assert info["warnings"] == []
    assert "RTX 3090" in probes.device_label(info)
    none = probes.device_info("desktop", run=lambda cmd: None)
    assert any("nvidia-smi" in w for w in none["warnings"])


def test_parse_nvidia_smi_not_supported_fields():
    gpus = probes.parse_nvidia_smi("Tesla T4, 535.104.05, [N/A], 1590, 405, 5001, 70.00, P8\nbad line\n")
    assert len(gpus) == 1 and gpus[0]["clocks.sm"] is None and gpus[0]["clocks.max.sm"] == 1590.0


def test_detect_device_kind_desktop_and_cpu(tmp_path):
    assert probes.detect_device_kind(root=tmp_path, run=lambda cmd: "GPU 0: NVIDIA A100 (UUID: GPU-x)") == "desktop"
    assert probes.detect_device_kind(root=tmp_path, run=lambda cmd: None) == "cpu"


def test_versions_record_everything():
    v = probes.versions()
    assert set(v) >= {"enet-rt", "torch", "onnxruntime", "tensorrt", "python"}
    assert v["torch"] and v["enet-rt"]


def test_parsers_misc():
    assert probes.parse_device_tree_model("NVIDIA Jetson TX1 Developer Kit\x00") == "NVIDIA Jetson TX1 Developer Kit"
    assert probes.parse_device_tree_model(None) is None
    assert probes.parse_nv_tegra_release("# R28 (release), REVISION: 2.1, GCID: 11272647") == "28.2.1"
    assert probes.parse_nv_tegra_release("garbage") is None


def test_threads_without_torch_are_the_runtimes_default(monkeypatch):
    """No --threads and no torch loaded: the label says who picks the threads, not "threads unknown"."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    label = probes.device_label(probes.device_info("cpu", threads=None))
    assert "unknown" not in label and "each runtime's default threads" in label
    assert "2 threads used" in probes.device_label(probes.device_info("cpu", threads=2))


def test_cpu_isa_names_the_vector_extensions() -> None:
    from enet.bench.probes import cpu_isa

    epyc = "processor : 0\nflags : fpu sse avx2 avx512f avx512bw avx512_vnni avx512_bf16\n"
    assert cpu_isa(epyc) == "AVX2 AVX-512 VNNI BF16"
    assert cpu_isa("flags : avx2 fma avx_vnni\n") == "AVX2 no AVX-512 VNNI"
    assert cpu_isa("flags : avx2 avx512f avx512_vnni amx_tile amx_int8 amx_bf16\n") == "AVX2 AVX-512 VNNI BF16 AMX"
    assert cpu_isa("Features : fp asimd asimddp i8mm\n") == "NEON dot-product I8MM"
    assert cpu_isa("") == "unknown"
    assert cpu_isa(epyc, environ={"ONEDNN_MAX_CPU_ISA": "avx2"}) == (
        "AVX2 AVX-512 VNNI BF16, kernels capped at AVX2 (ONEDNN_MAX_CPU_ISA)")
    assert cpu_isa(epyc, environ={"ONEDNN_MAX_CPU_ISA": "ALL"}) == "AVX2 AVX-512 VNNI BF16"
