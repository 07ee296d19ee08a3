"""Building TensorRT engines: one builder for every tool, its version rules, and the engine cache.

:func:`enet.engine.trt.build.plan_engine` / :func:`~enet.engine.trt.build.build_engine`,
TensorRT version features (``compat``), calibration caches (``calib_cache``),
verification of a built engine (``verify``) and engines built on first run
(``engine_cache``). Sits on :mod:`enet.engine.quant` and :mod:`enet.engine.runtime`.
"""
