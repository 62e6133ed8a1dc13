"""Timing a call the benches repeat: its median and p95 over `runs` calls after a warm one."""

import math
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any


def percentile(ms: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0.99: the p99); NaN for no values."""
    if not ms:
        return math.nan
    ordered = sorted(ms)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(ms: list[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
    }


async def timed(call: Callable[[], Awaitable[object]], runs: int = 20) -> dict[str, Any]:
    await call()  # warm: the first call pays for caches and connections
    ms = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        ms.append((time.perf_counter() - start) * 1000)
    return summary(ms)


def line(label: str, timing: dict[str, Any]) -> str:
    return f"{label}: median {timing['median_ms']} ms, p95 {timing['p95_ms']} ms"
