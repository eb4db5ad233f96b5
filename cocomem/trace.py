"""``--trace`` and ``explain``: one line per event, each naming the kernel, KVM or
QEMU function it models, so a developer can follow the steps in the source."""

from __future__ import annotations

from .run import Event
from .units import PAGE_SIZE, format_size

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
    "host.aug": "KVM tdx_sept_set_private_spte (TDH.MEM.PAGE.AUG)",
    "host.remove": "KVM tdx_sept_remove_private_spte (TDH.MEM.PAGE.REMOVE)",
    "host.demote": "KVM split of a 2M leaf (BLOCK + TRACK + DEMOTE)",
    "host.convert": "QEMU kvm_convert_memory",
    "host.discard": "QEMU virtio_mem_set_block_state",
    "host.reset": "QEMU virtio_mem_system_reset_hold",
    "tdvmcall": "tdx_map_gpa",
}
_EXIT_FUNCTIONS = {
    "ept_violation": "KVM tdx_handle_ept_violation",
    "map_gpa": "KVM tdx_map_gpa (KVM_HC_MAP_GPA_RANGE exit to QEMU)",
    "memory_fault": "KVM kvm_mmu_prepare_memory_fault_exit (KVM_EXIT_MEMORY_FAULT to QEMU)",
}


def function_of(event: Event) -> str | None:
    """The kernel, KVM or QEMU function an event models."""
    info = event.info
    if "fn" in info:
        return info["fn"]
    if event.name == "request":
        return f"virtio_mem_send_{info['request']}_request"
    if event.name == "response":
        return ("QEMU virtio_mem_unplug_all" if info["request"] == "unplug_all"
                else "QEMU virtio_mem_state_change_request")
    if event.name == "tdcall":
        return f"try_{info['op']}_one"
    if event.name == "exit":
        return _EXIT_FUNCTIONS.get(info["reason"])
    if event.name == "notify":
        return ("offline_pages" if "OFFLINE" in info["action"] else "online_pages") + \
            ": memory_notify"
    return FUNCTIONS.get(event.name)


def page_range(event: Event, base: int) -> str:
    if event.start is None:
        return ""
    start = base + event.start * PAGE_SIZE
    return f"{start:#x}+{format_size((event.end - event.start) * PAGE_SIZE)}"


def _details(info: dict, skip: tuple[str, ...] = ()) -> str:
    return " ".join(f"{k}={v}" for k, v in info.items() if k not in ("fn", *skip))


def describe(event: Event, base: int) -> str | None:
    """What happened, without the function: None for events that only feed the checks."""
    if event.name in _QUIET:
        return None
    info = event.info
    where = page_range(event, base)
    name = event.name
    if name == "step":
        return f"step {info['index']}: {info['what']}"
    if name == "tdcall":
        return (f"TDCALL TDG.MEM.PAGE.{info['op'].upper()} {where} level={info['level']}"
                f" -> {info['status'].upper()}")
    if name == "tdvmcall":
        return f"TDVMCALL MapGPA {where} to={info['to']} -> {info['status'].upper()}"
    if name == "exit":
        return f"exit {info['reason'].upper()} {where} {_details(info, ('reason',))}".rstrip()
    if name == "request":
        return f"virtio-mem {info['request'].upper()} {where}"
    if name == "response":
        return f"virtio-mem {info['request'].upper()} -> {info['response'].upper()}"
    if name == "notify":
        return f"memory notifier {info['action']} {where}"
    if name == "repeat":
        chunks = info["chunks"]
        return f"... the same again for {chunks} more 2M chunk{'s' * (chunks > 1)}: {where}"
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
    if name.startswith("host."):
        return f"host {name[5:]} {where} {_details(info)}".rstrip()
    return f"{name} {where} {_details(info)}".rstrip()


def format_event(event: Event, base: int) -> str | None:
    """The trace line of ``event``, indented by layer, naming its function."""
    text = describe(event, base)
    if text is None or event.name == "step":
        return text
    indent = "    " if event.name == "exit" or event.name.startswith("host.") else "  "
    fn = function_of(event)
    if fn and event.name != "call":
        text = f"{text}  [{fn}]"
    return indent + text
