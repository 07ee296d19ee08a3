"""The Ray Data pipeline of ``enet-batch``: decode tasks -> model actors -> the driver commits recordings.

* **decode** (tasks, one recording each, several at once): frames are
  decoded and resized to the model's size where they are read, and handed on
  in chunks; the end of a recording (with its frame count) or its failure
  travels as a marker row.
* **infer** (an actor pool, one model load per actor, ``--batch`` frames
  per call, run on ``concurrency`` threads when the backend has streams;
  CPU or GPU per actor): class fractions, optional confidence, label PNGs,
  and the second model's labels for ``--compare``.
* **write** (the driver): rows are collected per recording; when a
  recording's end marker and all its frames have arrived it is committed
  (:meth:`enet.deploy.batch.store.Store.commit`), so the output folder needs
  no shared file system and an interrupted run keeps every finished recording.

Ray retries a decode task or restarts an actor that dies (a worker killed);
frames are keyed by (recording, frame), so a retried task's repeats are
harmless. A recording whose task fails for good is reported by name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from enet.deploy.batch.recordings import Recording
from enet.deploy.batch.segment import ModelSpec
from enet.deploy.batch.store import FrameResult, Store
from enet.errors import EnetError

log = logging.getLogger(__name__)

FRAME, END, FAILED = 0, 1, 2
#: Ray's shared-memory object store of a local run (``--object-store-mb``): frames at the model's size are
#: ~0.5 MB each, and Ray Data applies backpressure when the store fills.
DEFAULT_OBJECT_STORE_MB = 200


@dataclass
class BatchConfig:
    """What :func:`run_batch` needs (the CLI's options, checked and resolved)."""

    out: str
    spec: ModelSpec
    recordings: list[Recording]
    compare: ModelSpec | None = None
    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float = 0.0
    batch_size: int = 16
    max_frames: int | None = None
    decode_tasks: int | None = None
    labels: bool = False
    confidence: bool = False
    threads: int | None = None
    streams: int | None = None
    object_store_mb: int = DEFAULT_OBJECT_STORE_MB
    progress: bool = False
    verbose: bool = False
    frame_hints: dict[str, int | None] = field(default_factory=dict)


@dataclass
class BatchResult:
    """What a run did."""

    done: list[str]
    skipped: list[str]
    failed: dict[str, str]
    incomplete: list[str]
    stats: dict[str, Any]


# --------------------------------------------------------------------------- decode (Ray tasks)


def decode_recordings(batch: dict[str, np.ndarray], *, size: tuple[int, int], resize: str,
                      chunk: int, max_frames: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data UDF: recordings (``id``, ``location``, ``kind``) -> chunks of frame rows, then a marker row."""
    from enet.cli import one_line
    from enet.deploy.batch.recordings import frames
    from enet.transforms import resize_rgb

    h, w = size
    for rec_id, location, kind in zip(batch["id"], batch["location"], batch["kind"]):
        rec = Recording(str(rec_id), str(location), str(kind))
        buf: list[tuple[int, float, np.ndarray, float]] = []
        n = 0
        try:
            t = time.perf_counter()
            for rgb, pts in frames(rec):
                if max_frames is not None and n >= max_frames:
                    break
                image = resize_rgb(rgb, size, resize)
                now = time.perf_counter()
                buf.append((n, np.nan if pts is None else float(pts), image, (now - t) * 1e3))
                n += 1
                if len(buf) >= chunk:
                    yield _frame_rows(rec.id, buf)
                    buf = []
                t = time.perf_counter()
            if buf:
                yield _frame_rows(rec.id, buf)
            yield _marker(rec.id, END, n, "", (h, w))
        except Exception as exc:  # noqa: BLE001 - one recording fails, the others go on; reported by name
            msg = one_line(exc) if isinstance(exc, EnetError) else f"{type(exc).__name__}: {one_line(exc)}"
            if buf:
                yield _frame_rows(rec.id, buf)
            yield _marker(rec.id, FAILED, n, msg, (h, w))


def _frame_rows(rec_id: str, buf: list[tuple[int, float, np.ndarray, float]]) -> dict[str, np.ndarray]:
    n = len(buf)
    return {
        "recording": np.array([rec_id] * n, dtype=object),
        "status": np.full(n, FRAME, dtype=np.int8),
        "frame": np.array([b[0] for b in buf], dtype=np.int64),
        "pts": np.array([b[1] for b in buf], dtype=np.float64),
        "image": np.stack([b[2] for b in buf]),
        "decode_ms": np.array([b[3] for b in buf], dtype=np.float64),
        "count": np.full(n, -1, dtype=np.int64),
        "error": np.array([""] * n, dtype=object),
    }


def _marker(rec_id: str, status: int, count: int, error: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
    return {
        "recording": np.array([rec_id], dtype=object),
        "status": np.array([status], dtype=np.int8),
        "frame": np.array([-1], dtype=np.int64),
        "pts": np.array([np.nan]),
        "image": np.zeros((1, *size, 3), dtype=np.uint8),
        "decode_ms": np.array([0.0]),
        "count": np.array([count], dtype=np.int64),
        "error": np.array([error], dtype=object),
    }


# --------------------------------------------------------------------------- infer (Ray actors)


class SegmentWorker:
    """Ray Data actor: one model load (two with ``compare``), frames -> fractions and friends."""

    def __init__(self, specs: list[Any], *, labels: bool = False, confidence: bool = False,
                 threads: int | None = None, streams: int | None = None) -> None:
        """``specs``: ``[model, compare or None]``, :class:`ModelSpec` or Ray object refs to them.

        Refs inside a list are not resolved by Ray: the actor fetches them, so its constructor arguments
        stay small (no object-store arguments for an actor Ray may restart).
        """
        from enet.deploy.batch.segment import FrameModel

        spec, compare = (_fetch(s) for s in specs)

        self.model = FrameModel(spec, threads=threads, streams=streams)
        self.model_b = FrameModel(compare, threads=threads, streams=streams) if compare is not None else None
        self.labels = labels
        self.confidence = confidence
        self.pool = ThreadPoolExecutor(max_workers=self.model.concurrency, thread_name_prefix="enet-batch-infer")
        self.worker = _worker_name()
        self.num_classes = self.model.num_classes

    def _one(self, image: np.ndarray) -> tuple[np.ndarray, float, bytes, np.ndarray | None, float, float]:
        t = time.perf_counter()
        labels, fractions, conf = self.model.segment(image, confidence=self.confidence)
        b_fr, agree = None, float("nan")
        if self.model_b is not None:
            lb, b_fr, _ = self.model_b.segment(image)
            agree = float(np.mean(labels == lb))
        png = _png(labels) if self.labels else b""
        return fractions, conf, png, b_fr, agree, (time.perf_counter() - t) * 1e3

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        status = batch["status"]
        n = len(status)
        idx = [i for i in range(n) if status[i] == FRAME]
        c = self.num_classes
        fr = np.zeros((n, c))
        b_fr = np.zeros((n, c))
        conf = np.full(n, np.nan)
        agree = np.full(n, np.nan)
        infer_ms = np.zeros(n)
        pngs = np.array([b""] * n, dtype=object)
        for i, res in zip(idx, self.pool.map(self._one, [batch["image"][i] for i in idx])):
            fr[i], conf[i], pngs[i], bf, agree[i], infer_ms[i] = res
            if bf is not None:
                b_fr[i] = bf
        return {
            "recording": batch["recording"], "status": status, "frame": batch["frame"], "pts": batch["pts"],
            "count": batch["count"], "error": batch["error"], "decode_ms": batch["decode_ms"],
            "infer_ms": infer_ms, "fractions": fr, "confidence": conf, "labels_png": pngs,
            "b_fractions": b_fr, "agreement": agree, "worker": np.array([self.worker] * n, dtype=object),
        }

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.pool.shutdown(wait=False)
            self.model.close()
            if self.model_b is not None:
                self.model_b.close()


def _fetch(item: Any) -> Any:
    if item is None or isinstance(item, ModelSpec):
        return item
    import ray

    return ray.get(item)


def _png(labels: np.ndarray) -> bytes:
    from enet._lazy import require

    cv2 = require("cv2")
    ok, buf = cv2.imencode(".png", labels)
    if not ok:  # pragma: no cover - uint8 2-D always encodes
        raise EnetError("could not encode a label PNG")
    return buf.tobytes()


def _worker_name() -> str:
    """``<node id (8 hex)>/<pid>``: which node and process ran a frame (two nodes on one host share an IP)."""
    node = "local"
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()[:8]
    except ImportError:  # outside Ray (unit tests)
        pass
    return f"{node}/{os.getpid()}"


# --------------------------------------------------------------------------- driver


def connect(address: str | None, *, object_store_mb: int, verbose: bool) -> Any:
    """``ray.init`` a local Ray on this machine's CPUs, or join ``address`` (``auto``, ``HOST:PORT``, ``ray://...``).

    Raises:
        MissingDependencyError: Ray is not installed (the ``batch`` extra).
        EnetError: the cluster cannot be reached.
    """
    from enet._lazy import require
    from enet.deploy.batch.segment import cpu_count

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = require("ray")
    require("ray.data")
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"log_to_driver": verbose, "configure_logging": False}
    if not verbose:
        # Ray's own notices (token auth, disabled progress bars, actor restart caveats) are not the
        # user's business here; -v shows them. Errors that matter reach the driver as exceptions.
        _quiet_ray_loggers()
    where = "a local Ray" if address is None else f"the Ray cluster at {address}"
    attempts = 3 if address is None else 1
    for attempt in range(1, attempts + 1):
        try:
            if address is None:
                # "local": a new Ray of our own, even where `ray start` left a cluster to join by default
                ray.init(address="local", num_cpus=cpu_count(), object_store_memory=object_store_mb * 1024 * 1024,
                         include_dashboard=False, **kwargs)
            else:
                ray.init(address=address, **kwargs)
            break
        # Ray raises a bare Exception when its raylet does not register within its fixed 30 s (a loaded
        # machine), ConnectionError/RuntimeError/ValueError for an address it cannot use
        except Exception as exc:  # noqa: BLE001
            with contextlib.suppress(Exception):
                ray.shutdown()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if attempt < attempts:
                log.warning("could not start %s (%s); trying again", where, first)
                continue
            raise EnetError(f"cannot start {where}: {first}; " + _connect_hint(first, address)) from None
    return ray


def _connect_hint(message: str, address: str | None) -> str:
    """What to do after ``ray.init`` failed with ``message``."""
    if address is not None and any(w in message.lower() for w in ("auth", "token", "unauthenticated")):
        # Ray >= 2.59: `ray start --head` turns token authentication on; every node and the driver need the token
        return ("the cluster uses token authentication: set RAY_AUTH_MODE=token and the cluster's RAY_AUTH_TOKEN "
                "here, as on its nodes (docs/batch.md, Cluster use)")
    return "is `ray start --head` running there?" if address else "is the machine very busy? see docs/batch.md"


def _quiet_ray_loggers() -> None:
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def plan_workers(nodes: list[dict[str, Any]], workers: int | None, cpus_per_worker: float | None,
                 gpus_per_worker: float) -> tuple[int, float]:
    """How many model actors, and the CPUs each reserves.

    Default: one actor per node taking all its CPUs (the smallest node's count,
    so one fits on each); with ``gpus_per_worker``, one CPU each and as many
    as the GPUs allow.

    Raises:
        EnetError: the cluster has no CPUs, or not the GPUs asked for.
    """
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    cpus = [float(r.get("CPU", 0)) for r in alive if float(r.get("CPU", 0)) > 0]
    if not cpus:
        raise EnetError("the Ray cluster has no CPUs; start its nodes with --num-cpus")
    if gpus_per_worker > 0:
        fit = sum(int(float(r.get("GPU", 0)) // gpus_per_worker) for r in alive)
        if fit < 1:
            raise EnetError(f"--num-gpus-per-worker {gpus_per_worker:g}: the Ray cluster has "
                            f"{sum(float(r.get('GPU', 0)) for r in alive):g} GPUs; start its nodes with --num-gpus")
        cpw = cpus_per_worker if cpus_per_worker is not None else 1.0
        return (workers or fit), cpw
    cpw = cpus_per_worker if cpus_per_worker is not None else min(cpus)
    if cpw > max(cpus):
        raise EnetError(f"--cpus-per-worker {cpw:g} exceeds the largest node's {max(cpus):g} CPUs")
    return (workers or max(1, sum(int(c // cpw) for c in cpus))), cpw


def _pool(ray: Any, actors: int) -> dict[str, Any]:
    return {"compute": ray.data.ActorPoolStrategy(size=actors)}


def _tasks(ray: Any, n: int) -> dict[str, Any]:
    strategy = getattr(ray.data, "TaskPoolStrategy", None)
    if strategy is not None:  # Ray >= 2.51 wants compute=, not concurrency=
        return {"compute": strategy(size=n)}
    return {"concurrency": n}


def _from_items(ray: Any, items: list[dict[str, Any]]) -> Any:
    try:
        return ray.data.from_items(items, override_num_blocks=len(items))
    except TypeError:  # Ray < 2.10
        return ray.data.from_items(items, parallelism=len(items))


#: How long the model actors may take to start (a TensorRT engine may be loaded, a GPU found) before the run
#: fails saying the cluster lacks the resources, instead of waiting forever.
ACTOR_START_TIMEOUT_S = 600


def _configure_data_context(ray: Any, frame_bytes: int, batch_size: int) -> None:
    ctx = ray.data.DataContext.get_current()
    # Ray Data gathers a task's output into blocks of up to 128 MiB (its default): 250 frames at 480x360,
    # held back until the block is full. One batch per block keeps frames streaming to the actors and the
    # object store small.
    ctx.target_max_block_size = max(1 << 20, int(1.25 * frame_bytes * batch_size))
    if hasattr(ctx, "wait_for_min_actors_s"):  # every actor loaded its model before frames are handed out
        ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    ctx.enable_progress_bars = False
    for name in ("enable_operator_progress_bars", "print_on_execution_start"):
        if hasattr(ctx, name):
            setattr(ctx, name, False)


def _cause(exc: BaseException) -> str:
    """One line for an error Ray wrapped (a task's EnetError keeps its message)."""
    from enet.cli import one_line

    cause = getattr(exc, "cause", None)
    if isinstance(cause, EnetError):
        return one_line(cause)
    text = str(cause if cause is not None else exc).strip().splitlines()
    last = next((ln for ln in reversed(text) if ln.strip() and not ln.startswith(" ")), type(exc).__name__)
    return " ".join(last.split())[:300]


def run_batch(cfg: BatchConfig, store: Store) -> BatchResult:
    """Segment every recording of ``cfg`` not yet complete in ``store``.

    Raises:
        EnetError: Ray cannot start or join the cluster, or the run stopped
            (the message names the incomplete recordings).
        KeyboardInterrupt: Ctrl-C (its message names the incomplete recordings).
    """
    t_start = time.perf_counter()
    complete = store.complete()
    todo = [r for r in cfg.recordings if r.id not in complete]
    skipped = [r.id for r in cfg.recordings if r.id in complete]
    for rid in skipped:
        log.info("skipping %s: complete in %s", rid, store.out)
    stats: dict[str, Any] = {"recordings": len(cfg.recordings), "skipped": len(skipped)}
    if not todo:
        store.write_tables(compare=cfg.compare is not None)
        return BatchResult([], skipped, {}, [], stats)

    ray = connect(cfg.address, object_store_mb=cfg.object_store_mb, verbose=cfg.verbose)
    own_ray = cfg.address is None
    try:
        store.open()  # once Ray is up: a cluster that cannot be reached leaves no folder behind
        return _run(ray, cfg, store, todo, skipped, stats, t_start)
    finally:
        if own_ray:
            with contextlib.suppress(Exception):
                ray.shutdown()


def _run(ray: Any, cfg: BatchConfig, store: Store, todo: list[Recording], skipped: list[str],
         stats: dict[str, Any], t_start: float) -> BatchResult:
    actors, cpw = plan_workers(ray.nodes(), cfg.workers, cfg.cpus_per_worker, cfg.gpus_per_worker)
    decode_tasks = cfg.decode_tasks or max(2, 2 * actors)
    log.info("%d recordings (%d complete, skipped) on %d model worker(s) of %g CPU%s, %d decode tasks",
             len(todo), len(skipped), actors, cpw,
             f" + {cfg.gpus_per_worker:g} GPU" if cfg.gpus_per_worker else "", decode_tasks)
    spec = cfg.spec
    _configure_data_context(ray, spec.size[0] * spec.size[1] * 3, cfg.batch_size)
    if not cfg.verbose:
        _quiet_ray_loggers()
    ds = _from_items(ray, [{"id": r.id, "location": r.location, "kind": r.kind} for r in todo])
    ds = ds.map_batches(decode_recordings, batch_size=1, num_cpus=0,
                        fn_kwargs={"size": spec.size, "resize": str(spec.meta.get("resize", "area")),
                                   "chunk": cfg.batch_size, "max_frames": cfg.max_frames},
                        **_tasks(ray, min(decode_tasks, len(todo))))
    ds = ds.map_batches(SegmentWorker, batch_size=cfg.batch_size, num_cpus=cpw, num_gpus=cfg.gpus_per_worker or None,
                        fn_constructor_args=([ray.put(spec), ray.put(cfg.compare) if cfg.compare else None],),
                        fn_constructor_kwargs={"labels": cfg.labels, "confidence": cfg.confidence,
                                               "threads": cfg.threads, "streams": cfg.streams},
                        **_pool(ray, actors))
    by_id = {r.id: r for r in todo}
    frames: dict[str, dict[int, FrameResult]] = defaultdict(dict)
    ends: dict[str, int] = {}
    failed: dict[str, str] = {}
    done: list[str] = []  # in completion order
    done_set: set[str] = set()
    per_worker: dict[str, int] = defaultdict(int)
    stage_s = {"decode": 0.0, "infer": 0.0, "write": 0.0}
    total = sum(cfg.frame_hints.get(r.id) or 0 for r in todo) or None
    bar = _progress(cfg.progress, total)
    t_data = time.perf_counter()
    t_first: float | None = None
    n_frames = 0
    n_first = 0  # frames of the first batch (the rate after it excludes worker start and model load)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            now = time.perf_counter()
            t_first = t_first or now
            new = 0
            for i in range(len(batch["status"])):
                rid = str(batch["recording"][i])
                status = int(batch["status"][i])
                if rid in failed or rid not in by_id or rid in done_set:
                    continue
                if status == FAILED:
                    failed[rid] = str(batch["error"][i])
                    frames.pop(rid, None)
                    store.drop_labels(rid)
                    log.warning("%s (%s) failed: %s", rid, by_id[rid].location, failed[rid])
                    continue
                if status == END:
                    ends[rid] = int(batch["count"][i])
                else:
                    f = int(batch["frame"][i])
                    if f not in frames[rid]:
                        new += 1
                        pts = float(batch["pts"][i])
                        frames[rid][f] = FrameResult(
                            frame=f, pts=None if np.isnan(pts) else pts, fractions=np.array(batch["fractions"][i]),
                            confidence=float(batch["confidence"][i]), worker=str(batch["worker"][i]),
                            decode_ms=float(batch["decode_ms"][i]), infer_ms=float(batch["infer_ms"][i]),
                            b_fractions=np.array(batch["b_fractions"][i]) if cfg.compare else None,
                            agreement=float(batch["agreement"][i]) if cfg.compare else None)
                        if cfg.labels:
                            store.add_labels(rid, f, bytes(batch["labels_png"][i]))
                        per_worker[str(batch["worker"][i])] += 1
                        stage_s["decode"] += float(batch["decode_ms"][i]) / 1e3
                        stage_s["infer"] += float(batch["infer_ms"][i]) / 1e3
                if rid in ends and len(frames[rid]) == ends[rid]:
                    tw = time.perf_counter()
                    store.commit(rid, by_id[rid].location, frames.pop(rid).values(), compare=cfg.compare is not None)
                    stage_s["write"] += time.perf_counter() - tw
                    done.append(rid)
                    done_set.add(rid)
                    log.info("%s: %d frames -> %s", rid, ends[rid], store.out / "frames" / f"{rid}.parquet")
            n_frames += new
            if n_first == 0:
                n_first = new
            if bar is not None:
                bar.update(new)
    except KeyboardInterrupt:
        incomplete = [r.id for r in todo if r.id not in done]
        raise KeyboardInterrupt(f"interrupted; {len(done)} recordings completed, {len(incomplete)} incomplete: "
                                f"{_names(incomplete)}; run the same command again to finish them") from None
    except Exception as exc:  # noqa: BLE001 - Ray's errors (a task failed for good): name what is incomplete
        if isinstance(exc, EnetError):
            raise
        incomplete = [r.id for r in todo if r.id not in done]
        raise EnetError(f"the run stopped ({_cause(exc)}); {len(done)} recordings completed, {len(incomplete)} "
                        f"incomplete: {_names(incomplete)}; run the same command again to finish them") from None
    finally:
        if bar is not None:
            bar.close()
    t_end = time.perf_counter()
    incomplete = [r.id for r in todo if r.id not in done and r.id not in failed]
    tw = time.perf_counter()
    store.write_tables(compare=cfg.compare is not None)
    stage_s["write"] += time.perf_counter() - tw
    seconds = max(t_end - t_data, 1e-9)
    steady = max(t_end - (t_first or t_end), 1e-9)
    stats.update({
        "frames": n_frames, "recordings_done": len(done), "failed": failed, "incomplete": incomplete,
        "backend": spec.kind, "model": spec.source, "workers": actors, "cpus_per_worker": cpw,
        "gpus_per_worker": cfg.gpus_per_worker, "decode_tasks": decode_tasks,
        "startup_s": round(t_data - t_start, 3), "seconds": round(seconds, 3),
        "fps": round(n_frames / seconds, 3),
        "fps_after_first_result": round((n_frames - n_first) / steady, 3) if n_frames > n_first else None,
        "per_worker": {w: {"frames": n, "fps": round(n / seconds, 3)} for w, n in sorted(per_worker.items())},
        "stage_s": {k: round(v, 3) for k, v in stage_s.items()},
        "stage_ms_per_frame": {k: round(1e3 * v / max(n_frames, 1), 3) for k, v in stage_s.items()},
    })
    store.write_run(stats)
    return BatchResult(done, skipped, failed, incomplete, stats)


def _names(ids: list[str], limit: int = 10) -> str:
    if not ids:
        return "none"
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def _progress(enabled: bool, total: int | None) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="enet-batch", dynamic_ncols=True)
