"""The kernels the training loop calls, resolved once.

The fused kernels come from the activations and losses issues
(``bias_act``, ``bias_act_backward``, ``cross_entropy``, ``mse_loss``). Until
those are merged into this branch, NumPy stand-ins with the same signatures
are used (``_fallback``), so the training loop can be built and tested; the
stand-ins are dropped as soon as ``logitkit._core`` provides the names.
"""

from __future__ import annotations

from .. import _core

#: Activation names accepted by ``MLP`` (scikit-learn's "logistic" and
#: "identity" are accepted as aliases of "sigmoid" and no activation).
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softplus")
ALIASES = {"logistic": "sigmoid"}

_NAMES = ("bias_act", "bias_act_backward", "cross_entropy", "mse_loss")

if all(hasattr(_core, n) for n in _NAMES):
    bias_act = _core.bias_act
    bias_act_backward = _core.bias_act_backward
    cross_entropy = _core.cross_entropy
    mse_loss = _core.mse_loss
    FUSED = True
else:  # pragma: no cover - only before the activations/losses branches land
    from . import _fallback

    bias_act = getattr(_core, "bias_act", _fallback.bias_act)
    bias_act_backward = getattr(_core, "bias_act_backward", _fallback.bias_act_backward)
    cross_entropy = getattr(_core, "cross_entropy", _fallback.cross_entropy)
    mse_loss = getattr(_core, "mse_loss", _fallback.mse_loss)
    FUSED = False

sgd_step = _core.sgd_step
adam_step = _core.adam_step
adamw_step = _core.adamw_step
log_softmax = _core.log_softmax
softmax = _core.softmax
