"""Names of per-page states, shared by the host, vendors and checks."""

from __future__ import annotations

# KVM's per-GFN memory attribute.
PRIVATE = "private"
SHARED = "shared"

# The private page behind a GFN (the S-EPT entry for TDX, the RMP entry for
# SNP, the RIPAS for CCA), with the size of the leaf that maps it.
FREE = "free"
PENDING_4K = "pending/4k"
PENDING_2M = "pending/2m"
MAPPED_4K = "mapped/4k"
MAPPED_2M = "mapped/2m"

PENDING = (PENDING_4K, PENDING_2M)
MAPPED = (MAPPED_4K, MAPPED_2M)
PRESENT = PENDING + MAPPED
LEAF_2M = (PENDING_2M, MAPPED_2M)


def with_level(state: str, level: str) -> str:
    """``pending/4k`` -> ``pending/2m`` and back; FREE stays FREE."""
    return state if state == FREE else f"{state.split('/')[0]}/{level}"


# The guest's view of a page of the device region.
ABSENT = "absent"            # its memory block is not added to Linux
OFFLINE = "offline"          # added, not online
FAKE_OFFLINE = "fake-offline"  # online block, never-onlined subblock (PageOffline + PageDirty)
TAKEN = "fake-offline/taken"   # PageOffline, taken from the allocator by alloc_contig_range
BUDDY = "free"               # online and free in the page allocator
USED = "used"                # allocated by the guest
UNACCEPTED = "unaccepted"    # free, in a 4 MiB chunk on the zone's unaccepted list (lazy)
PAGE_STATES = frozenset((ABSENT, OFFLINE, FAKE_OFFLINE, TAKEN, BUDDY, USED, UNACCEPTED))
#: pages the zone manages (managed_pages): online, plugged, not fake-offline
MANAGED = (BUDDY, USED, UNACCEPTED)

# virtio-mem SBM memory block states (drivers/virtio/virtio_mem.c).
MB_NONE = "none"             # beyond next_mb_id: never prepared
MB_UNUSED = "unused"
MB_PLUGGED = "plugged"
MB_OFFLINE = "offline"
MB_OFFLINE_PARTIAL = "offline_partial"
MB_MOVABLE = "movable"
MB_MOVABLE_PARTIAL = "movable_partial"

PAGES_PER_2M = 512
PAGES_PER_1G = 512 * 512
#: MAX_PAGE_ORDER on x86: the buddy allocator's largest block, 4 MiB
PAGES_PER_MAX_ORDER = 1024
