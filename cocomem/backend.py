"""The backend layer: one guest-kernel design for memory hot(un)plug.

A backend implements the guest hooks the designs differ in. The virtio-mem
driver model calls them at the points the patch series hook into
``drivers/virtio/virtio_mem.c`` and ``mm/memory_hotplug.c``. The base class
is the mainline kernel: it does nothing at any of them.

Page ranges are ``[start, end)`` in 4 KiB pages from the start of the device
region; ``self.vendor`` is the arch API (``accept_memory``,
``release_memory``, ``set_memory_encrypted``, ``set_memory_decrypted``) and
``self.unaccepted`` the kernel's unaccepted-memory table
(``accept_memory``, ``unaccept_memory``, ``set_plugged``), which covers
hot-plugged memory only for a backend that sets ``covers_hotplug_memory``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from .run import RunContext
from .vendor import NoOptions, Vendor

if TYPE_CHECKING:
    from .unaccepted import UnacceptedMemory

# memory notifier actions (include/linux/memory.h)
MEM_GOING_ONLINE = "MEM_GOING_ONLINE"
MEM_ONLINE = "MEM_ONLINE"
MEM_GOING_OFFLINE = "MEM_GOING_OFFLINE"
MEM_OFFLINE = "MEM_OFFLINE"
MEM_CANCEL_ONLINE = "MEM_CANCEL_ONLINE"


class Revision(BaseModel):
    """The posted code a backend models: enough to find it in a list archive."""

    model_config = ConfigDict(frozen=True)
    subject: str
    date: str
    message_id: str
    url: str = ""


class Backend:
    """Base class of backend plugins; subclasses set ``name`` and override hooks."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: where the backend sits in tables (lower first); ties go by name
    order: ClassVar[int] = 100
    #: the posted revision this backend follows (None: mainline Linux)
    revision: ClassVar[Revision | None] = None
    #: where the model departs from that code: a name, and what and why
    departures: ClassVar[dict[str, str]] = {}
    #: the EFI unaccepted-memory table covers the device region, with a "plugged"
    #: bitmap beside it (RFC v2 patches 1-3); mainline covers boot memory only
    covers_hotplug_memory: ClassVar[bool] = False
    #: vendors whose arch code the posted series hooks (None: it works through
    #: arch-neutral calls on every platform). On another vendor the series
    #: registers nothing, so the run is mainline's, and the verdict says so.
    platforms: ClassVar[tuple[str, ...] | None] = None
    #: the hooks keep no state of their own (all of it is in the page maps), so the
    #: driver's rounds over memory blocks that find the same state may be applied
    #: at once without calling them again (cocomem.blocks); off by default
    state_in_maps: ClassVar[bool] = False

    def __init__(self, ctx: RunContext, vendor: Vendor, options: BaseModel,
                 unaccepted: UnacceptedMemory) -> None:
        self.ctx = ctx
        self.vendor = vendor
        self.options = options
        self.unaccepted = unaccepted

    # -- virtio_mem_send_*_request -----------------------------------------

    def post_plug(self, start: int, end: int) -> bool:
        """After the device ACKed a PLUG of ``[start, end)``. False: device broken."""
        return True

    def pre_unplug(self, start: int, end: int) -> bool:
        """Before an UNPLUG request. False: device broken, no request sent."""
        return True

    def unplug_failed(self, start: int, end: int) -> bool:
        """The device did not ACK an UNPLUG after ``pre_unplug``. False: device broken."""
        return True

    def unplugged(self, start: int, end: int) -> None:
        """The device ACKed an UNPLUG of ``[start, end)``."""

    def pre_unplug_all(self, start: int, end: int) -> bool:
        """Before an UNPLUG_ALL request over the region. False: device broken."""
        return True

    def unplugged_all(self, start: int, end: int) -> None:
        """The device ACKed an UNPLUG_ALL."""

    # -- mm/memory_hotplug.c and the online-page callback --------------------

    def memory_added(self, start: int, end: int) -> None:
        """add_memory_resource: a memory block was added (before it goes online)."""

    def memory_removing(self, start: int, end: int) -> None:
        """try_remove_memory: a memory block is about to be removed."""

    def memory_notify(self, action: str, start: int, end: int) -> bool:
        """A memory notifier event for one whole memory block. False: NOTIFY_BAD."""
        return True

    def fake_online(self, start: int, end: int) -> None:
        """virtio_mem_fake_online, for pages taken with alloc_contig_range, just before
        free_contig_range gives them back to the page allocator."""


class Unregistered(Backend):
    """What a series that registers nothing on this platform leaves: mainline's
    (no hook does anything, so no state outside the page maps)."""

    state_in_maps = True
