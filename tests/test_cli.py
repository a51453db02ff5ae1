"""End-to-end tests of the ``logitkit`` command in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from logitkit.cli import main  # noqa: E402


def _csv(path, X, y, header=None):
    header = header or [f"f{i}" for i in range(X.shape[1])] + ["label"]
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row, t in zip(X, y, strict=True):
            f.write(",".join(f"{v:.5g}" for v in row) + f",{t}\n")


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    _csv(tmp_path / "train.csv", X, y)
    np.savez(tmp_path / "train.npz", X=X, label=(X[:, 0] > 0).astype(int), cont=X[:, 0] * 3.3)
    return tmp_path


def test_demo_trains_prints_accuracy_and_writes_pngs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "--quiet", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    acc = float(out.split("Test accuracy: ")[1].split()[0])
    assert acc >= 0.97
    assert "Confusion matrix" in out
    for name in ("logitkit_demo_curves.png", "logitkit_demo_confusion.png"):
        assert (tmp_path / name).stat().st_size > 1000
        assert str(tmp_path / name) in out


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_demo_with_no_epochs_is_one_error_line(epochs, tmp_path):
    r = _run("demo", "--quiet", "--epochs", epochs, "--out-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "--epochs must be >= 1" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize(
    "args,msg",
    [
        (["bench", "--suite", "nope"], "unknown suite 'nope'"),
        (["bench", "--samples", "0"], "--samples must be at least 1"),
        (["bench", "--repeat", "0"], "--repeat must be at least 1"),
        (["demo", "--out-dir", "afile"], "--out-dir afile exists and is not a directory"),
    ],
)
def test_bench_and_demo_argument_errors_are_one_line_on_stderr(tmp_path, args, msg):
    (tmp_path / "afile").write_text("")
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and msg in r.stderr


def test_python_dash_m_logitkit_is_the_command(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "logitkit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "demo" in r.stdout


def test_train_then_predict_csv(data, capsys):
    model = data / "m.npz"
    rc = main(
        [
            "train",
            str(data / "train.csv"),
            "--target",
            "label",
            "--hidden",
            "16",
            "--epochs",
            "30",
            "--lr",
            "0.01",
            "--quiet",
            "-o",
            str(model),
        ]
    )
    assert rc == 0 and model.exists()
    assert main(["predict", str(model), str(data / "train.csv"), "-o", str(data / "p.csv")]) == 0
    lines = (data / "p.csv").read_text().splitlines()
    assert lines[0] == "prediction,p_no,p_yes" and len(lines) == 301
    err = capsys.readouterr().err
    assert float(err.split("accuracy against column 'label': ")[1]) > 0.9


def test_predict_scores_the_target_in_an_npz_and_for_regression(data, capsys):
    # An .npz holding the training target gets the accuracy a CSV gets, and a
    # regression model reports its RMSE against the target column.
    def train(target, model, *extra):
        args = ["train", str(data / "train.npz"), "--target", target, "--epochs", "30"]
        assert main([*args, "--lr", "0.01", "--quiet", *extra, "-o", str(data / model)]) == 0

    def predict(model, source, out):
        capsys.readouterr()
        assert main(["predict", str(data / model), str(data / source), "-o", str(data / out)]) == 0
        return capsys.readouterr().err

    train("label", "c.npz")
    err = predict("c.npz", "train.npz", "p.csv")
    assert float(err.split("accuracy against column 'label': ")[1]) > 0.9
    # Without the target array: predictions, no score.
    np.savez(data / "x_only.npz", X=np.load(data / "train.npz")["X"])
    assert "accuracy" not in predict("c.npz", "x_only.npz", "q.csv")
    assert len((data / "q.csv").read_text().splitlines()) == 301

    train("cont", "r.npz", "--regression")
    err = predict("r.npz", "train.npz", "r.csv")
    rmse = float(err.split("rmse against column 'cont': ")[1])
    pred = np.loadtxt(data / "r.csv", skiprows=1)
    cont = np.load(data / "train.npz")["cont"]
    assert rmse == pytest.approx(np.sqrt(np.mean((pred - cont) ** 2)), rel=1e-4)
    assert rmse < 0.5 * cont.std()


def test_train_npz_and_regression(data):
    assert (
        main(
            [
                "train",
                str(data / "train.npz"),
                "--target",
                "label",
                "--epochs",
                "3",
                "--quiet",
                "-o",
                str(data / "n.npz"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(data / "train.npz"),
                "--target",
                "label",
                "--regression",
                "--epochs",
                "3",
                "--quiet",
                "-o",
                str(data / "r.npz"),
            ]
        )
        == 0
    )


def _run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "logitkit.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args,msg",
    [
        (["train", "missing.csv", "--target", "label"], "missing.csv: no such file"),
        (["train", "train.csv", "--target", "nope"], "no column 'nope'"),
        (["train", "nan.csv", "--target", "label"], "NaN or missing value in feature 'f1'"),
        (["train", "short.csv", "--target", "label"], "line 3 has 2 fields"),
        (["train", "train.npz", "--target", "nope"], "no array 'nope'"),
        (["train", "mismatch.npz", "--target", "y"], "X has 300 rows but 'y' has 10"),
        (["train", "train.npz", "--target", "cont"], "class labels (use --regression"),
        (["train", "cont.csv", "--target", "label"], "not class labels (use --regression"),
        (["train", "nanlab.csv", "--target", "label"], "missing label in 'label' at row 3"),
        (["train", "onlytarget.csv", "--target", "label"], "no feature columns besides"),
        (["predict", "nomodel.npz", "train.csv"], "nomodel.npz: no such file"),
        (["predict", "train.csv", "train.csv"], "not a logitkit model file"),
        (["train", "train.csv", "--target", "label", "--epochs", "0"], "--epochs must be >= 1"),
        (["train", "train.csv", "--target", "label", "--patience", "-1"], "--patience must be"),
    ],
)
def test_bad_input_gives_one_error_line_and_no_model(data, args, msg):
    X = np.random.default_rng(1).normal(size=(300, 4))
    Xn = X.copy()
    Xn[5, 1] = np.nan
    _csv(data / "nan.csv", Xn, ["a"] * 300)
    (data / "short.csv").write_text("f0,f1,label\n1,2,a\n3,b\n")
    np.savez(data / "mismatch.npz", X=X, y=np.arange(10))
    # 60 distinct floats: too few rows for the distinct-value count to tell.
    _csv(data / "cont.csv", X[:60], [f"{v:.6f}" for v in X[:60, 0]])
    _csv(data / "nanlab.csv", X[:6], ["a", "b", "nan", "a", "b", "a"])
    (data / "onlytarget.csv").write_text("label\n0\n1\n0\n1\n")
    r = _run(*args, "-o", "out.npz", cwd=data) if args[0] == "train" else _run(*args, cwd=data)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert msg in r.stderr
    assert not os.path.exists(data / "out.npz")
    assert not [p for p in os.listdir(data) if p.endswith(".tmp")]


def test_csv_with_a_byte_order_mark_reads_the_first_column_name(data):
    # Excel's "CSV UTF-8" starts with a byte-order mark; the target is the
    # first column here, so the mark would otherwise become part of its name.
    rng = np.random.default_rng(2)
    rows = [f"{'ab'[i % 2]},{rng.normal():.4f},{rng.normal():.4f}" for i in range(40)]
    (data / "bom.csv").write_text("\ufefflabel,f0,f1\n" + "\n".join(rows) + "\n", "utf-8")
    r = _run("train", "bom.csv", "--target", "label", "--epochs", "1", "-o", "m.npz", cwd=data)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(data / "m.npz")


def test_output_in_a_missing_directory_is_an_error_before_training(data):
    r = _run("train", "train.csv", "--target", "label", "-o", "nodir/m.npz", cwd=data)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "nodir/m.npz: directory" in r.stderr and "does not exist" in r.stderr
    assert "Trained" not in r.stdout
