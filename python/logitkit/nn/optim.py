"""Optimizers (one fused in-place Rust pass per update) and learning-rate
schedules.

An optimizer updates parameter *groups*: ``(param, grad, decay)`` triples of
1-D contiguous arrays. ``MLP`` keeps all its weights in one flat buffer and
all its biases in another, so a step is two kernel calls whatever the depth;
weight decay / L2 applies to the weights group only (biases are not decayed,
as in scikit-learn).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _ops

Group = tuple[np.ndarray, np.ndarray, bool]


class Optimizer:
    """Base class: holds hyper-parameters, per-group state and the step count."""

    name = "optimizer"
    _state_names: tuple[str, ...] = ()

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if not (weight_decay >= 0 and math.isfinite(weight_decay)):
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.steps = 0
        self.groups: list[Group] = []
        self.state: list[dict[str, np.ndarray]] = []

    def bind(self, groups: list[Group], owner: object = None) -> None:
        """Attaches to parameter groups, keeping state whose shapes still fit.

        ``owner`` is the model the groups belong to: state is kept only for
        the model it was built on (training the same model again resumes),
        and an optimizer passed to another model starts afresh (no moments,
        step count 0), as a new one would, whatever the shapes.
        """
        # (An optimizer unpickled from before owners were recorded has none:
        # taken as this owner's, so that its state is kept.)
        same_owner = owner is None or owner is getattr(self, "_owner", owner)
        fits = (
            same_owner
            and len(self.state) == len(groups)
            and all(
                all(a.shape == p.shape and a.dtype == p.dtype for a in st.values())
                for st, (p, _, _) in zip(self.state, groups, strict=True)
            )
        )
        self.groups = groups
        if owner is not None:
            self._owner = owner
        if not fits:
            self.state = [{k: np.zeros_like(p) for k in self._state_names} for p, _, _ in groups]
            self.steps = 0

    def step(self, grad_scale: float = 1.0) -> None:
        """One update of every group; ``grad_scale`` multiplies the gradients."""
        self.steps += 1
        for (p, g, decay), st in zip(self.groups, self.state, strict=True):
            self._update(p, g, st, self.weight_decay if decay else 0.0, grad_scale)

    def _update(self, p, g, st, wd, grad_scale) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def hyperparams(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json-able metadata, arrays)``: everything needed to resume exactly."""
        meta = {"name": self.name, "steps": self.steps, "hyper": self.hyperparams()}
        arrays = {f"{i}.{k}": v for i, st in enumerate(self.state) for k, v in st.items()}
        return meta, arrays

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.steps = int(meta["steps"])
        for i, st in enumerate(self.state):
            for k in st:
                np.copyto(st[k], arrays[f"{i}.{k}"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2
    weight decay, as ``torch.optim.SGD`` (dampening 0)."""

    name = "sgd"

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._state_names = ("momentum_buffer",) if momentum else ()

    def hyperparams(self) -> dict[str, Any]:
        return {**super().hyperparams(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _update(self, p, g, st, wd, grad_scale) -> None:
        _ops.sgd_step(
            p,
            g,
            st.get("momentum_buffer"),
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=wd,
            grad_scale=grad_scale,
        )


class Adam(Optimizer):
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as
    ``torch.optim.Adam``."""

    name = "adam"
    _state_names = ("exp_avg", "exp_avg_sq")
    _kernel = staticmethod(_ops.adam_step)

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)

    def hyperparams(self) -> dict[str, Any]:
        return {**super().hyperparams(), "betas": list(self.betas), "eps": self.eps}

    def _update(self, p, g, st, wd, grad_scale) -> None:
        self._kernel(
            p,
            g,
            st["exp_avg"],
            st["exp_avg_sq"],
            step=self.steps,
            lr=self.lr,
            betas=self.betas,
            eps=self.eps,
            weight_decay=wd,
            grad_scale=grad_scale,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as
    ``torch.optim.AdamW``: ``param *= 1 - lr * weight_decay`` each step."""

    name = "adamw"
    _kernel = staticmethod(_ops.adamw_step)

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(lr, betas, eps, weight_decay)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(meta: dict[str, Any]) -> Optimizer:
    """Rebuilds an optimizer from ``state_dict()`` metadata."""
    hyper = dict(meta["hyper"])
    if "betas" in hyper:
        hyper["betas"] = tuple(hyper["betas"])
    return OPTIMIZERS[meta["name"]](**hyper)


# ---------------------------------------------------------------- schedules


class Schedule:
    """Sets ``optimizer.lr`` at the end of every epoch (``step``)."""

    def __init__(self) -> None:
        self.base_lr: float | None = None
        self.epoch = 0

    def attach(self, opt: Optimizer) -> None:
        if self.base_lr is None:
            self.base_lr = opt.lr

    def step(self, opt: Optimizer, val_loss: float | None = None) -> None:
        self.epoch += 1
        opt.lr = self._lr(opt.lr, val_loss)

    def _lr(self, lr: float, val_loss: float | None) -> float:  # pragma: no cover
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}

    def load_state(self, st: dict[str, Any]) -> None:
        vars(self).update(st)


class StepLR(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        super().__init__()
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def _lr(self, lr, val_loss):
        return self.base_lr * self.gamma ** (self.epoch // self.step_size)


class CosineLR(Schedule):
    """Cosine annealing from base_lr to eta_min over T_max epochs."""

    def __init__(self, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803 (torch's name)
        super().__init__()
        if T_max < 1:
            raise ValueError(f"T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def _lr(self, lr, val_loss):
        t = min(self.epoch, self.T_max)
        return (
            self.eta_min
            + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class ReduceLROnPlateau(Schedule):
    """Multiplies lr by ``factor`` when the monitored loss (validation loss,
    else training loss) has not improved by ``threshold`` (relative) for
    ``patience`` epochs."""

    def __init__(
        self, factor: float = 0.1, patience: int = 10, threshold: float = 1e-4, min_lr: float = 0.0
    ) -> None:
        super().__init__()
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.factor, self.patience = float(factor), int(patience)
        self.threshold, self.min_lr = float(threshold), float(min_lr)
        self.best = math.inf
        self.bad_epochs = 0

    def _lr(self, lr, val_loss):
        if val_loss is None:
            return lr
        if val_loss < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = val_loss, 0
            return lr
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.bad_epochs = 0
            return max(lr * self.factor, self.min_lr)
        return lr


SCHEDULES: dict[str, type[Schedule]] = {
    "step": StepLR,
    "cosine": CosineLR,
    "plateau": ReduceLROnPlateau,
}
