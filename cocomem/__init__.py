"""cocomem: compare memory hotplug designs for confidential guests."""

__version__ = "0.1.0"
