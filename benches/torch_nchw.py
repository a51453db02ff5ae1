"""logitkit against PyTorch on the N x C x H x W layout (not a pytest file).

Cross-entropy + gradient (PyTorch: forward and ``.backward()``) and softmax
over the class axis 1, with a copy of the logits as the floor, in one process
at 1 and 2 threads, medians of 11. Needs PyTorch (``pip install torch``; not
part of any extra):

    python benches/torch_nchw.py
"""

from __future__ import annotations

import time

import logitkit as lk
import numpy as np
import torch
import torch.nn.functional as F

SHAPES = [(16, 21, 128, 128), (64, 10, 64, 64), (16, 150, 64, 64)]


def main() -> None:
    rng = np.random.default_rng(0)
    for threads in (1, 2):
        lk.set_num_threads(threads)
        torch.set_num_threads(threads)
        for shape in SHAPES:
            x = (rng.standard_normal(shape) * 3).astype(np.float32)
            t = rng.integers(0, shape[1], (shape[0],) + shape[2:])
            g, y, tt = np.empty_like(x), np.empty_like(x), torch.from_numpy(t)

            def torch_ce(x=x, tt=tt):
                xt = torch.from_numpy(x).requires_grad_()
                F.cross_entropy(xt, tt).backward()
                return xt.grad

            fs = {
                "copy": lambda x=x, y=y: np.copyto(y, x),
                "lk_ce": lambda x=x, t=t, g=g: lk.cross_entropy(
                    x, t, axis=1, return_grad=True, grad_out=g
                ),
                "torch_ce": torch_ce,
                "lk_softmax": lambda x=x, y=y: lk.softmax(x, axis=1, out=y),
                "torch_softmax": lambda x=x: torch.softmax(torch.from_numpy(x), dim=1),
            }
            ts: dict[str, list[float]] = {k: [] for k in fs}
            for _ in range(11):
                for k, f in fs.items():
                    t0 = time.perf_counter()
                    f()
                    ts[k].append(time.perf_counter() - t0)
            med = {k: float(np.median(v)) for k, v in ts.items()}
            cells = " ".join(
                f"{k} {v * 1e3:.2f} ms ({v / med['copy']:.1f} x)" for k, v in med.items()
            )
            print(threads, shape, cells)


if __name__ == "__main__":
    main()
