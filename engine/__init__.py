"""Backends (PyTorch, ONNX Runtime, TensorRT), precision conversion and engine building.

Entry points: :func:`enet.engine.backend.open_backend`,
:func:`enet.engine.build.convert_onnx`, :func:`enet.engine.build.build_engine`,
the ``enet-build-engine`` CLI (:mod:`enet.engine.cli`). Nothing heavy is
imported here.
"""
