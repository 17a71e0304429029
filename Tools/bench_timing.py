"""Timing shared by the benchmark scripts (no third-party imports, so every venv can load it)."""
import time


def measure(body, budget=3.0, max_runs=15, warmup=0.3):
    """Median and best wall time of `body` in seconds, after warm-up calls (two at least, and
    `warmup` seconds: a millisecond network's first runs in a fresh process are slow, as clocks,
    caches and thread pools settle); at least five runs, then stops once `budget` seconds have
    passed or `max_runs` is reached. GuiseBench's measure() does the same."""
    start = time.perf_counter()
    body(); body()
    while time.perf_counter() - start < warmup:
        body()
    times, start = [], time.perf_counter()
    while len(times) < max_runs:
        t0 = time.perf_counter()
        body()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if len(times) >= 5 and t1 - start > budget:
            break
    times.sort()
    return times[len(times) // 2], times[0]
