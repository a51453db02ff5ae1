"""The kernels the training loop calls, resolved once.

The fused bias + activation kernels come from the activations issue
(``bias_act``, ``bias_act_backward``). Until it is merged into this branch,
NumPy stand-ins with the same signatures are used (``_fallback``), so the
training loop can be built and tested; they are dropped as soon as
``logitkit._core`` provides the names.
"""

from __future__ import annotations

from .. import _core

#: Activation names accepted by ``MLP`` (scikit-learn's "logistic" and
#: "identity" are accepted as aliases of "sigmoid" and no activation).
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softplus")
ALIASES = {"logistic": "sigmoid"}

if hasattr(_core, "bias_act"):
    bias_act = _core.bias_act
    bias_act_backward = _core.bias_act_backward
else:  # pragma: no cover - only before the activations branch lands
    from ._fallback import bias_act, bias_act_backward  # noqa: F401

cross_entropy = _core.cross_entropy
mse_loss = _core.mse_loss
FUSED = hasattr(_core, "bias_act")

sgd_step = _core.sgd_step
adam_step = _core.adam_step
adamw_step = _core.adamw_step
log_softmax = _core.log_softmax
softmax = _core.softmax
