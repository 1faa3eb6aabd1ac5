"""Plugin sources load in the documented order; -p no:, misspelled hooks, overrides, errors."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from flyte_deploy.config import Config
from flyte_deploy.errors import ExitCode, PluginError, UsageError
from flyte_deploy.pluginmanager import BUILTIN_PLUGINS, BUILTIN_REQUIRES, build_plugin_manager

VERSION_PLUGIN = """
import flyte_deploy as fd

@fd.hookimpl
def compute_version(session, plan):
    return {version!r}
"""


def make_distribution(
    site: Path, dist: str, version: str, entry_points: dict[str, str], group: str = "flyte_deploy"
) -> None:
    """An installed distribution (dist-info with entry points) under ``site``."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = [f"[{group}]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch, deploy_isolation):
    """A directory on sys.path holding two installed plugin distributions and modules, which
    load as installed plugins do: the only ones this process sees (``use_installed_plugins``)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "zeta_plugin.py").write_text(VERSION_PLUGIN.format(version="from-zeta"))
    (site / "alpha_plugin.py").write_text(VERSION_PLUGIN.format(version="from-alpha"))
    (site / "cmdline_plugin.py").write_text(VERSION_PLUGIN.format(version="from-cmdline"))
    (site / "env_plugin.py").write_text(VERSION_PLUGIN.format(version="from-env"))
    (site / "pyproject_plugin.py").write_text(VERSION_PLUGIN.format(version="from-pyproject"))
    (site / "org_policy.py").write_text(
        textwrap.dedent("""
        import flyte_deploy as fd

        @fd.hookimpl
        def check_plan(session, plan):
            return []
    """)
    )
    make_distribution(site, "flyte-deploy-zeta", "2.0", {"zeta": "zeta_plugin"})
    make_distribution(site, "flyte-deploy-alpha", "1.5", {"alpha": "alpha_plugin"})
    make_distribution(site, "acme-policy", "3.1", {"org_policy": "org_policy"}, group="flyte_deploy.policy")
    monkeypatch.syspath_prepend(str(site))
    deploy_isolation.use_installed_plugins(only=[site])
    return site


def full_project(root: Path) -> Path:
    (root / "plugins").mkdir(parents=True)
    (root / "plugins" / "file_plugin.py").write_text(VERSION_PLUGIN.format(version="from-file"))
    (root / "pyproject.toml").write_text(
        '[tool.flyte-deploy]\nplugins = ["pyproject_plugin", "plugins/file_plugin.py"]\n'
    )
    (root / "deployconf.py").write_text(VERSION_PLUGIN.format(version="from-deployconf"))
    return root


def test_sources_register_in_the_documented_order(site, tmp_path, monkeypatch):
    root = full_project(tmp_path / "proj")
    config = Config.load(root, environ={"FLYTE_DEPLOY_PLUGINS": "env_plugin"})
    pm = build_plugin_manager(config, cmdline_plugins=["cmdline_plugin"])
    order = [(i.name, i.source) for i in pm.infos.values()]
    builtin = [
        (name, "builtin")
        for name, _ in BUILTIN_PLUGINS  # an adapter only with its SDK
        if name not in BUILTIN_REQUIRES or importlib.util.find_spec(BUILTIN_REQUIRES[name])
    ]
    assert order == builtin + [
        ("cmdline_plugin", "cmdline"),
        ("env_plugin", "env"),
        ("alpha", "entrypoint"),
        ("zeta", "entrypoint"),  # sorted by entry point name
        ("pyproject_plugin", "pyproject"),
        ("file_plugin", "pyproject"),
        ("deployconf", "local"),
        ("org_policy", "policy"),
    ]
    assert pm.infos["zeta"].version == "flyte-deploy-zeta 2.0"
    assert pm.infos["org_policy"].status == "policy"


def test_later_sources_override_earlier_ones(site, tmp_path):
    root = full_project(tmp_path / "proj")
    config = Config.load(root, environ={})
    pm = build_plugin_manager(config, cmdline_plugins=["cmdline_plugin"])
    assert pm.hook.compute_version(session=None, plan=None) == "from-deployconf"
    pm.unregister(name="deployconf")
    assert pm.hook.compute_version(session=None, plan=None) == "from-file"
    pm.unregister(name="file_plugin")
    pm.unregister(name="pyproject_plugin")
    assert pm.hook.compute_version(session=None, plan=None) == "from-zeta"


def test_entry_point_named_with_p_loads_early_under_its_name(site, tmp_path):
    config = Config.load(tmp_path, environ={})
    pm = build_plugin_manager(config, cmdline_plugins=["zeta"])
    assert pm.infos["zeta"].source == "cmdline"
    names = list(pm.infos)
    assert names.index("zeta") < names.index("alpha")


def test_p_no_disables_builtins_and_entry_points(site, tmp_path):
    config = Config.load(tmp_path, environ={})
    pm = build_plugin_manager(config, cmdline_plugins=["no:source_link", "no:zeta"])
    assert "source_link" not in pm.infos and "zeta" not in pm.infos
    assert pm.disabled["source_link"].status == "disabled"
    assert pm.disabled["zeta"].source == "entrypoint"


def test_disable_plugin_autoload_skips_entry_points(site, tmp_path):
    config = Config.load(tmp_path, environ={"FLYTE_DEPLOY_DISABLE_PLUGIN_AUTOLOAD": "1"})
    pm = build_plugin_manager(config)
    assert "alpha" not in pm.infos and "zeta" not in pm.infos
    assert "org_policy" in pm.infos  # policy plugins always load


def test_policy_plugins_cannot_be_disabled(site, tmp_path):
    config = Config.load(tmp_path, environ={})
    with pytest.raises(UsageError, match="'org_policy' is a policy plugin and cannot be disabled"):
        build_plugin_manager(config, cmdline_plugins=["no:org_policy"])


def test_required_plugin_missing_fails(site, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nrequired_plugins = ["acme-missing"]\n')
    with pytest.raises(UsageError, match="required plugin 'acme-missing' is not installed"):
        build_plugin_manager(Config.load(tmp_path, environ={}))


def test_required_plugin_version_is_checked(site, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nrequired_plugins = ["zeta>=3"]\n')
    with pytest.raises(UsageError, match="needs version >= 3, found flyte-deploy-zeta 2.0"):
        build_plugin_manager(Config.load(tmp_path, environ={}))
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nrequired_plugins = ["zeta>=2", "org_policy"]\n')
    assert "zeta" in build_plugin_manager(Config.load(tmp_path, environ={})).infos


def test_misspelled_hook_fails_naming_the_plugin(tmp_path):
    (tmp_path / "deployconf.py").write_text(
        textwrap.dedent("""
        import flyte_deploy as fd

        @fd.hookimpl
        def build_bundel(session, plan):
            return None
    """)
    )
    with pytest.raises(PluginError, match=r"plugin 'deployconf' \(local .*deployconf.py\).*build_bundel"):
        build_plugin_manager(Config.load(tmp_path, environ={}))


def test_import_error_in_a_local_plugin_names_file_and_line(tmp_path):
    (tmp_path / "deployconf.py").write_text("import flyte_deploy\n\nraise RuntimeError('nope')\n")
    with pytest.raises(PluginError, match=r"deployconf.py:3: RuntimeError: nope"):
        build_plugin_manager(Config.load(tmp_path, environ={}))


def test_missing_pyproject_plugin_module_is_named(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nplugins = ["no_such_module_xyz"]\n')
    with pytest.raises(PluginError, match="error importing plugin 'no_such_module_xyz' \\(pyproject"):
        build_plugin_manager(Config.load(tmp_path, environ={}))


def test_plugins_command_lists_sources_versions_hooks_and_status(site, tmp_path, invoke):
    root = full_project(tmp_path / "proj")
    result = invoke("plugins", "--json", "--root-dir", root, "-p", "no:source_link")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["zeta"]["source"] == "entrypoint" and by_name["zeta"]["version"] == "flyte-deploy-zeta 2.0"
    assert by_name["zeta"]["hooks"] == ["compute_version"]
    assert by_name["deployconf"]["source"] == "local"
    assert by_name["source_link"]["status"] == "disabled"
    assert by_name["org_policy"]["status"] == "policy"
    assert "serialize_task" in data["hooks"]
    table = invoke("plugins", "--root-dir", root)
    assert "zeta" in table.stdout and "entrypoint" in table.stdout and "policy" in table.stdout


DEPLOYABLE = {
    "envs.py": """
        import flyte_deploy as fd
        env = fd.TaskEnvironment(name="solo")

        @env.task
        def hello(name: str) -> str:
            return "hi " + name
    """,
}


def test_a_plugin_returning_a_result_overrides_the_builtin_phase(project, invoke, monkeypatch):
    root = project({**DEPLOYABLE, "deployconf.py": VERSION_PLUGIN.format(version="v-from-plugin")})
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env", "--output", "json", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.json()["version"] == "v-from-plugin"


def test_a_plugin_returning_none_passes_to_the_builtin(project, invoke, monkeypatch):
    root = project(
        {
            **DEPLOYABLE,
            "deployconf.py": """
        import flyte_deploy as fd

        @fd.hookimpl
        def compute_version(session, plan):
            return None
    """,
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env", "--output", "json", "-q")
    assert result.exit_code == 0, result.stderr
    assert len(result.json()["version"]) == 32


def test_disabling_a_needed_builtin_is_a_clear_error(project, invoke, monkeypatch):
    monkeypatch.chdir(project(DEPLOYABLE))
    result = invoke("deploy", "envs.py", "env", "-p", "no:discover")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    assert "no plugin handled discover_environments" in result.stderr


def test_a_plugin_returning_the_wrong_type_is_named(project, invoke, monkeypatch):
    root = project(
        {**DEPLOYABLE, "deployconf.py": VERSION_PLUGIN.format(version=None).replace("return None", "return 42")}
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    assert "plugin 'deployconf' (local" in result.stderr
    assert "returned int from compute_version, expected str" in result.stderr


def test_a_plugin_that_raises_is_named_with_its_source(project, invoke, monkeypatch):
    root = project(
        {
            **DEPLOYABLE,
            "deployconf.py": """
        import flyte_deploy as fd

        @fd.hookimpl
        def build_bundle(session, plan):
            raise KeyError("oops")
    """,
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    assert "plugin 'deployconf' (local" in result.stderr and "failed in build_bundle: KeyError" in result.stderr
    assert "-p no:deployconf" in result.stderr
    assert not (root / ".flyte-deploy").exists()


# -- one registration path ----------------------------------------------------------------

SUB_PLUGIN = """
import flyte_deploy as fd


class Sloppy:
    @fd.hookimpl
    def compute_version(self, plan):
        return 42


@fd.hookimpl
def configure(config):
    config.pluginmanager.register(Sloppy(), "sloppy")
"""


def test_a_sub_plugin_registered_in_configure_is_checked_and_named(project, invoke, monkeypatch):
    root = project({**DEPLOYABLE, "deployconf.py": SUB_PLUGIN})
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR, result.stderr
    assert (
        f"plugin 'sloppy' (sub-plugin {root / 'deployconf.py'}:4, registered by 'deployconf')"
        " returned int from compute_version, expected str"
    ) in result.stderr
    assert not (root / ".flyte-deploy").exists()


def test_a_sub_plugin_is_listed_and_can_be_blocked(project, invoke, monkeypatch):
    root = project({**DEPLOYABLE, "deployconf.py": SUB_PLUGIN})
    monkeypatch.chdir(root)
    by_name = {p["name"]: p for p in invoke("plugins", "--json").json()["plugins"]}
    assert by_name["sloppy"]["source"] == "sub-plugin" and by_name["sloppy"]["registered_by"] == "deployconf"
    assert by_name["sloppy"]["hooks"] == ["compute_version"]
    result = invoke("deploy", "envs.py", "env", "-p", "no:sloppy", "-q", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert len(result.json()["version"]) == 32  # the built-in answered
    assert invoke("plugins", "--json", "-p", "no:sloppy").json()["plugins"][-1] == {
        **by_name["sloppy"],
        "status": "disabled",
        "hooks": [],
    }


def test_a_misspelled_hook_in_a_sub_plugin_names_it(project, invoke, monkeypatch):
    root = project({**DEPLOYABLE, "deployconf.py": SUB_PLUGIN.replace("def compute_version", "def compute_versoin")})
    monkeypatch.chdir(root)
    result = invoke("check", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    assert f"{root / 'deployconf.py'}:5: plugin 'sloppy' (sub-plugin" in result.stderr  # its @hookimpl line
    assert "compute_versoin is not a flyte-deploy hook (did you mean compute_version?)" in result.stderr


def test_blocking_uses_pluggy(site, tmp_path):
    pm = build_plugin_manager(Config.load(tmp_path, environ={}), cmdline_plugins=["no:source_link", "no:zeta"])
    assert pm.is_blocked("source_link") and pm.is_blocked("zeta")
    assert pm.register(object(), "source_link") is None  # pluggy refuses the name, the manager records it
    assert pm.disabled["source_link"].source == "api"


def test_blocking_an_unknown_name_in_pyproject_names_the_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\ndisable_plugins = ["sourcelink"]\n')
    with pytest.raises(
        UsageError,
        match=rf"disable_plugins \({tmp_path / 'pyproject.toml'}\): no plugin is named"
        " 'sourcelink'; known: .*source_link",
    ):
        build_plugin_manager(Config.load(tmp_path, environ={}))


WRAPPERS = """
import flyte_deploy as fd

@fd.hookimpl(wrapper=True)
def build_bundle(session, plan):
    bundle = yield
    {action}
"""


@pytest.mark.parametrize(
    "action, message",
    [
        ("raise KeyError('oops')", "failed in build_bundle: KeyError: 'oops' (run with -p no:deployconf to confirm)"),
        ("return 'not a bundle'", "returned str from build_bundle, expected Bundle"),
    ],
)
def test_a_wrapper_that_fails_is_attributed(project, invoke, monkeypatch, action, message):
    root = project({**DEPLOYABLE, "deployconf.py": WRAPPERS.format(action=action)})
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR, result.stderr
    assert f"error: plugin 'deployconf' (local {root / 'deployconf.py'}) {message}" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not (root / ".flyte-deploy").exists()


def test_a_wrapper_is_not_blamed_for_the_implementation_it_wraps(project, invoke, monkeypatch):
    """The inner plugin's failure passes through a wrapper that does not catch it, and still names the inner plugin."""
    root = project(
        {
            **DEPLOYABLE,
            "inner.py": "import flyte_deploy as fd\n\n@fd.hookimpl\ndef build_bundle(plan):\n"
            "    raise ValueError('inner broke')\n",
            "deployconf.py": WRAPPERS.format(action="return bundle"),
            "pyproject.toml": '[tool.flyte-deploy]\nplugins = ["inner.py"]\n',
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    assert "plugin 'inner' (pyproject" in result.stderr
    assert "failed in build_bundle: ValueError: inner broke" in result.stderr
    assert "deployconf" not in result.stderr.replace("-p no:deployconf", "")


def test_a_wrapper_veto_keeps_its_error_and_exit_code(project, invoke, monkeypatch):
    root = project(
        {**DEPLOYABLE, "deployconf.py": WRAPPERS.format(action="raise fd.BundleError('bundle vetoed: too big')")}
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.BUNDLE_FAILED
    assert "error: bundle vetoed: too big" in result.stderr


def test_a_hookimpl_with_a_default_value_is_refused_with_its_file_and_line(project, invoke, monkeypatch):
    root = project(
        {
            **DEPLOYABLE,
            "deployconf.py": """
        import flyte_deploy as fd

        @fd.hookimpl
        def compute_version(session, plan=None):
            return "v1"
    """,
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    lines = result.stderr.strip().splitlines()
    where = root / "deployconf.py"
    assert lines == [
        (
            f"error: {where}:3: plugin 'deployconf' (local {where}): compute_version gives plan a default"
            " value, which pluggy never passes; remove the default"
        )
    ]


def test_a_hookimpl_with_an_argument_its_hook_lacks_is_refused_in_one_line(project, invoke, monkeypatch):
    root = project(
        {
            **DEPLOYABLE,
            "deployconf.py": """
        import flyte_deploy as fd

        @fd.hookimpl
        def compute_version(session, plan, extra):
            return "v1"
    """,
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {root / 'deployconf.py'}:3: plugin 'deployconf'")
    assert "compute_version: Argument(s) {'extra'} are declared in the hookimpl" in lines[0]
