"""A name → (class, dataclass config) registry with clear errors, modelled on ``fairseq.registry``."""

import dataclasses
import importlib
from argparse import Namespace
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Type


class RegistryError(KeyError):
    """An unknown name, a name registered twice, or a config option the entry does not have."""

    def __str__(self):  # KeyError would print the message with quotes around it
        return str(self.args[0])


class Entry(NamedTuple):
    cls: type
    config: Type


class Registry:
    """Classes registered under a name, each with a dataclass that holds its options.

    ``build(name, cfg, **overrides)`` makes an instance: ``cfg`` may be the dataclass, a mapping (a Hydra
    ``DictConfig`` too) or an ``argparse.Namespace``; only the dataclass's own fields are read from a namespace,
    so a model can pass its whole ``args``. A registered class is built with ``cls.from_config(cfg)`` if it has
    one, else ``cls(cfg)``.
    """

    def __init__(self, kind: str, base_class: Optional[type] = None, discover: Optional[str] = None):
        self.kind = kind
        self.base_class = base_class
        self._discover = discover  # module whose import registers the built-in entries
        self._entries: Dict[str, Entry] = {}

    def register(self, name: str, dataclass: Optional[Type] = None) -> Callable[[type], type]:
        def wrapper(cls: type) -> type:
            if name in self._entries:
                raise RegistryError(
                    f"cannot register {self.kind} '{name}' ({cls.__module__}.{cls.__qualname__}): the name is "
                    f"taken by {self._entries[name].cls.__module__}.{self._entries[name].cls.__qualname__}"
                )
            if self.base_class is not None and not issubclass(cls, self.base_class):
                raise RegistryError(f"{self.kind} '{name}' must subclass {self.base_class.__name__}")
            config = dataclass
            if config is None:
                config = dataclasses.make_dataclass(f"{cls.__name__}Config", [])
            if not dataclasses.is_dataclass(config):
                raise RegistryError(f"the config of {self.kind} '{name}' must be a dataclass, got {config!r}")
            self._entries[name] = Entry(cls, config)
            cls.__registry_name__ = name
            return cls

        return wrapper

    def names(self):
        self._discover_builtins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._discover_builtins()
        return name in self._entries

    def entry(self, name: str) -> Entry:
        self._discover_builtins()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.kind} '{name}'; known names: {known}")
        return self._entries[name]

    def config(self, name: str, cfg: Any = None, **overrides: Any):
        """The dataclass config of ``name`` filled from ``cfg`` and ``overrides``."""
        config_cls = self.entry(name).config
        fields = {f.name for f in dataclasses.fields(config_cls)}
        values: Dict[str, Any] = {}
        if isinstance(cfg, config_cls):
            values.update(dataclasses.asdict(cfg))
        elif isinstance(cfg, Namespace):
            values.update({k: v for k, v in vars(cfg).items() if k in fields})
        elif isinstance(cfg, Mapping) or hasattr(cfg, "items"):
            values.update(dict(cfg.items()))
        elif cfg is not None:
            raise RegistryError(f"cannot read a {self.kind} config from {type(cfg).__name__}")
        values.update(overrides)
        unknown = sorted(set(values) - fields)
        if unknown:
            raise RegistryError(
                f"{self.kind} '{name}' has no option {', '.join(map(repr, unknown))}; "
                f"its options: {', '.join(sorted(fields)) or 'none'}"
            )
        return config_cls(**values)

    def build(self, name: str, cfg: Any = None, **overrides: Any):
        cls = self.entry(name).cls
        config = self.config(name, cfg, **overrides)
        if hasattr(cls, "from_config"):
            return cls.from_config(config)
        return cls(config)

    def _discover_builtins(self):
        if self._discover is not None:
            module, self._discover = self._discover, None
            importlib.import_module(module)
