"""``cocomem explain``: for each violation, the events that led to it.

A run's events are read in order; for every violation, the chain is the last
event of each kind (a request, a call, an exit, a host action, a guest
access, a notifier event ...) that touched the violation's first page before
it was reported. Each line names the step and the function it models.
"""

from __future__ import annotations

from .run import Event
from .trace import describe, function_of, page_range
from .vendor import Vendor

#: events that say nothing about a page's history
_SKIP = ("step", "step.end", "finish", "violation", "accept.done", "accept.already",
         "crash", "ignored", "migrate")
#: notifier actions that decide something (the others only report)
_NOTIFY = ("MEM_GOING_ONLINE", "MEM_CANCEL_ONLINE")


def _category(event: Event) -> tuple:
    info = event.info
    return (event.name, info.get("request"), info.get("op"), info.get("reason"),
            info.get("fn"), info.get("action"), info.get("what"))


def _touches(event: Event, page: int) -> bool:
    return event.start is not None and event.start <= page < event.end


def explain(events: list[Event]) -> list[tuple[Event, list[tuple[int, Event]]]]:
    """Each first report of a violation, with its chain of (step, event)."""
    out: list[tuple[Event, list[tuple[int, Event]]]] = []
    history: list[tuple[int, Event]] = []
    seen: set[tuple[str, int]] = set()
    step = 0
    for event in events:
        if event.name == "step":
            step = event.info["index"]
            continue
        if event.name == "violation":
            key = (event.info["kind"], event.start)
            if key in seen:
                continue
            seen.add(key)
            latest: dict[tuple, int] = {}  # category -> position of its last event
            for position, (_, past) in enumerate(history):
                if _touches(past, event.start):
                    latest[_category(past)] = position
            out.append((event, [history[position] for position in sorted(latest.values())]))
        elif event.name not in _SKIP and (event.name != "notify"
                                          or event.info["action"] in _NOTIFY):
            history.append((step, event))
    return out


def format_explanation(events: list[Event], base: int,
                       vendor: type[Vendor] = Vendor) -> list[str]:
    lines = []
    for violation, chain in explain(events):
        info = violation.info
        where = page_range(violation, base)
        detail = f": {info['detail']}" if info.get("detail") else ""
        lines.append(f"{info['kind']} {where}{detail}")
        if not chain:
            lines.append("  (no earlier event touched this memory)")
        for step, event in chain:
            fn = function_of(event, vendor)
            text = describe(event, base, vendor)
            lines.append(f"  step {step}: {text}" + (f"  [{fn}]" if fn and event.name != "call"
                                                     else ""))
    return lines
