"""Backends (PyTorch, ONNX Runtime, TensorRT), precision conversion and engine building.

Entry points: :func:`enet.engine.backend.open_backend`,
:func:`enet.engine.backend.evaluate_backend`,
:func:`enet.engine.build.convert_onnx`, :func:`enet.engine.build.build_engine`,
the ``enet-build-engine`` (:mod:`enet.engine.cli`) and ``enet-eval``
(:mod:`enet.engine.eval_cli`) CLIs; :mod:`enet.engine.cuda` holds the CUDA
helpers and the one GPU check. Nothing heavy is imported here, and nothing
on the ``.onnx``/``.engine`` path imports torch.
"""
