"""Finite-difference gradient checking: compare backward with central differences."""

import numpy as np

from minigrad.tensor import Tensor


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def _outputs(result):
    return list(result) if isinstance(result, tuple | list) else [result]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check the gradients of `fn(*inputs)` against central finite differences in float64.

    Every input that requires grad is copied to float64. The outputs are reduced to one
    scalar with fixed random weights, L = sum(w * fn(x)), so one backward gives the
    analytic dL/dx, which is compared element by element with (L(x+eps) - L(x-eps)) / 2eps.
    Returns True; raises GradcheckError naming the input, the index and both values.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    args = []
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad:
            x = Tensor(x.data.astype(np.float64), requires_grad=True)
        args.append(x)
    checked = [i for i, x in enumerate(args) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")

    rng = np.random.default_rng(seed)
    # Outputs that are not finite (e.g. log_softmax of -inf) have no derivative: weight 0.
    weights = [np.where(np.isfinite(out.data), rng.standard_normal(out.shape), 0.0)
               for out in _outputs(fn(*args))]

    def loss():
        outs = _outputs(fn(*args))
        return sum(float(np.sum(np.where(w != 0, o.data, 0.0) * w))
                   for o, w in zip(outs, weights, strict=True))

    outs = _outputs(fn(*args))
    for o, w in zip(outs, weights, strict=True):
        if o.requires_grad:
            o.backward(w.astype(o.dtype), retain_graph=True)

    for i in checked:
        x = args[i]
        analytic = np.zeros(x.shape) if x.grad is None else x.grad
        numeric = central_differences(loss, x.data, eps)
        bad = ~np.isclose(analytic, numeric, atol=atol, rtol=rtol)
        if bad.any():
            j = int(np.argmax(bad))  # the first bad element, in C order
            index = tuple(int(k) for k in np.unravel_index(j, x.shape))
            raise GradcheckError(
                f"gradcheck: input {i}, index {index}: "
                f"analytic gradient {analytic.reshape(-1)[j]:.8g} != numeric "
                f"{numeric.reshape(-1)[j]:.8g} (atol={atol}, rtol={rtol})"
            )
    return True


def central_differences(loss, array, eps=1e-6):
    """d loss() / d array, element by element, by central differences (float64).

    `loss` is a function of no arguments that reads `array`; each element of `array` (a
    C-contiguous float array) is moved by +-eps in place and restored.
    """
    if not array.flags.c_contiguous:
        raise ValueError("central_differences: the array must be C-contiguous")
    flat = array.reshape(-1)  # a view: perturbing it perturbs the array
    numeric = np.empty(flat.size)
    for j in range(flat.size):
        original = flat[j]
        flat[j] = original + eps
        plus = loss()
        flat[j] = original - eps
        minus = loss()
        flat[j] = original
        numeric[j] = (plus - minus) / (2 * eps)
    return numeric.reshape(array.shape)
