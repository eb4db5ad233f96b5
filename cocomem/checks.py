"""The check layer: violation kinds, verdicts, and the base class of checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .results import VERDICTS

if TYPE_CHECKING:
    from .engine import BackendRun
    from .run import Event

#: the class of kinds that are the VMM's doing: reported, but no verdict on the design
VMM = "vmm"

#: the stable violation kinds (docs/model.md, section 7) and the verdict each implies
KINDS: dict[str, str] = {
    "access-unaccepted": "crashed",
    "accept-panic": "crashed",
    "stale-assumed-zero": "unsafe",
    "accept-unbacked": "unsafe",
    "use-after-unplug": "unsafe",
    "state-mismatch": "unsafe",
    "double-accept": "degraded",
    "device-broken": "degraded",
    "leak": "degraded",
    "private-residue": VMM,
}


def verdict(kinds: set[str], known: dict[str, str] = KINDS) -> str:
    """The worst verdict any of ``kinds`` implies; ``ok`` when there is none.
    Kinds of the ``vmm`` class judge the VMM, not the design: they imply nothing."""
    worst = "ok"
    for kind in kinds:
        severity = known.get(kind, "unsafe")
        if severity == VMM:
            continue
        if VERDICTS.index(severity) > VERDICTS.index(worst):
            worst = severity
    return worst


class Check:
    """Base class of check plugins.

    ``kinds`` maps each violation kind the check reports to the verdict it
    implies. ``on_event`` sees every event of the run; ``on_finish`` runs
    once after the last step. Report with ``self.run.ctx.violation(...)``;
    raise :class:`cocomem.run.GuestCrash` when the guest would die.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kinds: ClassVar[dict[str, str]] = {}
    #: event names this check wants (None: every event; empty: none, only on_finish)
    events: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, run: BackendRun) -> None:
        self.run = run

    def on_event(self, event: Event) -> None:
        """Called for each event named in ``events``."""

    def on_finish(self) -> None:
        """Called once after the last step (or the crash)."""
