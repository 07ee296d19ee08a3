"""The one-line error for a CUDA-major mismatch (cuda-python 13 on a CUDA 12 driver), without a GPU."""

from __future__ import annotations

import pytest

from enet.engine.runtime import cuda
from enet.errors import EnetError


def test_mismatch_names_both_majors_and_the_fix() -> None:
    msg = cuda.cuda_major_mismatch(13000, 12020)
    assert "CUDA 13 runtime" in msg and "CUDA 12.2" in msg and "pip install 'cuda-python>=12,<13'" in msg
    assert "\n" not in msg
    assert cuda.cuda_major_mismatch(12060, 12020) is None  # same major: not this problem
    assert cuda.cuda_major_mismatch(13000, 0) is None  # no driver at all: the plain message


class _Err(int):
    def __str__(self) -> str:
        return "cudaError_t.cudaErrorInsufficientDriver" if self == 35 else "cudaError_t.cudaErrorNoDevice"


def test_insufficient_driver_says_which_majors(monkeypatch) -> None:
    class Rt:
        def cudaRuntimeGetVersion(self):
            return _Err(0), 13000

        def cudaDriverGetVersion(self):
            return _Err(0), 12040

    monkeypatch.setattr(cuda, "cudart", lambda: Rt())
    with pytest.raises(EnetError) as e:
        cuda.cuda_check((_Err(35), None))
    assert "cudaErrorInsufficientDriver: cuda-python's bindings use the CUDA 13 runtime" in str(e.value)
    assert "CUDA 12.4" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(EnetError, match="is the NVIDIA driver loaded"):
        cuda.cuda_check((_Err(100), None))
