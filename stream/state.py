"""Monitor state as plain data: what a checkpoint holds.

A checkpoint is numbers, strings, lists and dicts (numpy arrays as their raw bytes, with
dtype and shape), encoded with msgpack and compressed. Nothing in it is code, and nothing
is loaded as code: a row someone wrote into the checkpoint table can at worst be refused.
Each monitor writes its own part with a format version and reads it back into a monitor
built from the *current* configuration and reference, so an edited threshold takes effect
on restore; a part that does not fit (another format, another window size, other columns)
raises :class:`StateError`, and that monitor starts afresh.

>>> a = np.arange(3, dtype=np.float64)
>>> blob = encode({"x": array(a), "n": 2})
>>> back = decode(blob); unarray(back["x"]).tolist(), back["n"]
([0.0, 1.0, 2.0], 2)
>>> decode(b"not a checkpoint")
Traceback (most recent call last):
...
stream.state.StateError: not a checkpoint: Error -3 while decompressing data: incorrect header check
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

State = dict[str, Any]
DTYPES = frozenset({"float64", "int64", "bool"})


class StateError(ValueError):
    """State that cannot be applied: the monitor it was for starts afresh."""


def array(a: NDArray[Any]) -> State:
    """A numpy array as plain data (float64, int64 or bool)."""
    if str(a.dtype) not in DTYPES:
        raise StateError(f"arrays of {a.dtype} are not kept in checkpoints")
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.tobytes()}


def unarray(d: Any, shape: tuple[int, ...] | None = None) -> NDArray[Any]:
    """The array :func:`array` made (a copy, writable); StateError if it is not one, or
    not of ``shape``."""
    try:
        if not isinstance(d, dict) or d.get("dtype") not in DTYPES:
            raise StateError("not an array")
        out = np.frombuffer(d["data"], dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"not an array: {exc}") from None
    if shape is not None and out.shape != shape:
        raise StateError(f"an array of shape {out.shape}, not {shape}")
    return out


def check(state: Any, kind: str, version: int) -> State:
    """``state`` if it is a dict of ``kind`` at ``version``; else StateError."""
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise StateError(f"not the state of a {kind}")
    if state.get("v") != version:
        raise StateError(f"{kind} state of format {state.get('v')}, not {version}")
    return state


def encode(state: State) -> bytes:
    """``state`` compressed; parts already encoded (msgpack) may be given as bytes in
    :class:`msgspec.Raw`, and go in as they are, not encoded again."""
    return zlib.compress(msgspec.msgpack.encode(state), 1)


def decode(blob: bytes) -> State:
    """The state in a checkpoint; StateError if it is none (or not one of this kind)."""
    try:
        state = msgspec.msgpack.decode(zlib.decompress(blob))
    except (zlib.error, msgspec.DecodeError) as exc:
        raise StateError(f"not a checkpoint: {exc}") from None
    if not isinstance(state, dict):
        raise StateError("not a checkpoint: not a mapping")
    return state
