"""Pagewise: a CoCo platform whose guest accepts, releases and converts memory
one 4 KiB page per call.

It is no real platform: it is the smallest vendor that is still a whole one,
written the naive way (one call per page, as a first port to a new platform
would be) and kept fast by the bulk mechanism, ``self.each``. Its pages live
in the host's neutral per-page maps: ``host.attr`` (private or shared),
``host.private`` (FREE, PENDING, MAPPED) and ``host.content``.
"""

from __future__ import annotations

from cocomem import CALL, EXIT, CostEntry, Event, GuestCrash, HostWords, Vendor, hookimpl
from cocomem.state import FREE, MAPPED, MAPPED_4K, PENDING, PENDING_4K, PRIVATE, SHARED

OK = "ok"
ALREADY_ACCEPTED = "already_accepted"
BUSY = "busy"
STATUSES = (OK, ALREADY_ACCEPTED, BUSY)


class Pagewise(Vendor):
    name = "pagewise"
    description = "example platform: accept, release and convert one 4 KiB page per call"
    #: every guest call counts as pw.<op>.4k.<status>; the VMM's exit per conversion
    counters = {"pw.*": CALL, "exit.pw_convert": EXIT}
    fault_calls = {"pw.accept": STATUSES, "pw.release": STATUSES, "pw.convert": (OK, BUSY)}
    cost_table = {
        "pw.accept.4k.ok": CostEntry(us=1.1, source="assumption: as TDX's 4K accept "
                                     "with clearing (docs/model.md, section 3)"),
        "pw.*": CostEntry(us=0.5, source="assumption: a call that changes nothing"),
        "exit.pw_fault": CostEntry(us=0.8, source="assumption: as TDX's EPT violation"),
        "exit.pw_convert": CostEntry(us=10.0, source="assumption: an exit to the VMM"),
        "host.pw_add.4k": CostEntry(us=0.6, source="assumption: as TDX's AUG"),
        "host.*": CostEntry(us=0.5, source="assumption"),
    }
    assumptions = {
        "pagewise-4k-only": "the host maps pagewise memory at 4 KiB only, whatever the "
                            "VMM's mapping_level",
        "pagewise-release-unaccepted": "releasing a page that is not accepted succeeds "
                                       "and changes nothing",
    }
    host_words = HostWords(
        fault="exit.pw_fault", fault_fn="pagewise host: fault on a private page",
        add="host.pw_add", add_fn="pagewise host: add a private page",
        remove="host.pw_remove", remove_fn="pagewise host: remove a private page",
        demote="host.pw_demote", demote_fn="pagewise host: split a 2M page",
    )
    calls_are = "pagewise calls"
    functions = {"exit.pw_convert": "pagewise host: convert one page for the guest"}

    # -- one call ------------------------------------------------------------

    def _call(self, op: str, page: int, status: str) -> str:
        """Count and show one guest call on ``page``."""
        self.ctx.count(f"pw.{op}.4k.{status}")
        self.ctx.emit("pw", page, page + 1, op=op, status=status, fn=f"pagewise_{op}_one")
        return status

    def _accept_one(self, page: int) -> str:
        """One ACCEPT: the host adds a FREE page first (an exit), then the page is
        cleared and MAPPED; a MAPPED page is left as it is."""
        injected = self.faults.take("pw.accept")
        if injected:
            return self._call("accept", page, injected)
        for _ in range(2):  # a shared page is converted first, then added
            if self.host.private[page] != FREE:
                break
            self.host.fault_in(page, "4k")
        if self.host.private[page] in MAPPED:
            return self._call("accept", page, ALREADY_ACCEPTED)
        self.host.private.set(page, page + 1, MAPPED_4K)
        self.host.content.set(page, page + 1, 0)
        return self._call("accept", page, OK)

    def _release_one(self, page: int) -> str:
        """One RELEASE: a MAPPED page goes back to PENDING, its content gone."""
        injected = self.faults.take("pw.release")
        if injected:
            return self._call("release", page, injected)
        if self.host.private[page] in MAPPED:
            self.host.private.set(page, page + 1, PENDING_4K)
            self.host.content.set(page, page + 1, 0)
        return self._call("release", page, OK)

    def _convert_one(self, page: int, to: str) -> str:
        """One conversion request: an exit to the VMM, which converts the page."""
        injected = self.faults.take("pw.convert")
        if injected:
            return self._call("convert", page, injected)
        self.ctx.count("exit.pw_convert")
        self.ctx.emit("exit", page, page + 1, reason="pw_convert", to=to)
        self.host.convert(page, page + 1, to)
        return self._call("convert", page, OK)

    # -- the arch API, one page per piece ------------------------------------

    def accept_memory(self, start: int, end: int, *, ignore: tuple[str, ...] = ()) -> bool:
        self.ctx.emit("call", start, end, fn="pagewise_accept_memory")

        def piece(page: int, end: int) -> tuple[int, bool]:
            status = self._accept_one(page)
            ok = status == OK or status in ignore
            if status == ALREADY_ACCEPTED:
                self.ctx.emit("accept.already", page, page + 1, tolerated=ok)
            if not ok:
                return page, False
            self.ctx.emit("accept.done", page, page + 1)
            return page + 1, True

        # lazy acceptance calls once per 4 MiB chunk: a call like the last one, on
        # a range in the same state, is applied without walking it
        return self.repeatable("accept", start, end,
                               lambda: self.each(start, end, piece)[0], key=(ignore,)) == end

    def release_memory(self, start: int, end: int) -> bool:
        self.ctx.emit("call", start, end, fn="pagewise_release_memory")
        stop, ok = self.each(start, end, lambda page, end: (
            (page + 1, True) if self._release_one(page) == OK else (page, False)))
        if not ok and stop > start and not self.accept_memory(start, stop):
            raise GuestCrash("accept-panic", start, stop,
                             "pagewise_release_memory: failed to re-accept released memory")
        return ok

    def _convert(self, start: int, end: int, to: str) -> bool:
        self.ctx.emit("call", start, end, fn=f"pagewise_convert_{to}")
        return self.each(start, end, lambda page, end: (
            (page + 1, True) if self._convert_one(page, to) == OK else (page, False)))[1]

    def set_memory_encrypted(self, start: int, end: int) -> bool:
        return self._convert(start, end, PRIVATE) and self.accept_memory(start, end)

    def set_memory_decrypted(self, start: int, end: int) -> bool:
        return self._convert(start, end, SHARED)

    # -- what a guest access does --------------------------------------------

    def inaccessible(self, start: int, end: int) -> list[tuple[int, int]]:
        return self.host.private.runs_where(start, end, FREE, *PENDING)

    def touch(self, start: int, end: int) -> None:
        """The exits of the first access that faults: a FREE page is added, and the
        access to the PENDING page that leaves is fatal (the check reports it)."""
        bad = self.inaccessible(start, end)
        if not bad:
            return
        page = bad[0][0]
        for _ in range(2):
            if self.host.private[page] != FREE:
                break
            self.host.fault_in(page, "4k")
        if self.host.private[page] in PENDING:
            self.host.count_fault(page, fatal="access to a PENDING page")

    # -- trace wording -------------------------------------------------------

    @classmethod
    def describe(cls, event: Event, where: str) -> str | None:
        if event.name == "pw":
            return f"PAGEWISE {event.info['op'].upper()} {where} -> {event.info['status'].upper()}"
        return None


@hookimpl
def register_vendors(register):
    register(Pagewise)
