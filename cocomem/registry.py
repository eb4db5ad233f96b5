"""The plugin manager and the registry of what plugins provide.

Every plugin, built in or third-party, is a module whose ``register_*`` hooks
are called once. A plugin that fails (its import, a hook that does not exist,
a hook that raises, an object it registers that is not valid) costs only its
own part: an installed plugin is left out with one line in ``errors``; a
``--plugin FILE`` the user named is bad input (one line, exit 2).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points as installed_entry_points
from pathlib import Path
from types import TracebackType
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .results import COUNTER_CLASSES

KINDS = ("vendor", "backend", "check", "report")
HOOKS = tuple(f"register_{kind}s" for kind in KINDS)


def scenario_keys() -> set[str]:
    """Top-level scenario keys: no vendor may be named like one (a vendor's name
    is also the key of its options block, and would capture the key)."""
    from .scenario import Scenario

    return set(Scenario.model_fields) | {"vendor_options"}


@dataclass
class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    pm: pluggy.PluginManager
    items: dict[str, dict[str, type]] = field(default_factory=lambda: {k: {} for k in KINDS})
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    #: plugin name -> version of the distribution that installed it
    versions: dict[str, str] = field(default_factory=dict)
    #: installed plugins that were left out, one line each
    errors: list[str] = field(default_factory=list)
    #: plugin name -> the file of its module (to name a plugin from a traceback)
    files: dict[str, str] = field(default_factory=dict)

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

    def label(self, kind: str, name: str) -> str:
        """``backend 'boom' (plugin 'boomer')``: how errors name what failed."""
        return f"{kind} {name!r} (plugin {self.origin.get((kind, name), '?')!r})"

    def culprit(self, tb: TracebackType | None) -> str | None:
        """The plugin whose code raised: the innermost traceback frame in a plugin's
        module."""
        by_file = {file: name for name, file in self.files.items()}
        found = None
        while tb is not None:
            name = by_file.get(tb.tb_frame.f_code.co_filename)
            if name:
                found = name
            tb = tb.tb_next
        return found

    def plugin_info(self) -> list[dict[str, Any]]:
        """One row per plugin: name, kinds, what it registered, version, hooks."""
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
                "version": self.versions.get(name, getattr(plugin, "__version__", "-")),
                "hooks": hooks,
            })
        return rows


def _base_classes() -> dict[str, type]:
    from .backend import Backend
    from .checks import Check
    from .report import Report
    from .vendor import Vendor

    return {"vendor": Vendor, "backend": Backend, "check": Check, "report": Report}


def _validate(kind: str, cls: type, base: type, label: str) -> str:
    """The name ``cls`` registers under, or PluginError saying what is wrong."""
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"{label} registered {cls!r} as a {kind}, "
                          f"but it is not a subclass of {base.__module__}.{base.__name__}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"{label}: {kind} {cls.__name__} has no name")
    if kind == "vendor":
        if name in scenario_keys():
            raise PluginError(f"{label}: vendor name {name!r} is a scenario key; its options "
                              f"block would capture '{name}:' (rename the vendor)")
        bad = sorted(f"{name}: {c!r}" for name, c in cls.counters.items()
                     if c not in COUNTER_CLASSES)
        if bad:
            raise PluginError(f"{label}: vendor {name!r} counter classes must be one of "
                              f"{', '.join(COUNTER_CLASSES)} (got {'; '.join(bad)})")
        words = cls.host_words
        if not words.fault.startswith("exit.") or not all(
                w.startswith("host.") for w in (words.add, words.remove, words.demote)):
            raise PluginError(f"{label}: vendor {name!r}: host_words name exits 'exit.*' "
                              f"and host actions 'host.*'")
    return name


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
    except (Exception, SystemExit) as exc:  # a plugin's own bug must not show a traceback
        raise PluginError(f"--plugin {path}: {type(exc).__name__}: {exc}") from None
    return module


class _Loader:
    """Registers plugins one at a time; a failing one is undone and reported."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("cocomem")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry(self.pm)
        self.bases = _base_classes()

    def add(self, module: Any, name: str, label: str, file: str | None = None) -> None:
        """Register ``module`` as plugin ``name`` and collect what it registers;
        PluginError (and nothing kept) when any of it is wrong."""
        registry = self.registry
        if self.pm.get_plugin(name) is not None:
            raise PluginError(f"{label}: a plugin named {name!r} is already loaded; "
                              f"rename it")
        try:
            self.pm.register(module, name=name)
        except Exception as exc:
            raise PluginError(f"{label}: {exc}") from None
        try:
            for caller in self.pm.get_hookcallers(module) or []:
                if not caller.has_spec():  # a misspelt hook would otherwise be ignored
                    raise PluginError(f"{label}: unknown hook {caller.name!r}; hooks: "
                                      f"{', '.join(HOOKS)}")
            found: list[tuple[str, str, type]] = []
            for kind in KINDS:
                hook = f"register_{kind}s"
                impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls()
                         if i.plugin_name == name]
                for impl in impls:
                    def register(cls: type, kind: str = kind) -> None:
                        found.append((kind, _validate(kind, cls, self.bases[kind], label), cls))
                    try:
                        impl.function(register=register)
                    except PluginError:
                        raise
                    except (Exception, SystemExit) as exc:
                        raise PluginError(f"{label} failed in {hook}: "
                                          f"{type(exc).__name__}: {exc}") from None
            for kind, item, _ in found:
                if item in registry.items[kind]:
                    first = registry.origin[(kind, item)]
                    raise PluginError(f"{label} registers {kind} {item!r}, "
                                      f"already registered by {first!r}")
                other = "backend" if kind == "vendor" else "vendor" if kind == "backend" else None
                if other and item in registry.items[other]:
                    raise PluginError(f"{label} registers {kind} {item!r}, a name "
                                      f"{registry.origin[(other, item)]!r} gave a {other}; "
                                      f"expect: keys could not tell them apart")
        except PluginError:
            self.pm.unregister(name=name)
            raise
        for kind, item, cls in found:
            registry.items[kind][item] = cls
            registry.origin[(kind, item)] = name
        module_file = file or getattr(module, "__file__", None)
        if module_file:
            registry.files[name] = str(Path(module_file).resolve())


def load_registry(plugin_files: Iterable[str] = (), *, entry_points: bool = True,
                  modules: Iterable[Any] = ()) -> Registry:
    """Load built-in and installed plugins (entry-point group ``cocomem``), then each
    ``--plugin`` file, then each module object in ``modules`` (a plugin defined in a
    test or a notebook, named by its ``__name__``), and collect what they register;
    a plugin in ``modules`` that fails raises PluginError."""
    loader = _Loader()
    registry = loader.registry
    if entry_points:
        for ep in sorted(installed_entry_points(group="cocomem"), key=lambda e: e.name):
            label = f"plugin {ep.name!r}"
            try:
                module = ep.load()
                loader.add(module, ep.name, label)
            except PluginError as exc:
                registry.errors.append(f"{exc}; left out")
                continue
            except (Exception, SystemExit) as exc:
                registry.errors.append(f"{label} failed to import: "
                                       f"{type(exc).__name__}: {exc}; left out")
                continue
            if ep.dist is not None:
                registry.versions[ep.name] = ep.dist.version
    for path in plugin_files:
        name = Path(path).stem
        if loader.pm.get_plugin(name) is not None:
            raise PluginError(f"--plugin {path}: a plugin named {name!r} is already loaded; "
                              f"rename the file")
        module = _load_file(path)
        try:
            loader.add(module, name, f"plugin {name!r} ({path})", file=path)
        except PluginError as exc:
            message = str(exc)
            if message.startswith(f"plugin {name!r} ({path}): unknown hook"):
                message = f"--plugin {path}:" + message.split(":", 1)[1]
            raise PluginError(message) from None
    for module in modules:
        name = module.__name__.rpartition(".")[2]
        loader.add(module, name, f"plugin {name!r}")
    return registry
