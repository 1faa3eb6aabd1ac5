"""The flyte-deploy test kit: a pytest plugin for users and plugin authors.

Opt-in, like pytest's ``pytester``: enable it in a ``conftest.py`` with::

    pytest_plugins = ["flyte_deploy.testing"]

Fixtures:

* ``deploy_isolation``: clears ``FLYTE_DEPLOY_*`` variables, sets ``NO_COLOR`` and a wide
  terminal, turns off the loading of installed entry-point plugins (``AUTOLOAD_VARIABLES``;
  ``use_installed_plugins()`` turns it back on for one test), and restores ``sys.path`` and
  the modules imported from test projects after each test (and after each in-process run),
  so same-named project modules never collide.
* ``plugin_manager``: a fresh ``DeployPluginManager`` with the built-ins, built by
  ``build_plugin_manager`` on an empty temporary root.
* ``register_plugin``: ``register_plugin(obj, name=None, policy=False)`` registers a plugin
  object or module (as a policy plugin with ``policy=True``) for one test, in ``plugin_manager``
  and in every plugin manager an in-process deploy builds during the test (through
  ``FLYTE_DEPLOY_PLUGINS``, the real loading path).
* ``hook_recorder``: records every hook call of those plugin managers
  (``getcalls(name)``, ``names``).
* ``deploy_project``: a temporary project builder (``DeployProject``) that deploys through
  the CLI in process (``deploy``, ``check``, ``run_cli``), in a subprocess
  (``run_subprocess``) or through the Python API (``deploy_api``), into a throwaway local
  store, returning ``DeployRun`` results to assert on; ``git_init`` makes it a git
  repository (for source links), isolated from the machine's git configuration.

``install_in_venv(source, directory)`` pip-installs a plugin's project into a throwaway
virtualenv and returns its python, for tests of the installed distribution.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import flyte_deploy

from .api import deploy as api_deploy
from .builtin import local_backend
from .cli import cli, run_cli
from .config import Config, env_var_name
from .gitstatus import REPOSITORY_ENV_VARS
from .importing import import_file
from .pluginmanager import (
    DISABLE_POLICY_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    POLICY_ENTRY_POINT_GROUP,
    DeployPluginManager,
    PluginInfo,
    build_plugin_manager,
)
from .sdk import TaskEnvironment
from .types import DeployResult

#: where the flyte_deploy package in use lives; subprocesses get it on PYTHONPATH
PACKAGE_ROOT = Path(flyte_deploy.__file__).resolve().parent.parent
#: set to 1 by ``deploy_isolation`` (like pytest's PYTEST_DISABLE_PLUGIN_AUTOLOAD): installed
#: entry points of group ``flyte_deploy`` and of group ``flyte_deploy.policy`` do not load, in
#: this process and in the subprocesses a test starts; plugins named with ``-p``,
#: ``FLYTE_DEPLOY_PLUGINS``, ``FLYTE_DEPLOY_POLICY``, pyproject or ``deployconf.py`` still do
AUTOLOAD_VARIABLES = (env_var_name("disable_plugin_autoload"), DISABLE_POLICY_AUTOLOAD_ENV)


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


# -- isolation -----------------------------------------------------------------------------


class DeployIsolation:
    """Keeps tests from seeing each other's project modules, ``sys.path`` entries,
    ``FLYTE_DEPLOY_*`` settings and the plugins installed on the machine. ``roots`` are the
    directories whose modules are forgotten."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, roots: Sequence[Path]) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self.monkeypatch = monkeypatch
        self._path = list(sys.path)
        self._modules = set(sys.modules)
        for name in [n for n in os.environ if n.startswith("FLYTE_DEPLOY_")]:
            monkeypatch.delenv(name)
        for name in AUTOLOAD_VARIABLES:
            monkeypatch.setenv(name, "1")
        monkeypatch.setenv("NO_COLOR", "1")
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.delenv("FORCE_COLOR", raising=False)

    def use_installed_plugins(self, *, policy: bool = True, only: Sequence[Path] | None = None) -> None:
        """For the rest of the test, in this process and its children: load installed
        entry-point plugins again, as a user's machine does (for tests of an installed
        plugin); ``policy=False`` keeps installed policy plugins off. With ``only`` (site
        directories holding ``*.dist-info``), this process sees the entry points of the
        distributions there and of no other installed distribution."""
        self.monkeypatch.delenv(AUTOLOAD_VARIABLES[0], raising=False)
        if policy:
            self.monkeypatch.delenv(DISABLE_POLICY_AUTOLOAD_ENV, raising=False)
        if only is not None:
            paths = [str(path) for path in only]

            def entry_points(**selection: Any) -> metadata.EntryPoints:
                found = [ep for dist in metadata.distributions(path=paths) for ep in dist.entry_points]
                return metadata.EntryPoints(found).select(**selection)

            self.monkeypatch.setattr(metadata, "entry_points", entry_points)

    def add_root(self, root: Path) -> None:
        self.roots.append(Path(root).resolve())

    def isolate_git(self) -> None:
        """For the rest of the test, in this process and its children: no global or system
        git configuration, a fixed author, and no variables pointing git at another repository."""
        if shutil.which("git") is None:
            pytest.skip("the git CLI is not installed")
        self.monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        self.monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for role in ("AUTHOR", "COMMITTER"):
            self.monkeypatch.setenv(f"GIT_{role}_NAME", "flyte-deploy test")
            self.monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@flyte-deploy.invalid")
        for name in REPOSITORY_ENV_VARS:
            self.monkeypatch.delenv(name, raising=False)

    def _owned(self, module: Any, keep: Path | None) -> bool:
        file = getattr(module, "__file__", None)
        # a namespace package (a directory without __init__.py, as flyte projects have) has no file
        paths = [file] if file else list(getattr(module, "__path__", None) or [])
        if not paths:
            return False
        resolved = [Path(p).resolve() for p in paths]
        if keep is not None and any(path.is_relative_to(keep) for path in resolved):
            return False
        return any(path.is_relative_to(root) for path in resolved for root in self.roots)

    def forget_modules(self, keep: Path | None = None) -> None:
        """Drop modules imported from the test roots (except those under ``keep``), and the
        local plugin files ``deployconf.py`` and pyproject ``.py`` plugins were loaded as."""
        for name, module in list(sys.modules.items()):
            if name in self._modules:
                continue
            if name.startswith("flyte_deploy_local_plugin_") or self._owned(module, keep):
                del sys.modules[name]
        importlib.invalidate_caches()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Restore ``sys.path`` and forget project modules when the block ends."""
        path = list(sys.path)
        try:
            yield
        finally:
            sys.path[:] = path
            self.forget_modules()

    def restore(self) -> None:
        sys.path[:] = self._path
        self.forget_modules()


_saved_autoload: list[dict[str, str | None]] = []


def pytest_configure(config: pytest.Config) -> None:
    """Isolate the whole session from installed entry-point plugins, module- and
    session-scoped fixtures included (``AUTOLOAD_VARIABLES``)."""
    _saved_autoload.append({name: os.environ.get(name) for name in AUTOLOAD_VARIABLES})
    os.environ.update(dict.fromkeys(AUTOLOAD_VARIABLES, "1"))


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _saved_autoload:
        return
    for name, value in _saved_autoload.pop().items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def deploy_isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DeployIsolation]:
    """Clean ``FLYTE_DEPLOY_*`` environment, ``NO_COLOR``, no installed entry-point plugins;
    ``sys.path`` and project modules restored at teardown."""
    isolation = DeployIsolation(monkeypatch, [tmp_path])
    yield isolation
    isolation.restore()


# -- plugins for one test ------------------------------------------------------------------


class PluginRegistry:
    """Plugins registered for one test. Each is put in ``sys.modules`` under its name and
    named in ``FLYTE_DEPLOY_PLUGINS``, so every plugin manager built in this process during
    the test loads it the way it loads any plugin (source ``env``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.names: list[str] = []
        self.plugin_names: list[str] = []
        self.policy_names: list[str] = []
        self.managers: list[DeployPluginManager] = []

    def __call__(self, plugin: object, name: str | None = None, *, policy: bool = False) -> str:
        """Register ``plugin`` as ``name``; ``policy=True`` loads it as an organization
        policy plugin (``FLYTE_DEPLOY_POLICY``: registered last, cannot be disabled)."""
        if name is None:
            name = plugin.__name__ if isinstance(plugin, ModuleType) else f"test_plugin_{len(self.names) + 1}"
        if name in self.names:
            raise ValueError(f"a plugin named {name!r} is already registered for this test")
        existing = sys.modules.get(name)
        if existing is not None and existing is not plugin:
            raise ValueError(f"cannot register a plugin as {name!r}: a module of that name is imported; pass name=...")
        group = POLICY_ENTRY_POINT_GROUP if policy else ENTRY_POINT_GROUP
        # (a module named in FLYTE_DEPLOY_PLUGINS loads the entry point of that name, autoload or not)
        skipped = policy and os.environ.get(DISABLE_POLICY_AUTOLOAD_ENV) == "1"
        installed = {} if skipped else {ep.name: ep.value for ep in metadata.entry_points(group=group)}
        if name in installed and installed[name] != getattr(plugin, "__name__", None):
            raise ValueError(
                f"cannot register a plugin as {name!r}: an installed {group} entry point of that"
                f" name ({installed[name]}) would load instead; pass name=..."
            )
        self.monkeypatch.setitem(sys.modules, name, plugin)
        self.names.append(name)
        (self.policy_names if policy else self.plugin_names).append(name)
        for variable, names in (
            ("FLYTE_DEPLOY_PLUGINS", self.plugin_names),
            ("FLYTE_DEPLOY_POLICY", self.policy_names),
        ):
            if names:
                self.monkeypatch.setenv(variable, ",".join(names))
        for pm in self.managers:
            self._register(pm, plugin, name, policy)
        return name

    def _register(self, pm: DeployPluginManager, plugin: object, name: str, policy: bool) -> None:
        info = (
            PluginInfo(name, "policy", None, name, status="policy") if policy else PluginInfo(name, "env", None, name)
        )
        pm.register_plugin(plugin, info)
        pm.check()

    def attach(self, pm: DeployPluginManager) -> None:
        """Also register later plugins directly in ``pm`` (built before they were added)."""
        self.managers.append(pm)

    def detach(self) -> None:
        for pm in self.managers:
            for name in self.names:
                if pm.get_plugin(name) is not None:
                    pm.unregister(name=name)
                    pm.infos.pop(name, None)
        self.managers.clear()

    def subprocess_environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` without the in-memory plugins, which a subprocess cannot import."""
        env = dict(environ)
        for variable in ("FLYTE_DEPLOY_PLUGINS", "FLYTE_DEPLOY_POLICY"):
            rest = [p for p in env.get(variable, "").split(",") if p and p not in self.names]
            if rest:
                env[variable] = ",".join(rest)
            else:
                env.pop(variable, None)
        return env


@pytest.fixture
def register_plugin(monkeypatch: pytest.MonkeyPatch, deploy_isolation: DeployIsolation) -> Iterator[PluginRegistry]:
    """``register_plugin(obj, name=None, policy=False) -> name``: a plugin object or module
    active for this test only, in ``plugin_manager`` and in every in-process deploy."""
    registry = PluginRegistry(monkeypatch)
    yield registry
    registry.detach()


@pytest.fixture
def plugin_manager(
    tmp_path_factory: pytest.TempPathFactory, register_plugin: PluginRegistry, deploy_isolation: DeployIsolation
) -> Iterator[DeployPluginManager]:
    """A fresh plugin manager with the built-ins (and installed, policy and test-registered
    plugins), built by ``build_plugin_manager`` for an empty temporary project root;
    ``unconfigure`` runs at teardown."""
    config = Config.load(tmp_path_factory.mktemp("plugin-manager-root"))
    pm = build_plugin_manager(config)
    register_plugin.attach(pm)
    yield pm
    pm.hook.unconfigure(config=config)


# -- recording hook calls ------------------------------------------------------------------


class HookCall:
    """One recorded hook call: ``name``, its arguments (``kwargs``, and as attributes:
    ``call.plan``), ``returned`` (what the hook call returned) and ``raised`` (the exception
    it raised, if any). Argument names never clash: no hook has an argument called
    ``name``, ``kwargs``, ``returned`` or ``raised``."""

    def __init__(self, name: str, kwargs: Mapping[str, Any]) -> None:
        self.name = name
        self.kwargs = dict(kwargs)
        self.returned: Any = None
        self.raised: BaseException | None = None

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["kwargs"][key]
        except KeyError:
            raise AttributeError(f"hook call {self.__dict__.get('name')} has no argument {key!r}") from None

    def __repr__(self) -> str:
        return f"<HookCall {self.name}({', '.join(sorted(self.kwargs))})>"


class HookRecorder:
    """Records the hook calls of every plugin manager it is attached to, in order."""

    def __init__(self) -> None:
        self.calls: list[HookCall] = []
        self._undo: list[Any] = []
        self._attached: set[int] = set()

    def attach(self, pm: DeployPluginManager) -> None:
        """Record ``pm``'s hook calls from now on (attaching twice is a no-op)."""
        if id(pm) in self._attached:
            return
        self._attached.add(id(pm))
        stack: list[HookCall] = []

        def before(hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            call = HookCall(hook_name, kwargs)
            self.calls.append(call)
            stack.append(call)

        def after(outcome: Any, hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            call = stack.pop()
            if outcome.exception is not None:
                call.raised = outcome.exception
            else:
                call.returned = outcome.get_result()

        self._undo.append(pm.add_hookcall_monitoring(before, after))

    @flyte_deploy.hookimpl(tryfirst=True)
    def add_hookspecs(self, pluginmanager: DeployPluginManager) -> None:
        """Attach to each plugin manager that registers the recorder as a plugin."""
        self.attach(pluginmanager)

    @property
    def names(self) -> list[str]:
        """Names of the hooks called, in call order."""
        return [c.name for c in self.calls]

    def getcalls(self, name: str) -> list[HookCall]:
        """The calls of hook ``name`` (a space-separated list of names is accepted)."""
        wanted = set(name.split())
        return [c for c in self.calls if c.name in wanted]

    def getcall(self, name: str) -> HookCall:
        """The single call of hook ``name``; fails when there are none or several."""
        calls = self.getcalls(name)
        assert len(calls) == 1, f"expected one call of {name}, got {len(calls)}: {self.names}"
        return calls[0]

    def clear(self) -> None:
        self.calls.clear()

    def finish(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


@pytest.fixture
def hook_recorder(register_plugin: PluginRegistry) -> Iterator[HookRecorder]:
    """A ``HookRecorder`` attached to every plugin manager built in process during the
    test, and to ``plugin_manager``."""
    recorder = HookRecorder()
    register_plugin(recorder, "hook_recorder")
    for pm in register_plugin.managers:
        recorder.attach(pm)
    yield recorder
    recorder.finish()


# -- temporary projects --------------------------------------------------------------------


@dataclasses.dataclass
class DeployRun:
    """The outcome of one ``flyte-deploy`` run: ``exit_code``, ``stdout``, ``stderr``,
    ``store`` (the local backend store it deployed into) and ``json`` (stdout parsed, when
    the command printed JSON)."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    store: Path

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def assert_ok(self) -> DeployRun:
        assert self.exit_code == 0, f"flyte-deploy {' '.join(self.args)} exited {self.exit_code}:\n{self.stderr}"
        return self

    def assert_exit(self, code: int) -> DeployRun:
        assert self.exit_code == int(code), (
            f"flyte-deploy {' '.join(self.args)} exited {self.exit_code},"
            f" expected {int(code)}:\n{self.stdout}\n{self.stderr}"
        )
        return self

    @property
    def violations(self) -> list[dict[str, str]]:
        """The violations ``check --output json`` reported (empty otherwise)."""
        data = self.json
        return list(data.get("violations", [])) if isinstance(data, dict) else []

    def deployed(self) -> list[dict[str, Any]]:
        """The environment records in the store (what ``flyte-deploy ls`` shows)."""
        return local_backend.list_deployments(self.store.as_uri())


def _option_value(args: Sequence[str], option: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


class DeployProject:
    """A project in a temporary directory. Write files with ``write({path: text})`` (or by
    calling the project); deploy it with ``deploy(*args)``, ``check(*args)``,
    ``run_cli(*args)``, ``run_subprocess(*args)`` or ``deploy_api(*envs)``."""

    def __init__(
        self, root: Path, isolation: DeployIsolation, plugins: PluginRegistry, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._isolation = isolation
        self._plugins = plugins
        self._tmp = tmp_path_factory
        isolation.add_root(root)

    def __call__(self, files: Mapping[str, str | bytes] | None = None) -> DeployProject:
        return self.write(files)

    def write(self, files: Mapping[str, str | bytes] | None = None) -> DeployProject:
        """Write ``files`` (relative path -> text, dedented, or bytes) under the root."""
        for relative, content in (files or {}).items():
            path = self.root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
        importlib.invalidate_caches()
        return self

    def copy(self, source: str | os.PathLike[str]) -> DeployProject:
        """Copy the files of directory ``source`` (e.g. an example project) into the root,
        skipping caches and the local store."""
        shutil.copytree(
            source,
            self.root,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".flyte-deploy"),
        )
        importlib.invalidate_caches()
        return self

    def new(self, name: str, files: Mapping[str, str | bytes] | None = None) -> DeployProject:
        """Another project in a fresh temporary directory."""
        project = DeployProject(self._tmp.mktemp(name), self._isolation, self._plugins, self._tmp)
        return project.write(files)

    @property
    def store(self) -> Path:
        """The default local backend store of this project."""
        return self.root / ".flyte-deploy"

    def _store_of(self, args: Sequence[str]) -> Path:
        store = _option_value(args, "--store")
        if store is None:
            return self.store
        return Path(store[len("file://") :]) if store.startswith("file://") else Path(store)

    def _with_defaults(self, command: str, args: Sequence[str]) -> list[str]:
        full = [command, *args]
        if _option_value(args, "--root-dir") is None:
            full += ["--root-dir", str(self.root)]
        if _option_value(args, "--output") is None:
            full += ["--output", "json"]
        return full

    def run_cli(self, *args: str) -> DeployRun:
        """Run ``flyte-deploy ARGS`` in this process, in the project directory; output captured."""
        out, err = io.StringIO(), io.StringIO()
        with (
            self._isolation.scope(),
            _chdir(self.root),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = run_cli(cli, list(args))
        return DeployRun(tuple(args), code, out.getvalue(), err.getvalue(), self._store_of(args))

    def deploy(self, *args: str) -> DeployRun:
        """``flyte-deploy deploy ARGS --root-dir ROOT --output json`` in process."""
        return self.run_cli(*self._with_defaults("deploy", args))

    def check(self, *args: str) -> DeployRun:
        """``flyte-deploy check ARGS --root-dir ROOT --output json`` in process."""
        return self.run_cli(*self._with_defaults("check", args))

    def subprocess_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment ``run_subprocess`` gives a child process: this process's, updated
        with ``env``, with this flyte_deploy first on ``PYTHONPATH`` and without the plugins
        registered in memory. Use it to run other programs the same way."""
        environ = self._plugins.subprocess_environ({**os.environ, **(env or {})})
        environ["PYTHONPATH"] = os.pathsep.join(
            [str(PACKAGE_ROOT)] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        return environ

    def run_subprocess(
        self,
        *args: str,
        python: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 240,
    ) -> DeployRun:
        """Run ``python -m flyte_deploy ARGS`` in a child process (``python`` defaults to this
        interpreter) in the project directory, with ``subprocess_env(env)``."""
        proc = subprocess.run(
            [str(python or sys.executable), "-m", "flyte_deploy", *args],
            cwd=self.root,
            check=False,
            env=self.subprocess_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return DeployRun(tuple(args), proc.returncode, proc.stdout, proc.stderr, self._store_of(args))

    def git(self, *args: str) -> str:
        """Run ``git ARGS`` in the project directory (isolated as ``git_init`` describes) and
        return its output, stripped; a failing git fails the test with git's error."""
        self._isolation.isolate_git()
        proc = subprocess.run(
            ["git", "-c", "init.defaultBranch=main", *args], cwd=self.root, check=False, capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.fail(f"git {' '.join(args)} failed in {self.root}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def git_init(self, remote: str | None = None, *, commit: bool = True) -> str | None:
        """Make the project a git repository (branch ``main``; ``.flyte-deploy/`` and
        ``__pycache__/`` ignored) with ``remote`` as ``origin``, and commit its files unless
        ``commit=False``; returns the commit sha (``None`` when nothing was committed). From
        then on, git in this test and its subprocesses ignores the machine's global and
        system configuration and commits as a fixed author."""
        self.git("init", "-q")
        (self.root / ".git" / "info" / "exclude").write_text(".flyte-deploy/\n__pycache__/\n")
        if remote is not None:
            self.git("remote", "add", "origin", remote)
        if not commit:
            return None
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", "flyte-deploy test project")
        return self.git("rev-parse", "HEAD")

    def import_module(self, relative: str) -> ModuleType:
        """Import a project file the way discovery does (module name from the root)."""
        self._isolation.forget_modules(keep=self.root)
        return import_file(self.root / relative, self.root)

    def environment(self, ref: str) -> TaskEnvironment:
        """``"file.py:variable"``: the TaskEnvironment bound to ``variable`` in that file."""
        relative, _, variable = ref.partition(":")
        env = getattr(self.import_module(relative), variable, None)
        if not isinstance(env, TaskEnvironment):
            raise ValueError(f"{ref}: {variable!r} is not a TaskEnvironment")
        return env

    def deploy_api(self, *envs: TaskEnvironment | str, **kwargs: Any) -> DeployResult:
        """``flyte_deploy.deploy(*envs, root_dir=ROOT, **kwargs)``; an env may be given as
        ``"file.py:variable"``."""
        objects = [self.environment(e) if isinstance(e, str) else e for e in envs]
        with _chdir(self.root):
            return api_deploy(*objects, root_dir=self.root, **kwargs)


def install_in_venv(source: str | os.PathLike[str], directory: str | os.PathLike[str]) -> Path:
    """pip-install the distribution whose project is ``source`` (a plugin's directory) into a
    new virtualenv in ``directory`` that sees this interpreter's packages (flyte-deploy, pip,
    setuptools): offline, without its dependencies, from a copy of ``source`` without its
    tests (so no build files land in it). Returns the virtualenv's python; a failed install
    fails the test with pip's output."""
    base = Path(directory)
    copy = base / "src"
    ignore = shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__", ".pytest_cache")
    shutil.copytree(source, copy, ignore=ignore)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation"]
    install = subprocess.run(
        [*pip, "--ignore-installed", str(copy)], capture_output=True, text=True, check=False, timeout=300
    )
    if install.returncode != 0:
        pytest.fail(f"pip install of {source} failed:\n{install.stdout}\n{install.stderr}", pytrace=False)
    return python


@pytest.fixture
def deploy_project(
    tmp_path: Path,
    deploy_isolation: DeployIsolation,
    register_plugin: PluginRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> DeployProject:
    """An empty project in ``tmp_path/project``; call it with ``{path: text}`` to add files."""
    return DeployProject(tmp_path / "project", deploy_isolation, register_plugin, tmp_path_factory)


__all__ = [
    "DeployIsolation",
    "DeployProject",
    "DeployRun",
    "HookCall",
    "HookRecorder",
    "PluginRegistry",
    "deploy_isolation",
    "deploy_project",
    "hook_recorder",
    "install_in_venv",
    "plugin_manager",
    "register_plugin",
]
