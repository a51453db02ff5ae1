"""``Linear`` layers and the ``MLP``: forward, backward, fit, predict, save/load.

Memory layout: all weight matrices live in one flat buffer and all biases in
another (``weights_flat``, ``biases_flat``; same for the gradients), and every
``Linear`` holds views into them. An optimizer step is therefore two fused
kernel calls whatever the depth, and weight decay applies to the weights only.
Activations, pre-activations and gradients of a batch live in a workspace that
is allocated once per batch size and reused, so the training loop does not
allocate per step.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._convert import int_arg, unmask
from . import _ops
from .callbacks import Callback, EarlyStopping, History
from .optim import (
    SCHEDULES,
    Adam,
    CosineLR,
    Optimizer,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
    make_optimizer,
)

LOSSES = ("cross_entropy", "mse")
INITS = ("auto", "he", "glorot", "torch")
_RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu", "silu")
_FORMAT = "logitkit.nn.MLP/1"


@dataclass
class Linear:
    """``y = x @ W + b``: ``W`` is ``(in_features, out_features)`` (the layout
    of scikit-learn's ``coefs_``). ``W``, ``b``, ``dW``, ``db`` are views into
    the model's flat parameter and gradient buffers."""

    W: np.ndarray
    b: np.ndarray
    dW: np.ndarray
    db: np.ndarray

    @property
    def in_features(self) -> int:
        return self.W.shape[0]

    @property
    def out_features(self) -> int:
        return self.W.shape[1]


class _Workspace:
    """Every array one forward + backward pass of ``n`` rows needs."""

    def __init__(
        self, n: int, sizes: Sequence[int], dtype: np.dtype, target: tuple, tdtype
    ) -> None:
        hid = sizes[1:-1]
        self.n = n
        self.x = np.empty((n, sizes[0]), dtype)
        self.y = np.empty((n, *target), tdtype)
        self.sw = np.empty(n, dtype)
        self.h = [np.empty((n, k), dtype) for k in hid]
        self.z = [np.empty((n, k), dtype) for k in hid]
        self.a = [np.empty((n, k), dtype) for k in hid]
        self.ga = [np.empty((n, k), dtype) for k in hid]
        self.gz = [np.empty((n, k), dtype) for k in hid]
        self.out = np.empty((n, sizes[-1]), dtype)
        self.gout = np.empty((n, sizes[-1]), dtype)
        self.pred = np.empty(n, np.intp)
        self.hit = np.empty(n, np.bool_)


def _check_sizes(layer_sizes: Iterable[int]) -> list[int]:
    try:
        sizes = [int(s) for s in layer_sizes]
    except (TypeError, ValueError):
        raise ValueError(f"layer_sizes must be a list of integers, got {layer_sizes!r}") from None
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(
            f"layer_sizes must hold at least an input and an output size, all >= 1; got {sizes}"
        )
    return sizes


def _norm_activation(activation: str | None) -> str | None:
    if activation is None or activation == "identity":
        return None
    name = _ops.ALIASES.get(activation, activation)
    if name not in _ops.ACTIVATIONS:
        raise ValueError(
            f"activation {activation!r} is not one of "
            + ", ".join(map(repr, (*_ops.ACTIVATIONS, "identity", *_ops.ALIASES)))
        )
    return name


class MLP:
    """A multi-layer perceptron trained with fused Rust kernels.

    ``layer_sizes = [n_features, hidden..., n_outputs]``. Hidden layers apply
    ``activation`` (any of ``ACTIVATIONS``, or ``"identity"``, with keyword
    ``activation_params`` such as ``negative_slope``); the output layer is
    linear and ``loss`` is ``"cross_entropy"`` (targets are class indices
    ``0..n_outputs-1``; probabilities from ``softmax``) or ``"mse"``.

    Weights are initialised from ``seed`` with He (ReLU family) or Glorot
    (otherwise), or with ``init="he" | "glorot" | "torch"`` (PyTorch's
    ``nn.Linear`` default); float32 by default, float64 supported.

    >>> m = MLP([64, 128, 10], seed=0)
    >>> hist = m.fit(X, y, epochs=20, batch_size=64, verbose=0)   # Adam(1e-3)
    >>> m.predict(X[:3])
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | None = "relu",
        *,
        loss: str = "cross_entropy",
        dtype: Any = "float32",
        init: str = "auto",
        seed: int | None = None,
        **activation_params: float,
    ) -> None:
        self.layer_sizes = _check_sizes(layer_sizes)
        self.activation = _norm_activation(activation)
        self.activation_params = dict(activation_params)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.loss = loss
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.init = init
        self.seed = seed
        s = self.layer_sizes
        nw = sum(a * b for a, b in zip(s[:-1], s[1:], strict=False))
        nb = sum(s[1:])
        self.weights_flat = np.zeros(nw, self.dtype)
        self.biases_flat = np.zeros(nb, self.dtype)
        self.weight_grads = np.zeros(nw, self.dtype)
        self.bias_grads = np.zeros(nb, self.dtype)
        self.layers: list[Linear] = []
        self._build_layers()
        self.optimizer: Optimizer | None = None
        self.schedule: Schedule | None = None
        self.epochs_trained = 0
        self.metadata: dict[str, Any] = {}
        self._rng: np.random.Generator | None = None
        # The seed of the last fit that was given one: a later fit without a
        # seed (a resumed run) draws the same validation split from it.
        self._fit_seed: int | None = None
        self._ws: OrderedDict[int, _Workspace] = OrderedDict()
        self.reset_parameters(seed)

    def __getstate__(self) -> dict[str, Any]:
        # Layers are views into the flat buffers: rebuild them after unpickling.
        st = {k: v for k, v in vars(self).items() if k not in ("layers", "_ws")}
        return st

    def __setstate__(self, st: dict[str, Any]) -> None:
        vars(self).update(st)
        self._ws = OrderedDict()
        self._build_layers()
        if self.optimizer is not None:
            self.optimizer.bind(self._groups(), owner=self)

    def _groups(self):
        return [
            (self.weights_flat, self.weight_grads, True),
            (self.biases_flat, self.bias_grads, False),
        ]

    def _build_layers(self) -> None:
        s = self.layer_sizes
        self.layers = []
        ow = ob = 0
        for a, b in zip(s[:-1], s[1:], strict=False):
            self.layers.append(
                Linear(
                    self.weights_flat[ow : ow + a * b].reshape(a, b),
                    self.biases_flat[ob : ob + b],
                    self.weight_grads[ow : ow + a * b].reshape(a, b),
                    self.bias_grads[ob : ob + b],
                )
            )
            ow, ob = ow + a * b, ob + b

    # ------------------------------------------------------------ parameters

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    def reset_parameters(self, seed: int | None = None) -> None:
        """Draws the weights from ``seed`` as ``init`` says: He-normal (``"he"``,
        the ReLU family's ``"auto"``) or Glorot-uniform (``"glorot"``, other
        activations' ``"auto"``) with zero biases, or PyTorch's ``nn.Linear``
        default (``"torch"``): weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        """
        rng = np.random.default_rng(seed)
        kind = self.init
        if kind == "auto":
            kind = "he" if self.activation in _RELU_LIKE else "glorot"
        for layer in self.layers:
            fi, fo = layer.W.shape
            if kind == "he":
                layer.W[...] = rng.standard_normal((fi, fo)) * math.sqrt(2.0 / fi)
                layer.b[...] = 0
            elif kind == "glorot":
                lim = math.sqrt(6.0 / (fi + fo))
                layer.W[...] = rng.uniform(-lim, lim, (fi, fo))
                layer.b[...] = 0
            else:
                lim = 1.0 / math.sqrt(fi)
                layer.W[...] = rng.uniform(-lim, lim, (fi, fo))
                layer.b[...] = rng.uniform(-lim, lim, fo)

    def config(self) -> dict[str, Any]:
        return {
            "layer_sizes": self.layer_sizes,
            "activation": self.activation or "identity",
            "loss": self.loss,
            "dtype": self.dtype.name,
            "init": self.init,
            "seed": self.seed,
            **self.activation_params,
        }

    def astype(self, dtype: Any) -> MLP:
        """A copy of the model (parameters only) in another float dtype."""
        m = MLP(**{**self.config(), "dtype": dtype})
        m.weights_flat[...] = self.weights_flat
        m.biases_flat[...] = self.biases_flat
        m.metadata = dict(self.metadata)
        return m

    def __repr__(self) -> str:
        return (
            f"MLP({self.layer_sizes}, activation={self.activation or 'identity'!r}, "
            f"loss={self.loss!r}, dtype={self.dtype.name!r})"
        )

    # ------------------------------------------------------------ validation

    def _check_X(self, X: Any, name: str = "X") -> np.ndarray:
        X = unmask(X, name)
        try:
            a = np.asarray(X)
        except Exception as e:
            raise ValueError(f"{name} could not be converted to an array: {e}") from None
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold numbers, got dtype {a.dtype}")
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {a.shape}")
        if a.shape[1] != self.n_features:
            raise ValueError(
                f"{name} has {a.shape[1]} features, but the model expects {self.n_features}"
            )
        src = a
        with np.errstate(over="ignore"):
            a = np.ascontiguousarray(a, dtype=self.dtype)
        if not np.isfinite(a).all():
            i, j = np.argwhere(~np.isfinite(a))[0]
            v = src[i, j]
            if src.dtype.kind in "iu" or np.isfinite(v):
                hint = " (a float64 model takes it)" if self.dtype == np.float32 else ""
                raise ValueError(
                    f"{name} holds {v.item()!r} at row {i}, column {j},"
                    f" beyond {self.dtype}'s range{hint}"
                )
            raise ValueError(f"{name} contains NaN or infinity (first at row {i}, column {j})")
        return a

    def _check_y(self, y: Any, n: int, name: str = "y") -> np.ndarray:
        a = np.asarray(unmask(y, name))
        if a.ndim == 0 or len(a) != n:
            raise ValueError(f"X has {n} rows but {name} has {len(a) if a.ndim else 0}")
        if self.loss == "cross_entropy":
            if a.ndim != 1:
                raise ValueError(f"{name} must be 1-D class indices, got shape {a.shape}")
            if a.dtype.kind == "f":
                if not (np.isfinite(a).all() and (a == np.round(a)).all()):
                    raise ValueError(f"{name} must hold integer class indices, got non-integers")
            elif a.dtype.kind not in "biu":
                raise ValueError(f"{name} must hold integer class indices, got dtype {a.dtype}")
            bad = np.flatnonzero((a < 0) | (a >= self.n_outputs))
            if len(bad):
                raise ValueError(
                    f"{name} has class {a[bad[0]].item()!r} at index {bad[0]}, but the model has"
                    f" {self.n_outputs} classes (0..{self.n_outputs - 1})"
                )
            return np.ascontiguousarray(a, dtype=np.int64)
        a = np.asarray(a, dtype=self.dtype)
        if a.ndim == 1:
            a = a[:, None]
        if a.shape[1:] != (self.n_outputs,):
            raise ValueError(
                f"{name} has shape {a.shape}, but the model has {self.n_outputs} outputs"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinity")
        return np.ascontiguousarray(a)

    def _check_weights(self, sw: Any, n: int, name: str = "sample_weight") -> np.ndarray | None:
        if sw is None:
            return None
        a = np.asarray(unmask(sw, name), dtype=self.dtype)
        if a.shape != (n,):
            raise ValueError(f"{name} has shape {a.shape}, but X has {n} rows")
        if not (np.isfinite(a).all() and (a >= 0).all()):
            raise ValueError(f"{name} must be finite and >= 0")
        return a

    # ------------------------------------------------------------ passes

    def _workspace(self, n: int) -> _Workspace:
        ws = self._ws.get(n)
        if ws is None:
            target = () if self.loss == "cross_entropy" else (self.n_outputs,)
            tdt = np.int64 if self.loss == "cross_entropy" else self.dtype
            ws = self._ws[n] = _Workspace(n, self.layer_sizes, self.dtype, target, tdt)
            while len(self._ws) > 4:
                self._ws.popitem(last=False)
        else:
            self._ws.move_to_end(n)
        return ws

    def _forward(self, x: np.ndarray, ws: _Workspace) -> np.ndarray:
        """Logits of ``x`` (``ws.n`` rows) into ``ws.out``; keeps z and a."""
        act, ap = self.activation, self.activation_params
        a = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i == last:
                _ops.matmul(a, layer.W, ws.out)
                np.add(ws.out, layer.b, out=ws.out)
                return ws.out
            if act is None:
                _ops.matmul(a, layer.W, ws.z[i])
                np.add(ws.z[i], layer.b, out=ws.z[i])
                a = ws.z[i]
            else:
                _ops.matmul(a, layer.W, ws.h[i])
                _ops.bias_act(ws.h[i], layer.b, act, out=ws.a[i], preact_out=ws.z[i], **ap)
                a = ws.a[i]
        return ws.out  # pragma: no cover

    def _backward(self, x: np.ndarray, ws: _Workspace) -> None:
        """Fills the gradient buffers from ``ws.gout`` (d loss / d logits)."""
        act, ap = self.activation, self.activation_params
        g = ws.gout
        layers = self.layers
        np.sum(g, axis=0, out=layers[-1].db)
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            prev = x if i == 0 else (ws.a[i - 1] if act is not None else ws.z[i - 1])
            _ops.matmul(prev.T, g, layer.dW)
            if i == 0:
                break
            _ops.matmul(g, layer.W.T, ws.ga[i - 1])
            below = layers[i - 1]
            if act is None:
                g = ws.ga[i - 1]
                np.sum(g, axis=0, out=below.db)
            else:
                g, _ = _ops.bias_act_backward(
                    ws.ga[i - 1], ws.z[i - 1], act, out=ws.gz[i - 1], bias_grad_out=below.db, **ap
                )

    def _loss_grad(self, ws: _Workspace, y: np.ndarray, sw: np.ndarray | None, cw) -> float:
        """Loss of ``ws.out`` against ``y``; its gradient into ``ws.gout``.

        Sample weights ``sw`` give the weighted mean: rows are scaled by
        ``sw_i / sum(sw * cw[y])``, the normaliser PyTorch uses for class weights.
        """
        out, gout = ws.out, ws.gout
        if self.loss == "cross_entropy":
            if sw is None:
                loss, _ = _ops.cross_entropy(out, y, weight=cw, return_grad=True, grad_out=gout)
                return float(loss)
            per, _ = _ops.cross_entropy(
                out, y, weight=cw, reduction="none", return_grad=True, grad_out=gout
            )
            denom = float(np.dot(sw, cw[y])) if cw is not None else float(sw.sum())
        else:
            if sw is None:
                loss, _ = _ops.mse_loss(out, y, return_grad=True, grad_out=gout)
                return float(loss)
            per, _ = _ops.mse_loss(out, y, reduction="none", return_grad=True, grad_out=gout)
            per = per.sum(axis=1)
            denom = float(sw.sum()) * self.n_outputs
        if denom <= 0:
            gout[...] = 0
            return 0.0
        scale = sw / self.dtype.type(denom)
        gout *= scale[:, None]
        return float(np.dot(per, scale))

    def loss_and_grad(
        self, X: Any, y: Any, sample_weight: Any = None, class_weight: Any = None
    ) -> float:
        """The loss on ``(X, y)``; fills ``weight_grads`` / ``bias_grads``."""
        x = self._check_X(X)
        yy = self._check_y(y, len(x))
        sw = self._check_weights(sample_weight, len(x))
        cw = None if class_weight is None else np.asarray(class_weight, self.dtype)
        ws = self._workspace(len(x))
        self._forward(x, ws)
        loss = self._loss_grad(ws, yy, sw, cw)
        self._backward(x, ws)
        return loss

    def _chunks(self, x: np.ndarray, chunk: int = 8192):
        for s in range(0, len(x), chunk):
            xs = x[s : s + chunk]
            ws = self._workspace(len(xs))
            self._forward(xs, ws)
            yield s, ws

    def decision_function(self, X: Any) -> np.ndarray:
        """The network's outputs (logits for a classifier), shape ``(n, n_outputs)``."""
        x = self._check_X(X)
        res = np.empty((len(x), self.n_outputs), self.dtype)
        for s, ws in self._chunks(x):
            res[s : s + ws.n] = ws.out
        return res

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log_softmax`` of the logits (never ``log(softmax)``: no -inf, no lost digits)."""
        self._need_classifier("predict_log_proba")
        return _ops.log_softmax(self.decision_function(X))

    def _need_classifier(self, what: str) -> None:
        if self.loss != "cross_entropy":
            raise ValueError(
                f"{what} needs a classifier (loss='cross_entropy'); this model's loss is"
                f" {self.loss!r}: use predict"
            )

    def predict_proba(self, X: Any) -> np.ndarray:
        """``softmax`` of the logits, shape ``(n, n_classes)`` (a classifier's:
        a ``ValueError`` for ``loss="mse"``)."""
        self._need_classifier("predict_proba")
        return _ops.softmax(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """Class indices (cross-entropy) or the outputs (mse)."""
        out = self.decision_function(X)
        if self.loss == "cross_entropy":
            return np.argmax(out, axis=1)
        return out

    def evaluate(self, X: Any, y: Any, sample_weight: Any = None) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` (accuracy for classifiers only)."""
        x = self._check_X(X)
        yy = self._check_y(y, len(x))
        sw = self._check_weights(sample_weight, len(x))
        return self._evaluate(x, yy, sw)

    def _evaluate(self, x, yy, sw, cw=None) -> dict[str, float]:
        tot = hits = wsum = 0.0
        for s, ws in self._chunks(x):
            yb = yy[s : s + ws.n]
            swb = None if sw is None else sw[s : s + ws.n]
            w = float(ws.n) if swb is None else float(swb.sum())
            tot += self._loss_grad(ws, yb, swb, cw) * w
            wsum += w
            if self.loss == "cross_entropy":
                np.argmax(ws.out, axis=1, out=ws.pred)
                np.equal(ws.pred, yb, out=ws.hit)
                hits += float(ws.hit.sum()) if swb is None else float(np.dot(ws.hit, swb))
        res = {"loss": tot / max(wsum, 1e-300)}
        if self.loss == "cross_entropy":
            res["accuracy"] = hits / max(wsum, 1e-300)
        return res

    # ------------------------------------------------------------ training

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 10,
        batch_size: int = 32,
        optimizer: Optimizer | str | None = None,
        schedule: Schedule | str | None = None,
        validation_split: float = 0.0,
        validation_data: tuple[Any, ...] | None = None,
        early_stopping: bool | int | EarlyStopping = False,
        callbacks: Sequence[Callback] = (),
        clip_grad_norm: float | None = None,
        sample_weight: Any = None,
        class_weight: Any = None,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: int = 1,
    ) -> History:
        """Trains for ``epochs`` passes over shuffled minibatches.

        optimizer: an ``Optimizer``, a name (``"adam"``, ``"adamw"``, ``"sgd"``),
        or None to keep the current one (Adam(1e-3) the first time). Its state
        is kept between calls, so ``fit`` twice equals one longer ``fit``.
        schedule: ``StepLR``/``CosineLR``/``ReduceLROnPlateau`` (stepped per epoch).
        validation_data: ``(X, y)`` or ``(X, y, sample_weight)``.
        validation_split: fraction held out (by ``seed``) when no
        ``validation_data`` is given. early_stopping: True (patience 10), a
        patience, or an ``EarlyStopping``; it monitors ``val_loss`` (``loss``
        without validation data) and restores the best weights.
        clip_grad_norm: rescales the gradient to this global L2 norm when above.
        sample_weight: per-row weights; class_weight: per-class weights
        (length ``n_outputs``). seed: shuffling and validation-split seed
        (default: the last fit's seed, else the model's); a given seed restarts
        the shuffling, so resume a loaded model with ``fit`` without one.
        verbose: 0 silent, 1 a progress bar (tqdm when installed).
        Returns a ``History``.
        """
        int_arg(epochs, "epochs", 0)
        int_arg(batch_size, "batch_size", 1)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be > 0, got {clip_grad_norm}")
        x = self._check_X(X)
        yy = self._check_y(y, len(x))
        sw = self._check_weights(sample_weight, len(x))
        cw = None
        if class_weight is not None:
            cw = np.asarray(class_weight, self.dtype)
            if self.loss != "cross_entropy" or cw.shape != (self.n_outputs,):
                raise ValueError(f"class_weight must have one weight per class ({self.n_outputs})")
        if len(x) == 0:
            raise ValueError("X has no rows")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (X, y) or (X, y, sample_weight)")
            xv = self._check_X(validation_data[0], "validation X")
            yv = self._check_y(validation_data[1], len(xv), "validation y")
            wv = None
            if len(validation_data) == 3 and validation_data[2] is not None:
                wv = self._check_weights(validation_data[2], len(xv), "validation sample_weight")
            val = (xv, yv, wv)
        elif validation_split > 0:
            split_seed = next((s for s in (seed, self._fit_seed, self.seed) if s is not None), None)
            perm = np.random.default_rng(split_seed).permutation(len(x))
            nv = max(1, int(round(len(x) * validation_split)))
            if nv >= len(x):
                raise ValueError("validation_split leaves no training rows")
            vi, ti = np.sort(perm[:nv]), np.sort(perm[nv:])
            val = (x[vi], yy[vi], None if sw is None else sw[vi])
            x, yy, sw = x[ti], yy[ti], (None if sw is None else sw[ti])

        if isinstance(optimizer, str):
            from .optim import OPTIMIZERS

            if optimizer not in OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
            optimizer = OPTIMIZERS[optimizer]()
        if optimizer is not None:
            self.optimizer = optimizer
        elif self.optimizer is None:
            self.optimizer = Adam()
        opt = self.optimizer
        opt.bind(self._groups(), owner=self)
        if isinstance(schedule, str):
            if schedule not in SCHEDULES:
                raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
            schedule = {
                "cosine": lambda: CosineLR(max(1, int(epochs))),
                "step": lambda: StepLR(max(1, int(epochs) // 3)),
                "plateau": ReduceLROnPlateau,
            }[schedule]()
        if schedule is not None:
            self.schedule = schedule
        if self.schedule is not None:
            self.schedule.attach(opt)
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(self.seed if seed is None else seed)
        if seed is not None:
            self._fit_seed = int(seed)

        cbs = list(callbacks)
        if early_stopping is not False and early_stopping is not None:
            if isinstance(early_stopping, EarlyStopping):
                cbs.append(early_stopping)
            else:
                patience = 10 if early_stopping is True else int(early_stopping)
                cbs.append(EarlyStopping(patience=patience))
        for cb in cbs:
            cb.on_train_begin(self)

        history = History()
        n, bs = len(x), min(int(batch_size), len(x))
        bar = _progress(int(epochs), verbose)
        order = np.arange(n)
        try:
            for epoch in range(int(epochs)):
                t0 = time.perf_counter()
                if shuffle:
                    order = self._rng.permutation(n)
                logs = self._epoch(x, yy, sw, cw, order, bs, opt, clip_grad_norm)
                if val is not None:
                    v = self._evaluate(*val, cw)
                    logs.update({f"val_{k}": vv for k, vv in v.items()})
                logs["lr"] = opt.lr
                logs["epoch_time"] = time.perf_counter() - t0
                self.epochs_trained += 1
                if not math.isfinite(logs["loss"]):
                    raise FloatingPointError(
                        f"training diverged at epoch {self.epochs_trained} (loss is"
                        f" {logs['loss']}); lower the learning rate"
                    )
                if self.schedule is not None:
                    self.schedule.step(opt, logs.get("val_loss", logs["loss"]))
                history.append(logs)
                bar.update(logs)
                stop = False
                for cb in cbs:
                    stop = bool(cb.on_epoch_end(epoch, logs, self)) or stop
                if stop:
                    break
        finally:
            bar.close()
        for cb in cbs:
            cb.on_train_end(self)
        return history

    def _epoch(self, x, yy, sw, cw, order, bs, opt, clip) -> dict[str, float]:
        """One pass over ``order`` in minibatches of ``bs``: the hot loop."""
        n = len(order)
        classify = self.loss == "cross_entropy"
        forward, backward, loss_grad = self._forward, self._backward, self._loss_grad
        wg, bg = self.weight_grads, self.bias_grads
        total = hits = 0.0
        wtotal = 0.0
        for s in range(0, n, bs):
            idx = order[s : s + bs]
            ws = self._workspace(len(idx))
            np.take(x, idx, axis=0, out=ws.x, mode="clip")
            np.take(yy, idx, axis=0, out=ws.y, mode="clip")
            swb = None
            if sw is not None:
                swb = np.take(sw, idx, out=ws.sw, mode="clip")
            out = forward(ws.x, ws)
            loss = loss_grad(ws, ws.y, swb, cw)
            backward(ws.x, ws)
            scale = 1.0
            if clip is not None:
                norm = math.sqrt(float(np.dot(wg, wg)) + float(np.dot(bg, bg)))
                if norm > clip:
                    scale = clip / (norm + 1e-6)
            opt.step(scale)
            w = float(ws.n) if swb is None else float(swb.sum())
            total += loss * w
            wtotal += w
            if classify:
                np.argmax(out, axis=1, out=ws.pred)
                np.equal(ws.pred, ws.y, out=ws.hit)
                hits += (
                    float(np.count_nonzero(ws.hit)) if swb is None else float(np.dot(ws.hit, swb))
                )
        logs = {"loss": total / max(wtotal, 1e-300)}
        if classify:
            logs["accuracy"] = hits / max(wtotal, 1e-300)
        return logs

    # ------------------------------------------------------------ save / load

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes parameters, optimizer state, schedule, shuffling RNG and
        ``metadata`` to an ``.npz`` file, atomically (a temporary file in the
        same directory, then ``os.replace``): a failed save never leaves a
        half-written model. ``MLP.load`` then resumes training exactly."""
        path = os.fspath(path)
        meta: dict[str, Any] = {
            "format": _FORMAT,
            "config": self.config(),
            "epochs_trained": self.epochs_trained,
            "metadata": self.metadata,
            "rng": None if self._rng is None else self._rng.bit_generator.state,
            "fit_seed": self._fit_seed,
            "schedule": None,
            "optimizer": None,
        }
        arrays = {"weights": self.weights_flat, "biases": self.biases_flat}
        if self.schedule is not None:
            meta["schedule"] = {
                "name": type(self.schedule).__name__,
                "state": self.schedule.state(),
            }
        if self.optimizer is not None:
            ometa, oarr = self.optimizer.state_dict()
            meta["optimizer"] = ometa
            arrays.update({f"opt.{k}": v for k, v in oarr.items()})
        blob = np.array(json.dumps(meta, default=_json_default))
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise FileNotFoundError(f"{path!r}: directory {d!r} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=".logitkit-", suffix=".tmp", dir=d)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=blob, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MLP:
        """Reads a model written by ``save`` (with its optimizer state)."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"model file {path!r} does not exist")
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                arrays = {k: f[k] for k in f.files if k != "meta"}
        except Exception:
            raise ValueError(f"{path!r} is not a logitkit model file") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError(f"{path!r} is not a logitkit model file")
        m = cls(**meta["config"])
        if arrays["weights"].shape != m.weights_flat.shape:
            raise ValueError(f"{path!r} is corrupt: parameter count does not match its config")
        m.weights_flat[...] = arrays["weights"]
        m.biases_flat[...] = arrays["biases"]
        m.epochs_trained = int(meta["epochs_trained"])
        m.metadata = meta["metadata"]
        if meta["rng"] is not None:
            m._rng = np.random.default_rng()
            m._rng.bit_generator.state = meta["rng"]
        m._fit_seed = meta.get("fit_seed")
        if meta["optimizer"] is not None:
            opt = make_optimizer(meta["optimizer"])
            opt.bind(m._groups(), owner=m)
            opt.load_state(
                meta["optimizer"], {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
            )
            m.optimizer = opt
        if meta["schedule"] is not None:
            sc = {c.__name__: c for c in SCHEDULES.values()}[meta["schedule"]["name"]]
            sched = sc.__new__(sc)
            sched.load_state(meta["schedule"]["state"])
            m.schedule = sched
        return m


def _json_default(o: Any) -> Any:
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} in a model file")


class _progress:
    """A per-epoch progress bar: tqdm when installed, else one line per epoch."""

    def __init__(self, total: int, verbose: int) -> None:
        self.verbose = verbose
        self.bar = None
        self.i = 0
        self.total = total
        if verbose:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="epoch", dynamic_ncols=True, leave=True)
            except ImportError:
                pass

    def update(self, logs: dict[str, float]) -> None:
        self.i += 1
        if not self.verbose:
            return
        show = {k: f"{v:.4g}" for k, v in logs.items() if k not in ("lr", "epoch_time")}
        if self.bar is not None:
            self.bar.set_postfix(show, refresh=False)
            self.bar.update(1)
        else:
            print(f"epoch {self.i}/{self.total} " + " ".join(f"{k}={v}" for k, v in show.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
