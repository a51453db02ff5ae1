"""scikit-learn estimators on ``logitkit.nn``: ``MLPClassifier`` and
``MLPRegressor`` with scikit-learn's parameter names, learned attributes and
behaviour (they work in ``Pipeline``, ``GridSearchCV``, ``cross_val_score``).

scikit-learn is an optional dependency (``pip install "logitkit[train]"``);
``import logitkit`` works without it and this module is imported on first use
of ``logitkit.MLPClassifier`` / ``logitkit.MLPRegressor``.

Differences from scikit-learn's MLP: computation is float32 unless
``dtype="float64"``; the classifier always has a softmax output (two units for
a binary problem, same probabilities); ``solver`` is ``"adam"``, ``"adamw"``
or ``"sgd"`` (no ``"lbfgs"``); ``learning_rate="invscaling"`` is not supported.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .nn import SGD, Adam, AdamW, Callback
from .nn.model import MLP


class _Params(list):
    """``coefs_`` / ``intercepts_``: the model's own arrays (views into its
    parameter buffers, so ``coefs_[0][:] = w`` writes the weights). Assigning
    an entry, a slice of entries, or the whole attribute copies the values in
    (same shapes, cast to the model's dtype), as scikit-learn's lists let
    weights be set."""

    def __init__(self, name: str, arrays: list[np.ndarray]) -> None:
        super().__init__(arrays)
        self._name = name

    def __setitem__(self, i, value) -> None:
        if isinstance(i, slice):
            dst = list.__getitem__(self, i)
            value = list(value)
            if len(value) != len(dst):
                raise ValueError(f"{self._name} takes {len(dst)} arrays here, got {len(value)}")
            for k, (d, v) in enumerate(zip(dst, value, strict=True)):
                self._copy(d, v, f"{self._name}[{k}]")
            return
        self._copy(list.__getitem__(self, i), value, f"{self._name}[{i}]")

    @staticmethod
    def _copy(dst: np.ndarray, value, name: str) -> None:
        v = np.asarray(value)
        if v.shape != dst.shape:
            raise ValueError(f"{name} has shape {dst.shape}, got an array of shape {v.shape}")
        if not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
            raise TypeError(f"{name} must be real numbers, got dtype {v.dtype}")
        dst[...] = v

    def __delitem__(self, i) -> None:
        raise TypeError(f"{self._name} has one array per layer: entries cannot be removed")

    def append(self, value) -> None:
        raise TypeError(f"{self._name} has one array per layer: entries cannot be added")

    def extend(self, value) -> None:
        raise TypeError(f"{self._name} has one array per layer: entries cannot be added")

    def insert(self, i, value) -> None:
        raise TypeError(f"{self._name} has one array per layer: entries cannot be added")


class _SklearnStopping(Callback):
    """scikit-learn's stopping rule: stop when the training loss (or, with
    early_stopping, the validation score) has not improved by ``tol`` for
    ``n_iter_no_change`` epochs; with early stopping restore the best weights.
    ``learning_rate="adaptive"`` divides lr by 5 instead of stopping (SGD
    only, as in scikit-learn)."""

    def __init__(self, est: _BaseMLP, val: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.est, self.val = est, val
        self.best_params: tuple[np.ndarray, np.ndarray] | None = None

    def on_epoch_end(self, epoch, logs, model):
        est = self.est
        est.n_iter_ += 1
        est.t_ += est._samples_per_epoch
        est.loss_curve_.append(logs["loss"] + est._l2_penalty())
        if self.val is not None:
            score = est._val_score(*self.val)
            est.validation_scores_.append(score)
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_params = (model.weights_flat.copy(), model.biases_flat.copy())
            improved = score >= max(est.validation_scores_[:-1] or [-np.inf]) + est.tol
            if not est.validation_scores_[:-1]:
                improved = True
        else:
            loss = est.loss_curve_[-1]
            # None with early_stopping=True (partial_fit runs without a
            # validation split).
            best = math.inf if est.best_loss_ is None else est.best_loss_
            improved = loss < best - est.tol
            est.best_loss_ = min(best, loss)
        est._no_improvement_count = 0 if improved else est._no_improvement_count + 1
        if est._no_improvement_count > est.n_iter_no_change:
            if (
                est.learning_rate == "adaptive"
                and est.solver == "sgd"
                and model.optimizer.lr > 1e-6
            ):
                model.optimizer.lr /= 5.0
                est._no_improvement_count = 0
                return False
            est._converged = True
            return True
        return False

    def on_train_end(self, model):
        if self.best_params is not None:
            np.copyto(model.weights_flat, self.best_params[0])
            np.copyto(model.biases_flat, self.best_params[1])


class _BaseMLP(BaseEstimator):
    _loss = "cross_entropy"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dtype="float32",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype

    # ------------------------------------------------------------ helpers

    def _validate_params_(self) -> None:
        hls = self.hidden_layer_sizes
        hls = [hls] if np.isscalar(hls) else list(hls)
        if any(int(h) < 1 for h in hls):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes}")
        if self.solver not in ("adam", "adamw", "sgd"):
            raise ValueError(
                f"solver={self.solver!r} is not supported; use 'adam', 'adamw' or 'sgd'"
            )
        if self.activation not in ("identity", "logistic", "tanh", "relu", "gelu", "silu"):
            from .nn import ACTIVATIONS

            if self.activation not in ACTIVATIONS:
                raise ValueError(f"activation={self.activation!r} is not supported")
        if self.learning_rate not in ("constant", "adaptive"):
            raise ValueError(
                f"learning_rate={self.learning_rate!r} is not supported; use 'constant' or"
                " 'adaptive'"
            )
        for name in ("learning_rate_init", "max_iter", "n_iter_no_change"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        # scikit-learn: [0, 1), and above 0 only where a split is drawn.
        vf = self.validation_fraction
        if not (0 <= vf < 1) or (self.early_stopping and vf == 0):
            raise ValueError(
                f"validation_fraction must be in {'(0, 1)' if self.early_stopping else '[0, 1)'}"
                f" with early_stopping={self.early_stopping}, got {vf}"
            )
        self._hidden = [int(h) for h in hls]

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _batch(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        bs = int(self.batch_size)
        if bs < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        return min(bs, n)

    def _optimizer(self, bs: int):
        wd = self.alpha / bs  # scikit-learn's L2 term: alpha / (2 * batch) * ||W||^2
        if self.solver == "sgd":
            return SGD(
                self.learning_rate_init,
                momentum=self.momentum,
                nesterov=self.nesterovs_momentum and self.momentum > 0,
                weight_decay=wd,
            )
        cls = Adam if self.solver == "adam" else AdamW
        return cls(
            self.learning_rate_init,
            betas=(self.beta_1, self.beta_2),
            eps=self.epsilon,
            weight_decay=wd,
        )

    def _dtypes(self) -> tuple[type, type]:
        """What ``validate_data`` keeps as it is (float32 and float64 arrays),
        the first the dtype of anything else (integers, lists): the model's,
        so that integer features reach a float64 model in float64."""
        if np.dtype(self.dtype) == np.float64:
            return (np.float64, np.float32)
        return (np.float32, np.float64)

    def _l2_penalty(self) -> float:
        w = self.model_.weights_flat
        return 0.5 * self.alpha * float(np.dot(w, w)) / self._bs

    def _new_model(self, n_features: int, n_outputs: int) -> None:
        self.model_ = MLP(
            [n_features, *self._hidden, n_outputs],
            self.activation,
            loss=self._loss,
            dtype=self.dtype,
            # scikit-learn's MLP initialises with Glorot-uniform for every activation.
            init="glorot",
            seed=self._seed(),
        )
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0
        # As scikit-learn: the best training loss is tracked only without
        # early stopping (which tracks the validation score instead).
        self.best_loss_ = None if self.early_stopping else math.inf
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -math.inf
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _run(self, X, Y, y_raw, sw, cw, epochs: int, incremental: bool) -> None:
        m = self.model_
        n = len(X)
        bs = self._batch(n)
        self._bs = bs
        self._samples_per_epoch = n
        val = None
        if self.early_stopping and not incremental:
            strat = Y if self._loss == "cross_entropy" else None
            try:
                idx_t, idx_v = train_test_split(
                    np.arange(n),
                    test_size=self.validation_fraction,
                    random_state=self._seed(),
                    stratify=strat,
                )
            except ValueError:
                idx_t, idx_v = train_test_split(
                    np.arange(n), test_size=self.validation_fraction, random_state=self._seed()
                )
            if len(idx_v) < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the"
                    " size of your dataset."
                )
            val = (X[idx_v], y_raw[idx_v])
            X, Y = X[idx_t], Y[idx_t]
            sw = None if sw is None else sw[idx_t]
            self._samples_per_epoch = len(X)
        # n_iter_ counts the epochs of this call, as in scikit-learn: a fit's
        # (warm_start too), and 1 after a partial_fit (t_ counts them all).
        self.n_iter_ = 0
        # A new optimizer for every fit, warm_start included (scikit-learn's
        # rule: the weights carry over, the solver's state and settings do
        # not); partial_fit continues the one it has.
        if m.optimizer is None or not incremental:
            m.optimizer = self._optimizer(bs)
        self._converged = False
        stopper = _SklearnStopping(self, val)
        m.fit(
            X,
            Y,
            epochs=epochs,
            batch_size=bs,
            shuffle=self.shuffle,
            callbacks=[stopper] if not incremental else [],
            sample_weight=sw,
            class_weight=cw,
            verbose=int(bool(self.verbose)),
            seed=None if (self.warm_start or incremental) and m._rng is not None else m.seed,
        )
        if incremental:
            stopper.on_epoch_end(0, {"loss": m.evaluate(X, Y, sw)["loss"]}, m)
        elif not self._converged and self.max_iter > 0:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the"
                " optimization hasn't converged yet.",
                ConvergenceWarning,
                # _run, _fit, fit, then the caller's line.
                stacklevel=4,
            )

    # ------------------------------------------------------------ attributes

    @property
    def coefs_(self) -> list[np.ndarray]:
        check_is_fitted(self, "model_")
        return _Params("coefs_", [layer.W for layer in self.model_.layers])

    @coefs_.setter
    def coefs_(self, value) -> None:
        self.coefs_[:] = value

    @property
    def intercepts_(self) -> list[np.ndarray]:
        check_is_fitted(self, "model_")
        return _Params("intercepts_", [layer.b for layer in self.model_.layers])

    @intercepts_.setter
    def intercepts_(self, value) -> None:
        self.intercepts_[:] = value

    @property
    def n_layers_(self) -> int:
        check_is_fitted(self, "model_")
        return len(self.model_.layers) + 1

    @property
    def n_outputs_(self) -> int:
        check_is_fitted(self, "model_")
        return self.model_.n_outputs


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier with scikit-learn's interface,
    trained by logitkit's fused kernels (softmax cross-entropy output).

    Extra parameters over scikit-learn: ``class_weight`` (None, "balanced" or
    a dict) and ``dtype`` ("float32" or "float64").

    >>> clf = MLPClassifier(hidden_layer_sizes=(128, 64), random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2])
    """

    _loss = "cross_entropy"
    out_activation_ = "softmax"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dtype="float32",
        class_weight=None,
    ):
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dtype=dtype,
        )
        self.class_weight = class_weight

    def _encode(self, y, *, reset: bool, classes=None):
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(
                f"MLPClassifier supports binary and multiclass targets, got {type_of_target(y)}"
            )
        if reset:
            self.classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if len(self.classes_) < 2 and classes is None:
                raise ValueError(
                    f"y has only one class ({self.classes_[0]!r}); a classifier needs at least 2"
                )
        pos = np.searchsorted(self.classes_, y)
        pos = np.clip(pos, 0, len(self.classes_) - 1)
        bad = self.classes_[pos] != y
        if bad.any():
            raise ValueError(
                f"y contains label {np.asarray(y)[bad][0]!r}, which is not in classes_"
                f" {self.classes_.tolist()}"
            )
        return pos.astype(np.int64)

    def _class_weights(self, Y) -> np.ndarray | None:
        cw = self.class_weight
        if cw is None:
            return None
        k = len(self.classes_)
        if cw == "balanced":
            counts = np.bincount(Y, minlength=k).astype(np.float64)
            return np.where(counts > 0, len(Y) / (k * np.maximum(counts, 1)), 1.0)
        if isinstance(cw, dict):
            w = np.ones(k)
            for c, v in cw.items():
                i = np.flatnonzero(self.classes_ == c)
                if len(i) == 0:
                    raise ValueError(f"class_weight has class {c!r}, which is not in y")
                w[i[0]] = v
            return w
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")

    def _val_score(self, X, y_raw) -> float:
        return float(np.mean(self.predict(X) == y_raw))

    def _fit(self, X, y, sample_weight, *, incremental: bool, classes=None):
        self._validate_params_()
        first = not hasattr(self, "model_") or not (self.warm_start or incremental)
        X, y = validate_data(self, X, y, reset=first, dtype=self._dtypes(), y_numeric=False)
        sw = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        if first:
            if incremental and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            Y = self._encode(y, reset=True, classes=classes)
            self._new_model(X.shape[1], max(len(self.classes_), 2))
        else:
            if incremental and classes is not None:
                given = np.unique(np.asarray(classes))
                if not np.array_equal(given, self.classes_):
                    # scikit-learn's own message for this.
                    raise ValueError(
                        f"classes={given.tolist()} is not the same as on last call to"
                        f" partial_fit, was: {self.classes_.tolist()}"
                    )
            Y = self._encode(y, reset=False)
        epochs = 1 if incremental else int(self.max_iter)
        self._run(X, Y, y, sw, self._class_weights(Y), epochs, incremental)
        return self

    def fit(self, X, y, sample_weight=None):
        """Trains for up to ``max_iter`` epochs (scikit-learn's stopping rule)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``(X, y)``; ``classes`` is required on the first call."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _X(self, X):
        check_is_fitted(self, "model_")
        return validate_data(self, X, reset=False, dtype=self._dtypes())

    def predict_proba(self, X) -> np.ndarray:
        X = self._X(X)
        return self.model_.predict_proba(X)

    def predict_log_proba(self, X) -> np.ndarray:
        """``log_softmax`` of the logits (never ``log(predict_proba)``)."""
        X = self._X(X)
        return self.model_.predict_log_proba(X)

    def predict(self, X) -> np.ndarray:
        X = self._X(X)
        return self.classes_[self.model_.predict(X)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        tags.transformer_tags = None
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (linear output, mean squared error)
    with scikit-learn's interface, trained by logitkit's fused kernels."""

    _loss = "mse"
    out_activation_ = "identity"

    def _val_score(self, X, y_raw) -> float:
        return float(r2_score(y_raw, self.predict(X)))

    def _fit(self, X, y, sample_weight, *, incremental: bool):
        self._validate_params_()
        first = not hasattr(self, "model_") or not (self.warm_start or incremental)
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            dtype=self._dtypes(),
            multi_output=True,
            y_numeric=True,
        )
        sw = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        Y = y.reshape(len(y), -1)
        if first:
            self._new_model(X.shape[1], Y.shape[1])
        elif Y.shape[1] != self.model_.n_outputs:
            raise ValueError(
                f"y has {Y.shape[1]} outputs, but the model has {self.model_.n_outputs}"
            )
        epochs = 1 if incremental else int(self.max_iter)
        self._run(X, Y, y, sw, None, epochs, incremental)
        return self

    def fit(self, X, y, sample_weight=None):
        """Trains for up to ``max_iter`` epochs (scikit-learn's stopping rule)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=self._dtypes())
        out = self.model_.predict(X).astype(X.dtype, copy=False)
        # scikit-learn's rule: one output gives shape (n,), whatever y's was.
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
