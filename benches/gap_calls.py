"""Per-call times with other work between calls (not a pytest file).

Back-to-back timing hides what a pool's wake-up costs: here the calling
thread busy-waits GAP microseconds before each call, as a pipeline's other
work would, and the median and mean of the calls are printed:

    python benches/gap_calls.py 50 --threads 2

(Stop 30: sigmoid at 128 Ki float32, gelu_backward at 256 Ki and softmax at
256x1024 took 43-54, 84-97 and 72-85 us with stop 29's pool at gaps of
20-500 us, 18-20, 50-56 and 43-48 us with helpers that wait for the next
call.)
"""

from __future__ import annotations

import argparse
import time

import logitkit as lk
import numpy as np

CASES = [("sigmoid", (131072,)), ("gelu_backward", (262144,)), ("softmax", (256, 1024))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gap", type=float, help="microseconds of other work before each call")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=3000)
    a = ap.parse_args()
    lk.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    parts = []
    for op, shape in CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        y = np.empty_like(x)
        f = getattr(lk, op)
        args = (g, x) if op.endswith("_backward") else (x,)
        ts = []
        for _ in range(a.calls):
            t1 = time.perf_counter()
            while time.perf_counter() - t1 < a.gap * 1e-6:
                pass
            t0 = time.perf_counter()
            f(*args, out=y)
            ts.append(time.perf_counter() - t0)
        us = np.array(ts[a.calls // 6 :]) * 1e6  # past the start's settling
        parts.append(f"{op} p50 {np.median(us):6.1f} mean {us.mean():6.1f} us")
    print(f"gap {a.gap:g} us, {a.threads} thread(s): " + " | ".join(parts))


if __name__ == "__main__":
    main()
