"""Mainline Linux: virtio-mem knows nothing of CoCo; hot-plugged memory is never accepted."""

from __future__ import annotations

from cocomem.backend import Backend
from cocomem.hookspecs import hookimpl


class Mainline(Backend):
    name = "mainline"
    description = "no CoCo support (the baseline: the first touch kills a TD)"
    order = 0


@hookimpl
def register_backends(register):
    register(Mainline)
