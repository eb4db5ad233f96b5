"""Build a scenario from keyword arguments and make one backend's run of it."""

from __future__ import annotations

from typing import Any

import yaml

from cocomem.engine import BackendRun
from cocomem.registry import Registry
from cocomem.scenario import parse_scenario


def scenario_yaml(steps: list, *, region: str = "1GiB", memory_block: str = "128MiB",
                  mapping: str = "4k", memory: str = "start-private",
                  discards: tuple[str, ...] = ("shared",), implicit: bool = True,
                  faults: list[dict] | None = None, tdx: dict | None = None,
                  vendor: str = "tdx", usable_extent: str = "256MiB",
                  accept_memory: str = "lazy") -> str:
    data: dict[str, Any] = {
        "name": "worked-example",
        "vendor": vendor,
        "device": {"region_size": region, "block_size": "2MiB",
                   "usable_extent": usable_extent},
        "guest": {"memory_block_size": memory_block, "accept_memory": accept_memory},
        "vmm": {"memory": memory, "unplug_discards": list(discards),
                "mapping_level": mapping, "implicit_conversion": implicit},
        "steps": steps,
        "faults": faults or [],
    }
    if tdx is not None:
        data["tdx"] = tdx
    return yaml.safe_dump(data, sort_keys=False)


def make_run(registry: Registry, steps: list, backend: str = "callbacks",
             **settings: Any) -> BackendRun:
    """A run of ``backend`` over ``steps``, not started yet."""
    loaded = parse_scenario(scenario_yaml(steps, **settings), "<test>", set(registry.vendors))
    return BackendRun(loaded, registry, backend, loaded.scenario.vendor)
