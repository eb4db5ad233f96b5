"""Scenario files: YAML in, validated pydantic models out, errors with lines."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from . import yamlin
from .errors import ScenarioError
from .units import SIZE_PATTERN, SZ_2M, format_size, is_power_of_two, parse_size


def _size(value: Any) -> int:
    size = parse_size(value)
    if size < 0:
        raise ValueError(f"must not be negative (got {value!r})")
    return size


#: how a size is written: bytes, or a number with a unit (``2MiB``, ``1GiB``, ``512M``)
SIZE_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 0},
                         {"type": "string", "pattern": SIZE_PATTERN}],
               "description": "bytes, or a number with a unit: 4KiB, 2MiB, 1GiB, 512M"}
Size = Annotated[int, BeforeValidator(_size), WithJsonSchema(SIZE_SCHEMA)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Device(StrictModel):
    """The virtio-mem device as QEMU configures it."""

    addr: Size = 4 << 30
    region_size: Size
    block_size: Size = SZ_2M
    #: QEMU's VIRTIO_MEM_USABLE_EXTENT on x86-64: usable = requested + this.
    usable_extent: Size = 256 << 20


class Guest(StrictModel):
    memory_block_size: Size = 128 << 20
    #: Linux: max(device block size, pageblock size); set to model older kernels.
    subblock_size: Size | None = None
    #: the kernel's accept_memory= parameter (lazy is its default); it matters for
    #: memory the unaccepted-memory table covers (RFC v2's plugged-bitmap design)
    accept_memory: Literal["lazy", "eager"] = "lazy"
    #: vCPUs: allocations (a `use` step) accept lazily on all of them at once; the
    #: virtio-mem work queue stays one thread (docs/costs.md)
    vcpus: int = Field(default=1, ge=1, le=4096)


class Vmm(StrictModel):
    memory: Literal["start-private", "start-shared"] = "start-private"
    unplug_discards: list[Literal["shared", "private"]] = ["shared"]
    mapping_level: Literal["4k", "2m"] = "4k"
    implicit_conversion: bool = True


class VmmPatch(StrictModel):
    """A change of VMM settings in the middle of a scenario."""

    unplug_discards: list[Literal["shared", "private"]] | None = None
    mapping_level: Literal["4k", "2m"] | None = None
    implicit_conversion: bool | None = None


STEP_OPS = ("plug", "unplug", "use", "free", "kexec", "kdump", "reboot",
            "offline_block", "online_block", "vmm")
_BARE_OPS = ("kexec", "kdump", "reboot")


class Step(StrictModel):
    """One step; written in YAML as ``- plug: 128MiB`` or ``- kexec``."""

    op: Literal["plug", "unplug", "use", "free", "kexec", "kdump", "reboot",
                "offline_block", "online_block", "vmm"]
    size: Size | None = None
    all: bool = False
    block: int | None = Field(default=None, ge=0)
    vmm: VmmPatch | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            if raw not in _BARE_OPS:
                raise ValueError(f"unknown step {raw!r}; steps: {', '.join(STEP_OPS)}")
            return {"op": raw}
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ValueError("a step is one key, like '- plug: 128MiB' or '- kexec'")
        (op, arg), = raw.items()
        if op not in STEP_OPS:
            raise ValueError(f"unknown step {op!r}; steps: {', '.join(STEP_OPS)}")
        if op in _BARE_OPS:
            if arg is not None:
                raise ValueError(f"step {op!r} takes no argument")
            return {"op": op}
        if arg is None:
            what = {"offline_block": "a memory block number", "online_block":
                    "a memory block number", "vmm": "VMM settings"}.get(op, "a size")
            raise ValueError(f"step {op!r} needs {what}")
        if op in ("use", "free") and arg == "all":
            return {"op": op, "all": True}
        if op in ("plug", "unplug", "use", "free"):
            return {"op": op, "size": arg}
        if op in ("offline_block", "online_block"):
            return {"op": op, "block": arg}
        return {"op": op, "vmm": arg}

    def describe(self) -> str:
        if self.size is not None:
            return f"{self.op} {format_size(self.size)}"
        if self.all:
            return f"{self.op} all"
        if self.block is not None:
            return f"{self.op} {self.block}"
        if self.vmm is not None:
            return f"vmm {self.vmm.model_dump(exclude_none=True)}"
        return self.op


class Fault(StrictModel):
    """Make the ``nth`` call (1-based, per backend run) of ``call`` return ``status``."""

    call: str
    nth: int = Field(ge=1)
    status: str
    #: how many consecutive calls, starting at ``nth``, get this status.
    count: int = Field(default=1, ge=1)


class Expect(StrictModel):
    verdict: Literal["ok", "degraded", "unsafe", "crashed", "error"] | None = None
    #: the exact set of violation kinds.
    violations: list[str] | None = None
    #: exact counter values (a counter not listed is not checked).
    counters: dict[str, int] = {}


class Scenario(StrictModel):
    name: str
    description: str = ""
    vendor: str = "tdx"
    backends: list[str] | None = None
    device: Device
    guest: Guest = Guest()
    vmm: Vmm = Vmm()
    vendor_options: dict[str, dict[str, Any]] = {}
    backend_options: dict[str, dict[str, Any]] = {}
    #: µs per event, by counter name or pattern: finite and not negative
    cost: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = {}
    steps: list[Step] = []
    faults: list[Fault] = []
    #: expectations for the scenario's own ``vendor:``, by backend
    expect: dict[str, Expect] = {}
    #: expectations for other vendors: ``expect: {snp: {backend: {...}}}`` in YAML
    vendor_expect: dict[str, dict[str, Expect]] = {}

    def expectations(self, vendor: str) -> dict[str, Expect]:
        """The ``expect:`` entries that apply to a run on ``vendor``: its own block,
        and the un-keyed ones when ``vendor`` is the scenario's."""
        own = dict(self.expect) if vendor == self.vendor else {}
        own.update(self.vendor_expect.get(vendor, {}))
        return own

    @property
    def subblock_size(self) -> int:
        if self.guest.subblock_size is not None:
            return self.guest.subblock_size
        return max(self.device.block_size, SZ_2M)


class LoadedScenario:
    """A validated scenario plus where it came from, for error messages."""

    def __init__(self, scenario: Scenario, path: str, lines: dict[tuple, int],
                 sha256: str = "") -> None:
        self.scenario = scenario
        self.path = path
        self.lines = lines
        #: of the file's text, so a reply names exactly what ran
        self.sha256 = sha256

    def settings(self, vendor_cls: type) -> str:
        """One line of the settings that decide the outcome on ``vendor_cls``: the
        VMM's, the guest's, the vendor's options (defaults filled in), the backends'
        options the scenario sets, and the costs it overrides."""
        s = self.scenario
        vmm, guest = s.vmm, s.guest
        parts = [f"vmm memory={vmm.memory} discards={'+'.join(vmm.unplug_discards) or 'none'}"
                 f" mapping={vmm.mapping_level}"
                 + ("" if vmm.implicit_conversion else " implicit_conversion=false")]
        changes = [str(i) for i, step in enumerate(s.steps) if step.op == "vmm"]
        if changes:
            parts[0] += f" (changed at step {', '.join(changes)})"
        parts.append(f"guest blocks={format_size(guest.memory_block_size)} subblocks="
                     f"{format_size(s.subblock_size)} accept_memory={guest.accept_memory} "
                     f"vcpus={guest.vcpus}")
        options = vendor_cls.Options.model_validate(s.vendor_options.get(vendor_cls.name, {}))
        values = " ".join(f"{k}={_word(v)}" for k, v in options.model_dump().items())
        if values:
            parts.append(f"{vendor_cls.name} {values}")
        for backend, raw in s.backend_options.items():
            parts.append(f"{backend} " + " ".join(f"{k}={_word(v)}" for k, v in raw.items()))
        if s.cost:
            parts.append("cost " + " ".join(f"{k}={v:g}us" for k, v in s.cost.items()))
        return "; ".join(parts)

    def error(self, key: tuple, message: str) -> ScenarioError:
        return ScenarioError(message, file=self.path, key=_dotted(key),
                             line=_line_of(self.lines, key))


def _word(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _dotted(key: tuple) -> str:
    return ".".join(str(part) for part in key)


def _line_of(lines: dict[tuple, int], key: tuple) -> int | None:
    key = tuple(key)
    while key not in lines and key:
        key = key[:-1]
    return lines.get(key)


_PYDANTIC_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _pydantic_message(err: dict) -> str:
    if err["type"] in _PYDANTIC_MESSAGES:
        return _PYDANTIC_MESSAGES[err["type"]]
    message = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _error_loc(loc: tuple) -> tuple:
    # Step errors are reported on the step itself, not on pydantic's
    # internal field names.
    if len(loc) >= 2 and loc[0] == "steps":
        return loc[:2]
    return loc


def parse_scenario(text: str, path: str, vendor_names: set[str] = frozenset()) -> LoadedScenario:
    """Validate scenario YAML. Top-level keys named after a vendor are its options."""
    raw, lines = yamlin.load(text, path)
    if not isinstance(raw, dict):
        raise ScenarioError("a scenario is a YAML mapping (name:, device:, steps:, ...)",
                            file=path, line=1)
    raw = dict(raw)
    vendor_options = raw.pop("vendor_options", None) or {}
    if not isinstance(vendor_options, dict):
        raise ScenarioError("must be a mapping of vendor name to options", file=path,
                            key="vendor_options", line=lines.get(("vendor_options",)))
    vendor_options = dict(vendor_options)
    for name in vendor_names:
        if name in raw:
            vendor_options[name] = raw.pop(name)
            lines[("vendor_options", name)] = lines.get((name,), 1)
    raw["vendor_options"] = vendor_options
    expect = raw.get("expect")
    if isinstance(expect, dict):
        raw["expect"] = {k: v for k, v in expect.items() if k not in vendor_names}
        raw["vendor_expect"] = {k: v for k, v in expect.items() if k in vendor_names}
        for key in list(lines):
            if key[:1] == ("expect",) and len(key) > 1 and key[1] in vendor_names:
                lines[("vendor_expect",) + key[1:]] = lines[key]
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _error_loc(tuple(err["loc"]))
        if loc[:1] == ("vendor_options",):
            loc = loc[1:]
        elif loc[:1] == ("vendor_expect",):
            loc = ("expect",) + loc[1:]
        raise ScenarioError(_pydantic_message(err), file=path, key=_dotted(loc) or None,
                            line=_line_of(lines, loc) or _line_of(lines, loc[:1])) from None
    loaded = LoadedScenario(scenario, path, lines,
                            hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest())
    check_geometry(loaded)
    return loaded


def load_scenario(path: str | Path, vendor_names: set[str] = frozenset()) -> LoadedScenario:
    return parse_scenario(yamlin.read_text(path), str(path), vendor_names)


def check_geometry(loaded: LoadedScenario) -> None:
    """Reject sizes the device, QEMU or Linux would refuse."""
    s = loaded.scenario
    dev, guest = s.device, s.guest
    sb = s.subblock_size

    def need(ok: bool, key: tuple, message: str) -> None:
        if not ok:
            raise loaded.error(key, message)

    for key, value in (("block_size", dev.block_size),):
        need(is_power_of_two(value), ("device", key),
             f"must be a power of two (got {value} bytes)")
    need(dev.block_size >= 1 << 20, ("device", "block_size"),
         "must be at least 1MiB (QEMU's minimum)")
    need(is_power_of_two(guest.memory_block_size), ("guest", "memory_block_size"),
         f"must be a power of two (got {guest.memory_block_size} bytes)")
    need(is_power_of_two(sb) and sb >= dev.block_size, ("guest", "subblock_size"),
         f"must be a power of two and at least the device block size (got {sb} bytes)")
    need(sb < guest.memory_block_size, ("guest", "subblock_size"),
         "subblocks as large as a memory block mean big block mode, which is not modelled")
    need(dev.region_size > 0, ("device", "region_size"), "must be positive")
    need(dev.region_size % guest.memory_block_size == 0, ("device", "region_size"),
         f"must be a multiple of the memory block size ({format_size(guest.memory_block_size)})")
    need(dev.addr % guest.memory_block_size == 0, ("device", "addr"),
         f"must be aligned to the memory block size ({format_size(guest.memory_block_size)})")
    need(dev.usable_extent % dev.block_size == 0, ("device", "usable_extent"),
         "must be a multiple of the block size")

    requested = 0
    for index, step in enumerate(s.steps):
        key = ("steps", index)
        if step.op in ("plug", "unplug"):
            need(step.size > 0, key, f"{step.op} size must be positive")
            need(step.size % sb == 0, key,
                 f"{step.op} size {format_size(step.size)} is not a multiple of the "
                 f"subblock size {format_size(sb)}")
            requested += step.size if step.op == "plug" else -step.size
            need(requested <= dev.region_size, key,
                 f"requested size {format_size(requested)} is larger than the region "
                 f"({format_size(dev.region_size)})")
            need(requested >= 0, key, "unplugs more than was requested")
        elif step.op in ("use", "free") and not step.all:
            need(step.size > 0 and step.size % 4096 == 0, key,
                 f"{step.op} size must be a positive multiple of 4KiB")
        elif step.op in ("offline_block", "online_block"):
            blocks = dev.region_size // guest.memory_block_size
            need(step.block < blocks, key,
                 f"block {step.block} is outside the device (it has {blocks} memory blocks)")
