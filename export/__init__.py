"""enet.export: checkpoint -> ONNX (``enet-export``).

Modules: :mod:`enet.export.onnx` (``export_onnx``, ``read_onnx_metadata``,
``verify_parity``), :mod:`enet.export.unpool` (ONNX MaxPool/MaxUnpool pair for
``--unpool native``), :mod:`enet.export.trt_support` (``check_trt_support``),
:mod:`enet.export.cli` (``main``). Nothing is imported here, so importing the
package stays cheap.
"""
