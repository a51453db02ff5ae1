"""The ``logitkit`` command: ``demo`` and ``bench``."""

from __future__ import annotations

import argparse
import importlib
import sys

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import logitkit as lk

    labels = ["dog", "cat", "rabbit"]
    logits = np.array([4.0, 2.0, -2.0])
    probs = lk.softmax(logits)
    print("Seed example: logits", logits.tolist(), "for", labels)
    for name, p in zip(labels, probs, strict=True):
        print(f"  P({name}) = {p:.3f}")
    print(f"  log_softmax = {np.round(lk.log_softmax(logits), 4).tolist()}")
    print(f"  logsumexp   = {lk.logsumexp(logits):.4f}")
    print()
    print(f"Short benchmark ({lk.get_num_threads()} threads, SIMD: {lk.simd_level()}):")
    from .bench import run_suites, table

    results = run_suites(["softmax"], quick=True, echo=False)
    print(table(results))
    return 0


def _bench(args: argparse.Namespace) -> int:
    import logitkit as lk

    from .bench import SUITES, peers_available, run_suites, table

    if args.threads:
        lk.set_num_threads(args.threads)
    names = list(SUITES) if args.suite == ["all"] else args.suite
    for n in names:
        if n not in SUITES:
            print(f"logitkit bench: unknown suite {n!r}; choose from {', '.join(SUITES)}")
            return 2
    peers = peers_available()
    print(
        f"logitkit {lk.__version__}, numpy {np.__version__}, threads {lk.get_num_threads()},"
        f" SIMD {lk.simd_level()}; peers: "
        + ", ".join(f"{k} {'yes' if v else 'not installed'}" for k, v in peers.items())
    )
    results = run_suites(names, quick=args.quick, samples=args.samples)
    print()
    print(table(results))
    for n in names:
        mod = importlib.import_module(SUITES[n])
        if hasattr(mod, "report"):
            print()
            print(mod.report(args.quick))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="logitkit", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run the demo on the embedded example")
    d.set_defaults(func=_demo)
    b = sub.add_parser("bench", help="benchmark against np.copyto and installed peers")
    b.add_argument("--suite", nargs="+", default=["all"], help="suites to run (default: all)")
    b.add_argument("--quick", action="store_true", help="fewer shapes and samples")
    b.add_argument("--threads", type=int, default=0, help="thread count (default: all cores)")
    b.add_argument("--samples", type=int, default=None, help="timing samples per implementation")
    b.set_defaults(func=_bench)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
