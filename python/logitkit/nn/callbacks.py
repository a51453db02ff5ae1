"""Training history and callbacks."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .model import MLP


class History:
    """Per-epoch records of a ``fit``: ``loss``, ``accuracy`` (classifiers),
    ``val_loss``, ``val_accuracy`` (with validation data), ``lr`` and
    ``epoch_time`` (seconds). Indexable like a dict: ``history["val_loss"]``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epochs = 0

    def append(self, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))
        self.epochs += 1

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def keys(self):
        return self.history.keys()

    def __repr__(self) -> str:
        return f"History(epochs={self.epochs}, keys={list(self.history)})"


class Callback:
    """Hooks called by ``MLP.fit``. ``on_epoch_end`` returning True stops training."""

    def on_train_begin(self, model: MLP) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: MLP) -> bool | None:
        return None

    def on_train_end(self, model: MLP) -> None:
        pass


class LambdaCallback(Callback):
    """Wraps a function ``f(epoch, logs)`` called after every epoch."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def on_epoch_end(self, epoch, logs, model):
        return bool(self.f(epoch, logs))


class EarlyStopping(Callback):
    """Stops when ``monitor`` (default ``val_loss``; a ``val_`` metric without
    validation data means the training one; a name not logged is a
    ``ValueError``) has not improved by ``min_delta`` for ``patience`` epochs,
    and restores the best weights (``restore_best_weights=True``)."""

    def __init__(
        self,
        patience: int = 10,
        min_delta: float = 1e-4,
        monitor: str = "val_loss",
        restore_best_weights: bool = True,
    ) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.monitor = monitor
        self.restore_best_weights = restore_best_weights
        self.best = math.inf
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._best_params: tuple[np.ndarray, np.ndarray] | None = None
        self._wait = 0

    def on_train_begin(self, model):
        self.best, self.best_epoch, self._wait, self.stopped_epoch = math.inf, -1, 0, None
        # A reused callback must not restore an earlier fit's weights.
        self._best_params = None

    def _value(self, logs: dict[str, float]) -> float:
        key = self.monitor
        if key not in logs:
            # val_loss / val_accuracy without validation data: the training
            # metric; anything else is a misspelling, not a fallback.
            base = key[4:] if key.startswith("val_") else None
            if base is None or base not in logs:
                metrics = sorted(k for k in logs if k != "epoch_time")
                raise ValueError(
                    f"EarlyStopping monitor {key!r} is not a logged metric; the logs have {metrics}"
                )
            key = base
        v = logs[key]
        return -v if key.endswith("accuracy") else v

    def on_epoch_end(self, epoch, logs, model):
        v = self._value(logs)
        if v < self.best - self.min_delta:
            self.best, self.best_epoch, self._wait = v, epoch, 0
            if self.restore_best_weights:
                self._best_params = (model.weights_flat.copy(), model.biases_flat.copy())
            return False
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model):
        if self.restore_best_weights and self._best_params is not None:
            np.copyto(model.weights_flat, self._best_params[0])
            np.copyto(model.biases_flat, self._best_params[1])
