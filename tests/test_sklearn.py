"""logitkit.MLPClassifier / MLPRegressor against scikit-learn's API contract."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import logitkit as lk  # noqa: E402
from sklearn.datasets import load_digits, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

# Minibatch training on shuffled batches cannot make weighting a row by 2
# identical to repeating it (the batches differ); scikit-learn runs this check
# on its own MLPs only with full-batch solvers (lbfgs), which logitkit lacks.
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": "stochastic minibatch training",
}


@pytest.mark.parametrize(
    "est,expected",
    [
        (lk.MLPClassifier(max_iter=50, random_state=0), EXPECTED_FAILED),
        (lk.MLPRegressor(random_state=0), EXPECTED_FAILED),
    ],
    ids=["classifier", "regressor"],
)
def test_passes_sklearn_check_estimator(est, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = check_estimator(est, expected_failed_checks=expected, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in res if r["status"] == "failed"]
    assert failed == []


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.data, d.target


def test_classifier_in_pipeline_cross_val_score_and_grid_search(digits):
    X, y = digits
    X, y = X[:600], y[:600]
    pipe = make_pipeline(
        StandardScaler(),
        lk.MLPClassifier((32,), learning_rate_init=0.01, max_iter=30, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        assert scores.mean() > 0.85
        gs = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2).fit(X, y)
    assert gs.best_score_ > 0.8


def test_classifier_attributes_string_labels_and_proba(digits):
    X, y = digits
    labels = np.array(list("abcdefghij"))[y]
    clf = lk.MLPClassifier((64,), max_iter=20, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X / 16, labels)
    assert list(clf.classes_) == list("abcdefghij")
    assert [c.shape for c in clf.coefs_] == [(64, 64), (64, 10)]
    assert [b.shape for b in clf.intercepts_] == [(64,), (10,)]
    assert clf.n_iter_ == len(clf.loss_curve_) and len(clf.validation_scores_) == clf.n_iter_
    p = clf.predict_proba(X[:5] / 16)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X[:5] / 16)), p, rtol=1e-5)
    assert clf.score(X / 16, labels) > 0.9
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:3] / 16, ["a", "b", "zz"])
    clone = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(clone.predict_proba(X[:5] / 16), p)


def test_partial_fit_sample_weight_and_class_weight(digits):
    X, y = digits
    clf = lk.MLPClassifier((32,), learning_rate_init=0.01, random_state=0, class_weight="balanced")
    for _ in range(5):
        clf.partial_fit(X / 16, y, classes=np.arange(10), sample_weight=np.ones(len(y)))
    # As scikit-learn: n_iter_ is the last call's one epoch, t_ counts all five.
    assert clf.n_iter_ == 1 and clf.t_ == 5 * len(X) and len(clf.loss_curve_) == 5
    assert clf.score(X / 16, y) > 0.8
    with pytest.raises(ValueError, match="classes must be passed"):
        lk.MLPClassifier().partial_fit(X, y)


def test_regressor_fits_and_scores():
    X, y = make_regression(400, 5, noise=1.0, random_state=0)
    reg = make_pipeline(
        StandardScaler(),
        lk.MLPRegressor((64,), learning_rate_init=1e-2, max_iter=200, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y / y.std())
    assert reg.score(X, y / y.std()) > 0.9


def test_unsupported_solver_is_a_clear_error():
    with pytest.raises(ValueError, match="solver='lbfgs' is not supported"):
        lk.MLPClassifier(solver="lbfgs").fit([[0.0], [1.0]], [0, 1])


def test_partial_fit_rejects_other_classes_on_a_later_call():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), np.arange(20) % 2
    c = lk.MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    c.partial_fit(X, y, classes=[0, 1])
    c.partial_fit(X, y, classes=[1, 0])  # the same set
    with pytest.raises(ValueError, match="is not the same as on last call to partial_fit"):
        c.partial_fit(X, y, classes=[0, 1, 2])


def test_best_loss_is_none_with_early_stopping_as_in_scikit_learn():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), np.arange(60) % 2
    c = lk.MLPClassifier(hidden_layer_sizes=(4,), early_stopping=True, max_iter=5, random_state=0)
    assert c.fit(X, y).best_loss_ is None
    c = lk.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    assert np.isfinite(c.fit(X, y).best_loss_)
    c = lk.MLPClassifier(hidden_layer_sizes=(4,), early_stopping=True, random_state=0)
    c.partial_fit(X, y, classes=[0, 1])
    assert np.isfinite(c.best_loss_)


def test_t_counts_samples_and_n_iter_the_last_fits_epochs(digits):
    X, y = digits
    X = X / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = lk.MLPClassifier((16,), max_iter=3, tol=0, random_state=0).fit(X, y)
        assert clf.n_iter_ == 3 and clf.t_ == 3 * len(X)
        es = lk.MLPClassifier((16,), max_iter=2, early_stopping=True, validation_fraction=0.25)
        es.fit(X, y)
        assert es.t_ == 2 * (len(X) - int(np.ceil(0.25 * len(X))))
        ws = lk.MLPClassifier((16,), max_iter=3, tol=0, warm_start=True, random_state=0)
        ws.fit(X, y).fit(X, y)
    # As scikit-learn: t_ and loss_curve_ go on, n_iter_ is this fit's.
    assert ws.n_iter_ == 3 and ws.t_ == 6 * len(X) and len(ws.loss_curve_) == 6
    pf = lk.MLPClassifier((16,), random_state=0).partial_fit(X[:50], y[:50], classes=range(10))
    assert pf.t_ == 50 and pf.partial_fit(X[:20], y[:20]).t_ == 70


def test_warm_start_fit_takes_the_new_solver_settings(digits):
    X, y = digits
    X = X / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = lk.MLPClassifier((16,), max_iter=3, warm_start=True, random_state=0)
        clf.fit(X, y)
        w0 = [w.copy() for w in clf.coefs_]
        clf.set_params(solver="sgd", learning_rate_init=1e-9, momentum=0.0)
        clf.fit(X, y)
    assert isinstance(clf.model_.optimizer, lk.nn.SGD) and clf.model_.optimizer.lr == 1e-9
    # Adam's moments at lr 1e-2 moved the weights by ~1e-2 per step; SGD at 1e-9 does not.
    assert max(np.abs(a - b).max() for a, b in zip(clf.coefs_, w0, strict=True)) < 1e-6


def test_coefs_and_intercepts_can_be_assigned(digits):
    X, y = digits
    X = X / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = lk.MLPClassifier((16,), max_iter=2, random_state=0).fit(X, y)
    new = [np.full_like(w, 0.01) for w in clf.coefs_]
    clf.coefs_[0] = new[0]
    np.testing.assert_array_equal(clf.model_.layers[0].W, new[0])
    clf.coefs_ = new
    clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
    assert (clf.model_.weights_flat == np.float32(0.01)).all()
    assert (clf.model_.biases_flat == 0).all()
    # Every row now gets the same probabilities.
    p = clf.predict_proba(X[:5])
    np.testing.assert_allclose(p, np.broadcast_to(p[0], p.shape), rtol=1e-6)
    with pytest.raises(ValueError, match=r"coefs_\[1\] has shape \(16, 10\)"):
        clf.coefs_[1] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="intercepts_ takes 2 arrays"):
        clf.intercepts_ = [np.zeros(16)]
    with pytest.raises(TypeError, match="coefs_ has one array per layer"):
        clf.coefs_.append(np.zeros(3))


def test_integer_features_reach_a_float64_model_in_float64():
    X = np.array([[2**24], [2**24 + 1], [2**24 + 3]], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = lk.MLPRegressor((4,), dtype="float64", max_iter=2, random_state=0)
        reg.fit(X.astype(np.float64), [0.0, 1.0, 2.0])
    p_int, p_f64 = reg.predict(X), reg.predict(X.astype(np.float64))
    assert p_int.dtype == np.float64
    np.testing.assert_array_equal(p_int, p_f64)
    assert p_int[0] != p_int[1]  # 2**24 and 2**24 + 1 differ in float64, not in float32


def test_scikit_learn_rules_for_early_stopping_and_adaptive(digits):
    X, y = digits
    X = X / 16
    with pytest.raises(ValueError, match="validation set is too small"):
        lk.MLPClassifier(early_stopping=True, validation_fraction=0.05).fit(X[:20], y[:20] % 2)
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\)"):
        lk.MLPClassifier(early_stopping=True, validation_fraction=0.0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Without early stopping, 0 is allowed (scikit-learn's [0, 1)).
        lk.MLPClassifier((8,), max_iter=1, validation_fraction=0.0).fit(X, y)
        # "adaptive" divides SGD's learning rate only; Adam stops as with "constant".
        adam = lk.MLPClassifier(
            (8,), learning_rate="adaptive", n_iter_no_change=1, tol=1e9, max_iter=50
        ).fit(X, y)
        sgd = lk.MLPClassifier(
            (8,), solver="sgd", learning_rate="adaptive", n_iter_no_change=1, tol=1e9, max_iter=5
        ).fit(X, y)
    assert adam.model_.optimizer.lr == adam.learning_rate_init and adam.n_iter_ == 3
    assert sgd.model_.optimizer.lr < sgd.learning_rate_init


def test_regressor_with_one_output_predicts_a_vector_and_keeps_no_y():
    X, y = make_regression(100, 3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = lk.MLPRegressor((8,), max_iter=3, random_state=0).fit(X, y[:, None])
    assert reg.predict(X).shape == (100,)  # scikit-learn's rule, whatever y's shape
    # The training targets are not kept in the fitted estimator (or its pickle).
    kept = [k for k, v in vars(reg).items() if isinstance(v, np.ndarray) and len(v) == len(y)]
    assert kept == []


def test_convergence_warning_points_at_the_callers_line(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning) as rec:
        lk.MLPClassifier((4,), max_iter=1, random_state=0).fit(X / 16, y)
    assert [w.filename for w in rec if w.category is ConvergenceWarning] == [__file__]
