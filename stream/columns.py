"""Column extraction: turn a batch of feature dicts into numpy columns, checking types.

This is where per-event Python is kept to a few C-level passes per feature (``dict.get``,
``map(type, ...)``, ``np.array``), so that monitors can work on whole batches.

>>> rows = [{"a": 1.0, "b": "x"}, {"a": None, "b": "y"}, {"b": "x"}, {"a": "7", "b": 3.0}]
>>> col = numeric(extract(rows, "a"))
>>> col.values.tolist()[:2], col.nulls, col.missing, col.mismatched
([1.0, nan], 1, 1, 1)
>>> cat = categorical(extract(rows, "b"), {"x": 0, "y": 1}, allowed=(str,))
>>> cat.counts.tolist(), cat.unseen, cat.mismatched
([2, 1], 0, 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()
_NONE = type(None)
_FAST_NUMERIC = frozenset({float, _NONE})


def extract(rows: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """The values of ``key`` across ``rows``, :data:`MISSING` where a row lacks it."""
    return [r.get(key, MISSING) for r in rows]


def extract_all(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[list[Any]]:
    """The columns of ``keys`` across ``rows`` (one pass of C-level calls when every row has
    every key; :func:`extract` per key otherwise).

    >>> extract_all([{"a": 1, "b": 2}, {"a": 3, "b": 4, "c": 5}], ["a", "b"])
    [[1, 3], [2, 4]]
    >>> extract_all([{"a": 1}, {"b": 2}], ["a", "b"])
    [[1, <missing>], [<missing>, 2]]
    """
    if not rows or not keys:
        return [[] for _ in keys]
    if len(keys) == 1:
        return [extract(rows, keys[0])]
    try:
        tuples = list(map(itemgetter(*keys), rows))
    except KeyError:
        return [extract(rows, k) for k in keys]
    return [list(col) for col in zip(*tuples, strict=True)]


@dataclass(slots=True)
class NumericColumn:
    values: NDArray[np.float64]  # NaN where null, missing or of the wrong type
    nulls: int
    missing: int
    mismatched: int
    mismatch_example: str | None = None


def numeric(col: list[Any]) -> NumericColumn:
    """A numeric feature column; strings and booleans count as type mismatches."""
    types = set(map(type, col))
    if types <= _FAST_NUMERIC:
        arr = np.array(col, dtype=np.float64)
        nulls = int(np.isnan(arr).sum()) if _NONE in types else 0
        return NumericColumn(arr, nulls, 0, 0)
    nan = float("nan")
    arr = np.array([v if type(v) is float else nan for v in col], dtype=np.float64)
    nulls = col.count(None)
    missing = sum(1 for v in col if v is MISSING)
    bad = [v for v in col if type(v) is not float and v is not None and v is not MISSING]
    example = repr(bad[0])[:80] if bad else None
    return NumericColumn(arr, nulls, missing, len(bad), example)


@dataclass(slots=True)
class CategoricalColumn:
    counts: NDArray[np.int64]  # per known category
    codes: NDArray[np.int64]  # per row: category code, -1 null, -2 missing, -3 unseen/mismatch
    nulls: int
    missing: int
    mismatched: int
    unseen: int
    unseen_values: Counter[str] = field(default_factory=Counter)
    mismatch_example: str | None = None


NULL_CODE: Final = -1
MISSING_CODE: Final = -2
OTHER_CODE: Final = -3


def categorical(
    col: list[Any], index: Mapping[Any, int], allowed: tuple[type, ...]
) -> CategoricalColumn:
    """A categorical column coded against the reference categories in ``index``."""
    n = len(col)
    allowed_types = set(allowed)
    lookup = {**index, None: NULL_CODE, MISSING: MISSING_CODE}
    codes = np.fromiter(map(lookup.get, col, repeat(OTHER_CODE, n)), dtype=np.int64, count=n)
    if allowed_types != {str}:
        # a value of another type can hash like a known category (1.0 == True): recode it
        types = set(map(type, col)) - {_NONE, _Missing}
        if not types <= allowed_types:
            for i, v in enumerate(col):
                if type(v) not in allowed_types and v is not None and v is not MISSING:
                    codes[i] = OTHER_CODE
    counts = np.bincount(codes[codes >= 0], minlength=len(index)).astype(np.int64)
    nulls = int(np.count_nonzero(codes == NULL_CODE))
    missing = int(np.count_nonzero(codes == MISSING_CODE))
    other = np.flatnonzero(codes == OTHER_CODE).tolist()
    mismatched = 0
    unseen_values: Counter[str] = Counter()
    example: str | None = None
    for i in other:
        v = col[i]
        if type(v) not in allowed_types:
            mismatched += 1
            if example is None:
                example = repr(v)[:80]
        else:
            unseen_values[str(v)[:80]] += 1
    unseen = len(other) - mismatched
    return CategoricalColumn(
        counts, codes, nulls, missing, mismatched, unseen, unseen_values, example
    )
