"""Nanoseconds per 16 elements of the softmax family on one array (not a
pytest file).

The suite's "× copy" mixes a kernel's arithmetic with the memory system; an
array that stays in L2, timed on one thread, shows the arithmetic alone, as
the cycles of a 16-lane step:

    python benches/row_ns.py 4096 10
    LOGITKIT_SIMD=avx2 python benches/row_ns.py 4096 10 --ops log_softmax

Prints each op's median over `--samples` blocks of calls, and a copy's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import logitkit as lk
import numpy as np

OPS = ["softmax", "log_softmax", "logsumexp"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rows", type=int)
    ap.add_argument("cols", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--ops", default=",".join(OPS))
    a = ap.parse_args()
    lk.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((a.rows, a.cols)) * 3).astype(a.dtype)
    y = np.empty_like(x)
    fs = {"copy": lambda: np.copyto(y, x)}
    for name in a.ops.split(","):
        f = getattr(lk, name)
        fs[name] = (lambda f=f: f(x)) if name == "logsumexp" else (lambda f=f: f(x, out=y))
    # About 2 ms per timed block at 1 ns per 16 elements.
    number = max(1, int(2e-3 / (x.size / 16 * 1e-9)))
    for f in fs.values():
        for _ in range(number):
            f()
    times: dict[str, list[float]] = {k: [] for k in fs}
    for _ in range(a.samples):
        for k, f in fs.items():
            t0 = time.perf_counter()
            for _ in range(number):
                f()
            times[k].append((time.perf_counter() - t0) / number)
    per16 = x.size / 16
    print(f"{a.rows}x{a.cols} {a.dtype}, {a.threads} thread(s), SIMD {lk.simd_level()}")
    for k, v in times.items():
        print(f"  {k:12s} {statistics.median(v) / per16 * 1e9:6.2f} ns per 16 elements")


if __name__ == "__main__":
    main()
