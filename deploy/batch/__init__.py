"""``enet-batch``: segment a fleet's recordings offline on Ray Data (docs/batch.md).

* :mod:`.recordings`: what the inputs name (videos, image folders, list files,
  URLs) and how one recording is decoded, as ``enet-run --capture opencv`` does;
* :mod:`.segment`: the one place that resolves the model and backend and
  turns a frame into class fractions, as ``enet-run --stats`` does;
* :mod:`.store`: the output folder: one Parquet file per recording, written
  atomically, the resume check, the summary and comparison tables;
* :mod:`.ray_run`: the Ray Data pipeline (decode tasks, model actors, the
  driver that commits finished recordings);
* :mod:`.cli`: the command.

Nothing here imports Ray at module level: without the ``batch`` extra the
command says so in one line.
"""
