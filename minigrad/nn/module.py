"""Module and Parameter: the containers that hold a model's weights, as in torch.nn.

A Module registers the Parameters, sub-Modules and buffers assigned to it as attributes, in
assignment order, and walks them to list parameters, build a `state_dict` with PyTorch's
dotted names, load one back, switch train/eval mode and change dtype.
"""

from collections import OrderedDict, namedtuple

import numpy as np

from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a module's weight: a floating leaf with requires_grad=True.

    The data is shared with the given array or Tensor, not copied (as torch.nn.Parameter).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        array = data.data if isinstance(data, Tensor) else data
        super().__init__(array)
        if not np.issubdtype(self.dtype, np.floating):
            raise TypeError(f"Parameter: only floating data can be a parameter, "
                            f"got dtype {self.dtype}")
        self.requires_grad = requires_grad

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = "What `Module.load_state_dict` did not match (for strict=False)."


def _array(value):
    """The ndarray behind a buffer or a state_dict entry (an ndarray or a Tensor)."""
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def _indent(text, spaces):
    lines = text.split("\n")
    return "\n".join(lines[:1] + [" " * spaces + line for line in lines[1:]])


class _HookHandle:
    """What `register_forward_hook` returns: `remove()` unregisters the hook."""

    def __init__(self, hooks, key):
        self._hooks = hooks
        self._key = key

    def remove(self):
        """Unregister the hook (a second call does nothing)."""
        self._hooks.pop(self._key, None)


class Module:
    """Base class of every layer and model: subclass it, assign layers in __init__, and
    define forward(). Calling the module calls forward.

    Parameters and Modules assigned as attributes are registered in order; arrays that are
    state but not weights (running statistics, ...) go through `register_buffer`. A plain
    attribute (e.g. a causal mask array) is not part of the state_dict.
    """

    def __init__(self):
        # object.__setattr__ because our __setattr__ consults these very dicts.
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----- registration ---------------------------------------------------------------
    def _registries(self):
        try:
            return self.__dict__["_parameters"], self.__dict__["_buffers"], \
                self.__dict__["_modules"]
        except KeyError:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before "
                               "assigning attributes") from None

    def _register(self, name, value, kind):
        """Put `value` under `name` in one registry (0 parameters, 1 buffers, 2 modules)."""
        registries = self._registries()
        self.__dict__.pop(name, None)
        for other in registries:
            if other is not registries[kind]:
                other.pop(name, None)
        registries[kind][name] = value

    def __setattr__(self, name, value):
        if isinstance(value, Parameter | Module):
            self._register(name, value, 0 if isinstance(value, Parameter) else 2)
            return
        params = self.__dict__.get("_parameters", {})
        modules = self.__dict__.get("_modules", {})
        buffers = self.__dict__.get("_buffers", {})
        if name in params:
            # Silently turning a weight into a plain attribute would drop it from training.
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} "
                                f"as parameter '{name}' (Parameter or None expected)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} "
                                f"as child module '{name}' (Module or None expected)")
            modules[name] = None
        elif name in buffers:
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails, i.e. for registered names.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry, {})
            if name in entries:
                del entries[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register `param` (a Parameter, or None for an absent optional weight) as `name`."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self._register(name, param, 0)

    def register_buffer(self, name, value):
        """Register a non-parameter array (ndarray or Tensor) that belongs in the state_dict."""
        if value is not None and not isinstance(value, np.ndarray | Tensor):
            raise TypeError(f"register_buffer: '{name}' must be an ndarray, a Tensor or None, "
                            f"got {type(value).__name__}")
        self._register(name, value, 1)

    def add_module(self, name, module):
        """Register `module` as the child `name` (same as assigning it as an attribute)."""
        if not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module, got {type(module).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"add_module: a module name must be a non-empty str without '.', "
                           f"got {name!r}")
        setattr(self, name, module)

    # ----- traversal ------------------------------------------------------------------
    def named_children(self):
        """(name, module) for each direct child, in registration order."""
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        """Each direct child module."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module and every descendant, depth first.

        A module reachable under several names is listed once (at its first name) unless
        remove_duplicate=False.
        """
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module.named_children()]
            stack.extend(reversed(children))

    def modules(self):
        """This module and every descendant (each once)."""
        for _, module in self.named_modules():
            yield module

    def _named_members(self, registry, prefix, recurse, remove_duplicate):
        seen = set()
        walk = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        for module_name, module in walk:
            for name, member in module.__dict__[registry].items():
                if member is None:
                    continue
                if remove_duplicate:
                    if id(member) in seen:
                        continue
                    seen.add(id(member))
                yield (f"{module_name}.{name}" if module_name else name), member

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs; a shared (tied) Parameter is listed once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """Every Parameter, each once, in registration order."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, buffer) pairs for the registered buffers."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        """Every registered buffer."""
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self):
        """Total number of scalars in the (distinct) parameters."""
        return sum(p.size for p in self.parameters())

    def apply(self, fn):
        """Call fn(module) on every descendant and then on self (as torch's Module.apply)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----- modes and dtypes -----------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (dropout active) on this module and every descendant."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Set evaluation mode: same as train(False)."""
        return self.train(False)

    def zero_grad(self):
        """Forget every parameter's gradient (set to None, as PyTorch's default)."""
        for param in self.parameters():
            param.grad = None

    def to(self, dtype):
        """Cast every floating parameter, its gradient and every floating buffer to dtype."""
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"to: modules can only be cast to a floating dtype, got {dtype}")
        for param in self.parameters():
            # Replacing .data (not the Parameter) keeps tied parameters tied.
            param.data = param.data.astype(dtype, copy=False)
            if param.grad is not None:
                param.grad = param.grad.astype(dtype, copy=False)
        for module in self.modules():
            for name, buffer in module._buffers.items():
                if buffer is not None and np.issubdtype(_array(buffer).dtype, np.floating):
                    if isinstance(buffer, Tensor):
                        buffer.data = buffer.data.astype(dtype, copy=False)
                    else:
                        module._buffers[name] = buffer.astype(dtype, copy=False)
        return self

    def double(self):
        """Cast floating parameters and buffers to float64."""
        return self.to(np.float64)

    def float(self):
        """Cast floating parameters and buffers to float32."""
        return self.to(np.float32)

    # ----- state_dict -----------------------------------------------------------------
    def _state_entries(self):
        """(dotted name, parameter or buffer) for every state_dict key, shared ones under
        every name they have (as PyTorch's state_dict)."""
        for module_name, module in self.named_modules(remove_duplicate=False):
            for registry in ("_parameters", "_buffers"):
                for name, value in module.__dict__[registry].items():
                    if value is not None:
                        yield (f"{module_name}.{name}" if module_name else name), value

    def state_dict(self):
        """An ordered dict dotted name -> copy of the array, for every parameter and buffer."""
        return OrderedDict((name, _array(value).copy()) for name, value in self._state_entries())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (ndarrays or Tensors) into the parameters and buffers, in place.

        Each array is cast to its parameter's dtype and copied into the existing array, so
        tied parameters stay tied and references to them stay valid. Raises RuntimeError
        naming missing and unexpected keys (only when strict) and wrong shapes (always);
        nothing is modified when it raises. Returns (missing_keys, unexpected_keys).
        """
        own = OrderedDict(self._state_entries())
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        mismatched = []
        for name, value in state_dict.items():
            if name in own:
                have, want = np.shape(_array(value)), _array(own[name]).shape
                if have != want:
                    mismatched.append(f"size mismatch for {name}: copying an array of shape "
                                      f"{have} from the checkpoint, the shape in the current "
                                      f"model is {want}")
        errors = []
        if strict and missing:
            errors.append("Missing key(s) in state_dict: "
                          + ", ".join(f'"{k}"' for k in missing) + ".")
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: "
                          + ", ".join(f'"{k}"' for k in unexpected) + ".")
        errors += mismatched
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for name, value in state_dict.items():
            if name in own:
                np.copyto(_array(own[name]), _array(value), casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # ----- calling and printing -------------------------------------------------------
    def forward(self, *args, **kwargs):
        """The computation; every subclass defines it."""
        raise TypeError(f"{type(self).__name__}: a Module subclass must define forward()")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        for hook in self.__dict__.get("_forward_hooks", {}).values():
            replaced = hook(self, args, out)
            if replaced is not None:
                out = replaced
        return out

    def register_forward_hook(self, hook):
        """Call hook(module, args, output) after every forward of this module, as PyTorch
        does; a hook that returns a value replaces the output. Returns a handle whose
        `remove()` unregisters the hook (study tools use it to watch or substitute a
        layer's output)."""
        hooks = self.__dict__.setdefault("_forward_hooks", {})
        key = max(hooks, default=-1) + 1
        hooks[key] = hook
        return _HookHandle(hooks, key)

    def extra_repr(self):
        """The layer's arguments as shown inside its repr, e.g. 'in_features=4, ...'."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {_indent(repr(module), 2)}"
                       for name, module in self.named_children()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: children in order, named "0", "1", ..."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        """Add `module` at the end."""
        self.add_module(str(len(self)), module)
        return self


class Sequential(_ModuleSequence):
    """Modules applied one after another: Sequential(a, b, c)(x) == c(b(a(x))).

    Children are named "0", "1", ... (or by the keys of a single dict argument).
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[_list_index("Sequential", index, len(items))][1]

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


def _list_index(container, index, length):
    if not isinstance(index, int | np.integer):
        raise TypeError(f"{container}: indices must be ints or slices, got {type(index).__name__}")
    if not -length <= index < length:
        raise IndexError(f"{container}: index {index} is out of range for {length} modules")
    return int(index) % length


class ModuleList(_ModuleSequence):
    """A list of modules, registered as children "0", "1", ... (for a loop over blocks)."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[str(_list_index("ModuleList", index, len(self)))]

    def __setitem__(self, index, module):
        self.add_module(str(_list_index("ModuleList", index, len(self))), module)

    def extend(self, modules):
        """Append each of `modules`."""
        for module in modules:
            self.append(module)
        return self


class ModuleDict(Module):
    """An ordered dict of named child modules (e.g. nanoGPT's `transformer`)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"ModuleDict: no module named {key!r}; "
                           f"have {list(self._modules)}") from None

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        """Add (name, module) pairs from a dict or an iterable of pairs."""
        pairs = modules.items() if isinstance(modules, dict) else modules
        for name, module in pairs:
            self.add_module(name, module)
