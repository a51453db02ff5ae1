"""The kernels the training loop calls: the fused bias + activation passes
(activations issue), fused losses with gradients (losses issue), optimizer
updates (here)."""

from __future__ import annotations

from .. import _core

#: Activation names accepted by ``MLP`` (scikit-learn's "logistic" and
#: "identity" are accepted as aliases of "sigmoid" and no activation).
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softplus")
ALIASES = {"logistic": "sigmoid"}

bias_act = _core.bias_act
bias_act_backward = _core.bias_act_backward
cross_entropy = _core.cross_entropy
mse_loss = _core.mse_loss
sgd_step = _core.sgd_step
adam_step = _core.adam_step
adamw_step = _core.adamw_step
log_softmax = _core.log_softmax
softmax = _core.softmax
