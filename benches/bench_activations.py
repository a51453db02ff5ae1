"""pytest-benchmark suite for the activations: ``pytest benches/bench_activations.py
--benchmark-enable``. Compare each row with the ``copy`` row of the same dtype."""

from __future__ import annotations

import logitkit as lk
import numpy as np
import pytest

NAMES = ["copy", "relu", "sigmoid", "tanh", "silu", "gelu", "mish", "softplus"]


@pytest.fixture(scope="module", params=["float32", "float64"])
def arrays(request):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4096, 1000)) * 3).astype(request.param)
    g = rng.standard_normal(x.shape).astype(request.param)
    return x, g, np.empty_like(x)


@pytest.mark.parametrize("name", NAMES)
def test_forward(benchmark, arrays, name):
    x, _, y = arrays
    if name == "copy":
        benchmark(np.copyto, y, x)
    else:
        benchmark(getattr(lk, name), x, out=y)


@pytest.mark.parametrize("name", NAMES[1:])
def test_backward(benchmark, arrays, name):
    x, g, y = arrays
    benchmark(getattr(lk, name + "_backward"), g, x, out=y)


def test_bias_act_relu(benchmark, arrays):
    x, _, y = arrays
    b = np.ones(x.shape[1], x.dtype)
    benchmark(lk.bias_act, x, b, "relu", out=y)
