"""Backends (PyTorch, ONNX Runtime, TensorRT), precision conversion and engine building.

Three parts: :mod:`enet.engine.runtime` runs model files (the part
``enet.deploy`` uses), :mod:`enet.engine.quant` converts precision,
:mod:`enet.engine.trt` builds TensorRT engines.

Entry points: :func:`enet.engine.runtime.resolve.resolve` (which file, backend and
precision run a model: every command and :class:`enet.Segmenter`),
:func:`enet.engine.runtime.backend.open_backend`,
:func:`enet.engine.runtime.backend.evaluate_backend`,
:func:`enet.engine.quant.convert.convert_onnx` (FP16, calibrated INT8 Q/DQ),
:func:`enet.engine.trt.build.plan_engine` / :func:`~enet.engine.trt.build.build_engine`
(TensorRT engines, one builder for every tool), :func:`enet.engine.trt.engine_cache.auto_engine`
(engines built on first run), the ``enet-build-engine`` (:mod:`enet.engine.cli`) and
``enet-eval`` (:mod:`enet.engine.eval_cli`) CLIs; :mod:`enet.engine.runtime.cuda` holds the CUDA
helpers and the one GPU check. Nothing heavy is imported here, and nothing
on the ``.onnx``/``.engine`` path imports torch.
"""
