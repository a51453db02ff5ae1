"""The ``logitkit`` command: ``demo``, ``train``, ``predict`` and ``bench``."""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import sys

import numpy as np


class UserError(Exception):
    """A mistake in the command line or the user's data: reported in one line."""


def _demo(args: argparse.Namespace) -> int:
    """Trains an MLP on scikit-learn's bundled handwritten digits (no network)."""
    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    if not os.path.isdir(args.out_dir) and os.path.exists(args.out_dir):
        raise UserError(f"--out-dir {args.out_dir} exists and is not a directory")
    import logitkit as lk

    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise UserError('the demo needs scikit-learn: pip install "logitkit[train]"') from None
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(
        X, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    print(
        f"Handwritten digits: {len(Xtr)} training and {len(Xte)} test images of 8x8 pixels,"
        f" 10 classes ({lk.get_num_threads()} threads, SIMD {lk.simd_level()})"
    )
    model = lk.nn.MLP([64, 128, 64, 10], activation="relu", seed=args.seed)
    print(f"Model: {model}, Adam(lr=1e-3), batch 64, {args.epochs} epochs")
    hist = model.fit(
        Xtr,
        ytr,
        epochs=args.epochs,
        batch_size=64,
        optimizer=lk.nn.Adam(1e-3),
        validation_data=(Xte, yte),
        seed=args.seed,
        verbose=0 if args.quiet else 1,
    )
    pred = model.predict(Xte)
    acc = float(np.mean(pred == yte))
    cm = lk.confusion_matrix(yte, pred, num_classes=10)
    per_epoch = 1e3 * float(np.median(hist["epoch_time"]))
    print(f"Test accuracy: {acc:.4f}  ({per_epoch:.1f} ms per epoch)")
    print("Confusion matrix (rows: true digit, columns: predicted):")
    print("     " + " ".join(f"{c:>3}" for c in range(10)))
    for i, row in enumerate(cm):
        print(f"  {i}: " + " ".join(f"{v:>3}" for v in row))
    for path in _demo_plots(hist, cm, args.out_dir):
        print(f"Wrote {path}")
    return 0


def _demo_plots(hist, cm: np.ndarray, out_dir: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('(matplotlib is not installed: no plots; pip install "logitkit[train]")')
        return []
    os.makedirs(out_dir, exist_ok=True)
    epochs = np.arange(1, len(hist["loss"]) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(epochs, hist["loss"], label="train")
    a1.plot(epochs, hist["val_loss"], label="test")
    a1.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log", title="Loss")
    a2.plot(epochs, hist["accuracy"], label="train")
    a2.plot(epochs, hist["val_accuracy"], label="test")
    a2.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for a in (a1, a2):
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    curves = os.path.join(out_dir, "logitkit_demo_curves.png")
    fig.savefig(curves, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            color = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color, fontsize=8)
    ax.set(xlabel="predicted digit", ylabel="true digit", title="Confusion matrix (test set)")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    cmp = os.path.join(out_dir, "logitkit_demo_confusion.png")
    fig.savefig(cmp, dpi=100)
    plt.close(fig)
    return [curves, cmp]


# ---------------------------------------------------------------- user data


def _read_table(path: str, target: str | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """``(features, target column or None, feature names)`` from .csv or .npz."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except Exception as e:
            raise UserError(f"{path}: not a readable .npz file ({e})") from None
        if "X" not in data:
            raise UserError(f"{path}: the .npz file has no array 'X' (it has {sorted(data)})")
        X = data["X"]
        if X.ndim != 2:
            raise UserError(f"{path}: X must be 2-D (rows, features), got shape {X.shape}")
        y = None
        if target is not None:
            if target not in data:
                raise UserError(
                    f"{path}: no array {target!r} for the target (it has {sorted(data)})"
                )
            y = data[target]
        names = [f"x{i}" for i in range(X.shape[1])]
        return _as_features(X, path), y, names
    if not path.endswith(".csv"):
        raise UserError(f"{path}: expected a .csv or .npz file")
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of
        # the first column's name.
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    rows = [r for r in rows if r]
    if len(rows) < 2:
        raise UserError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise UserError(
                f"{path}: line {i + 2} has {len(r)} fields, but the header has {len(header)}"
            )
    cols = list(zip(*body, strict=True))
    y = None
    feat = list(range(len(header)))
    if target is not None:
        if target not in header:
            raise UserError(f"{path}: no column {target!r} (columns: {', '.join(header)})")
        t = header.index(target)
        y = np.array([v.strip() for v in cols[t]])
        feat.remove(t)
    if not feat:
        besides = f" besides the target {target!r}" if target is not None else ""
        raise UserError(f"{path}: no feature columns{besides}")
    X = np.empty((len(body), len(feat)), np.float64)
    for j, c in enumerate(feat):
        try:
            X[:, j] = [float(v) if v.strip() else np.nan for v in cols[c]]
        except ValueError:
            bad = next(i for i, v in enumerate(cols[c]) if not _is_float(v))
            raise UserError(
                f"{path}: column {header[c]!r}, line {bad + 2}: {cols[c][bad]!r} is not a number"
            ) from None
    return _as_features(X, path, [header[c] for c in feat]), y, [header[c] for c in feat]


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _as_features(X: np.ndarray, path: str, names: list[str] | None = None) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise UserError(f"{path}: features must be numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        i, j = bad[0]
        col = names[j] if names else f"column {j}"
        raise UserError(f"{path}: NaN or missing value in feature {col!r} at row {i + 1}")
    return X


def _check_output_dir(path: str | None) -> None:
    """A user error, before any work, when ``path``'s directory does not exist."""
    if path in (None, "-"):
        return
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise UserError(f"{path}: directory {d} does not exist")


def _check_labels(y: np.ndarray, path: str, target: str) -> None:
    """Class labels are strings or integers: a missing label, or a column of
    numbers that are not all integers (a continuous target), is a user error."""
    if y.dtype.kind == "f":
        vals = y.astype(np.float64)
    elif y.dtype.kind in "US":
        low = np.char.lower(y.astype(str))
        missing = np.flatnonzero((low == "") | (low == "nan"))
        if len(missing):
            i = missing[0]
            raise UserError(f"{path}: missing label in {target!r} at row {i + 1} ({str(y[i])!r})")
        try:
            vals = y.astype(np.float64)
        except ValueError:
            return  # text labels
    else:
        return  # integer or boolean labels
    bad = np.flatnonzero(~np.isfinite(vals) | (vals != np.round(vals)))
    if len(bad):
        i = bad[0]
        raise UserError(
            f"{path}: {target!r} holds numbers that are not integers ({str(y[i])!r} at row"
            f" {i + 1}): not class labels (use --regression for a numeric target)"
        )


def _train(args: argparse.Namespace) -> int:
    import logitkit as lk

    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    if any(h < 1 for h in args.hidden):
        raise UserError(f"--hidden sizes must be >= 1, got {args.hidden}")
    if args.patience < 0:
        raise UserError(f"--patience must be >= 0 (0: no early stopping), got {args.patience}")
    _check_output_dir(args.output)
    X, y, names = _read_table(args.data, args.target)
    assert y is not None
    if len(y) != len(X):
        raise UserError(f"{args.data}: X has {len(X)} rows but {args.target!r} has {len(y)}")
    if not args.regression:
        _check_labels(y, args.data, args.target)
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    Xs = ((X - mean) / std).astype(np.float32)
    meta: dict = {"features": names, "target": args.target, "mean": mean, "std": std}
    if args.regression:
        try:
            yv = y.astype(np.float64)
        except ValueError:
            raise UserError(
                f"--regression needs a numeric target; {args.target!r} is not"
            ) from None
        model = lk.nn.MLP(
            [X.shape[1], *args.hidden, 1], args.activation, loss="mse", seed=args.seed
        )
        meta["task"] = "regression"
        target = yv
    else:
        classes, target = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise UserError(f"{args.target!r} has only one class ({str(classes[0])!r})")
        if len(classes) > max(100, len(y) // 2):
            raise UserError(
                f"{args.target!r} has {len(classes)} distinct values for {len(y)} rows:"
                " it does not look like class labels (use --regression for a numeric target)"
            )
        model = lk.nn.MLP([X.shape[1], *args.hidden, len(classes)], args.activation, seed=args.seed)
        meta["task"] = "classification"
        meta["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
    model.metadata = meta
    es = lk.nn.EarlyStopping(patience=args.patience) if args.patience else False
    hist = model.fit(
        Xs,
        target,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=lk.nn.Adam(args.lr),
        validation_split=args.validation_split,
        early_stopping=es,
        seed=args.seed,
        verbose=0 if args.quiet else 1,
    )
    # The metrics of the weights saved: early stopping restores its best epoch's.
    at, kept = hist.epochs - 1, ""
    if es and 0 <= es.best_epoch < hist.epochs - 1:
        at, kept = es.best_epoch, f" (kept epoch {es.best_epoch + 1}'s weights, its best)"
    row = {k: v[at] for k, v in hist.history.items() if k not in ("lr", "epoch_time")}
    print(
        f"Trained {hist.epochs} epochs{kept}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items())
    )
    model.save(args.output)
    print(f"Wrote {args.output}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .nn import MLP

    _check_output_dir(args.output)

    try:
        model = MLP.load(args.model)
    except FileNotFoundError:
        raise UserError(f"{args.model}: no such file") from None
    except ValueError as e:
        raise UserError(str(e)) from None
    meta = model.metadata
    if "features" not in meta:
        raise UserError(f"{args.model}: was not written by 'logitkit train' (no feature metadata)")
    # The training target, where the data has it, is scored (accuracy or RMSE).
    tgt = None
    if args.data.endswith(".csv") and os.path.exists(args.data):
        with open(args.data, newline="", encoding="utf-8-sig") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        tgt = meta["target"] if meta["target"] in header else None
    elif args.data.endswith(".npz") and os.path.exists(args.data):
        try:
            with np.load(args.data, allow_pickle=False) as f:
                tgt = meta["target"] if meta["target"] in f.files else None
        except Exception:
            tgt = None  # _read_table reports the unreadable file
    X, y, names = _read_table(args.data, tgt)
    if args.data.endswith(".csv"):
        missing = [n for n in meta["features"] if n not in names]
        if missing:
            raise UserError(f"{args.data}: missing feature column(s) {', '.join(missing)}")
        X = X[:, [names.index(n) for n in meta["features"]]]
    elif X.shape[1] != len(meta["features"]):
        raise UserError(
            f"{args.data}: {X.shape[1]} features, but the model was trained on"
            f" {len(meta['features'])}"
        )
    Xs = ((X - np.asarray(meta["mean"])) / np.asarray(meta["std"])).astype(model.dtype)
    out = sys.stdout if args.output in (None, "-") else None
    lines = []
    if meta["task"] == "classification":
        classes = np.asarray(meta["classes"])
        proba = model.predict_proba(Xs)
        pred = classes[np.argmax(proba, axis=1)]
        lines.append(",".join(["prediction", *(f"p_{c}" for c in classes)]))
        for p, row in zip(pred, proba, strict=True):
            lines.append(",".join([str(p), *(f"{v:.6g}" for v in row)]))
        if y is not None:
            acc = float(np.mean(pred.astype(str) == y.astype(str)))
            print(f"accuracy against column {meta['target']!r}: {acc:.4f}", file=sys.stderr)
    else:
        pred = model.predict(Xs).ravel()
        lines.append("prediction")
        lines.extend(f"{v:.8g}" for v in pred)
        if y is not None:
            try:
                yv = np.asarray(y, dtype=np.float64).ravel()
            except ValueError:
                yv = None  # a non-numeric column: nothing to score
            if yv is not None and yv.shape == pred.shape:
                rmse = float(np.sqrt(np.mean((pred.astype(np.float64) - yv) ** 2)))
                print(f"rmse against column {meta['target']!r}: {rmse:.6g}", file=sys.stderr)
    text = "\n".join(lines) + "\n"
    if out is not None:
        out.write(text)
    else:
        tmp = args.output + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.output)
        print(f"Wrote {len(lines) - 1} predictions to {args.output}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import logitkit as lk

    from .bench import SUITES, peers_available, run_suites, table

    if args.mlp:
        from ._bench_mlp import main as mlp_main

        return mlp_main(threads=args.threads or 1, epochs=args.epochs, quick=args.quick)
    if args.threads:
        lk.set_num_threads(args.threads)
    names = list(SUITES) if args.suite == ["all"] else args.suite
    for n in names:
        if n not in SUITES:
            raise UserError(f"unknown suite {n!r}; choose from {', '.join(SUITES)}")
    if args.repeat < 1:
        raise UserError(f"--repeat must be at least 1, got {args.repeat}")
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    peers = peers_available()
    print(
        f"logitkit {lk.__version__}, numpy {np.__version__}, threads {lk.get_num_threads()},"
        f" SIMD {lk.simd_level()}; peers: "
        + ", ".join(f"{k} {'yes' if v else 'not installed'}" for k, v in peers.items())
    )
    results = run_suites(names, quick=args.quick, samples=args.samples, repeat=args.repeat)
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
    d = sub.add_parser("demo", help="train an MLP on the bundled handwritten digits")
    d.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    d.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed")
    d.add_argument("--out-dir", default=".", help="where to write the PNGs (default: .)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_demo)
    t = sub.add_parser("train", help="train an MLP on a .csv or .npz file and save it")
    t.add_argument("data", help=".csv with a header row, or .npz with arrays X and the target")
    t.add_argument("--target", required=True, help="target column (.csv) or array name (.npz)")
    t.add_argument("--hidden", type=int, nargs="+", default=[128, 64], help="hidden layer sizes")
    t.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    t.add_argument("--epochs", type=int, default=50)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument("--validation-split", type=float, default=0.1)
    t.add_argument("--patience", type=int, default=10, help="early stopping (0: off)")
    t.add_argument("--regression", action="store_true", help="numeric target, MSE loss")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("-o", "--output", default="model.npz", help="model file (default model.npz)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    pr = sub.add_parser("predict", help="predict with a model saved by 'train'")
    pr.add_argument("model", help="model file written by 'logitkit train'")
    pr.add_argument("data", help=".csv or .npz with the same feature columns")
    pr.add_argument(
        "-o", "--output", default=None, help="CSV file for predictions (default: stdout)"
    )
    pr.set_defaults(func=_predict)
    b = sub.add_parser("bench", help="benchmark against np.copyto and installed peers")
    b.add_argument("--suite", nargs="+", default=["all"], help="suites to run (default: all)")
    b.add_argument("--quick", action="store_true", help="fewer shapes and samples")
    b.add_argument("--threads", type=int, default=0, help="thread count (default: all cores)")
    b.add_argument("--samples", type=int, default=None, help="timing samples per implementation")
    b.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of every case; the table gives the median x copy and its range",
    )
    b.add_argument(
        "--mlp", action="store_true", help="MLP training: logitkit vs scikit-learn (vs PyTorch)"
    )
    b.add_argument("--epochs", type=int, default=None, help="epochs per MLP benchmark run")
    b.set_defaults(func=_bench)
    args = p.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as e:
        print(f"logitkit {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError, FloatingPointError) as e:
        # Raised by fit/load on the user's data; the message names the problem.
        print(f"logitkit {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"logitkit {args.cmd}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
