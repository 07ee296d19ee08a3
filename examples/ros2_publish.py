"""Class ids published as an image message, in the shape a ROS 2 node publishes them.

    python examples/ros2_publish.py clip.mp4 --frames 10

A ROS 2 segmentation node publishes ``sensor_msgs/msg/Image`` with
``encoding="mono8"``: one byte per pixel, here the class id. This example
builds exactly those fields (:func:`labels_to_image_msg`) and hands them to a
publisher. With ROS 2 installed (``rclpy``, ``sensor_msgs``), ``--ros`` makes
a real node publishing on ``/enet/class_ids``; without it the messages go to
a stand-in publisher that prints them, so the example (and its test) runs
anywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

import enet


@dataclass
class Header:
    """``std_msgs/msg/Header``."""

    sec: int = 0
    nanosec: int = 0
    frame_id: str = "camera"


@dataclass
class ImageMsg:
    """The fields of ``sensor_msgs/msg/Image``."""

    header: Header = field(default_factory=Header)
    height: int = 0
    width: int = 0
    encoding: str = "mono8"
    is_bigendian: int = 0
    step: int = 0
    data: bytes = b""


def labels_to_image_msg(labels: np.ndarray, stamp_ns: int, frame_id: str = "camera") -> ImageMsg:
    """uint8 ``(H, W)`` class ids -> a ``mono8`` image message (one byte per pixel, rows ``step`` bytes apart)."""
    h, w = labels.shape
    return ImageMsg(Header(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000, frame_id), h, w, "mono8", 0, w,
                    np.ascontiguousarray(labels, dtype=np.uint8).tobytes())


def message_to_labels(msg: ImageMsg) -> np.ndarray:
    """What a subscriber does: the message's bytes back to ``(H, W)`` class ids."""
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, : msg.width]


class PrintPublisher:
    """Stands in for ``node.create_publisher(Image, topic, 10)`` without ROS."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sent: list[ImageMsg] = []

    def publish(self, msg: ImageMsg) -> None:
        self.sent.append(msg)
        print(f"{self.topic}: {msg.width}x{msg.height} {msg.encoding} stamp {msg.header.sec}.{msg.header.nanosec:09d}"
              f" frame_id {msg.header.frame_id} classes {sorted(set(msg.data))}")


def ros_publisher(topic: str):  # pragma: no cover - needs ROS 2
    """A real rclpy publisher; its ``publish`` takes :class:`ImageMsg` and sends a ``sensor_msgs/Image``."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("enet_segmentation")
    pub = node.create_publisher(Image, topic, 10)

    class Adapter:
        def publish(self, m: ImageMsg) -> None:
            msg = Image(height=m.height, width=m.width, encoding=m.encoding, is_bigendian=m.is_bigendian,
                        step=m.step, data=m.data)
            msg.header.stamp.sec, msg.header.stamp.nanosec = m.header.sec, m.header.nanosec
            msg.header.frame_id = m.header.frame_id
            pub.publish(msg)

    return Adapter()


def main(argv: list[str] | None = None, publisher=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="video file or camera index")
    p.add_argument("--model", default="camvid")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (default: the whole source)")
    p.add_argument("--topic", default="/enet/class_ids")
    p.add_argument("--ros", action="store_true", help="publish with rclpy (needs ROS 2)")
    args = p.parse_args(argv)

    pub = publisher or (ros_publisher(args.topic) if args.ros else PrintPublisher(args.topic))
    cap = cv2.VideoCapture(int(args.source) if args.source.isdigit() else args.source)
    if not cap.isOpened():
        print(f"ros2_publish: error: cannot open {args.source}", file=sys.stderr)
        return 1
    n = 0
    with enet.Segmenter(args.model) as seg:
        while not args.frames or n < args.frames:
            ok, frame = cap.read()
            if not ok:
                break
            pub.publish(labels_to_image_msg(seg.segment(frame), time.time_ns()))
            n += 1
    cap.release()
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
