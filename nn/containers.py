"""Containers that register the modules they hold: ``ModuleList``, ``ModuleDict`` (and ``Sequential``'s base).

A module kept in a plain Python list or dict is invisible to ``parameters()``, ``state_dict()`` and
printing (``Module`` refuses it); kept in one of these, it is a child like any attribute, named by
its position ("0", "1", ...) or its key, as in PyTorch. They hold modules; they compute nothing.
"""

from .module import Module


def _check_module(owner, where, value):
    if not isinstance(value, Module):
        raise TypeError(f"{owner}: {where} is a {type(value).__name__}, not a Module")
    return value


class ModuleSequence(Module):
    """Modules in order, named "0", "1", ...: indexing, slicing, ``append``, ``extend``, ``insert``, ``del``.

    The base of ``ModuleList`` and ``nn.Sequential``. A module may appear more than once (the same
    layer applied twice): indexing and iteration see every appearance, ``parameters()`` one.
    """

    def named_entries(self):
        """``(name, module)`` in order, a module held twice under each of its names (``named_children`` lists it once)."""
        return list(self._entries())

    def _set_entries(self, named):
        """Replace the held modules by ``named`` (``(name, module)`` pairs), in that order."""
        for name, _ in self.named_entries():
            self.__delattr__(name)
        for name, module in named:
            self.__setattr__(name, module)

    def _renumbered(self, modules):
        self._set_entries((str(i), m) for i, m in enumerate(modules))

    def _slice(self, named):
        """What a slice of this container returns, holding ``named``."""
        raise NotImplementedError

    def __len__(self):
        return len(self.named_entries())

    def __iter__(self):
        return iter([m for _, m in self.named_entries()])

    def _index(self, i):
        n = len(self)
        if not isinstance(i, int) or not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {i!r} out of range for {n} modules")
        return i % n

    def __getitem__(self, i):
        entries = self.named_entries()
        if isinstance(i, slice):
            return self._slice(entries[i])
        return entries[self._index(i)][1]

    def __setitem__(self, i, module):
        entries = self.named_entries()
        name = entries[self._index(i)][0]
        self.__setattr__(name, _check_module(type(self).__name__, f"item {i}", module))

    def __delitem__(self, i):
        entries = self.named_entries()
        keep = set(range(len(entries))) - set(range(len(entries))[i] if isinstance(i, slice) else [self._index(i)])
        self._renumbered(m for k, (_, m) in enumerate(entries) if k in keep)

    def append(self, module):
        """Add ``module`` at the end, named by its position; returns ``self``."""
        self.__setattr__(str(len(self)), _check_module(type(self).__name__, "appended value", module))
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        modules = [m for _, m in self.named_entries()]
        modules.insert(index, _check_module(type(self).__name__, "inserted value", module))
        self._renumbered(modules)


class ModuleList(ModuleSequence):
    """A list of modules, registered: ``ModuleList([a, b])``, ``layers[0]``, ``layers.append(c)``.

    It has no ``forward``: the module holding it decides how its modules are applied.
    """

    def __init__(self, modules=()):
        self.extend(modules)

    def _slice(self, named):
        return ModuleList(m for _, m in named)

    def __iadd__(self, modules):
        return self.extend(modules)


class ModuleDict(Module):
    """A dict of modules, registered by key: ``ModuleDict({"conv": c, "act": a})``, ``d["conv"]``.

    Keys are strings without "."; a key may not be the name of one of its methods (``keys``,
    ``forward``, ...), since each module is also its attribute. It has no ``forward``.
    """

    def __init__(self, modules=None):
        if modules is not None:
            self.update(modules)

    def _check_key(self, key):
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: a key is a non-empty string without '.', got {key!r}")
        if hasattr(type(self), key):
            raise KeyError(f"ModuleDict: the key {key!r} is the name of a ModuleDict attribute; choose another")
        return key

    def __getitem__(self, key):
        value = self.__dict__.get(key) if isinstance(key, str) else None
        if not isinstance(value, Module):
            raise KeyError(key)
        return value

    def __setitem__(self, key, module):
        self.__setattr__(self._check_key(key), _check_module("ModuleDict", f"value of {key!r}", module))

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        self.__delattr__(key)

    def __contains__(self, key):
        return isinstance(key, str) and isinstance(self.__dict__.get(key), Module)

    def __len__(self):
        return len(list(self._entries()))

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        return [name for name, _ in self._entries()]

    def values(self):
        return [m for _, m in self._entries()]

    def items(self):
        return list(self._entries())

    def update(self, modules):
        """Add or replace modules from a mapping or an iterable of ``(key, module)`` pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for key, module in pairs:
            self[key] = module

    def pop(self, key):
        module = self[key]
        del self[key]
        return module

