"""Backends (PyTorch, ONNX Runtime, TensorRT), precision conversion and engine building.

Entry points: :func:`enet.engine.backend.open_backend`,
:func:`enet.engine.build.convert_onnx` (FP16, calibrated INT8 Q/DQ),
:func:`enet.engine.trt_build.plan_engine` / :func:`~enet.engine.trt_build.build_engine`
(TensorRT engines, one builder for every tool), :func:`enet.engine.engine_cache.auto_engine`
(engines built on first run), the ``enet-build-engine`` CLI (:mod:`enet.engine.cli`).
Nothing heavy is imported here.
"""
