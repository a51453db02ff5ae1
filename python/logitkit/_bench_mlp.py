"""MLP training benchmark (``logitkit bench --mlp``): per-epoch time and test
accuracy for logitkit, scikit-learn's ``MLPClassifier`` and PyTorch (when
installed), with the same architecture, batch size, optimizer (Adam, lr 1e-3),
epochs, dtype (float32) and thread count (BLAS and logitkit pools limited);
logitkit runs once with each peer's initialisation (see ``PAIRED``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np

Problem = tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], int]


def problems(quick: bool) -> list[Problem]:
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split

    d = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(
        (d.data / 16).astype(np.float32), d.target, test_size=0.2, random_state=0, stratify=d.target
    )
    out: list[Problem] = [("digits", Xtr, Xte, ytr, yte, (128, 64), 64)]
    n = 14_000 if quick else 70_000
    X, y = make_classification(
        n, 784, n_informative=64, n_redundant=32, n_classes=10, random_state=0
    )
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.2, random_state=0)
    out.append((f"synthetic {n}x784", Xtr, Xte, ytr, yte, (256, 128), 128))
    return out


def run_logitkit(Xtr, Xte, ytr, yte, hidden, bs, epochs, init="glorot") -> tuple[float, float]:
    from .nn import MLP, Adam

    m = MLP([Xtr.shape[1], *hidden, int(ytr.max()) + 1], seed=0, init=init)
    t0 = time.perf_counter()
    m.fit(Xtr, ytr, epochs=epochs, batch_size=bs, optimizer=Adam(1e-3), seed=0, verbose=0)
    dt = (time.perf_counter() - t0) / epochs
    return dt, float(np.mean(m.predict(Xte) == yte))


def run_logitkit_torch_init(Xtr, Xte, ytr, yte, hidden, bs, epochs) -> tuple[float, float]:
    return run_logitkit(Xtr, Xte, ytr, yte, hidden, bs, epochs, init="torch")


def run_sklearn(Xtr, Xte, ytr, yte, hidden, bs, epochs) -> tuple[float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden,
        solver="adam",
        learning_rate_init=1e-3,
        batch_size=bs,
        max_iter=epochs,
        alpha=0.0,
        tol=0.0,
        n_iter_no_change=10**9,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(Xtr, ytr)
        dt = (time.perf_counter() - t0) / clf.n_iter_
    return dt, float(np.mean(clf.predict(Xte) == yte))


def run_torch(Xtr, Xte, ytr, yte, hidden, bs, epochs) -> tuple[float, float]:
    import torch

    torch.manual_seed(0)
    sizes = [Xtr.shape[1], *hidden]
    layers: list = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(sizes[-1], int(ytr.max()) + 1))
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    X, y = torch.from_numpy(Xtr), torch.from_numpy(ytr.astype(np.int64))
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for s in range(0, len(X), bs):
            idx = perm[s : s + bs]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx])
            loss.backward()
            opt.step()
    dt = (time.perf_counter() - t0) / epochs
    with torch.no_grad():
        pred = net(torch.from_numpy(Xte)).argmax(1).numpy()
    return dt, float(np.mean(pred == yte))


# Each peer is compared with logitkit initialised the way that peer initialises
# (scikit-learn: Glorot-uniform; PyTorch: U(+-1/sqrt(fan_in)) weights and
# biases): the same model trained the same way should reach the same accuracy,
# whereas the initialisations alone move the synthetic problem's accuracy by
# ~4 points after 3 epochs.
PAIRED = {"scikit-learn": "logitkit", "pytorch": "logitkit (torch init)"}


def runners() -> dict[str, Callable]:
    out: dict[str, Callable] = {"logitkit": run_logitkit}
    try:
        import sklearn  # noqa: F401

        out["scikit-learn"] = run_sklearn
    except ImportError:
        pass
    try:
        import torch  # noqa: F401

        out["logitkit (torch init)"] = run_logitkit_torch_init
        out["pytorch"] = run_torch
    except ImportError:
        pass
    return out


def main(threads: int = 1, epochs: int | None = None, quick: bool = False) -> int:
    import logitkit as lk

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print(
            "logitkit bench --mlp needs scikit-learn (and threadpoolctl):"
            " pip install 'logitkit[train]'"
        )
        return 2
    lk.set_num_threads(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    impls = runners()
    print(
        f"MLP training, {threads} thread(s), float32, Adam(lr=1e-3), ReLU;"
        f" implementations: {', '.join(impls)}"
    )
    rows = []
    with threadpool_limits(threads):
        for name, Xtr, Xte, ytr, yte, hidden, bs in problems(quick):
            ep = epochs or (20 if name == "digits" else (2 if quick else 3))
            res = {}
            for impl, fn in impls.items():
                res[impl] = fn(Xtr, Xte, ytr, yte, hidden, bs, ep)
                print(
                    f"  {name:<22} {impl:<22} {res[impl][0] * 1e3:9.1f} ms/epoch"
                    f"  test acc {res[impl][1]:.4f}",
                    flush=True,
                )
            rows.append((name, hidden, bs, ep, res))
    print()
    peers = [p for p in impls if p in PAIRED]
    head = ["problem", "hidden", "batch", "epochs"]
    head += [f"{i} ms/epoch (acc)" for i in impls]
    head += [f"{PAIRED[p]} / {p}" for p in peers]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, hidden, bs, ep, res in rows:
        cells = [name, str(hidden), str(bs), str(ep)]
        cells += [f"{res[i][0] * 1e3:.1f} ({res[i][1]:.3f})" for i in impls]
        cells += [f"{res[PAIRED[p]][0] / res[p][0]:.2f}" for p in peers]
        print("| " + " | ".join(cells) + " |")
    return 0
