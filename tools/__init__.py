"""Maintenance scripts of this repository, not part of the installed package.

Run from the repository root with the project's venv: ``python -m tools.gpu_check`` (``make gpu-check``),
``python -m tools.pretrained_build camvid`` (``make pretrained-onnx``), ``python -m tools.measure_resize``.
"""
