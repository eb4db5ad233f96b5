"""The backend layer: one guest-kernel design for memory hot(un)plug.

A backend implements the guest hooks the designs differ in. The virtio-mem
driver model calls them at the points the patch series hook into
``drivers/virtio/virtio_mem.c`` and ``mm/memory_hotplug.c``. The base class
is the mainline kernel: it does nothing at any of them.

Page ranges are ``[start, end)`` in 4 KiB pages from the start of the device
region; ``self.vendor`` is the arch API (``accept_memory``,
``release_memory``, ``set_memory_encrypted``, ``set_memory_decrypted``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from .run import RunContext
from .vendor import NoOptions, Vendor

# memory notifier actions (include/linux/memory.h)
MEM_GOING_ONLINE = "MEM_GOING_ONLINE"
MEM_ONLINE = "MEM_ONLINE"
MEM_GOING_OFFLINE = "MEM_GOING_OFFLINE"
MEM_OFFLINE = "MEM_OFFLINE"
MEM_CANCEL_ONLINE = "MEM_CANCEL_ONLINE"


class Backend:
    """Base class of backend plugins; subclasses set ``name`` and override hooks."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: where the backend sits in tables (lower first); ties go by name
    order: ClassVar[int] = 100

    def __init__(self, ctx: RunContext, vendor: Vendor, options: BaseModel) -> None:
        self.ctx = ctx
        self.vendor = vendor
        self.options = options

    def post_plug(self, start: int, end: int) -> bool:
        """After the device ACKed a PLUG of ``[start, end)``. False: device broken."""
        return True

    def pre_unplug(self, start: int, end: int) -> bool:
        """Before an UNPLUG (or UNPLUG_ALL) request. False: device broken, no request sent."""
        return True

    def unplug_failed(self, start: int, end: int) -> bool:
        """The device did not ACK an UNPLUG after ``pre_unplug``. False: device broken."""
        return True

    def memory_notify(self, action: str, start: int, end: int) -> bool:
        """A memory notifier event for one whole memory block. False: NOTIFY_BAD."""
        return True
