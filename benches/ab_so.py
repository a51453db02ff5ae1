"""A/B timing of two builds of logitkit's compiled core in ONE process (not a
pytest file).

`benches/ab.py` runs each build in its own process; on this shared machine
that alone moved a copy by 10-16 % between the two sides (allocation, core
placement), more than the 2-5 % changes being measured. Here both builds'
`_core` modules are loaded side by side into one interpreter and timed on the
same arrays, alternating A, B / B, A round by round:

    cp python/logitkit/_core.abi3.so /tmp/old.so    # before the change
    ... change, `maturin develop --release` ...
    python benches/ab_so.py /tmp/old.so python/logitkit/_core.abi3.so \\
        --n 262144 --threads 2 --ops sigmoid,gelu_backward

Each op's line gives both medians, B/A, the median of the rounds' B/A, and
nanoseconds per 16 elements. `copy` (np.copyto, the same for both) shows
how even the two sides are.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types

import numpy as np


def load(tag: str, path: str) -> types.ModuleType:
    """`path` as module `tag._core` (the init symbol is `PyInit__core`)."""
    pkg = types.ModuleType(tag)
    pkg.__path__ = []
    sys.modules[tag] = pkg
    spec = importlib.util.spec_from_file_location(tag + "._core", path)
    assert spec is not None and spec.loader is not None, path
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", help="the first build's _core shared library")
    ap.add_argument("b", help="the second build's")
    ap.add_argument("--n", type=int, default=65536, help="elements")
    ap.add_argument("--rows", type=int, default=0, help="a 2-D shape (rows, n // rows)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--ops", default="sigmoid", help="comma-separated, e.g. gelu,gelu_backward")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--scale", type=float, default=1.0, help="x is standard normal times this")
    a = ap.parse_args()
    mods = [load("logitkit_a", a.a), load("logitkit_b", a.b)]
    for m in mods:
        m.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    shape = (a.rows, a.n // a.rows) if a.rows else (a.n,)
    x = (rng.standard_normal(shape) * a.scale).astype(a.dtype)
    g = rng.standard_normal(shape).astype(a.dtype)
    y = np.empty_like(x)
    number = max(1, int(0.003 / (x.nbytes / 20e9)))

    def call(m: types.ModuleType, op: str):
        f = getattr(m, op)
        if op.endswith("_backward"):
            return lambda: f(g, x, out=y)
        return lambda: f(x, out=y)

    for op in ["copy", *a.ops.split(",")]:
        if op == "copy":
            fs = [lambda: np.copyto(y, x)] * 2
        else:
            fs = [call(m, op) for m in mods]
        t: list[list[float]] = [[], []]
        for r in range(a.rounds):
            for k in (0, 1) if r % 2 == 0 else (1, 0):
                fs[k]()
                t0 = time.perf_counter()
                for _ in range(number):
                    fs[k]()
                t[k].append((time.perf_counter() - t0) / number)
        ta, tb = statistics.median(t[0]), statistics.median(t[1])
        paired = statistics.median(b / q for q, b in zip(t[0], t[1], strict=True))
        per16 = x.size / 16 / 1e9
        print(
            f"{op:20s} A {ta * 1e6:9.2f} us  B {tb * 1e6:9.2f} us  B/A {tb / ta:6.3f}"
            f"  (rounds' median {paired:6.3f})  ns/16: A {ta / per16:5.2f} B {tb / per16:5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
