"""Progress of long loops: a tqdm bar on a terminal, a few summary lines in a log.

A redirected log (``enet-train ... 2> train.log``, a CI job, ``nohup``)
would otherwise receive every bar update; there :func:`progress` writes a
line at about every quarter of the work instead (through logging, so ``-q``
silences it like any other information).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

log = logging.getLogger("enet.progress")

#: Summary lines per loop when stderr is not a terminal (plus the last one).
LOG_STEPS = 4


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default: the current stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced by an object without isatty
        return False


class _LogProgress:
    """tqdm's small interface (iterate, ``set_postfix``, ``close``) writing a few lines to the log."""

    def __init__(self, iterable: Iterable[Any], total: int | None, desc: str, unit: str, initial: int,
                 enabled: bool) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.enabled, self.postfix = initial, enabled, ""
        self._next = self._step(initial)

    def _step(self, n: int) -> int:
        if not self.total:
            return -1
        size = max(1, -(-self.total // LOG_STEPS))
        return (n // size + 1) * size

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.n += 1
            if self.enabled and self.total and (self.n >= self._next or self.n == self.total):
                self._next = self._step(self.n)
                log.info("%s: %d/%d %s%s", self.desc, self.n, self.total, self.unit, self.postfix)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " (" + ", ".join(f"{k} {v}" for k, v in values.items()) + ")" if values else ""

    def close(self) -> None:
        pass


def progress(iterable: Iterable[Any], *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, enabled: bool = True) -> Any:
    """Wrap ``iterable`` in a progress display: a tqdm bar on a terminal, else about ``LOG_STEPS`` log lines.

    Args:
        enabled: False shows nothing (``-q``, or another rank of a distributed run).

    Returns:
        An iterable with tqdm's ``set_postfix(**kw)`` and ``close()``.
    """
    if enabled and is_terminal():
        from tqdm import tqdm

        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return _LogProgress(iterable, total, desc, unit, initial, enabled)
