"""Configuration: command-line options over ``FLYTE_DEPLOY_*`` environment variables over
``[tool.flyte-deploy]`` in the project's pyproject.toml over built-in defaults.

Keys are dotted (``image.builder``); the environment variable of a key is
``FLYTE_DEPLOY_`` + the key upper-cased with dots and dashes as underscores.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from .pluginmanager import DeployPluginManager

TOOL_TABLE = "flyte-deploy"
LOCAL_PLUGIN_FILE = "deployconf.py"

DEFAULTS: dict[str, Any] = {
    "backend": "local",
    "copy_style": "loaded_modules",
    "project": "flytesnacks",
    "domain": "development",
    "store": None,          # local backend store (fsspec URL); default <root>/.flyte-deploy
    "storage": None,        # where bundles are uploaded (fsspec URL); default <store>/bundles
    "image.builder": "auto",
    "image.registry": None,
    "plugins": [],
    "disable_plugins": [],
    "required_plugins": [],
}


def env_var_name(key: str) -> str:
    return "FLYTE_DEPLOY_" + key.upper().replace(".", "_").replace("-", "_")


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def read_pyproject(root_dir: Path) -> tuple[dict[str, Any], Path | None]:
    """The ``[tool.flyte-deploy]`` table of ``root_dir/pyproject.toml`` (or {})."""
    path = root_dir / "pyproject.toml"
    if not path.is_file():
        return {}, None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get(TOOL_TABLE, {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.{TOOL_TABLE}] must be a table")
    return table, path


@dataclass
class Config:
    """The resolved configuration of one command. ``options`` holds command-line values
    (``None`` meaning "not given")."""

    root_dir: Path
    options: dict[str, Any] = field(default_factory=dict)
    pyproject: dict[str, Any] = field(default_factory=dict)
    pyproject_path: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    pluginmanager: "DeployPluginManager | None" = None

    @classmethod
    def load(cls, root_dir: str | os.PathLike[str] | None = None, options: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "Config":
        root = Path(root_dir or os.getcwd()).resolve()
        if not root.is_dir():
            raise UsageError(f"--root-dir {root} is not a directory")
        table, path = read_pyproject(root)
        return cls(root_dir=root, options={k: v for k, v in (options or {}).items() if v is not None},
                   pyproject=table, pyproject_path=path,
                   environ=dict(os.environ if environ is None else environ))

    def _pyproject_flat(self) -> dict[str, Any]:
        table = dict(self.pyproject)
        table.pop("plugin", None)  # per-plugin tables, read by plugin_config
        return _flatten(table)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``: CLI option, then environment variable, then pyproject,
        then the built-in default, then ``default``."""
        if key in self.options:
            return self.options[key]
        env = self.environ.get(env_var_name(key))
        if env is not None:
            return env
        flat = self._pyproject_flat()
        if key in flat:
            return flat[key]
        value = DEFAULTS.get(key)
        return default if value is None else value

    def get_list(self, key: str, sources: tuple[str, ...] = ("cli", "env", "pyproject")) -> list[str]:
        """A list-valued key; environment variables are comma-separated. ``sources``
        limits where it is read from (``plugins`` is pyproject-only, since its
        environment variable FLYTE_DEPLOY_PLUGINS is a plugin source of its own)."""
        if sources == ("pyproject",):
            value = self._pyproject_flat().get(key) or []
        else:
            value = self.get(key) or []
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            where = self.pyproject_path or "configuration"
            raise UsageError(f"{where}: {key} must be a list of strings, got {value!r}")
        return list(value)

    def plugin_config(self, name: str) -> dict[str, Any]:
        """Settings of one plugin: the ``[tool.flyte-deploy.plugin.NAME]`` table of pyproject
        (``plugin``, singular, since ``plugins`` is the list of plugin modules)."""
        value = self.pyproject.get("plugin", {}).get(name, {})
        if not isinstance(value, dict):
            raise UsageError(f"{self.pyproject_path}: [tool.{TOOL_TABLE}.plugin.{name}] must be a table")
        return dict(value)

    # frequently used settings ---------------------------------------------------------
    @property
    def backend(self) -> str:
        return str(self.get("backend"))

    @property
    def store_url(self) -> str:
        return str(self.get("store") or (self.root_dir / ".flyte-deploy").as_uri())

    @property
    def storage_url(self) -> str:
        return str(self.get("storage") or f"{self.store_url.rstrip('/')}/bundles")
