"""pytest-benchmark suite for MLP training (one epoch per round), logitkit vs
scikit-learn, 1 thread: ``pytest benches/bench_mlp.py --benchmark-enable``.
The side-by-side table with accuracies is ``logitkit bench --mlp``."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")
threadpoolctl = pytest.importorskip("threadpoolctl")

import logitkit as lk  # noqa: E402
from logitkit._bench_mlp import problems, run_logitkit, run_sklearn  # noqa: E402

PROBLEMS = {p[0]: p for p in problems(quick=True)}


@pytest.fixture(autouse=True)
def one_thread():
    lk.set_num_threads(1)
    with threadpoolctl.threadpool_limits(1):
        yield


@pytest.mark.parametrize("impl", [run_logitkit, run_sklearn], ids=["logitkit", "sklearn"])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_mlp_epoch(benchmark, impl, problem):
    _, Xtr, Xte, ytr, yte, hidden, bs = PROBLEMS[problem]
    benchmark.pedantic(impl, args=(Xtr, Xte, ytr, yte, hidden, bs, 1), rounds=3, iterations=1)
