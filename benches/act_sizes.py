"""Activations against a copy at one array size (not a pytest file).

The suite times 4096x1000 (16 MB, out of cache); this times any shape, such
as the 1-4 MB arrays that stay in cache, where the arithmetic is the limit:

    python benches/act_sizes.py 256 1024 --threads 2

Prints each op's median time over the copy's (15 interleaved samples).
"""

from __future__ import annotations

import argparse
import statistics
import time

import logitkit as lk
import numpy as np

OPS = ["relu", "sigmoid", "tanh", "silu", "gelu"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rows", type=int)
    ap.add_argument("cols", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=15)
    a = ap.parse_args()
    lk.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.rows, a.cols)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y = np.empty_like(x)
    fs = {"copy": lambda: np.copyto(y, x)}
    for name in OPS:
        f, b = getattr(lk, name), getattr(lk, name + "_backward")
        fs[name] = lambda f=f: f(x, out=y)
        fs[name + "_backward"] = lambda b=b: b(g, x, out=y)
    # About 5 ms per timed block at 20 GB/s.
    number = max(1, int(0.005 / (x.nbytes / 20e9)))
    times: dict[str, list[float]] = {k: [] for k in fs}
    for _ in range(a.samples):
        for k, f in fs.items():
            f()
            t0 = time.perf_counter()
            for _ in range(number):
                f()
            times[k].append((time.perf_counter() - t0) / number)
    copy = statistics.median(times["copy"])
    mb = x.nbytes / 1e6
    head = f"{a.rows}x{a.cols} float32 ({mb:.1f} MB), {a.threads} thread(s)"
    print(f"{head}, copy {copy * 1e6:.1f} us")
    for k, v in times.items():
        if k != "copy":
            t = statistics.median(v)
            print(f"  {k:18s} {t * 1e6:9.1f} us  {t / copy:5.2f} x copy")


if __name__ == "__main__":
    main()
