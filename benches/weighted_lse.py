"""logsumexp with SciPy's weights `b=` against logsumexp without them, a
copy of the same array, and SciPy (not a pytest file):

    python benches/weighted_lse.py                # the three suite shapes
    python benches/weighted_lse.py 4096 1000 --threads 1

Each case's median over `--samples` interleaved rounds, in ms and as a
ratio to logsumexp without weights (and to the copy) measured in the same
rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import logitkit as lk
import numpy as np


def cases(x: np.ndarray, b: np.ndarray) -> dict:
    y = np.empty_like(x)
    fs = {
        "copy": lambda: np.copyto(y, x),
        "logsumexp": lambda: lk.logsumexp(x),
        "b= array": lambda: lk.logsumexp(x, b=b),
        "b= number": lambda: lk.logsumexp(x, b=2.0),
        "b= row": lambda: lk.logsumexp(x, b=b[0]),
        "b=, return_sign": lambda: lk.logsumexp(x, b=b, return_sign=True),
    }
    try:
        from scipy.special import logsumexp as sp_lse

        fs["scipy b="] = lambda: sp_lse(x, axis=-1, b=b)
    except ImportError:
        pass
    return fs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", type=int, nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=9)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    lk.set_num_threads(a.threads)
    shapes = [tuple(a.shape)] if a.shape else [(4096, 1000), (262144, 10), (256, 50257)]
    rng = np.random.default_rng(0)
    print(f"{a.dtype}, {a.threads} thread(s), SIMD {lk.simd_level()}")
    for shape in shapes:
        x = (rng.standard_normal(shape) * 3).astype(a.dtype)
        b = rng.uniform(0.5, 2.0, shape).astype(a.dtype)
        fs = cases(x, b)
        for f in fs.values():
            f()
        times: dict[str, list[float]] = {k: [] for k in fs}
        for _ in range(a.samples):
            for k, f in fs.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{'x'.join(map(str, shape))}")
        for k, t in med.items():
            print(
                f"  {k:18s} {t * 1e3:8.2f} ms  {t / med['logsumexp']:6.2f} x logsumexp"
                f"  {t / med['copy']:6.2f} x copy"
            )


if __name__ == "__main__":
    main()
