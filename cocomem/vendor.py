"""The vendor layer: a CoCo platform's primitives, as the kernel's arch code calls them.

A backend calls the arch-neutral API below (the way the kernel calls
``arch_accept_memory``); a vendor plugin implements it with its own calls,
statuses, exits and cost table. Page ranges are ``[start, end)`` in 4 KiB
pages from the start of the device region.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from .faults import FaultPlan
from .host import Host
from .run import GuestCrash, RunContext


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CostEntry(BaseModel):
    """µs per counted event, and where the figure comes from ("assumption" if nowhere)."""

    model_config = ConfigDict(frozen=True)
    us: float
    source: str


class Vendor:
    """Base class of vendor plugins; subclasses set ``name`` and implement the API."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: False for a guest without memory encryption: nothing to accept.
    confidential: ClassVar[bool] = True
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: fault-injectable calls and the statuses each may be made to return.
    fault_calls: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: counter name (fnmatch pattern) -> cost of one such event.
    cost_table: ClassVar[dict[str, CostEntry]] = {}
    #: model rules where no public source decides: a name, and the rule
    assumptions: ClassVar[dict[str, str]] = {}

    def __init__(self, ctx: RunContext, host: Host, faults: FaultPlan,
                 options: BaseModel) -> None:
        self.ctx = ctx
        self.host = host
        self.faults = faults
        self.options = options

    def accept_memory(self, start: int, end: int, *,
                      tolerate_already_accepted: bool = False) -> bool:
        """Accept ``[start, end)``; False when the platform refused part of it.

        ``tolerate_already_accepted`` models kernels that treat "already
        accepted" as success (the notifier series' first patch).
        """
        raise NotImplementedError

    def release_memory(self, start: int, end: int) -> bool:
        """Give accepted memory back (TDX: ``tdx_release_memory``). True when done or
        when the platform has nothing to do; False when it failed (memory released so
        far is accepted again, or the guest panics)."""
        raise NotImplementedError

    def set_memory_encrypted(self, start: int, end: int) -> bool:
        """Convert shared -> private and accept (``set_memory_encrypted``)."""
        raise NotImplementedError

    def set_memory_decrypted(self, start: int, end: int) -> bool:
        """Convert private -> shared (``set_memory_decrypted``)."""
        raise NotImplementedError

    def touch(self, start: int, end: int) -> None:
        """The host-side effects of a guest access to ``[start, end)``."""
        raise NotImplementedError

    def inaccessible(self, start: int, end: int) -> list[tuple[int, int]]:
        """Sub-ranges a guest access would die on (TD killed)."""
        raise NotImplementedError

    def arch_accept_memory(self, start: int, end: int, **kwargs: bool) -> None:
        """Mainline ``arch_accept_memory``: accept or panic."""
        if not self.accept_memory(start, end, **kwargs):
            raise GuestCrash("accept-panic", start, end, "arch_accept_memory: failed to accept")

    def arch_unaccept_memory(self, start: int, end: int) -> None:
        """RFC v2's ``arch_unaccept_memory``: release or panic."""
        if not self.release_memory(start, end):
            raise GuestCrash("accept-panic", start, end, "arch_unaccept_memory: failed to "
                             "unaccept")
