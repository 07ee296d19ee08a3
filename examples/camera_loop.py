"""A plain OpenCV camera loop around ``enet.Segmenter``: read, segment, draw, show.

    python examples/camera_loop.py                 # camera 0, a window (a GUI OpenCV); q quits
    python examples/camera_loop.py clip.mp4 --no-display --frames 100 -o seg.mp4

The loop is yours: ``enet`` only turns each BGR frame into class ids (and a
coloured view). Any frame size works; the model resizes internally and gives
labels back at the frame's size.
"""

from __future__ import annotations

import argparse
import sys

import cv2

import enet


def no_window(source: str) -> str | None:
    """Why no OpenCV window can open here, with what to do instead; None when one can.

    enet-rt installs opencv-python-headless (servers, Jetson venvs), which has no
    ``imshow``; and without a display a GUI build crashes instead of failing.
    """
    import os

    instead = (f"write the result to a file instead: python examples/camera_loop.py {source} --no-display "
               "-o seg.mp4, or show it with enet-run (a GStreamer window): enet-run "
               f"{source if not source.isdigit() else 'v4l2:///dev/video' + source} display://0")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return f"no display here (DISPLAY and WAYLAND_DISPLAY are unset); {instead}"
    try:
        cv2.namedWindow("enet")
    except cv2.error:
        return ("this OpenCV has no window support (enet-rt installs opencv-python-headless); " + instead +
                "; or replace it with a GUI OpenCV: pip uninstall opencv-python-headless && pip install "
                "opencv-python")
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", default="0", help="camera index or video file (default: camera 0)")
    p.add_argument("--model", default="camvid", help="shipped name, .onnx, .engine or .pth (default: camvid)")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (default: until the source ends)")
    p.add_argument("--no-display", action="store_true", help="no window (headless machines, tests)")
    p.add_argument("-o", "--output", help="also write the overlay video here (.mp4)")
    args = p.parse_args(argv)

    if not args.no_display:
        why = no_window(args.source)
        if why:  # before the camera or the model opens
            print(f"camera_loop: error: {why}", file=sys.stderr)
            return 1
    cap = cv2.VideoCapture(int(args.source) if args.source.isdigit() else args.source)
    if not cap.isOpened():
        print(f"camera_loop: error: cannot open {args.source}", file=sys.stderr)
        return 1
    writer = None
    seg = enet.Segmenter(args.model)
    print(f"camera_loop: {seg.backend_name}, {len(seg.classes)} classes")
    n = 0
    try:
        while not args.frames or n < args.frames:
            ok, frame = cap.read()
            if not ok:
                break
            labels = seg.segment(frame)                    # uint8 (H, W) class ids
            view = seg.overlay(frame, labels, alpha=0.5)   # BGR, the frame's size
            top = max(seg.fractions(labels).items(), key=lambda kv: kv[1])
            cv2.putText(view, f"{top[0]} {top[1] * 100:.0f}%", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                        (255, 255, 255), 2)
            if args.output:
                if writer is None:
                    h, w = view.shape[:2]
                    writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*"mp4v"), 15, (w, h))
                writer.write(view)
            if not args.no_display:
                cv2.imshow("enet", view)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            n += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        seg.close()
        if not args.no_display:
            cv2.destroyAllWindows()
    print(f"camera_loop: {n} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
