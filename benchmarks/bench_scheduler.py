"""Benchmark: the shared deadline scheduler against the obvious baseline, one sleeping task per
deadline, measured in the same run.

Expiry must stay exact and cheap with thousands of objects. For N deadlines spread over a short
window this reports, for both designs, the time to schedule them, the peak memory the event loop
held, and how late each fired (p50/p99/max), then the ratios scheduler/baseline.

    .venv/bin/python benchmarks/bench_scheduler.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import tracemalloc

from roadie.core import schedule

WINDOW = 2.0  # seconds over which the deadlines are spread


async def _with_scheduler(count: int) -> tuple[float, int, list[float]]:
    sched = schedule.Scheduler(clock=time.time)
    runner = asyncio.create_task(sched.run())
    lateness: list[float] = []
    done = asyncio.Event()
    start = time.time() + 0.5

    def make(due: float) -> schedule.Callback:  # a closure per entry, as a reconcile gives
        async def fire() -> None:
            lateness.append(time.time() - due)
            if len(lateness) == count:
                done.set()

        return fire

    tracemalloc.start()
    t0 = time.perf_counter()
    for i in range(count):
        due = start + WINDOW * i / count
        sched.at(("bench", str(i)), due, make(due))
    scheduled = time.perf_counter() - t0
    await done.wait()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    runner.cancel()
    return scheduled, peak, lateness


async def _with_tasks(count: int) -> tuple[float, int, list[float]]:
    lateness: list[float] = []
    start = time.time() + 0.5

    async def sleeper(due: float) -> None:
        await asyncio.sleep(due - time.time())
        lateness.append(time.time() - due)

    tracemalloc.start()
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(sleeper(start + WINDOW * i / count)) for i in range(count)]
    scheduled = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return scheduled, peak, lateness


def _summary(name: str, scheduled: float, peak: int, lateness: list[float]) -> dict[str, float]:
    q = statistics.quantiles(lateness, n=100)
    row = {"schedule_s": scheduled, "peak_mib": peak / 2**20, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3,
           "max_ms": max(lateness) * 1e3}  # fmt: skip
    print(f"{name:<22} " + "  ".join(f"{k}={v:.3f}" for k, v in row.items()))
    return row


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(f"{count} deadlines over {WINDOW}s")
    ours = _summary("heap scheduler", *asyncio.run(_with_scheduler(count)))
    base = _summary("task per deadline", *asyncio.run(_with_tasks(count)))
    print("ratios scheduler/baseline: " + "  ".join(f"{k}={ours[k] / base[k]:.2f}" for k in ours if base[k]))


if __name__ == "__main__":
    main()
