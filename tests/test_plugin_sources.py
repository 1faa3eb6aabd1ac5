"""Plugin sources load in the documented order; -p no:, misspelled hooks, overrides, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flyte_deploy.config import Config
from flyte_deploy.errors import ExitCode, PluginError, UsageError
from flyte_deploy.pluginmanager import BUILTIN_PLUGINS, build_plugin_manager

VERSION_PLUGIN = """
import flyte_deploy as fd

@fd.hookimpl
def compute_version(session, plan):
    return {version!r}
"""


def make_distribution(site: Path, dist: str, version: str, entry_points: dict[str, str],
                      group: str = "flyte_deploy") -> None:
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
    (site / "org_policy.py").write_text(textwrap.dedent("""
        import flyte_deploy as fd

        @fd.hookimpl
        def check_plan(session, plan):
            return []
    """))
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
        '[tool.flyte-deploy]\nplugins = ["pyproject_plugin", "plugins/file_plugin.py"]\n')
    (root / "deployconf.py").write_text(VERSION_PLUGIN.format(version="from-deployconf"))
    return root


def test_sources_register_in_the_documented_order(site, tmp_path, monkeypatch):
    root = full_project(tmp_path / "proj")
    config = Config.load(root, environ={"FLYTE_DEPLOY_PLUGINS": "env_plugin"})
    pm = build_plugin_manager(config, cmdline_plugins=["cmdline_plugin"])
    order = [(i.name, i.source) for i in pm.infos.values()]
    builtin = [(name, "builtin") for name, _ in BUILTIN_PLUGINS]
    assert order == builtin + [
        ("cmdline_plugin", "cmdline"), ("env_plugin", "env"),
        ("alpha", "entrypoint"), ("zeta", "entrypoint"),  # sorted by entry point name
        ("pyproject_plugin", "pyproject"), ("file_plugin", "pyproject"),
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
    (tmp_path / "deployconf.py").write_text(textwrap.dedent("""
        import flyte_deploy as fd

        @fd.hookimpl
        def build_bundel(session, plan):
            return None
    """))
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
    root = project({**DEPLOYABLE, "deployconf.py": """
        import flyte_deploy as fd

        @fd.hookimpl
        def compute_version(session, plan):
            return None
    """})
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
    root = project({**DEPLOYABLE, "deployconf.py": VERSION_PLUGIN.format(version=None).replace(
        "return None", "return 42")})
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    assert "plugin 'deployconf' (local" in result.stderr
    assert "returned int from compute_version, expected str" in result.stderr


def test_a_plugin_that_raises_is_named_with_its_source(project, invoke, monkeypatch):
    root = project({**DEPLOYABLE, "deployconf.py": """
        import flyte_deploy as fd

        @fd.hookimpl
        def build_bundle(session, plan):
            raise KeyError("oops")
    """})
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    assert "plugin 'deployconf' (local" in result.stderr and "failed in build_bundle: KeyError" in result.stderr
    assert "-p no:deployconf" in result.stderr
    assert not (root / ".flyte-deploy").exists()
