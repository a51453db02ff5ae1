"""The benchmark runner behind ``logitkit bench``: rounds, their combination
and the table (timings themselves are not asserted: speed is shown in the
benchmarks, never in unit tests)."""

from __future__ import annotations

import sys
import types

import logitkit as lk
import numpy as np
import pytest
from logitkit import bench
from logitkit.cli import main


def _result(name: str, logitkit: float, copy: float, **peers: float) -> bench.Result:
    case = bench.Case(name, "float32", (4, 3))
    return bench.Result(case, {"logitkit": logitkit, "copy": copy, **peers})


def test_combine_takes_median_times_and_keeps_each_rounds_ratio():
    rounds = [
        [_result("a", 2.0, 1.0, numpy=8.0), _result("b", 3.0, 3.0)],
        [_result("a", 6.0, 2.0, numpy=9.0), _result("b", 1.0, 2.0)],
        [_result("a", 4.0, 4.0, numpy=7.0), _result("b", 2.0, 1.0)],
    ]
    a, b = bench.combine(rounds)
    assert a.seconds == {"logitkit": 4.0, "copy": 2.0, "numpy": 8.0}
    assert a.rounds == [2.0, 3.0, 1.0]
    # The median of the rounds' own ratios, not the ratio of median times.
    assert a.copy_ratio() == 2.0
    assert b.rounds == [1.0, 0.5, 2.0] and b.copy_ratio() == 1.0
    with pytest.raises(ValueError):
        bench.combine([rounds[0], rounds[1][:1]])


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_table_shows_the_range_only_for_several_rounds():
    one = bench.table([_result("a", 2e-3, 1e-3, numpy=8e-3)]).splitlines()
    assert _cells(one[0]) == [
        "function",
        "dtype",
        "shape",
        "logitkit",
        "× copy",
        "numpy / logitkit",
    ]
    assert _cells(one[2]) == ["a", "float32", "4×3", "2.00 ms", "2.00", "4.0"]
    combined = bench.combine([[_result("a", 2e-6, 1e-6)], [_result("a", 3e-6, 1e-6)]])
    lines = bench.table(combined).splitlines()
    assert _cells(lines[0])[4:] == ["× copy", "× copy, range"]
    assert _cells(lines[2]) == ["a", "float32", "4×3", "2.5 µs", "2.50", "2.00–3.00"]


@pytest.fixture
def tiny_suite(monkeypatch):
    """A suite of one small case, registered as ``logitkit bench`` finds
    suites."""
    mod = types.ModuleType("logitkit_test_tiny_suite")

    def cases(quick: bool) -> list[bench.Case]:
        x = np.linspace(-3, 3, 64 * 10, dtype=np.float32).reshape(64, 10)
        y = np.empty_like(x)
        case = bench.Case("softmax", "float32", x.shape)
        case.impls = {
            "logitkit": lambda: lk.softmax(x, out=y),
            "copy": lambda: np.copyto(y, x),
        }
        return [case]

    mod.cases = cases
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(bench.SUITES, "tiny", mod.__name__)
    monkeypatch.setattr(bench, "_IDLE_SECONDS", 0.0)
    monkeypatch.setattr(bench, "_WARM_SECONDS", 0.001)
    return "tiny"


def test_run_suites_repeats_every_case(tiny_suite):
    (r,) = bench.run_suites([tiny_suite], quick=True, samples=2, echo=False, repeat=3)
    assert len(r.rounds) == 3 and all(v > 0 for v in r.rounds)
    assert set(r.seconds) == {"logitkit", "copy"}
    (single,) = bench.run_suites([tiny_suite], quick=True, samples=2, echo=False)
    assert single.rounds == []


def test_bench_command_repeat(tiny_suite, capsys):
    assert main(["bench", "--suite", tiny_suite, "--quick", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "round 2 of 2" in out and "× copy, range" in out
    assert main(["bench", "--suite", tiny_suite, "--repeat", "0"]) == 2
    assert "--repeat must be at least 1, got 0" in capsys.readouterr().err
