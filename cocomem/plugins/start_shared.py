"""Plugged memory starts shared and is converted before use.

"virtio-mem: support Confidential Computing (CoCo) environments" (2026-04):
``set_memory_encrypted`` (MapGPA to private + ACCEPT) on each plugged range
before it is onlined, ``set_memory_decrypted`` (MapGPA to shared) before it
is unplugged, and re-encryption when the unplug request fails.
"""

from __future__ import annotations

from cocomem.backend import Backend
from cocomem.hookspecs import hookimpl


class StartShared(Backend):
    name = "start-shared"
    description = "convert shared->private after plug, private->shared before unplug"
    order = 20

    def post_plug(self, start: int, end: int) -> bool:
        return self.vendor.set_memory_encrypted(start, end)

    def pre_unplug(self, start: int, end: int) -> bool:
        return self.vendor.set_memory_decrypted(start, end)

    def unplug_failed(self, start: int, end: int) -> bool:
        return self.vendor.set_memory_encrypted(start, end)


@hookimpl
def register_backends(register):
    register(StartShared)
