"""Small statistics helpers shared by the nodes and the launcher summary."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentiles_ms(samples_s: Sequence[float], which: Sequence[str] = ("p50", "p99", "max")) -> dict:
    """Percentiles of second-valued samples, in milliseconds, rounded to µs. Empty -> None values."""
    arr = np.asarray(samples_s, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    out: dict[str, float | None] = {}
    for key in which:
        if arr.size == 0:
            out[key] = None
        elif key == "max":
            out[key] = round(float(arr.max()) * 1e3, 3)
        elif key == "mean":
            out[key] = round(float(arr.mean()) * 1e3, 3)
        else:
            out[key] = round(float(np.percentile(arr, float(key[1:]))) * 1e3, 3)
    return out
