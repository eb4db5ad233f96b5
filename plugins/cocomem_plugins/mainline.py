"""Mainline Linux: virtio-mem knows nothing of CoCo; hot-plugged memory is never accepted."""

from __future__ import annotations

from cocomem.backend import Backend
from cocomem.hookspecs import hookimpl


class Mainline(Backend):
    name = "mainline"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "no CoCo support (the baseline: the first touch kills a TD)"
    order = 0


@hookimpl
def register_backends(register):
    register(Mainline)
