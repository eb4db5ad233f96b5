"""The vendor layer: a CoCo platform's primitives, as the kernel's arch code calls them.

A backend calls the arch-neutral API below (the way the kernel calls
``arch_accept_memory``); a vendor plugin implements it with its own calls,
statuses, exits and cost table, and declares everything the core and the
reports need to know about it: its counters and their classes, its violation
kinds, its fault-injectable calls, the words of its trace, and how its host
names the neutral host actions. The core knows no vendor.

Page ranges are ``[start, end)`` in 4 KiB pages from the start of the device
region.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from . import bulk
from .cost import CostEntry, CostProfile
from .faults import FaultPlan
from .host import Host, HostWords
from .run import Event, GuestCrash, RunContext
from .state import PAGES_PER_2M


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Vendor:
    """Base class of vendor plugins; subclasses set ``name`` and implement the API."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: False for a guest without memory encryption: nothing to accept.
    confidential: ClassVar[bool] = True
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: counter name (fnmatch pattern) -> class: ``call`` (the guest's calls to the
    #: platform), ``exit``, ``host`` (see cocomem.results); the host's words and
    #: the core's own counters (``virtio_mem.*``, ``host.convert.*``,
    #: ``exit.memory_fault``) are declared already
    counters: ClassVar[dict[str, str]] = {}
    #: violation kinds this vendor's model reports, and the verdict each implies
    kinds: ClassVar[dict[str, str]] = {}
    #: fault-injectable calls and the statuses each may be made to return.
    fault_calls: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: counter name (fnmatch pattern) -> cost of one such event (the core's own
    #: counters, ``virtio_mem.*``, ``host.convert.*``, ``exit.memory_fault``, have
    #: costs in cocomem.cost.CORE_COSTS; an entry here overrides them)
    cost_table: ClassVar[dict[str, CostEntry]] = {}
    #: named sets of costs, one per published measurement, each over cost_table;
    #: the first is the default estimate (docs/costs.md)
    cost_profiles: ClassVar[tuple[CostProfile, ...]] = ()
    #: model rules where no public source decides: a name, and the rule
    assumptions: ClassVar[dict[str, str]] = {}
    #: how this platform's KVM names the host's neutral actions
    host_words: ClassVar[HostWords] = HostWords()
    #: what the reports call this platform's guest calls ("TDCALL, TDVMCALL")
    calls_are: ClassVar[str] = "guest calls to the platform"
    #: the kernel has the EFI unaccepted-memory table on this architecture
    #: (CONFIG_UNACCEPTED_MEMORY: x86 only)
    unaccepted_memory: ClassVar[bool] = True
    #: trace: event name (or ``exit.<reason>``) -> the function it models
    functions: ClassVar[dict[str, str]] = {}
    #: every effect of the vendor's calls is in the host's page maps (its own through
    #: ``host.add_map``), so the core may apply runs of identical chunk accepts,
    #: allocation cycles and memory-block rounds without calling it again
    #: (cocomem.chunks, cocomem.steady, cocomem.blocks); off by default
    state_in_maps: ClassVar[bool] = False

    def __init__(self, ctx: RunContext, host: Host, faults: FaultPlan,
                 options: BaseModel) -> None:
        self.ctx = ctx
        self.host = host
        self.faults = faults
        self.options = options
        self._replay = bulk.Replay(self)

    # -- the arch API a backend calls --------------------------------------

    def accept_memory(self, start: int, end: int, *, ignore: tuple[str, ...] = ()) -> bool:
        """Accept ``[start, end)``; False when the platform refused part of it.

        ``ignore``: statuses the caller's (patched) loop treats as success, e.g.
        TDX's ``already_accepted`` in the notifier series' first patch.
        """
        raise NotImplementedError

    def release_memory(self, start: int, end: int) -> bool:
        """Give accepted memory back (TDX: ``tdx_release_memory``; SEV-SNP:
        ``snp_unaccept_memory``). True when done or when the platform has nothing
        to do; False when it failed (memory released so far is accepted again, or
        the guest dies)."""
        raise NotImplementedError

    def set_memory_encrypted(self, start: int, end: int) -> bool:
        """Convert shared -> private and accept (``set_memory_encrypted``)."""
        raise NotImplementedError

    def set_memory_decrypted(self, start: int, end: int) -> bool:
        """Convert private -> shared (``set_memory_decrypted``)."""
        raise NotImplementedError

    def touch(self, start: int, end: int) -> None:
        """The host-side effects of a guest access to ``[start, end)``; raise
        :class:`cocomem.run.GuestCrash` where the guest dies."""
        raise NotImplementedError

    def inaccessible(self, start: int, end: int) -> list[tuple[int, int]]:
        """Sub-ranges a guest access would die on."""
        raise NotImplementedError

    def new_kernel(self) -> None:
        """A guest kernel boots: at start, after kexec, the kdump capture kernel, and
        after a reset (the platform's state is the host's, which a reset renewed).
        Nothing by default; a vendor keeping the guest kernel's own state (CCA's
        linear map) starts it afresh."""

    def removing_private(self, start: int, end: int) -> None:
        """KVM is about to free the private pages of ``[start, end)`` (guest_memfd
        punched on unplug or on conversion to shared); the host's maps still show
        them. Nothing by default; CCA marks RIPAS RAM granules DESTROYED."""

    def arch_accept_memory(self, start: int, end: int) -> None:
        """Mainline ``arch_accept_memory``: accept or panic."""
        if not self.accept_memory(start, end):
            raise GuestCrash("accept-panic", start, end, "arch_accept_memory: failed to accept")

    # -- the bulk mechanism --------------------------------------------------

    def each(self, start: int, end: int,
             piece: Callable[[int, int], tuple[int, bool]]) -> tuple[int, bool]:
        """Call ``piece(pos, end) -> (next, ok)`` over ``[start, end)``, one piece
        after the other, stopping at the first that fails; pieces that would repeat
        the last one's effect on a uniform range are applied at once (see
        cocomem.bulk for the contract). Returns (where it stopped, success)."""
        return bulk.each(self, start, end, piece)

    def repeatable(self, op: str, start: int, end: int, walk: Callable[[], int],
                   key: tuple[Hashable, ...] = (), fn: str = "") -> int:
        """Run ``walk()`` (a whole call over ``[start, end)``, returning where it
        stopped), or, when the last call of ``op`` was over a 2M-aligned range of the
        same length, in the same state in every page map, with the same ``key``, apply
        what that call did instead: lazy acceptance makes one call per 4 MiB chunk,
        and a run of them then costs one walk. Only 2M-aligned ranges are replayed: a
        call on an unaligned one may split a 2M leaf that reaches outside it. ``fn``
        names the function in the trace's ``replay`` line (default: ``op``)."""
        replay_key = None
        if start % PAGES_PER_2M == 0 and end % PAGES_PER_2M == 0:
            replay_key = self._replay.key(op, start, end, key)
        return self._replay.call(op, replay_key, start, end, walk, fn=fn or op)

    # -- trace wording -------------------------------------------------------

    @classmethod
    def describe(cls, event: Event, where: str) -> str | None:
        """The trace line for one of this vendor's own events (None: the core's
        generic wording, ``name range key=value ...``)."""
        return None
