"""Configuration: command-line options over environment variables over a Flyte
``config.yaml`` over ``[tool.flyte-deploy]`` in the project's pyproject.toml over a
user-level ``config.yaml`` (``~/.flyte``) over built-in defaults.

Keys are dotted (``image.builder``); the environment variable of a key is
``FLYTE_DEPLOY_`` + the key upper-cased with dots and dashes as underscores. Keys that
Flyte's own config file has (``admin.endpoint``, ``task.project``, ...) are read from
``config.yaml`` in Flyte's shape and from Flyte's ``FLYTE_<SECTION>_<OPTION>`` variables
too (see ``FLYTE_KEYS`` and docs/remote.md).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import UsageError

if TYPE_CHECKING:
    from .pluginmanager import DeployPluginManager

TOOL_TABLE = "flyte-deploy"
LOCAL_PLUGIN_FILE = "deployconf.py"

DEFAULTS: dict[str, Any] = {
    "backend": "local",  # "remote" when the project configures an endpoint (see Config.get)
    "copy_style": "loaded_modules",
    "project": "flytesnacks",
    "domain": "development",
    "store": None,  # local backend store (fsspec URL); default <root>/.flyte-deploy
    "storage": None,  # where bundles are uploaded (fsspec URL); default <store>/bundles
    "bundle_allow_secrets": [],  # patterns of secret-looking files bundled without a warning
    "image.builder": "auto",
    "image.registry": None,
    "image.base_registry": None,  # Docker Hub mirror for bases named without a registry
    "image.insecure_registries": [],  # plain-HTTP registries besides loopback ones
    "image.docker_buildkit": True,  # the docker builder uses BuildKit when the daemon has it
    "plugins": [],
    "disable_plugins": [],
    "required_plugins": [],
    # remote backend (docs/remote.md)
    "endpoint": None,  # control plane: dns:///host:port, host:port or http(s)://host:port
    "insecure": False,  # plain HTTP instead of TLS
    "ca_cert": None,  # PEM file of the CA that signed the control plane's certificate
    "token_command": None,  # command printing a bearer token (FLYTE_DEPLOY_TOKEN takes precedence)
    "org": "",
    "timeout": 30,  # seconds per request
    "retries": 3,  # retries of transient errors (unavailable, deadline exceeded)
    "remote.concurrency": 16,  # DeployTask/GetTaskDetails calls in flight at once
}

#: keys of Flyte's config.yaml (and its FLYTE_<SECTION>_<OPTION> variables) -> our keys
FLYTE_KEYS: dict[str, str] = {
    "admin.endpoint": "endpoint",
    "admin.insecure": "insecure",
    "admin.caCertFilePath": "ca_cert",
    "admin.command": "token_command",
    "task.org": "org",
    "task.project": "project",
    "task.domain": "domain",
    "image.builder": "image.builder",
    "image.registry": "image.registry",
}
#: the section of config.yaml that holds flyte-deploy's own keys (backend, storage, ...)
CONFIG_FILE_SECTION = "flyte-deploy"
#: config files searched in the project root when none is named, in order
PROJECT_CONFIG_FILES = ("config.yaml", ".flyte/config.yaml")
#: variables naming a config file (Flyte's own two after ours)
CONFIG_FILE_VARIABLES = ("FLYTE_DEPLOY_CONFIG", "UCTL_CONFIG", "FLYTECTL_CONFIG")
#: user-level config files: they rank below the project's pyproject.toml
USER_CONFIG_FILES = ("~/.union/config.yaml", "~/.flyte/config.yaml")


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


def read_text(path: Path) -> str:
    """The text of a configuration file; unreadable or not UTF-8 is a ``UsageError`` naming
    the file (and the line of the first bad byte)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def read_pyproject(root_dir: Path) -> tuple[dict[str, Any], Path | None]:
    """The ``[tool.flyte-deploy]`` table of ``root_dir/pyproject.toml`` (or {})."""
    path = root_dir / "pyproject.toml"
    if not path.is_file():
        return {}, None
    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path}: invalid TOML: nested too deeply") from None
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise UsageError(f"{path}: [tool] must be a table")
    table = tool.get(TOOL_TABLE, {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.{TOOL_TABLE}] must be a table")
    return table, path


def _flyte_env_var(flyte_key: str) -> str:
    return "FLYTE_" + flyte_key.upper().replace(".", "_")


def find_config_file(
    root_dir: Path, explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> tuple[Path | None, bool]:
    """The config file to read and whether it is user-level: ``--config``, then the
    variables of ``CONFIG_FILE_VARIABLES``, then ``config.yaml`` or ``.flyte/config.yaml`` in
    the project root, then ``~/.union/config.yaml`` or ``~/.flyte/config.yaml``. A file
    named explicitly must exist."""
    named = [("--config", explicit)] + [(var, environ.get(var)) for var in CONFIG_FILE_VARIABLES]
    for source, value in named:
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise UsageError(f"config file {path} (from {source}) does not exist")
            return path.resolve(), False
    for name in PROJECT_CONFIG_FILES:
        if (root_dir / name).is_file():
            return root_dir / name, False
    home = environ.get("HOME")
    for name in USER_CONFIG_FILES:
        path = Path(name.replace("~", home, 1)) if home else Path(name).expanduser()
        if path.is_file():
            return path, True
    return None, False


def read_config_file(path: Path) -> dict[str, Any]:
    """Our flat keys from a Flyte ``config.yaml``: the ``FLYTE_KEYS`` entries, a top-level
    ``storage`` URL, and every key of the ``flyte-deploy`` section. Other Flyte sections
    (logger, console, auth flows) are ignored."""
    import yaml  # only when there is a config.yaml to read

    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise UsageError(f"{path}: invalid YAML: nested too deeply") from None
    try:
        return _config_values(path, data)
    except RecursionError:  # an anchor that contains itself
        raise UsageError(f"{path}: the {CONFIG_FILE_SECTION} section refers to itself") from None


def _config_values(path: Path, data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file must be a mapping of sections, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for flyte_key, key in FLYTE_KEYS.items():
        node: Any = data
        for part in flyte_key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            values[key] = node
    storage = data.get("storage")
    if isinstance(storage, str):
        values["storage"] = storage
    own = data.get(CONFIG_FILE_SECTION, {}) or {}
    if not isinstance(own, dict):
        raise UsageError(f"{path}: the {CONFIG_FILE_SECTION} section must be a mapping")
    values.update(_flatten(own))
    return values


@dataclass
class Config:
    """The resolved configuration of one command. ``options`` holds command-line values
    (``None`` meaning "not given")."""

    root_dir: Path
    options: dict[str, Any] = field(default_factory=dict)
    pyproject: dict[str, Any] = field(default_factory=dict)
    pyproject_path: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    pluginmanager: DeployPluginManager | None = None
    config_file: Path | None = None
    config_file_is_user_level: bool = False
    config_file_values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        root_dir: str | os.PathLike[str] | None = None,
        options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        root = Path(root_dir or os.getcwd()).resolve()
        if not root.is_dir():
            raise UsageError(f"--root-dir {root} is not a directory")
        table, path = read_pyproject(root)
        options = {k: v for k, v in (options or {}).items() if v is not None}
        environ = dict(os.environ if environ is None else environ)
        config_file, user_level = find_config_file(root, options.get("config"), environ)
        return cls(
            root_dir=root,
            options=options,
            pyproject=table,
            pyproject_path=path,
            environ=environ,
            config_file=config_file,
            config_file_is_user_level=user_level,
            config_file_values=read_config_file(config_file) if config_file else {},
        )

    def _pyproject_flat(self) -> dict[str, Any]:
        table = dict(self.pyproject)
        table.pop("plugin", None)  # per-plugin tables, read by plugin_config
        return _flatten(table)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``: CLI option, then environment variable (ours, then Flyte's),
        then config.yaml, then pyproject, then a user-level config.yaml, then the built-in
        default, then ``default``."""
        found, value = self._lookup(key, user_level=True)
        if found:
            return value
        if key == "backend":
            # an endpoint the project (not just ~/.flyte) configures means a remote deploy
            return "remote" if self._lookup("endpoint", user_level=False)[0] else "local"
        value = DEFAULTS.get(key)
        return default if value is None else value

    def _lookup(self, key: str, user_level: bool) -> tuple[bool, Any]:
        if key in self.options:
            return True, self.options[key]
        env = self.environ.get(env_var_name(key))
        if env is not None:
            return True, env
        for flyte_key, our_key in FLYTE_KEYS.items():
            if our_key == key and _flyte_env_var(flyte_key) in self.environ:
                return True, self.environ[_flyte_env_var(flyte_key)]
        if key in self.config_file_values and not self.config_file_is_user_level:
            return True, self.config_file_values[key]
        flat = self._pyproject_flat()
        if key in flat:
            return True, flat[key]
        if key in self.config_file_values and user_level:
            return True, self.config_file_values[key]
        return False, None

    def get_bool(self, key: str) -> bool:
        """A yes/no key; strings from the environment or files may say true/false/1/0/yes/no."""
        value = self.get(key)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", "", "none"):
            return False
        raise UsageError(f"{key} must be true or false, got {value!r} ({self.source_of(key)})")

    def source_of(self, key: str) -> str:
        """Where the value of ``key`` comes from, for error messages."""
        if key in self.options:
            return "command line"
        if env_var_name(key) in self.environ:
            return f"environment variable {env_var_name(key)}"
        for flyte_key, our_key in FLYTE_KEYS.items():
            if our_key == key and _flyte_env_var(flyte_key) in self.environ:
                return f"environment variable {_flyte_env_var(flyte_key)}"
        if key in self.config_file_values and not self.config_file_is_user_level:
            return str(self.config_file)
        if key in self._pyproject_flat():
            return str(self.pyproject_path)
        if key in self.config_file_values:
            return str(self.config_file)
        return "default"

    def get_list(self, key: str, *, pyproject_only: bool = False) -> list[str]:
        """A list-valued key; environment variables are comma-separated. ``pyproject_only``
        reads pyproject alone (for ``plugins``, whose environment variable
        FLYTE_DEPLOY_PLUGINS is a plugin source of its own)."""
        value = (self._pyproject_flat().get(key) if pyproject_only else self.get(key)) or []
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
        """The local backend's store directory as a URL: ``store``, a path (a relative one
        is resolved against the current directory) or a URL; default ``<root>/.flyte-deploy``."""
        store = self.get("store")
        if not store:
            return (self.root_dir / ".flyte-deploy").as_uri()
        url = str(store) if "://" in str(store) else Path(str(store)).expanduser().resolve().as_uri()
        return self._location("store", url)

    @property
    def storage_url(self) -> str:
        return self._location("storage", self.get("storage") or f"{self.store_url.rstrip('/')}/bundles")

    def _location(self, key: str, value: Any) -> str:
        """A store or storage URL; one holding credentials (``s3://KEY:SECRET@bucket``) is a
        ``UsageError``: fsspec would take them for part of the bucket name, and the URL is
        written into every deployed task, the store and the output."""
        url = str(value)
        try:
            netloc = urlsplit(url).netloc if "://" in url else ""
        except ValueError:
            raise UsageError(f"the {key} URL ({self.source_of(key)}) is not a valid URL") from None
        if "@" in netloc:
            raise UsageError(
                f"the {key} URL ({self.source_of(key)}) holds credentials; put them in"
                f" [tool.flyte-deploy.storage_options] or the environment (AWS_ACCESS_KEY_ID, ...)"
                f" and give the URL without them"
            )
        return url
