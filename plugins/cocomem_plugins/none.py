"""A guest without memory encryption: nothing to accept, release or convert."""

from __future__ import annotations

from cocomem.hookspecs import hookimpl
from cocomem.vendor import Vendor


class NoCoco(Vendor):
    name = "none"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "non-confidential guest: memory needs no acceptance"
    confidential = False

    def accept_memory(self, start: int, end: int, *, ignore: tuple[str, ...] = ()) -> bool:
        return True

    def release_memory(self, start: int, end: int) -> bool:
        return True

    def set_memory_encrypted(self, start: int, end: int) -> bool:
        return True

    def set_memory_decrypted(self, start: int, end: int) -> bool:
        return True

    def touch(self, start: int, end: int) -> None:
        self.host.populate_shared(start, end)

    def inaccessible(self, start: int, end: int) -> list[tuple[int, int]]:
        return []


@hookimpl
def register_vendors(register):
    register(NoCoco)
