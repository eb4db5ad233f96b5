"""The seed RFC: post-plug ACCEPT and pre-unplug TDG.MEM.PAGE.RELEASE callbacks.

Error rules (cover letter, "Error handling strategy"):
1. the post-plug accept fails -> device broken, the host memory is leaked;
2. the pre-unplug release fails -> device broken, no unplug request is sent;
3. the unplug request fails after the release -> re-accept; if that fails,
   device broken.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cocomem.backend import Backend
from cocomem.hookspecs import hookimpl


class CallbacksOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: without PAGE_RELEASE, skip the release instead of failing it (and so
    #: rely on the VMM to discard private memory, as the cover letter puts it)
    skip_release_without_page_release: bool = False


class Callbacks(Backend):
    name = "callbacks"
    description = "accept exactly the plugged range; release before unplug"
    order = 30
    Options = CallbacksOptions

    def post_plug(self, start: int, end: int) -> bool:
        return self.vendor.accept_memory(start, end)

    def pre_unplug(self, start: int, end: int) -> bool:
        if not self.vendor.supports_release and self.options.skip_release_without_page_release:
            return True
        return self.vendor.release_memory(start, end)

    def unplug_failed(self, start: int, end: int) -> bool:
        return self.vendor.accept_memory(start, end)


@hookimpl
def register_backends(register):
    register(Callbacks)
