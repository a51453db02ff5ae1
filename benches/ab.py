"""A/B timing of two builds of logitkit, run alternately (not a pytest file).

On a shared, noisy machine a table made today is not comparable with one
made yesterday; two builds timed in alternation, each in its own process,
are. Build the old revision into a second virtual environment, e.g.

    git worktree add /tmp/old REV
    (cd /tmp/old && python -m venv /tmp/oldvenv &&
     VIRTUAL_ENV=/tmp/oldvenv /tmp/oldvenv/bin/pip install maturin numpy &&
     VIRTUAL_ENV=/tmp/oldvenv /tmp/oldvenv/bin/maturin develop --release)

then

    python benches/ab.py /tmp/oldvenv/bin/python .venv/bin/python \\
        --threads 1 --shape 262144 10 --ops softmax,log_softmax,ce_grad

Each round runs both interpreters (the order alternating), each timing every
op `--samples` times; the table gives the median over rounds of each
process's median, and new / old.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

WORKER = r"""
import sys, time, json
import numpy as np
import logitkit as lk

threads, rows, cols, dtype, ops, samples = sys.argv[1:7]
lk.set_num_threads(int(threads))
rng = np.random.default_rng(0)
x = (rng.standard_normal((int(rows), int(cols))) * 3).astype(dtype)
g = rng.standard_normal(x.shape).astype(dtype)
t = rng.integers(0, int(cols), int(rows))
y = np.zeros_like(x)


def op(name):
    if name == "copy":
        return lambda: np.copyto(y, x)
    if name == "ce_grad":
        return lambda: lk.cross_entropy(x, t, return_grad=True, grad_out=y)
    if name == "ce":
        return lambda: lk.cross_entropy(x, t)
    if name == "ce_ls":
        return lambda: lk.cross_entropy(x, t, label_smoothing=0.1, return_grad=True, grad_out=y)
    if name == "ce_probs":
        pt = lk.softmax(g)
        return lambda: lk.cross_entropy(x, pt, return_grad=True, grad_out=y)
    if name in ("bce_hard", "bce_soft"):
        u = rng.uniform(0, 1, x.shape)
        yt = (u < 0.5 if name == "bce_hard" else u).astype(x.dtype)
        bce = lk.binary_cross_entropy_with_logits
        return lambda: bce(x, yt, return_grad=True, grad_out=y)
    if name in ("mse", "l1", "huber", "smooth_l1"):
        f = getattr(lk, name + "_loss")
        return lambda: f(x, g, return_grad=True, grad_out=y)
    if name == "bce_probs":
        p = (1 / (1 + np.exp(-x))).astype(x.dtype)
        yt = rng.uniform(0, 1, x.shape).astype(x.dtype)
        return lambda: lk.binary_cross_entropy(p, yt, return_grad=True, grad_out=y)
    if name == "focal":
        yt = (rng.uniform(0, 1, x.shape) < 0.5).astype(x.dtype)
        return lambda: lk.sigmoid_focal_loss(x, yt, return_grad=True, grad_out=y)
    if name == "kl_div":
        lp, pt = lk.log_softmax(x), lk.softmax(g)
        return lambda: lk.kl_div(lp, pt, return_grad=True, grad_out=y)
    if name == "kl_div_log":
        lp, lt = lk.log_softmax(x), lk.log_softmax(g)
        return lambda: lk.kl_div(lp, lt, log_target=True, return_grad=True, grad_out=y)
    if name.endswith("_backward"):
        f = getattr(lk, name)
        return lambda: f(g, x, out=y)
    if name in ("softmax_where", "log_softmax_where"):
        m = rng.uniform(0, 1, x.shape) < 0.9
        f = getattr(lk, name.removesuffix("_where"))
        return lambda: f(x, where=m, out=y)
    if name in ("softmax_axis0", "softmax_fortran"):
        xs = x if name == "softmax_axis0" else np.asfortranarray(x)
        ys = np.zeros_like(xs)
        ax = 0 if name == "softmax_axis0" else -1
        return lambda: lk.softmax(xs, axis=ax, out=ys)
    if name in ("logsumexp_axis0", "softmax_where_axis0", "logsumexp_where_axis0"):
        m = rng.uniform(0, 1, x.shape) < 0.9 if "where" in name else None
        if name.startswith("softmax"):
            return lambda: lk.softmax(x, axis=0, where=m, out=y)
        return lambda: lk.logsumexp(x, axis=0, where=m)
    if name == "ce_grad_axis0":
        # Class axis first: the (C, N) logits of x.T, moved by the package.
        xt, gt = np.ascontiguousarray(x.T), np.zeros((x.shape[1], x.shape[0]), x.dtype)
        return lambda: lk.cross_entropy(xt, t, axis=0, return_grad=True, grad_out=gt)
    if name in ("softmax_nchw", "logsumexp_nchw", "softmax_backward_nchw"):
        # As below: the (R, C) data as N images of 64x64, over axis 1.
        hw = 4096 if x.shape[0] % 4096 == 0 else x.shape[0]
        nb = x.shape[0] // hw
        xn = np.ascontiguousarray(np.moveaxis(x.reshape(nb, hw, -1), -1, 1))
        gn, yn = np.ascontiguousarray(np.moveaxis(g.reshape(nb, hw, -1), -1, 1)), np.zeros_like(xn)
        if name == "softmax_nchw":
            return lambda: lk.softmax(xn, axis=1, out=yn)
        if name == "logsumexp_nchw":
            return lambda: lk.logsumexp(xn, axis=1)
        return lambda: lk.softmax_backward(gn, xn, axis=1, out=yn)
    if name in ("ce_grad_nchw", "ce_ls_nchw", "nll_nchw"):
        # PyTorch's N x C x H x W: the (R, C) logits as N images of 64x64
        # positions (one image of R when R is not a multiple of 4096).
        hw = 4096 if x.shape[0] % 4096 == 0 else x.shape[0]
        nb = x.shape[0] // hw
        xn = np.ascontiguousarray(np.moveaxis(x.reshape(nb, hw, -1), -1, 1))
        tn, gn = t.reshape(nb, hw), np.zeros_like(xn)
        if name == "nll_nchw":
            lp = lk.log_softmax(xn, axis=1)
            return lambda: lk.nll_loss(lp, tn, axis=1, return_grad=True, grad_out=gn)
        ls = 0.1 if name == "ce_ls_nchw" else 0.0
        return lambda: lk.cross_entropy(
            xn, tn, axis=1, label_smoothing=ls, return_grad=True, grad_out=gn
        )
    if name == "ce_grad_fortran":
        xf = np.asfortranarray(x)
        return lambda: lk.cross_entropy(xf, t, return_grad=True)
    if name == "top_k":
        return lambda: lk.top_k_accuracy(x, t, 5)
    if name == "logsumexp":
        return lambda: lk.logsumexp(x)
    f = getattr(lk, name)
    return lambda: f(x, out=y)


fs = {n: op(n) for n in ["copy"] + ops.split(",")}
for f in fs.values():
    f()
ts = {n: [] for n in fs}
for _ in range(int(samples)):
    for n, f in fs.items():
        t0 = time.perf_counter()
        f()
        ts[n].append(time.perf_counter() - t0)
print(json.dumps({n: sorted(v)[len(v) // 2] for n, v in ts.items()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="python of the environment with the old build")
    ap.add_argument("new", help="python of the environment with the new build")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shape", type=int, nargs=2, default=[4096, 1000])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--ops", default="softmax,log_softmax,ce_grad")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--samples", type=int, default=40)
    a = ap.parse_args()
    args = [str(a.threads), str(a.shape[0]), str(a.shape[1]), a.dtype, a.ops, str(a.samples)]
    res: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for i in range(a.rounds):
        order = [("old", a.old), ("new", a.new)]
        if i % 2:
            order.reverse()
        for tag, py in order:
            out = subprocess.run(
                [py, "-c", WORKER, *args], capture_output=True, text=True, check=True
            ).stdout
            res[tag].append(json.loads(out.strip().splitlines()[-1]))
    shape = f"{a.shape[0]}x{a.shape[1]}"
    print(f"{shape} {a.dtype}, {a.threads} thread(s), {a.rounds} alternating rounds")
    print(f"{'op':14s} {'old':>10s} {'new':>10s}  new/old  old x copy  new x copy")
    for k in res["old"][0]:
        o = statistics.median(r[k] for r in res["old"]) * 1e6
        n = statistics.median(r[k] for r in res["new"]) * 1e6
        oc, nc = (statistics.median(r[k] / r["copy"] for r in res[t]) for t in ("old", "new"))
        print(f"{k:14s} {o:8.1f}us {n:8.1f}us  {n / o:.3f}  {oc:10.2f}  {nc:10.2f}")


if __name__ == "__main__":
    sys.exit(main())
