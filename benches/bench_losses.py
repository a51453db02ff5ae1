"""pytest-benchmark suite for the fused losses: run with
``pytest benches/bench_losses.py --benchmark-enable``. The same cases as
``logitkit bench --suite losses`` (logitkit, np.copyto floor, NumPy, PyTorch
when installed)."""

from __future__ import annotations

import pytest
from logitkit._bench_losses import cases

CASES = [(c, name) for c in cases(quick=False) for name in c.impls]


@pytest.mark.parametrize(
    "case,impl",
    CASES,
    ids=[f"{c.group}-{'x'.join(map(str, c.shape))}-{n}" for c, n in CASES],
)
def test_loss_with_grad(benchmark, case, impl):
    benchmark.group = f"{case.group} {'x'.join(map(str, case.shape))}"
    benchmark(case.impls[impl])
