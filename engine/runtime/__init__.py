"""Running a model file: the backend interface and its implementations, and the CUDA helpers.

:mod:`~enet.engine.runtime.backend` (the interface, ``open_backend``),
ONNX Runtime, OpenVINO, PyTorch and TensorRT backends, the CPU backend choice,
ONNX metadata reading and TensorRT engine sidecars. This is the part of
``enet.engine`` that ``enet.deploy`` uses; it imports nothing from
:mod:`enet.engine.quant` or :mod:`enet.engine.trt`. Nothing heavy is imported here.
"""
