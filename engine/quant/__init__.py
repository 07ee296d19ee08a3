"""Precision conversion of an ``.onnx``: FP16, and calibrated INT8 Q/DQ.

:func:`enet.engine.quant.convert.convert_onnx` is the entry point; the pieces are
calibration frames (``calibration``), activation ranges (``calib_stats``), Q/DQ
insertion (``qdq``, ``quantize``) and FP16 (``fp16``). Uses :mod:`enet.engine.runtime`
only to check a converted model's accuracy.
"""
