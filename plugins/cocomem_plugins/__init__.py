"""Built-in plugins, registered through the ``cocomem`` entry-point group."""
