"""Optimizers (SGD, Adam, AdamW), gradient clipping and nanoGPT's learning-rate schedule.

The update formulas are exactly PyTorch's. Parameters are updated in place on `p.data`,
keeping their dtype (float32 stays float32). Parameters whose `.grad` is None are skipped.

Building an optimizer lays the parameters of each param group out in one flat buffer (one
per dtype, the groups as consecutive segments): `p.data` becomes a view of its segment, and
backward writes `p.grad` into a matching segment of a flat gradient buffer. Then `step()`
updates a whole group with one kernel call and `clip_grad_norm_` scales every gradient with
one pass. Arrays taken from `p.data` before the optimizer was built are no longer the
parameter's. Each `zero_grad()` starts a fresh gradient buffer, so a `.grad` kept from an
earlier step keeps its values. A parameter whose `.data` or `.grad` was replaced by another array is
still updated correctly: its group then takes the per-parameter path. Parameters sharing
memory with each other (views of one array) are left where they are.

An optimizer's `state_dict()` is a pair (arrays, meta): a flat dict name -> ndarray (the
moment buffers, for safetensors) and a JSON-able dict of scalars (hyper-parameters per group,
step counts), so a checkpoint needs no pickle.
"""

import math

import numpy as np

from minigrad.kernels import K, buffers, threads
from minigrad.tensor import Tensor


class Optimizer:
    """Base class: holds `param_groups` and per-parameter `state`, as torch.optim.Optimizer.

    params is an iterable of Parameters, or of dicts {"params": [...], **hyper-parameters}
    whose missing hyper-parameters take the optimizer's defaults.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        # id(param) -> {"step": int, <state_arrays>: ndarray}; keyed by id because Tensor's
        # == is elementwise.
        self.state = {}
        self._flats = {}  # id(param group) -> its _FlatGroup, for the groups laid out flat
        self._grad_sizes = {}  # dtype -> length of the flat gradient buffer of that dtype
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a dict {"params": [...], **hyper-parameters} (defaults fill the rest)."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a param group is a dict with a 'params' "
                            f"key, got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: can only optimize Tensors, "
                                f"got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf tensor")
            if not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"{type(self).__name__}: can only optimize floating tensors, "
                                f"got dtype {p.dtype} (shape {p.shape})")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter appears in more than "
                                 "one place in the param groups")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown hyper-parameter(s) "
                             f"{sorted(unknown)}; known: {sorted(self.defaults)}")
        full = {**self.defaults, **group, "params": params}
        self._check_hyper(full)
        self.param_groups.append(full)
        self._flatten()

    def _check_hyper(self, group):
        for name in ("lr", "weight_decay", "momentum", "eps"):
            if name in group and not group[name] >= 0.0:
                raise ValueError(f"{type(self).__name__}: invalid {name} {group[name]} "
                                 "(must be >= 0)")
        if "betas" in group:
            beta1, beta2 = group["betas"]
            if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
                raise ValueError(f"{type(self).__name__}: invalid betas {group['betas']} "
                                 "(each must be in [0, 1))")

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self):
        """Forget every parameter's gradient (set to None).

        The next backward writes the gradients of the flat groups into a fresh flat buffer,
        so a `.grad` kept from an earlier step keeps its values (as with PyTorch's
        set_to_none).
        """
        for p in self._params():
            p.grad = None
        # Let go of the old buffer first: unless a kept `.grad` still uses it, the kernels'
        # pool hands the same memory back (a fresh large array would fault its pages in again
        # at every step: 43 MB on the medium GPT).
        for flat in self._flats.values():
            flat.release_grad()
        grads = {dtype: buffers.empty((n,), dtype) for dtype, n in self._grad_sizes.items()}
        for flat in self._flats.values():
            dtype, start, end = flat.span
            flat.set_grad(grads[dtype][start:end])

    def step(self):
        """Update every parameter that has a gradient, once."""
        for group in self.param_groups:
            flat = self._flat_of(group)
            if flat is None or not self._step_flat(group, flat):
                self._step_each(group, flat)

    def _flat_of(self, group):
        """The group's _FlatGroup, or None (not laid out flat, or added to param_groups by
        hand)."""
        flat = self._flats.get(id(group))
        return flat if flat is not None and flat.group is group else None

    def _step_each(self, group, flat):
        """Update the group's parameters one by one (those without a gradient are skipped)."""
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state.get(id(p))
            if state is None:
                state = {"step": 0, **self._new_state(p, group, flat)}
                self.state[id(p)] = state
            state["step"] += 1
            self._update(p.data, p.grad, state, group)

    def _step_flat(self, group, flat):
        """Update the whole group with one kernel call over its flat buffers. Returns False,
        having changed nothing, unless every parameter has its data and gradient in the
        buffers and all have the same step count."""
        params = group["params"]
        if len(params) != len(flat.data_views):
            return False
        states = []
        for p, data, grad in zip(params, flat.data_views, flat.grad_views, strict=True):
            if p.data is not data or p.grad is not grad:
                return False
            states.append(self.state.get(id(p)))
        if all(state is None for state in states):  # the group's first step
            for array in self._flat_state(flat, group).values():
                array[...] = 0
            states = [{"step": 0, **views} for views in flat.state_views]
            for p, state in zip(params, states, strict=True):
                self.state[id(p)] = state
        step = states[0]["step"]
        if any(state is None or state["step"] != step for state in states):
            return False
        for state in states:
            state["step"] = step + 1
        self._update(flat.data, flat.grad, {"step": step + 1, **flat.state}, group)
        return True

    def _new_state(self, p, group, flat):
        """Zeroed state arrays for p's first step: views of the group's flat state arrays
        while p's data is in the flat buffer, else arrays of its own."""
        i = None if flat is None else flat.index.get(id(p))
        if i is None or p.data is not flat.data_views[i]:
            return self._init_state(p.data, group)
        self._flat_state(flat, group)
        views = flat.state_views[i]
        for array in views.values():
            array[...] = 0
        return dict(views)

    def _flat_state(self, flat, group):
        """The group's flat state arrays (made on first use), with their per-param views."""
        if flat.state is None:
            flat.state = self._init_state(flat.data, group)
            flat.state_views = [{name: array[a:b].reshape(shape)
                                 for name, array in flat.state.items()}
                                for (a, b), shape in zip(flat.bounds, flat.shapes, strict=True)]
        return flat.state

    def _flatten(self):
        """Lay out every group whose parameters have one dtype and share no memory with each
        other in one buffer per dtype (the groups as consecutive segments), with their state
        in flat arrays too. Called whenever a group is added."""
        groups = []  # (group, dtype) of the groups laid out flat, or (group, None)
        shared = _sharing_memory(self._params())
        for group in self.param_groups:
            params = group["params"]
            dtypes = {p.dtype for p in params}
            ok = len(dtypes) == 1 and not any(id(p) in shared for p in params)
            groups.append((group, dtypes.pop() if ok else None))
        sizes = {}
        for group, dtype in groups:
            if dtype is not None:
                sizes[dtype] = sizes.get(dtype, 0) + sum(p.size for p in group["params"])
        buffers = {dtype: (np.empty(n, dtype), np.zeros(n, dtype)) for dtype, n in sizes.items()}
        offsets = dict.fromkeys(sizes, 0)
        self._flats, self._grad_sizes = {}, sizes
        for group, dtype in groups:
            if dtype is None:
                continue
            start = offsets[dtype]
            offsets[dtype] += sum(p.size for p in group["params"])
            data, grad = buffers[dtype]
            flat = _FlatGroup(group, data[start:offsets[dtype]], grad[start:offsets[dtype]])
            flat.span = (dtype, start, offsets[dtype])
            self._flats[id(group)] = flat
            self._adopt_state(group, flat)

    def _adopt_state(self, group, flat):
        """Move the existing state arrays of the group's parameters that are still in the
        flat buffer into its flat state arrays, so that their state dicts hold views."""
        params = [p for p in group["params"] if id(p) in self.state and id(p) in flat.index
                  and p.data is flat.data_views[flat.index[id(p)]]]
        if not params:
            return
        self._flat_state(flat, group)
        for p in params:
            state, views = self.state[id(p)], flat.state_views[flat.index[id(p)]]
            if set(state) - {"step"} == set(views) and all(
                    state[name].shape == view.shape for name, view in views.items()):
                for name, view in views.items():
                    view[...] = state[name]
                    state[name] = view

    def _init_state(self, data, group):
        """The state arrays, name -> ndarray, of a parameter with ndarray `data` at its first
        step (or of a whole flat group)."""
        return {}

    def _update(self, p, g, state, group):
        """Update the ndarray p in place from its gradient g (subclasses define it)."""
        raise TypeError(f"{type(self).__name__}: an Optimizer subclass must define _update()")

    def state_dict(self):
        """(arrays, meta): arrays maps "state.<i>.<name>" -> ndarray copy, where i is the
        parameter's position across all groups; meta (JSON-able) holds each group's
        hyper-parameters with its parameter indices, and each parameter's step count."""
        arrays, steps, groups, index = {}, {}, [], 0
        for group in self.param_groups:
            indices = []
            for p in group["params"]:
                state = self.state.get(id(p))
                if state is not None:
                    steps[str(index)] = state["step"]
                    for name, array in state.items():
                        if name != "step":
                            arrays[f"state.{index}.{name}"] = array.copy()
                indices.append(index)
                index += 1
            hyper = {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": indices})
        return arrays, {"param_groups": groups, "steps": steps}

    def load_state_dict(self, arrays, meta):
        """Restore what `state_dict` returned into an optimizer over the same parameters
        (same groups, sizes and shapes); arrays are cast to each parameter's dtype."""
        groups = meta["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in groups] != sizes:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved param groups "
                             f"have sizes {[len(g['params']) for g in groups]}, this "
                             f"optimizer's have {sizes}")
        saved_arrays = {}  # parameter index -> {state name: array}
        for key, value in arrays.items():
            _, index, state_name = key.split(".", 2)
            saved_arrays.setdefault(index, {})[state_name] = value
        # The saved hyper-parameters, applied only once everything has been checked.
        merged = [{k: tuple(v) if isinstance(v, list) else v
                   for k, v in saved.items() if k != "params"} for saved in groups]
        new_state, index = {}, 0
        for group, hyper in zip(self.param_groups, merged, strict=True):
            for p in group["params"]:
                key, index = str(index), index + 1
                if key not in meta["steps"]:
                    continue
                state = {"step": int(meta["steps"][key])}
                expected = self._init_state(p.data, {**group, **hyper})
                got = saved_arrays.get(key, {})
                if set(got) != set(expected):
                    raise ValueError(f"{type(self).__name__}.load_state_dict: parameter {key} "
                                     f"has saved state {sorted(got)}, expected "
                                     f"{sorted(expected)}")
                for state_name, value in got.items():
                    array = np.asarray(value.data if isinstance(value, Tensor) else value)
                    if array.shape != p.shape:
                        raise ValueError(f"{type(self).__name__}.load_state_dict: state.{key}."
                                         f"{state_name} has shape {array.shape}, parameter "
                                         f"{key} has shape {p.shape}")
                    state[state_name] = array.astype(p.dtype, copy=True)
                new_state[id(p)] = state
        for group, hyper in zip(self.param_groups, merged, strict=True):
            group.update(hyper)
        self.state = new_state
        for group in self.param_groups:
            flat = self._flat_of(group)
            if flat is not None:
                self._adopt_state(group, flat)


def _sharing_memory(params):
    """The ids of the parameters whose data overlap another's in memory."""
    spans = sorted((*_byte_bounds(p.data), id(p)) for p in params if p.size)
    shared, end, owner = set(), None, None
    for low, high, key in spans:
        if end is not None and low < end:
            shared.update((key, owner))
        if end is None or high > end:
            end, owner = high, key
    return shared


def _byte_bounds(array):
    """(first byte, one past the last byte) that a non-empty array reaches in memory."""
    low = high = array.__array_interface__["data"][0]
    for n, stride in zip(array.shape, array.strides, strict=True):
        if stride < 0:
            low += (n - 1) * stride
        else:
            high += (n - 1) * stride
    return low, high + array.itemsize


class _FlatGroup:
    """A param group (dict) laid out in segments `data` and `grad` (1-D) of an optimizer's flat
    buffers: each parameter's data is a view of its part of `data`, and `p._flat` holds
    (data view, grad view, unused) so that backward writes its first gradient into `grad`
    (and marks the slot used until zero_grad gives the group a fresh `grad`). `state` (name
    -> 1-D array, made at the first step) holds the group's state arrays, `state_views` one
    dict of views per parameter. `span` is (dtype, start, end) of `grad` in its buffer."""

    def __init__(self, group, data, grad):
        self.group, self.data, self.grad = group, data, grad
        params = group["params"]
        self.index = {id(p): i for i, p in enumerate(params)}
        self.shapes = [p.shape for p in params]
        self.bounds, self.data_views, self.grad_views = [], [], []
        start = 0
        for p in params:
            end = start + p.size
            data_view = data[start:end].reshape(p.shape)
            grad_view = grad[start:end].reshape(p.shape)
            data_view[...] = p.data
            if p._flat is not None and p.grad is not None and p.grad is p._flat[1]:  # flat again
                grad_view[...] = p.grad
                p.grad = grad_view
            p.data, p._flat = data_view, (data_view, grad_view, True)
            self.bounds.append((start, end))
            self.data_views.append(data_view)
            self.grad_views.append(grad_view)
            start = end
        self.state = None
        self.state_views = None
        self.span = None

    def release_grad(self):
        """Drop the group's views of its gradient segment (set_grad gives it a new one)."""
        self.grad, self.grad_views = None, []
        for p, data_view in zip(self.group["params"], self.data_views, strict=True):
            if p.data is data_view:
                p._flat = (data_view, None, False)

    def set_grad(self, grad):
        """Give the group the fresh gradient segment `grad`: new, unused slots for every
        parameter whose data is still its view of `data`."""
        self.grad = grad
        self.grad_views = [grad[a:b].reshape(shape)
                           for (a, b), shape in zip(self.bounds, self.shapes, strict=True)]
        for p, data_view, grad_view in zip(self.group["params"], self.data_views,
                                           self.grad_views, strict=True):
            if p.data is data_view:
                p._flat = (data_view, grad_view, True)


def _sgd_update(p, g, buf, lr, momentum, weight_decay, nesterov, first):
    """One SGD step on ndarrays, in place on p (and on the momentum buffer buf)."""
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            buf += g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


def _adamw_update(p, g, m, v, lr, beta1, beta2, eps, wd, step):
    """One Adam step with decoupled weight decay wd, on ndarrays, in place on p, m and v.

    Adam (coupled L2 decay) is this with wd=0 and the decay already added to g. The math is
    kernels/reference.py's adamw_step (PyTorch's formula); the numba backend fuses it.
    """
    K.adamw_step((p,), (g,), (m,), (v,), lr, beta1, beta2, eps, wd, step)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 decay
    (PyTorch's formulas, no dampening)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov momentum requires momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _init_state(self, data, group):
        return {"momentum_buffer": np.zeros_like(data)} if group["momentum"] else {}

    def _update(self, p, g, state, group):
        _sgd_update(p, g, state.get("momentum_buffer"), group["lr"], group["momentum"],
                    group["weight_decay"], group["nesterov"], state["step"] == 1)


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (PyTorch's Adam)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def _init_state(self, data, group):
        return {"exp_avg": np.zeros_like(data), "exp_avg_sq": np.zeros_like(data)}

    def _update(self, p, g, state, group):
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        beta1, beta2 = group["betas"]
        _adamw_update(p, g, state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1, beta2,
                      group["eps"], 0.0, state["step"])


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's AdamW): every parameter given is decayed
    by its group's weight_decay; put biases and norms in a group with weight_decay=0."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, p, g, state, group):
        beta1, beta2 = group["betas"]
        _adamw_update(p, g, state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1, beta2,
                      group["eps"], group["weight_decay"], state["step"])


def clip_grad_norm_(params, max_norm, eps=1e-6):
    """Scale the gradients in place so that their global 2-norm is at most max_norm.

    Returns the norm before clipping as a float (as torch.nn.utils.clip_grad_norm_).
    Parameters without a gradient are ignored. When the gradients are exactly an
    optimizer's flat gradient buffer, the norm and the scaling are one pass over it.
    """
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be > 0, got {max_norm}")
    params = [params] if isinstance(params, Tensor) else list(params)
    flat = _flat_grad(params)
    grads = [p.grad for p in params if p.grad is not None] if flat is None else [flat]
    with threads.blas_on_one_thread():  # BLAS's own workers would spin after it
        total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    coef = min(max_norm / (total + eps), 1.0)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


def _flat_grad(params):
    """The flat gradient buffer whose views are exactly the gradients of the distinct
    params, or None."""
    base, size, seen = None, 0, set()
    for p in params:
        slots = p._flat
        if slots is None or p.grad is not slots[1] or id(p) in seen:
            return None
        if base is None:
            base = slots[1].base
        elif slots[1].base is not base:
            return None
        size += p.size
        seen.add(id(p))
    return base if base is not None and size == base.size else None


def lr_warmup_cosine(it, lr, min_lr, warmup_iters, lr_decay_iters):
    """nanoGPT's get_lr: linear warmup to lr over warmup_iters, cosine decay to min_lr at
    lr_decay_iters, then min_lr."""
    if it < warmup_iters:
        return lr * (it + 1) / (warmup_iters + 1)
    # nanoGPT tests `it > lr_decay_iters`; at it == lr_decay_iters its cosine gives exactly
    # min_lr too, and >= also avoids dividing by zero when lr_decay_iters == warmup_iters.
    if it >= lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (lr - min_lr)


def set_lr(optimizer, lr):
    """Set the learning rate of every param group (call once per iteration with the
    schedule's value)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
