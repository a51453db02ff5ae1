"""Benchmark runner behind ``logitkit bench``: median times, ratio to
``np.copyto`` on the same array in the same run (the memory floor), and ratio
to each installed peer (NumPy, SciPy, PyTorch, JAX).

A suite is a module with ``cases(quick: bool) -> list[Case]`` and optionally
``report(quick: bool) -> str`` (printed after the table); suites are listed in
``SUITES``.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SUITES: dict[str, str] = {
    "softmax": "logitkit._bench_softmax",
    "activations": "logitkit._bench_activations",
    "losses": "logitkit._bench_losses",
}


@dataclass
class Case:
    """One benchmark row: ``impls`` maps a name to a zero-argument callable.

    ``"logitkit"`` and ``"copy"`` (``np.copyto`` of an array the size of the
    floor: one read of the input and one write of the output) are required;
    peers are optional and only present when installed.
    """

    group: str
    dtype: str
    shape: tuple[int, ...]
    impls: dict[str, Callable[[], object]] = field(default_factory=dict)


@dataclass
class Result:
    case: Case
    seconds: dict[str, float]
    # logitkit's × copy in each round, when the result combines rounds.
    rounds: list[float] = field(default_factory=list)

    def ratio(self, name: str, to: str = "copy") -> float:
        return self.seconds[name] / self.seconds[to]

    def copy_ratio(self) -> float:
        """logitkit's × copy: the median of the rounds' own ratios (each from
        one run), else this run's."""
        return statistics.median(self.rounds) if self.rounds else self.ratio("logitkit")


def combine(rounds: list[list[Result]]) -> list[Result]:
    """One result per case from rounds of the same cases: each
    implementation's median time over the rounds, and logitkit's × copy of
    every round (the table gives their median and range)."""
    out = []
    for rs in zip(*rounds, strict=True):
        secs = {n: statistics.median(r.seconds[n] for r in rs) for n in rs[0].seconds}
        out.append(Result(rs[0].case, secs, [r.ratio("logitkit") for r in rs]))
    return out


def _time(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


# Thread pools of other libraries (OpenMP in PyTorch, Eigen in JAX) keep
# spinning briefly after a call and would steal the cores from whatever runs
# next; each peer is therefore timed in its own block after a pause.
_IDLE_SECONDS = 0.2
# After an idle pause a core runs slower for a while (frequency and caches
# recover; on a shared VM the effect lasts tens of milliseconds and moved
# medians by up to 50 %), so every timed block starts with a warm-up of the
# very calls it times.
_WARM_SECONDS = 0.2
_OWN = ("logitkit", "copy")


def _warm(fns: list[Callable[[], object]], seconds: float = _WARM_SECONDS) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for fn in fns:
            fn()


def measure(case: Case, samples: int = 15, sample_seconds: float = 0.01) -> Result:
    """Median of ``samples`` timings per implementation. logitkit and the
    copy floor are interleaved so machine noise hits both alike (each timed
    block after one untimed call of its own); each peer is timed in its own
    block, after a pause that lets other pools go idle; each block is warmed
    up first."""
    numbers = {}
    for name, fn in case.impls.items():
        fn()  # warm-up (JIT, page faults, pool start)
        t = max(_time(fn, 1), 1e-7)
        numbers[name] = max(1, int(sample_seconds / t))
    times: dict[str, list[float]] = {n: [] for n in case.impls}
    own = [n for n in case.impls if n in _OWN]
    time.sleep(_IDLE_SECONDS)
    _warm([case.impls[n] for n in own])
    for _ in range(samples):
        for name in own:
            # One untimed call first: each timed block starts from the cache
            # state its own calls leave (an output written with streaming
            # stores leaves the copy's destination out of cache, which would
            # otherwise slow the copy's first call and flatter the ratio).
            case.impls[name]()
            times[name].append(_time(case.impls[name], numbers[name]))
    for name, fn in case.impls.items():
        if name in _OWN:
            continue
        time.sleep(_IDLE_SECONDS)
        _warm([fn])
        for _ in range(samples):
            times[name].append(_time(fn, numbers[name]))
    return Result(case, {n: statistics.median(v) for n, v in times.items()})


def peers_available() -> dict[str, bool]:
    out = {}
    for mod in ("scipy", "torch", "jax"):
        try:
            importlib.import_module(mod)
            out[mod] = True
        except Exception:
            out[mod] = False
    return out


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e3:.2f} ms"


def table(results: list[Result]) -> str:
    """A Markdown table: time, × copy (and its range over rounds, when there
    were several), and peer time / logitkit time."""
    peers = [p for p in ("numpy", "scipy", "torch", "jax") if any(p in r.seconds for r in results)]
    ranged = any(len(r.rounds) > 1 for r in results)
    head = ["function", "dtype", "shape", "logitkit", "× copy"]
    head += ["× copy, range"] * ranged + [f"{p} / logitkit" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        c = r.case
        row = [c.group, c.dtype, "×".join(map(str, c.shape)), _fmt_time(r.seconds["logitkit"])]
        row.append(f"{r.copy_ratio():.2f}")
        if ranged:
            rs = r.rounds or [r.ratio("logitkit")]
            row.append(f"{min(rs):.2f}–{max(rs):.2f}")
        for p in peers:
            row.append(f"{r.seconds[p] / r.seconds['logitkit']:.1f}" if p in r.seconds else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_suites(
    names: list[str],
    quick: bool = False,
    samples: int | None = None,
    echo: bool = True,
    repeat: int = 1,
) -> list[Result]:
    """Every case of the suites, `repeat` rounds in a row (on a shared
    machine one round's ratios move with the neighbours' load); several
    rounds are combined by [`combine`]."""
    rounds = []
    for k in range(repeat):
        if echo and repeat > 1:
            print(f"round {k + 1} of {repeat}", flush=True)
        results = []
        for name in names:
            mod = importlib.import_module(SUITES[name])
            for case in mod.cases(quick):
                r = measure(case, samples=samples or (5 if quick else 15))
                results.append(r)
                if echo:
                    shape = "×".join(map(str, case.shape))
                    t, x = _fmt_time(r.seconds["logitkit"]), r.ratio("logitkit")
                    print(
                        f"  {case.group:<28} {case.dtype:<8} {shape:<14} {t:>10}  {x:5.2f} × copy",
                        flush=True,
                    )
        rounds.append(results)
    return rounds[0] if repeat == 1 else combine(rounds)


def rng_array(shape: tuple[int, ...], dtype: str, scale: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(dtype)
