"""enet.export: checkpoint -> ONNX (``enet-export``).

Modules: :mod:`enet.export.onnx` (``build_onnx``, ``export_onnx``),
:mod:`enet.export.metadata` (``read_onnx_metadata``; torch-free),
:mod:`enet.export.parity` (``verify_parity``, ``ParityResult``),
:mod:`enet.export.cache` (``cached_onnx``: a checkpoint's ONNX in the user's
cache folder), :mod:`enet.export.unpool` (ONNX MaxPool/MaxUnpool pair for
``--unpool native``), :mod:`enet.export.trt_support` (``check_trt_support``),
:mod:`enet.export.cli` (``main``). Nothing is imported here, so importing the
package stays cheap.
"""
