"""cocomem-pagewise: an example of an out-of-tree cocomem plugin distribution.

Each module is one plugin, found through the ``cocomem`` entry-point group
(see pyproject.toml) or loaded by path with ``cocomem ... --plugin FILE.py``:

- ``pagewise``: a CoCo platform that accepts one 4 KiB page per call (vendor);
- ``callbacks_kexec``: RFC v1's callbacks plus a release before UNPLUG_ALL (backend);
- ``host_within_plugged``: the host backs no more than the device plugged (check);
- ``csv_report``: ``--format csv`` (report).
"""
