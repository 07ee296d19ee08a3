"""File names enet-build-engine plans (issue 19: `-o enet.int8.engine` planned `enet.int8.int8.onnx`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from enet.engine.trt.build import converted_path


@pytest.mark.parametrize("engine, precision, onnx", [
    ("enet.engine", "int8", "enet.int8.onnx"),
    ("enet.int8.engine", "int8", "enet.int8.onnx"),
    ("out/enet.INT8.engine", "int8", "out/enet.int8.onnx"),
    ("enet.fp16.engine", "fp16", "enet.fp16.onnx"),
    ("enet.fp16.engine", "int8", "enet.fp16.int8.onnx"),
    ("road.plan", "fp16", "road.fp16.onnx"),
])
def test_converted_path_names_the_precision_once(engine: str, precision: str, onnx: str) -> None:
    assert converted_path(engine, precision) == Path(onnx)
