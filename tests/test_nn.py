"""logitkit.nn: gradients, optimizers, training, save/load, resume, validation."""

from __future__ import annotations

import math

import logitkit as lk
import numpy as np
import pytest
from logitkit import nn

RNG = np.random.default_rng(0)
X16 = RNG.normal(size=(16, 5))
Y16 = RNG.integers(0, 3, 16)
R16 = RNG.normal(size=(16, 3))


@pytest.mark.parametrize("loss", nn.LOSSES)
@pytest.mark.parametrize("activation", [*nn.ACTIVATIONS, "identity", "logistic"])
def test_backprop_matches_finite_differences_for_every_activation_and_loss(activation, loss):
    m = nn.MLP([5, 7, 6, 3], activation=activation, loss=loss, seed=1)
    y = Y16 if loss == "cross_entropy" else R16
    assert nn.gradient_check(m, X16, y, max_params=None) < 1e-4
    sw = RNG.random(16)
    cw = [1.0, 2.0, 0.5] if loss == "cross_entropy" else None
    assert nn.gradient_check(m, X16, y, sample_weight=sw, class_weight=cw, max_params=40) < 1e-4


def test_gradient_check_detects_a_wrong_gradient(monkeypatch):
    m = nn.MLP([5, 4, 3], activation="tanh", seed=0)
    orig = nn.MLP._backward

    def broken(self, x, ws):
        orig(self, x, ws)
        self.weight_grads *= 1.01

    monkeypatch.setattr(nn.MLP, "_backward", broken)
    assert nn.gradient_check(m, X16, Y16) > 1e-3


def _adam_numpy(p, g, m, v, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return p, m, v


@pytest.mark.parametrize(
    "kernel,decoupled", [(lk._core.adam_step, False), (lk._core.adamw_step, True)]
)
def test_adam_kernels_match_numpy_formula(kernel, decoupled):
    p = RNG.normal(size=1000)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rp, rm, rv = p.copy(), m.copy(), v.copy()
    for t in range(1, 4):
        g = RNG.normal(size=1000)
        kernel(p, g, m, v, step=t, lr=1e-2, weight_decay=0.1)
        rp, rm, rv = _adam_numpy(rp, g, rm, rv, t, lr=1e-2, wd=0.1, decoupled=decoupled)
    np.testing.assert_allclose(p, rp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(v, rv, rtol=1e-12)


def test_sgd_nesterov_matches_torch_formula():
    p = RNG.normal(size=50).astype(np.float32)
    buf = np.zeros_like(p)
    rp, rb = p.astype(np.float64), np.zeros(50)
    for _ in range(3):
        g = RNG.normal(size=50).astype(np.float32)
        lk._core.sgd_step(p, g, buf, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
        gg = g + 0.01 * rp
        rb = 0.9 * rb + gg
        rp = rp - 0.1 * (gg + 0.9 * rb)
    np.testing.assert_allclose(p, rp, rtol=1e-5)


def test_optimizer_kernels_reject_bad_arguments_naming_them():
    p = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="grad has dtype"):
        lk._core.sgd_step(p, np.zeros(4), lr=0.1)
    with pytest.raises(ValueError, match="grad has shape"):
        lk._core.sgd_step(p, np.zeros(5, np.float32), lr=0.1)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param is read-only"):
        lk._core.sgd_step(ro, p, lr=0.1)
    with pytest.raises(ValueError, match="momentum_buffer is required"):
        lk._core.sgd_step(p, p.copy(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="C-contiguous"):
        lk._core.sgd_step(np.zeros(8, np.float32)[::2], p, lr=0.1)
    with pytest.raises(ValueError, match="share memory"):
        lk._core.adam_step(p, p.copy(), p, p.copy(), step=1)
    with pytest.raises(ValueError, match="step must be"):
        lk._core.adam_step(p, p.copy(), p.copy(), p.copy(), step=0)


def test_optimizer_step_is_identical_for_any_thread_count():
    n = 300_000  # above the parallel threshold
    res = []
    for threads in (1, 2):
        lk.set_num_threads(threads)
        p = np.linspace(-1, 1, n, dtype=np.float32)
        m, v = np.zeros_like(p), np.zeros_like(p)
        g = np.cos(np.arange(n, dtype=np.float32))
        for t in (1, 2):
            lk._core.adamw_step(p, g, m, v, step=t)
        res.append(p)
    assert np.array_equal(res[0], res[1])


def test_training_is_identical_for_any_thread_count_and_predictions_for_any_batch():
    # Products of 256 x 200 x 256 multiply-adds run on the pool when it has threads.
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1024, 200)).astype(np.float32)
    y = rng.integers(0, 10, 1024)
    before = lk.get_num_threads()
    models = []
    try:
        for threads in (1, 3):
            lk.set_num_threads(threads)
            m = nn.MLP([200, 256, 10], seed=0)
            m.fit(X, y, epochs=2, batch_size=256, optimizer=nn.Adam(1e-3), seed=0, verbose=0)
            models.append(m)
    finally:
        lk.set_num_threads(before)
    for a, b in zip(models[0].layers, models[1].layers, strict=True):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    full = models[0].predict_proba(X)
    np.testing.assert_array_equal(models[0].predict_proba(X[100:101]), full[100:101])
    np.testing.assert_array_equal(models[0].predict_proba(X[7:900]), full[7:900])


@pytest.fixture(scope="module")
def digits():
    sk = pytest.importorskip("sklearn.datasets")
    from sklearn.model_selection import train_test_split

    d = sk.load_digits()
    return train_test_split(
        (d.data / 16).astype(np.float32), d.target, test_size=0.2, random_state=0, stratify=d.target
    )


def test_training_on_digits_reaches_97_percent_test_accuracy(digits):
    Xtr, Xte, ytr, yte = digits
    m = nn.MLP([64, 128, 64, 10], seed=0)
    hist = m.fit(Xtr, ytr, epochs=40, batch_size=64, verbose=0, validation_data=(Xte, yte))
    assert m.evaluate(Xte, yte)["accuracy"] >= 0.97
    assert hist["loss"][-1] < hist["loss"][0] / 5
    assert set(hist.keys()) >= {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_time"}


def test_predict_log_proba_is_log_softmax_not_log_of_softmax():
    m = nn.MLP([2, 2], activation="identity", seed=0, dtype="float64")
    m.layers[0].W[...] = [[200.0, -200.0], [0.0, 0.0]]
    lp = m.predict_log_proba([[1.0, 0.0]])
    assert np.isfinite(lp).all() and lp[0, 1] == pytest.approx(-400.0)
    np.testing.assert_allclose(np.exp(m.predict_log_proba(X16[:, :2])), m.predict_proba(X16[:, :2]))


def test_save_load_predict_identical_and_atomic(tmp_path, digits):
    Xtr, Xte, ytr, _ = digits
    m = nn.MLP([64, 32, 10], activation="gelu", seed=3)
    m.fit(Xtr, ytr, epochs=2, verbose=0)
    m.metadata = {"classes": list(range(10))}
    path = tmp_path / "m.npz"
    m.save(path)
    m2 = nn.MLP.load(path)
    assert np.array_equal(m.predict_proba(Xte), m2.predict_proba(Xte))
    assert m2.metadata == m.metadata and m2.activation == "gelu"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a logitkit model"):
        nn.MLP.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        nn.MLP.load(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "opt,schedule",
    [
        (lambda: nn.Adam(1e-3), None),
        (lambda: nn.SGD(0.05, 0.9, True, 1e-4), lambda: nn.StepLR(1, 0.5)),
        (lambda: nn.AdamW(2e-3), lambda: nn.CosineLR(4)),
    ],
)
def test_resume_from_checkpoint_matches_uninterrupted_training_bit_for_bit(
    tmp_path, digits, opt, schedule
):
    Xtr, _, ytr, _ = digits
    a = nn.MLP([64, 32, 10], seed=1)
    a.fit(
        Xtr,
        ytr,
        epochs=4,
        batch_size=50,
        optimizer=opt(),
        schedule=schedule and schedule(),
        seed=7,
        verbose=0,
    )
    b = nn.MLP([64, 32, 10], seed=1)
    b.fit(
        Xtr,
        ytr,
        epochs=2,
        batch_size=50,
        optimizer=opt(),
        schedule=schedule and schedule(),
        seed=7,
        verbose=0,
    )
    b.save(tmp_path / "ckpt.npz")
    c = nn.MLP.load(tmp_path / "ckpt.npz")
    c.fit(Xtr, ytr, epochs=2, batch_size=50, verbose=0)
    assert np.array_equal(a.weights_flat, c.weights_flat)
    assert np.array_equal(a.biases_flat, c.biases_flat)


def test_resume_with_a_validation_split_drawn_from_the_fit_seed(tmp_path, digits):
    # The split of a fit given seed=3 (not the model's seed 1) is drawn
    # again from 3 when the loaded model resumes without a seed.
    Xtr, _, ytr, _ = digits
    kw = dict(batch_size=50, validation_split=0.2, verbose=0)
    a = nn.MLP([64, 32, 10], seed=1)
    ha = a.fit(Xtr, ytr, epochs=4, seed=3, **kw)
    b = nn.MLP([64, 32, 10], seed=1)
    b.fit(Xtr, ytr, epochs=2, seed=3, **kw)
    b.save(tmp_path / "ckpt.npz")
    c = nn.MLP.load(tmp_path / "ckpt.npz")
    hc = c.fit(Xtr, ytr, epochs=2, **kw)
    assert np.array_equal(a.weights_flat, c.weights_flat)
    assert np.array_equal(a.biases_flat, c.biases_flat)
    assert ha.history["val_loss"][2:] == hc.history["val_loss"]
    assert not np.array_equal(b.weights_flat, c.weights_flat)


def test_early_stopping_restores_best_weights():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 4)), rng.integers(0, 2, 200)  # pure noise: overfits
    m = nn.MLP([4, 64, 2], seed=0)
    es = nn.EarlyStopping(patience=3)
    hist = m.fit(
        X,
        y,
        epochs=200,
        batch_size=16,
        validation_split=0.3,
        early_stopping=es,
        verbose=0,
        optimizer=nn.Adam(1e-2),
    )
    assert es.stopped_epoch is not None and len(hist["loss"]) < 200
    best = min(hist["val_loss"])
    assert hist["val_loss"][es.best_epoch] == best
    assert hist["val_loss"][-1] > best


def test_grad_clipping_and_callbacks_and_plateau_schedule(digits):
    Xtr, _, ytr, _ = digits
    seen = []
    m = nn.MLP([64, 16, 10], seed=0)
    sched = nn.ReduceLROnPlateau(factor=0.5, patience=0)
    hist = m.fit(
        Xtr,
        ytr,
        epochs=3,
        clip_grad_norm=0.1,
        schedule=sched,
        verbose=0,
        callbacks=[nn.LambdaCallback(lambda e, logs: seen.append(e))],
    )
    assert seen == [0, 1, 2] and np.isfinite(hist["loss"]).all()


@pytest.mark.parametrize(
    "X,y,msg",
    [
        (np.full((4, 5), np.nan), [0, 1, 2, 0], "X contains NaN"),
        (np.zeros((4, 5)), [0, 1, 2], "X has 4 rows but y has 3"),
        (np.zeros((4, 5)), [0, 1, 7, 0], "y has class 7 at index 2"),
        (np.zeros((4, 6)), [0, 1, 2, 0], "X has 6 features"),
        (np.zeros((4, 5)), [0.5, 1, 2, 0], "integer class indices"),
        (np.zeros(5), [0], "must be 2-D"),
    ],
)
def test_fit_rejects_bad_input_with_a_clear_message(X, y, msg):
    m = nn.MLP([5, 4, 3], seed=0)
    before = m.weights_flat.copy()
    with pytest.raises(ValueError, match=msg):
        m.fit(X, y, epochs=1, verbose=0)
    assert np.array_equal(before, m.weights_flat)


def test_float64_model_and_regression():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    m = nn.MLP([3, 32, 1], activation="tanh", loss="mse", dtype="float64", seed=0)
    hist = m.fit(X, y, epochs=60, batch_size=32, optimizer=nn.Adam(1e-2), verbose=0)
    assert m.predict(X).dtype == np.float64
    assert hist["loss"][-1] < 0.05


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="activation 'nope'"):
        nn.MLP([3, 2], activation="nope")
    with pytest.raises(ValueError, match="layer_sizes"):
        nn.MLP([3])
    with pytest.raises(ValueError, match="dtype"):
        nn.MLP([3, 2], dtype="float16")
    with pytest.raises(ValueError, match="init must be one of"):
        nn.MLP([3, 2], init="xavier")


@pytest.mark.parametrize(
    "init, w_std, bias_zero",
    [
        # He-normal: std sqrt(2 / fan_in); Glorot-uniform: lim sqrt(6 / (in + out)),
        # std lim / sqrt(3); PyTorch's nn.Linear: U(+-1/sqrt(fan_in)) for W and b.
        ("he", math.sqrt(2 / 400), True),
        ("glorot", math.sqrt(6 / 600) / math.sqrt(3), True),
        ("torch", 1 / math.sqrt(400) / math.sqrt(3), False),
    ],
)
def test_initialisations_have_their_documented_scale(init, w_std, bias_zero):
    m = nn.MLP([400, 200, 10], init=init, seed=0)
    W, b = m.layers[0].W, m.layers[0].b
    assert abs(W.std() / w_std - 1) < 0.02
    assert (b == 0).all() if bias_zero else (0 < np.abs(b).max() <= 1 / math.sqrt(400))
    if init == "torch":
        assert np.abs(W).max() <= 1 / math.sqrt(400)
    # The same seed gives the same weights; another seed other weights.
    assert np.array_equal(W, nn.MLP([400, 200, 10], init=init, seed=0).layers[0].W)
    assert not np.array_equal(W, nn.MLP([400, 200, 10], init=init, seed=1).layers[0].W)


def test_save_into_a_missing_directory_names_the_path(tmp_path):
    m = nn.MLP([3, 2], seed=0)
    with pytest.raises(FileNotFoundError, match="nodir"):
        m.save(tmp_path / "nodir" / "m.npz")
    assert not list(tmp_path.iterdir())


def test_a_reused_early_stopping_does_not_restore_an_earlier_fits_weights(digits):
    Xtr, Xte, ytr, yte = digits
    es = nn.EarlyStopping(patience=2, min_delta=0.0)
    a = nn.MLP([64, 16, 10], seed=0)
    a.fit(Xtr, ytr, epochs=6, validation_data=(Xte, yte), early_stopping=es, verbose=0)
    b = nn.MLP([64, 16, 10], seed=5)
    before = b.weights_flat.copy()
    b.fit(Xtr, ytr, epochs=0, early_stopping=es, verbose=0)
    np.testing.assert_array_equal(b.weights_flat, before)
    c = nn.MLP([64, 7, 10], seed=5)  # another shape: must not even try
    c.fit(Xtr, ytr, epochs=0, early_stopping=es, verbose=0)


def test_an_optimizer_passed_to_another_model_starts_afresh(digits):
    Xtr, _, ytr, _ = digits
    X, y = Xtr[:300], ytr[:300]

    def fold(seed, opt):
        m = nn.MLP([64, 16, 10], seed=seed)
        m.fit(X, y, epochs=2, batch_size=64, optimizer=opt, seed=seed)
        return m.weights_flat.copy()

    shared = nn.Adam(1e-2)
    first = fold(0, shared)
    second = fold(1, shared)  # a second model: as with a new Adam
    assert shared.steps == 10
    np.testing.assert_array_equal(first, fold(0, nn.Adam(1e-2)))
    np.testing.assert_array_equal(second, fold(1, nn.Adam(1e-2)))
    # The same model again resumes: state and step count carry over.
    m = nn.MLP([64, 16, 10], seed=0)
    opt = nn.Adam(1e-2)
    m.fit(X, y, epochs=1, batch_size=64, optimizer=opt, seed=0)
    m.fit(X, y, epochs=1, batch_size=64, optimizer=opt, seed=0)
    assert opt.steps == 10


def test_early_stopping_monitor_misspelt_is_an_error_and_val_falls_back(digits):
    Xtr, _, ytr, _ = digits
    m = nn.MLP([64, 8, 10], seed=0)
    with pytest.raises(ValueError, match="monitor 'val_acuracy' is not a logged metric"):
        m.fit(Xtr, ytr, epochs=2, callbacks=[nn.EarlyStopping(monitor="val_acuracy")])
    es = nn.EarlyStopping(monitor="val_accuracy", patience=1)
    m.fit(Xtr, ytr, epochs=2, callbacks=[es])  # no validation data: training accuracy
    assert es.best < 0  # accuracy is maximised: its negative is tracked


def test_a_value_beyond_float32_is_named_as_such():
    m = nn.MLP([2, 3, 2], seed=0)
    X = np.array([[0.0, 1.0], [1e39, 0.0]])
    with pytest.raises(ValueError, match=r"X holds 1e\+39 at row 1, column 0, beyond float32"):
        m.fit(X, [0, 1], epochs=1)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        m.fit(np.array([[0.0, np.inf], [0.0, 0.0]]), [0, 1], epochs=1)
    nn.MLP([2, 3, 2], dtype="float64", seed=0).fit(X, [0, 1], epochs=1)


def test_classifier_only_methods_refuse_a_regression_model(tmp_path):
    m = nn.MLP([3, 4, 2], loss="mse", seed=0)
    for f in (m.predict_proba, m.predict_log_proba):
        with pytest.raises(ValueError, match="needs a classifier"):
            f(np.zeros((2, 3), np.float32))
    m.metadata = {"flag": np.bool_(True), "n": np.int64(3)}
    m.save(tmp_path / "m.npz")
    assert nn.MLP.load(tmp_path / "m.npz").metadata == {"flag": True, "n": 3}


def test_fit_validates_epochs_batch_size_and_validation_data(digits):
    Xtr, Xte, ytr, yte = digits
    m = nn.MLP([64, 8, 10], seed=0)
    for bad in (None, 1.5, "3", True):
        with pytest.raises(TypeError, match="epochs must be an integer"):
            m.fit(Xtr, ytr, epochs=bad, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        m.fit(Xtr, ytr, epochs=1, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match=r"validation_data must be \(X, y\)"):
        m.fit(Xtr, ytr, epochs=1, validation_data=(Xte,), verbose=0)
    with pytest.raises(ValueError, match="validation sample_weight has shape"):
        m.fit(Xtr, ytr, epochs=1, validation_data=(Xte, yte, np.ones(3)), verbose=0)
    # Validation weights are used: zero weight on all but one row changes val_loss.
    w = np.zeros(len(Xte))
    w[0] = 1.0
    h1 = nn.MLP([64, 8, 10], seed=0).fit(Xtr, ytr, epochs=1, validation_data=(Xte, yte), verbose=0)
    h2 = nn.MLP([64, 8, 10], seed=0).fit(
        Xtr, ytr, epochs=1, validation_data=(Xte, yte, w), verbose=0
    )
    assert h1.history["val_loss"] != h2.history["val_loss"]
