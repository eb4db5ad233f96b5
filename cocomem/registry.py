"""The plugin manager and the registry of what plugins provide."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

KINDS = ("vendor", "backend", "check", "report")


@dataclass
class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    pm: pluggy.PluginManager
    items: dict[str, dict[str, type]] = field(default_factory=lambda: {k: {} for k in KINDS})
    origin: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def vendors(self) -> dict[str, type]:
        return self.items["vendor"]

    @property
    def backends(self) -> dict[str, type]:
        return self.items["backend"]

    @property
    def checks(self) -> dict[str, type]:
        return self.items["check"]

    @property
    def reports(self) -> dict[str, type]:
        return self.items["report"]

    def plugin_info(self) -> list[dict[str, Any]]:
        """One row per plugin: name, kinds, what it registered, version, hooks."""
        versions = {}
        for plugin, dist in self.pm.list_plugin_distinfo():
            versions[self.pm.get_name(plugin)] = dist.version
        rows = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda item: item[0]):
            if plugin is None:
                continue
            provided = sorted((kind, item) for (kind, item), who in self.origin.items()
                              if who == name)
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            rows.append({
                "name": name,
                "kinds": sorted({kind for kind, _ in provided}),
                "provides": [f"{kind}:{item}" for kind, item in provided],
                "version": versions.get(name, getattr(plugin, "__version__", "-")),
                "hooks": hooks,
            })
        return rows


def _base_classes() -> dict[str, type]:
    from .backend import Backend
    from .checks import Check
    from .report import Report
    from .vendor import Vendor

    return {"vendor": Vendor, "backend": Backend, "check": Check, "report": Report}


def _registrar(registry: Registry, kind: str, base: type, plugin_name: str, label: str):
    def register(cls: type) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{label} registered {cls!r} as a {kind}, "
                              f"but it is not a subclass of {base.__module__}.{base.__name__}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{label}: {kind} {cls.__name__} has no name")
        if name in registry.items[kind]:
            first = registry.origin[(kind, name)]
            raise PluginError(f"{label} registers {kind} {name!r}, "
                              f"already registered by {first!r}")
        registry.items[kind][name] = cls
        registry.origin[(kind, name)] = plugin_name

    return register


def _load_file(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise PluginError(f"--plugin {path}: no such file")
    module_name = f"cocomem_plugin_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise PluginError(f"--plugin {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a plugin's own bug must not show a traceback
        raise PluginError(f"--plugin {path}: {type(exc).__name__}: {exc}") from None
    return module


def load_registry(plugin_files: Iterable[str] = (), *, entry_points: bool = True) -> Registry:
    """Load built-in and third-party plugins and collect what they register."""
    pm = pluggy.PluginManager("cocomem")
    pm.add_hookspecs(hookspecs)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints("cocomem")
        except Exception as exc:
            raise PluginError(f"loading entry-point plugins: {type(exc).__name__}: {exc}") from None
    files: dict[str, str] = {}  # plugin name -> the --plugin path it came from
    for path in plugin_files:
        name = Path(path).stem
        if pm.get_plugin(name) is not None or name in files:
            raise PluginError(f"--plugin {path}: a plugin named {name!r} is already loaded; "
                              f"rename the file")
        module = _load_file(path)
        try:
            pm.register(module, name=name)
        except Exception as exc:
            raise PluginError(f"--plugin {path}: {exc}") from None
        files[name] = path
        for caller in pm.get_hookcallers(module) or []:
            if not caller.has_spec():  # a misspelt hook would otherwise be ignored
                raise PluginError(f"--plugin {path}: unknown hook {caller.name!r}; hooks: "
                                  f"{', '.join(f'register_{kind}s' for kind in KINDS)}")
    registry = Registry(pm)
    bases = _base_classes()
    for kind in KINDS:
        caller = getattr(pm.hook, f"register_{kind}s")
        for impl in caller.get_hookimpls():
            label = f"plugin {impl.plugin_name!r}"
            if impl.plugin_name in files:
                label += f" ({files[impl.plugin_name]})"
            register = _registrar(registry, kind, bases[kind], impl.plugin_name, label)
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"{label} failed in register_{kind}s: "
                                  f"{type(exc).__name__}: {exc}") from None
    return registry
