"""The optimizer base: parameter groups, per-parameter state, the step loop and the state dict.

Every optimizer here follows ``torch.optim.Optimizer``:

- ``param_groups`` is a list of dicts, each with ``"params"`` (a list of ``Parameter``) and the
  group's hyper-parameters (``"lr"``, ...); options a group does not set come from ``defaults``.
- ``state`` maps each ``Parameter`` to a dict of its buffers (``"momentum_buffer"``, ``"exp_avg"``,
  ``"step"``, ...), filled by the first ``step()`` that needs them.
- ``step()`` updates every parameter of every group with its group's options. The update written
  in each class (``_update``) is the NumPy reference; the execution layer
  (``nn/execution/optimizer.py``) may run a compiled kernel instead when one exists for this
  optimizer, parameter and backend, and it gives the same bits.

The state dict is PyTorch's ``{"state": {i: {name: value}}, "param_groups": [{option: value,
"params": [i, ...]}]}`` flattened with dots, the way ``Module.state_dict`` names nested modules, so
that ``nn.save`` writes it as it is (one array per key, nothing pickled)::

    state.<i>.<buffer>          the buffer of the i-th parameter (counted across groups in order)
    param_groups.<g>.<option>   a hyper-parameter of group g: a 0-d float64 array (betas: shape (2,)),
                                a flag as a 0-d int8 0 or 1
    param_groups.<g>.params     the indices of group g's parameters
"""

import math
import re

import numpy as np

from ..execution.optimizer import compiled_update
from ..parameter import Parameter

_STATE_KEY = re.compile(r"state\.(\d+)\.(\w+)")
_GROUP_KEY = re.compile(r"param_groups\.(\d+)\.(\w+)")


def check_finite_at_least(name, option, value, low, *, strict=False):
    """Raise ``ValueError`` unless ``value`` is a finite real ``>= low`` (``> low`` if ``strict``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise ValueError(f"{name}: {option} must be a finite number {relation} {low}, got {value!r}")


def check_fraction(name, option, value):
    """Raise ``ValueError`` unless ``0 <= value < 1`` (a decay rate such as momentum or beta)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: {option} must be in [0, 1), got {value!r}")


class Optimizer:
    """Base class: holds ``param_groups`` and ``state``; subclasses define ``_update`` and ``_check``.

    ``params`` is an iterable of ``Parameter`` (one group) or of dicts (one group each, with a
    ``"params"`` key and any options to override ``defaults`` for that group).
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, (Parameter, dict)):
            raise TypeError(f"{self._name}: params must be an iterable of Parameters or of dicts, "
                            f"got a single {type(params).__name__}; wrap it in a list")
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self):
        return type(self).__name__

    def add_param_group(self, param_group):
        """Append a group: ``{"params": [...], option: value, ...}``; missing options come from ``defaults``."""
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{self._name}: a parameter group is a dict with a 'params' key, got {param_group!r}")
        params = param_group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{self._name}: parameter {i} of group {len(self.param_groups)} is a "
                                f"{type(p).__name__}, not an nn.Parameter")
        if not params:
            raise ValueError(f"{self._name}: parameter group {len(self.param_groups)} is empty")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if len({id(p) for p in params}) != len(params) or seen & {id(p) for p in params}:
            raise ValueError(f"{self._name}: a parameter appears more than once across the parameter groups")
        unknown = set(param_group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{self._name}: unknown option(s) {sorted(unknown)} in a parameter group; "
                             f"the options are {sorted(self.defaults)}")
        group = {**self.defaults, **param_group, "params": params}
        self._check(group)
        self.param_groups.append(group)

    def _check(self, group):
        """Validate one group's options (``ValueError`` naming the option); subclasses extend it."""
        check_finite_at_least(self._name, "lr", group["lr"], 0.0)

    @property
    def lr(self):
        """The learning rate shared by every group (a training loop's shorthand; PyTorch has only groups).

        Setting it sets every group's ``lr``; reading it when groups differ raises ``ValueError``.
        """
        rates = {group["lr"] for group in self.param_groups}
        if len(rates) != 1:
            raise ValueError(f"{self._name}: the groups have different learning rates {sorted(rates)}; "
                             "read param_groups[i]['lr']")
        return rates.pop()

    @lr.setter
    def lr(self, value):
        # A schedule sets lr every step; a bad value must fail there, not silently train nothing.
        check_finite_at_least(self._name, "lr", value, 0.0)
        for group in self.param_groups:
            group["lr"] = float(value)

    def zero_grad(self):
        """Set every parameter's ``grad`` to zero (in place: layers accumulate into it)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad()

    def step(self):
        """Update every parameter once, with its group's options; a frozen one (``requires_grad=False``) is skipped."""
        for group in self.param_groups:
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                state = self.state.setdefault(p, {})
                update = compiled_update(self, p, group, state) or self._update
                update(p, group, state)

    def _update(self, p, group, state):
        """The reference update of one parameter ``p`` (NumPy, in ``p``'s dtype); see the class docstring."""
        raise NotImplementedError

    def _parameters(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """``{"state.<i>.<buffer>": array, "param_groups.<g>.<option>": array}``: see the module docstring."""
        index = {id(p): i for i, p in enumerate(self._parameters())}
        flat = {}
        for p, buffers in self.state.items():
            for name, value in buffers.items():
                flat[f"state.{index[id(p)]}.{name}"] = np.array(value, copy=True)
        for g, group in enumerate(self.param_groups):
            for option, value in group.items():
                flat[f"param_groups.{g}.{option}"] = (np.array([index[id(p)] for p in value], dtype=np.int64)
                                                      if option == "params" else _option_array(value))
        return flat

    def load_state_dict(self, state_dict):
        """Take the hyper-parameters and buffers of ``state_dict`` (from ``state_dict()``, or ``nn.load``).

        The groups must hold as many parameters as this optimizer's, in the same order, and every
        buffer must have its parameter's shape. A key that fits neither pattern raises ``ValueError``.
        """
        groups, buffers = {}, {}
        for key, value in state_dict.items():
            state_match, group_match = _STATE_KEY.fullmatch(key), _GROUP_KEY.fullmatch(key)
            if state_match:
                buffers.setdefault(int(state_match.group(1)), {})[state_match.group(2)] = value
            elif group_match:
                groups.setdefault(int(group_match.group(1)), {})[group_match.group(2)] = value
            else:
                raise ValueError(f"{self._name}.load_state_dict: unexpected key {key!r}; expected "
                                 "'state.<i>.<buffer>' or 'param_groups.<g>.<option>'")
        if sorted(groups) != list(range(len(self.param_groups))):
            raise ValueError(f"{self._name}.load_state_dict: the state dict has {len(groups)} parameter group(s), "
                             f"this optimizer {len(self.param_groups)}")
        new_groups = []
        for g, group in enumerate(self.param_groups):
            saved = groups[g]
            indices = [int(i) for i in np.asarray(saved.get("params", ())).reshape(-1)]
            if len(indices) != len(group["params"]):
                raise ValueError(f"{self._name}.load_state_dict: group {g} holds {len(indices)} parameters in the "
                                 f"state dict, {len(group['params'])} here")
            missing = set(self.defaults) - set(saved)
            if missing:
                raise ValueError(f"{self._name}.load_state_dict: group {g} lacks the option(s) {sorted(missing)}")
            options = {option: _python_value(value, self.defaults.get(option))
                       for option, value in saved.items() if option != "params"}
            new_group = {**options, "params": group["params"]}
            self._check(new_group)
            new_groups.append((indices, new_group))
        state = {}
        for indices, group in new_groups:
            for i, p in zip(indices, group["params"]):
                state[p] = {name: self._buffer(p, f"state.{i}.{name}", value)
                            for name, value in buffers.pop(i, {}).items()}
        if buffers:
            raise ValueError(f"{self._name}.load_state_dict: state for parameter(s) {sorted(buffers)}, "
                             "which no group holds")
        self.param_groups = [group for _, group in new_groups]
        self.state = state

    def _buffer(self, p, key, value):
        value = np.asarray(value)
        if value.ndim == 0:  # a count such as "step"
            return value.item()
        if value.shape != p.shape:
            raise ValueError(f"{self._name}.load_state_dict: {key}: expected shape {p.shape}, got {value.shape}")
        return np.array(value, dtype=p.dtype)

    def __repr__(self):
        lines = [f"{self._name} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g}")
            lines += [f"    {option}: {value}" for option, value in sorted(group.items()) if option != "params"]
        return "\n".join(lines + [")"])


def _option_array(value):
    # nn.load takes numeric arrays only, so a flag is stored as 0 or 1.
    return np.array(value, dtype=np.int8 if isinstance(value, bool) else np.float64)


def _python_value(value, default):
    """A saved option back as Python, typed like its default: a bool, a float, or a tuple (betas)."""
    value = np.asarray(value)
    if isinstance(default, bool):
        return bool(value.item())
    return float(value.item()) if value.ndim == 0 else tuple(float(v) for v in value.reshape(-1))
