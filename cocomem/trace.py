"""``--trace``: one line per event, in the kernel's vocabulary."""

from __future__ import annotations

from .run import Event
from .units import PAGE_SIZE, format_size

_QUIET = ("step.end", "finish", "accept.done", "accept.already")


def _range(event: Event, base: int) -> str:
    if event.start is None:
        return ""
    start = base + event.start * PAGE_SIZE
    return f"{start:#x}+{format_size((event.end - event.start) * PAGE_SIZE)}"


def format_event(event: Event, base: int) -> str | None:
    """The trace line of ``event``; None for events that only feed the checks."""
    if event.name in _QUIET:
        return None
    info = event.info
    where = _range(event, base)
    if event.name == "step":
        return f"step {info['index']}: {info['what']}"
    if event.name == "tdcall":
        return f"  TDCALL {'TDG.MEM.PAGE.' + info['op'].upper()} {where} level={info['level']}" \
               f" -> {info['status'].upper()}"
    if event.name == "tdvmcall":
        return f"  TDVMCALL MapGPA {where} to={info['to']} -> {info['status'].upper()}"
    if event.name == "exit":
        extra = f" chunks={info['chunks']}" if "chunks" in info else ""
        return f"    exit {info['reason'].upper()} {where}{extra}"
    if event.name == "request":
        return f"  virtio-mem {info['request'].upper()} {where}"
    if event.name == "response":
        return f"  virtio-mem {info['request'].upper()} -> {info['response'].upper()}"
    if event.name == "notify":
        return f"  memory notifier {info['action']} {where}"
    if event.name == "repeat":
        chunks = info["chunks"]
        return f"  ... the same again for {chunks} more 2M chunk{'s' * (chunks > 1)}: {where}"
    if event.name == "config":
        return "  host sets " + " ".join(f"{k}_size={format_size(v)}" for k, v in info.items())
    if event.name == "guest.access":
        return f"  guest writes {where}"
    if event.name.startswith("host."):
        details = " ".join(f"{k}={v}" for k, v in info.items())
        return f"    host {event.name[5:]} {where} {details}".rstrip()
    details = " ".join(f"{k}={v}" for k, v in info.items())
    return f"  {event.name} {where} {details}".rstrip()
