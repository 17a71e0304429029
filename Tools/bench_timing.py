"""Timing shared by the benchmark scripts (no third-party imports, so every venv can load it)."""
import time


def measure(body, budget=3.0, max_runs=15):
    """Median and best wall time of `body` in seconds, after two warm-up calls; at least five
    runs, then stops once `budget` seconds have passed or `max_runs` is reached."""
    body(); body()
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
