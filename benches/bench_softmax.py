"""pytest-benchmark suite for the softmax family (run: pytest benches --benchmark-enable).

Each benchmark group holds logitkit, np.copyto on the same array (the memory
floor) and NumPy/SciPy/PyTorch peers when installed, so ratios come from one run.
"""

from __future__ import annotations

import logitkit as lk
import numpy as np
import pytest
from logitkit._bench_softmax import SHAPES, _peers

CASES = [(shape, dt) for shape in SHAPES for dt in ("float32", "float64")]


def _ids(c):
    return f"{c[1]}-{'x'.join(map(str, c[0]))}"


@pytest.fixture(scope="module", params=CASES, ids=_ids)
def case(request):
    shape, dtype = request.param
    x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(dtype)
    return shape, dtype, x, np.empty_like(x)


@pytest.mark.parametrize("impl", ["logitkit", "copy", "numpy", "scipy", "torch", "jax"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family(benchmark, case, name, impl):
    shape, dtype, x, y = case
    benchmark.group = f"{name} {dtype} {shape}"
    if impl == "logitkit":
        fn = getattr(lk, name)
        benchmark(lambda: fn(x, out=y))
    elif impl == "copy":
        benchmark(lambda: np.copyto(y, x))
    else:
        peers = _peers(name, x)
        if impl not in peers:
            pytest.skip(f"{impl} not installed")
        benchmark(peers[impl])
