"""One exception family for user errors.

A CLI catches :class:`EnetError`, prints its one-line message and exits
non-zero without a traceback; anything else is a bug and keeps its traceback
(Polygraphy's ``PolygraphyException`` handling in ``tools/_main.py``).
"""

from __future__ import annotations


class EnetError(Exception):
    """A user error: bad input, a missing file, a missing dependency.

    The message is one line: what failed, what was expected, the fix.
    """


class DataError(EnetError):
    """A data set file is missing, unreadable or inconsistent."""


class CheckpointError(EnetError):
    """A file is not a usable ENet checkpoint."""


class ShapeError(EnetError):
    """An input size the model or an engine cannot take."""


class NumericalError(EnetError):
    """Training produced a non-finite loss or gradient (a diverging run)."""


class MissingDependencyError(EnetError):
    """An optional module (tensorrt, onnxruntime, cv2, gi, cuda) is missing."""


class UsageError(EnetError):
    """The command line is wrong by itself (options that contradict each other): exit status 2, like argparse."""


class InputError(EnetError, ValueError):
    """A frame the API cannot take (not an 8-bit image of 1, 3 or 4 channels, or empty)."""
