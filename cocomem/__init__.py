"""cocomem: compare memory hotplug designs for confidential guests.

The plugin API is importable from here (``from cocomem import Vendor, hookimpl``);
the names load on first use, so ``cocomem --help`` imports none of them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_API = {
    "hookimpl": "hookspecs",
    "Vendor": "vendor", "CostEntry": "vendor", "CostProfile": "vendor", "NoOptions": "vendor",
    "Backend": "backend", "Revision": "backend",
    "MEM_GOING_ONLINE": "backend", "MEM_ONLINE": "backend", "MEM_GOING_OFFLINE": "backend",
    "MEM_OFFLINE": "backend", "MEM_CANCEL_ONLINE": "backend",
    "Check": "checks", "Report": "report", "VMM": "checks",
    "FREE": "state", "PENDING_4K": "state", "PENDING_2M": "state", "MAPPED_4K": "state",
    "MAPPED_2M": "state", "PENDING": "state", "MAPPED": "state", "PRESENT": "state",
    "PRIVATE": "state", "SHARED": "state", "PAGES_PER_2M": "state", "PAGES_PER_1G": "state",
    "Host": "host", "HostWords": "host",
    "Event": "run", "GuestCrash": "run", "RunContext": "run",
    "Result": "results", "Comparison": "results",
    "CALL": "results", "EXIT": "results", "HOST": "results", "REQUEST": "results",
    "INFO": "results", "declare": "results", "expand": "results",
    "load_registry": "registry", "load_scenario": "scenario",
    "compare": "compare", "compare_vendors": "compare",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cocomem' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
