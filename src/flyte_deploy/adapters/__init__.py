"""SDK adapters: built-in plugins that let the core deploy environments another SDK defined,
through the ``environments.Environment``/``Task`` protocols. Each registers only when its
SDK is importable (``pluginmanager.BUILTIN_REQUIRES``)."""
