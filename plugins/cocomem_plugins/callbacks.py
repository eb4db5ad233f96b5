"""RFC v1: post-plug ACCEPT and pre-unplug TDG.MEM.PAGE.RELEASE callbacks.

Patch 3 wraps ``virtio_mem_send_plug_request`` and
``virtio_mem_send_unplug_request`` only:
- after a PLUG ACK, ``memory_post_plug_call`` -> ``tdx_memory_post_plug`` ->
  ``tdx_accept_memory`` over exactly the plugged range; a failure returns
  -EINVAL, which ``virtio_mem_run_wq`` treats as an unknown error: device
  broken, the plugged memory leaked;
- before an UNPLUG, ``memory_pre_unplug_call`` -> ``tdx_release_memory``
  (patch 5: nothing to do without PAGE_RELEASE; a failed RELEASE re-accepts
  what was released, and panics only if that fails); a failure returns
  -EINVAL before the request is sent;
- when the device does not ACK the UNPLUG, ``memory_post_plug_call``
  accepts the range again; if that fails, -EINVAL (device broken).
``virtio_mem_send_unplug_all_request`` is unchanged: nothing is released
before UNPLUG_ALL (kexec).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from cocomem.backend import Backend, Revision
from cocomem.hookspecs import hookimpl


class CallbacksOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "skip_release_without_page_release" in raw:
            raise ValueError("skip_release_without_page_release was removed: RFC v1 as posted "
                             "issues no RELEASE without PAGE_RELEASE (tdx_release_memory "
                             "returns true), which is now what callbacks does")
        return raw


class Callbacks(Backend):
    name = "callbacks"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "RFC v1: accept exactly the plugged range; release before unplug"
    order = 30
    platforms = ("tdx",)
    Options = CallbacksOptions
    revision = Revision(
        subject="[RFC PATCH 0/6] Support virtio-mem memory hotplug in TDX guests",
        date="2026-06-04",
        message_id="<20260604093551.1511079-1-zhenzhong.duan@intel.com>",
        url="https://www.mail-archive.com/linux-kernel@vger.kernel.org/msg2634918.html",
    )
    departures = {
        "patch-6-not-exercised": "patch 6 (release before a private->shared conversion in "
                                 "tdx_enc_status_changed) is on no path of this design that "
                                 "the steps model: no step converts in-use memory to shared",
        "one-callback-each": "patches 1-2 allow one registered callback each; the model has "
                             "the TDX one only",
    }

    def post_plug(self, start: int, end: int) -> bool:
        return self.vendor.accept_memory(start, end)

    def pre_unplug(self, start: int, end: int) -> bool:
        return self.vendor.release_memory(start, end)

    def unplug_failed(self, start: int, end: int) -> bool:
        return self.vendor.accept_memory(start, end)


@hookimpl
def register_backends(register):
    register(Callbacks)
