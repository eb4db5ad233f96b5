"""Hook specifications: how plugins add vendors, backends, checks and reports.

Every plugin, built in or third-party, registers its objects through these
hooks. Each hook receives a ``register`` callback and calls it once per object,
the way llm's ``register_models`` works: the callback validates the object and
remembers which plugin gave it, so a bad plugin is named in the error.

Built-in plugins live in ``cocomem_plugins`` and are found through the
``cocomem`` entry-point group, exactly like a third-party package; ``--plugin
FILE.py`` loads one more module from a path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("cocomem")
hookimpl = pluggy.HookimplMarker("cocomem")


@hookspec
def register_vendors(register: Callable[[type[Any]], None]) -> None:
    """Register CoCo platforms (TDX, SEV-SNP, CCA, a non-confidential guest).

    Call ``register(cls)`` with a subclass of :class:`cocomem.vendor.Vendor`
    for each platform. The class provides the arch-neutral primitives a
    backend calls (``accept_memory``, ``release_memory``,
    ``set_memory_encrypted``, ``set_memory_decrypted``), what a guest access
    costs, its counters, its fault-injectable calls and its cost table.
    """


@hookspec
def register_backends(register: Callable[[type[Any]], None]) -> None:
    """Register guest-kernel designs (a patch series, or mainline).

    Call ``register(cls)`` with a subclass of :class:`cocomem.backend.Backend`.
    A backend implements the guest hooks that the designs differ in (around
    the virtio-mem requests, memory add and removal, the memory notifier and
    ``virtio_mem_fake_online``), names the posted revision it follows and
    lists where it departs from it.
    """


@hookspec
def register_checks(register: Callable[[type[Any]], None]) -> None:
    """Register invariants.

    Call ``register(cls)`` with a subclass of :class:`cocomem.checks.Check`.
    A check sees every event of a run and the run's state, and reports
    violations of the kinds it declares.
    """


@hookspec
def register_reports(register: Callable[[type[Any]], None]) -> None:
    """Register output formats for ``cocomem compare --format NAME``.

    Call ``register(cls)`` with a subclass of :class:`cocomem.report.Report`.
    """
