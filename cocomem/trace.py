"""``--trace`` and ``explain``: one line per event, each naming the kernel, KVM or
QEMU function it models, so a developer can follow the steps in the source."""

from __future__ import annotations

from .run import Event
from .units import PAGE_SIZE, format_size
from .vendor import Vendor

_QUIET = ("step.end", "finish", "accept.done", "accept.already")

#: the function each kind of event models (an event may name its own in ``fn``)
FUNCTIONS = {
    "config": "QEMU virtio_mem_resize_usable_region",
    "add_memory": "add_memory_driver_managed",
    "remove_memory": "offline_and_remove_memory",
    "migrate": "do_migrate_range",
    "driver.broken": "virtio_mem_run_wq",
    "retry_timer": "virtio_mem_run_wq: retry timer",
    "kdump.state": "virtio_mem_vmcore_pfn_is_ram",
    "host.convert": "QEMU kvm_convert_memory",
    "host.discard": "QEMU virtio_mem_set_block_state",
    "host.reset": "QEMU virtio_mem_system_reset_hold",
    "exit.memory_fault": "KVM kvm_mmu_prepare_memory_fault_exit (KVM_EXIT_MEMORY_FAULT to QEMU)",
}


def function_of(event: Event, vendor: type[Vendor] = Vendor) -> str | None:
    """The kernel, KVM or QEMU function an event models (the vendor's words first)."""
    info = event.info
    if "fn" in info:
        return info["fn"]
    name = f"exit.{info['reason']}" if event.name == "exit" else event.name
    known = {**FUNCTIONS, **vendor.host_words.functions(), **vendor.functions}
    if name in known:
        return known[name]
    if event.name == "request":
        return f"virtio_mem_send_{info['request']}_request"
    if event.name == "response":
        return ("QEMU virtio_mem_unplug_all" if info["request"] == "unplug_all"
                else "QEMU virtio_mem_state_change_request")
    if event.name == "notify":
        return ("offline_pages" if "OFFLINE" in info["action"] else "online_pages") + \
            ": memory_notify"
    return None


def page_range(event: Event, base: int) -> str:
    if event.start is None:
        return ""
    start = base + event.start * PAGE_SIZE
    return f"{start:#x}+{format_size((event.end - event.start) * PAGE_SIZE)}"


def _details(info: dict, skip: tuple[str, ...] = ()) -> str:
    return " ".join(f"{k}={v}" for k, v in info.items() if k not in ("fn", *skip))


def describe(event: Event, base: int, vendor: type[Vendor] = Vendor) -> str | None:
    """What happened, without the function: None for events that only feed the checks."""
    if event.name in _QUIET:
        return None
    info = event.info
    where = page_range(event, base)
    name = event.name
    own = vendor.describe(event, where)
    if own is not None:
        return own
    if name == "step":
        return f"step {info['index']}: {info['what']}"
    if name == "exit":
        return f"exit {info['reason'].upper()} {where} {_details(info, ('reason',))}".rstrip()
    if name == "request":
        return f"virtio-mem {info['request'].upper()} {where}"
    if name == "response":
        return f"virtio-mem {info['request'].upper()} -> {info['response'].upper()}"
    if name == "notify":
        return f"memory notifier {info['action']} {where}"
    if name == "repeat":
        times, piece = info["times"], format_size(info["piece"] * PAGE_SIZE)
        return f"... the same again for {times} more {piece} piece{'s' * (times > 1)}: {where}"
    if name == "config":
        return "host sets " + " ".join(f"{k}_size={format_size(v)}" for k, v in info.items())
    if name == "guest.access":
        return f"guest {info.get('what', 'writes')} {where}"
    if name == "violation":
        detail = f": {info['detail']}" if info.get("detail") else ""
        return f"violation {info['kind']} {where}{detail}"
    if name == "replay":
        return f"... the same calls as the last {info['fn']} again: {where}"
    if name == "call":
        return f"{info['fn']} {where} {_details(info)}".rstrip()
    if name.startswith("host.") or name in vendor.host_words.functions():
        return f"host {name[5:]} {where} {_details(info)}".rstrip()
    return f"{name} {where} {_details(info)}".rstrip()


def format_event(event: Event, base: int, vendor: type[Vendor] = Vendor) -> str | None:
    """The trace line of ``event``, indented by layer, naming its function."""
    text = describe(event, base, vendor)
    if text is None or event.name == "step":
        return text
    indent = "    " if event.name == "exit" or event.name.startswith("host.") else "  "
    fn = function_of(event, vendor)
    if fn and event.name != "call":
        text = f"{text}  [{fn}]"
    return indent + text
