"""Val mIoU of a checkpoint with each resize method of enet.transforms, at several input sizes.

    python -m tools.measure_resize [MODEL] [--data-root DIR] [--sizes 480x360,640x360,...] [--threads N]

CamVid val frames are 480x360: at that size no resize happens and every
method gives the same number; at other network sizes the frames are resized
to the network input (predictions go back to the labels with nearest
neighbour). The README's "Preprocessing" table comes from this script.
"""

from __future__ import annotations

import argparse

from enet.cli import parse_size
from enet.defaults import default_camvid_root
from enet.engine.runtime.torch_backend import TorchBackend
from enet.evaluate import evaluate
from enet.transforms import RESIZE_METHODS
from enet.weights import resolve_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=None, help="checkpoint or weights name (default: camvid)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--sizes", default="480x360,640x360,320x240,240x176,960x720")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    model = resolve_model(args.model)
    root = args.data_root or default_camvid_root()
    print(f"model {model}; val mIoU % by network input size (WxH) and resize method")
    print("size      " + "".join(f"{m:>9}" for m in RESIZE_METHODS))
    for text in args.sizes.split(","):
        h, w = parse_size(text)
        with TorchBackend(model, device="cpu", input_shape=(1, 3, h, w), threads=args.threads) as b:
            row = []
            for method in RESIZE_METHODS:
                s = evaluate(b.infer_labels, root, "val", meta=dict(b.meta, resize=method),
                             input_shape=b.input_shape)
                row.append(100 * s["miou"])
        print(f"{w}x{h:<6}" + "".join(f"{v:9.2f}" for v in row), flush=True)


if __name__ == "__main__":
    main()
