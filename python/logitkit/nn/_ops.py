"""The kernels the training loop calls: the matrix products (a packed GEMM
with run-time AVX-512 / AVX2 / NEON kernels, on logitkit's thread pool), the
fused bias + activation passes, fused losses with gradients, optimizer
updates."""

from __future__ import annotations

from .. import _core

#: Activation names accepted by ``MLP`` (scikit-learn's "logistic" and
#: "identity" are accepted as aliases of "sigmoid" and no activation).
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softplus")
ALIASES = {"logistic": "sigmoid"}

matmul = _core.matmul
bias_act = _core.bias_act
bias_act_backward = _core.bias_act_backward
cross_entropy = _core.cross_entropy
mse_loss = _core.mse_loss
sgd_step = _core.sgd_step
adam_step = _core.adam_step
adamw_step = _core.adamw_step
log_softmax = _core.log_softmax
softmax = _core.softmax
