"""discover_environments: single file + variable, --all, --recursive, and its errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flyte_deploy.builtin.discover import discover
from flyte_deploy.errors import DiscoveryError, ExitCode, UsageError
from flyte_deploy.importing import iter_python_files, module_name_for
from flyte_deploy.types import DeployRequest

MULTI = {
    "envs.py": """
        import flyte_deploy as fd
        base_env = fd.TaskEnvironment(name="base")
        other_env = fd.TaskEnvironment(name="other")
        not_an_env = 42
    """,
    "flows/__init__.py": "",
    "flows/train.py": """
        import flyte_deploy as fd
        from envs import base_env
        from flows.helpers.util import double
        train_env = fd.TaskEnvironment(name="train", depends_on=[base_env])

        @train_env.task
        def fit(x: int) -> int:
            return double(x)
    """,
    "flows/helpers/__init__.py": "",
    "flows/helpers/util.py": """
        def double(x):
            return 2 * x
    """,
    "scripts/report.py": """
        import flyte_deploy as fd
        report_env = fd.TaskEnvironment(name="report")
    """,
    ".venv/pyvenv.cfg": "home = /usr/bin\n",
    ".venv/lib/shadow.py": "raise RuntimeError('virtualenvs must not be imported')\n",
    "venv2/pyvenv.cfg": "home = /usr/bin\n",
    "venv2/bad.py": "raise RuntimeError('virtualenvs must not be imported')\n",
    ".hidden/bad.py": "raise RuntimeError('hidden dirs must not be imported')\n",
    "lib/site-packages/bad.py": "raise RuntimeError('site-packages must not be imported')\n",
}


def names(envs):
    return [e.name for e in envs]


def test_single_file_selects_only_the_named_variable(project):
    root = project(MULTI)
    found = discover(DeployRequest(mode="file", path=root / "envs.py", env_names=("other_env",)), root)
    assert names(found.environments) == ["base", "other"]
    assert names(found.selected) == ["other"]


def test_all_selects_every_environment_in_the_file_including_imported_ones(project):
    root = project(MULTI)
    found = discover(DeployRequest(mode="all", path=root / "flows" / "train.py"), root)
    assert sorted(names(found.selected)) == ["base", "train"]


def test_recursive_imports_every_file_and_skips_venvs_hidden_and_site_packages(project):
    root = project(MULTI)
    found = discover(DeployRequest(mode="recursive", path=root), root)
    assert sorted(names(found.selected)) == ["base", "other", "report", "train"]
    files = [p.relative_to(root).as_posix() for p in iter_python_files(root)]
    assert "venv2/bad.py" not in files and ".hidden/bad.py" not in files
    assert "lib/site-packages/bad.py" not in files
    assert "flows/helpers/util.py" in files


def test_module_names_come_from_the_root_dir_and_files_are_imported_once(project):
    root = project(MULTI)
    assert module_name_for(root / "flows" / "train.py", root) == ("flows.train", root)
    assert module_name_for(root / "flows" / "__init__.py", root) == ("flows", root)
    found = discover(DeployRequest(mode="recursive", path=root), root)
    # envs.py is imported by flows/train.py as "envs" and discovered directly: one module
    modules_for_envs = [
        m for m in sys.modules.values() if getattr(m, "__file__", None) and Path(m.__file__) == root / "envs.py"
    ]
    assert len(modules_for_envs) == 1
    assert "flows.helpers.util" in found.loaded_modules


def test_missing_variable_lists_the_environments_that_exist(project):
    root = project(MULTI)
    with pytest.raises(DiscoveryError, match=r"no TaskEnvironment variable 'prep_env'.*base_env, other_env"):
        discover(DeployRequest(mode="file", path=root / "envs.py", env_names=("prep_env",)), root)


def test_variable_that_is_not_an_environment_says_what_it_is(project):
    root = project(MULTI)
    with pytest.raises(DiscoveryError, match=r"'not_an_env' is a int, not a TaskEnvironment.*base_env"):
        discover(DeployRequest(mode="file", path=root / "envs.py", env_names=("not_an_env",)), root)


def test_two_environments_with_one_name_name_both_places(project):
    root = project(
        {
            "a.py": "import flyte_deploy as fd\nx = fd.TaskEnvironment(name='dup')\n",
            "b.py": "import flyte_deploy as fd\n\ny = fd.TaskEnvironment(name='dup')\n",
        }
    )
    with pytest.raises(DiscoveryError) as info:
        discover(DeployRequest(mode="recursive", path=root), root)
    message = str(info.value)
    assert f"{root / 'a.py'}:2" in message and f"{root / 'b.py'}:3" in message
    assert info.value.exit_code == ExitCode.DISCOVERY_FAILED


def test_import_error_names_file_and_line(project):
    root = project({"broken.py": "import flyte_deploy as fd\n\n\nraise ValueError('boom')\n"})
    with pytest.raises(DiscoveryError, match=rf"{root / 'broken.py'}:4: error importing broken.py: ValueError: boom"):
        discover(DeployRequest(mode="all", path=root / "broken.py"), root)


def test_syntax_error_names_file_and_line(project):
    root = project({"ok.py": "x = 1\n", "bad.py": "x = 1\ndef f(:\n"})
    with pytest.raises(DiscoveryError, match=rf"{root / 'bad.py'}:2: error importing bad.py: SyntaxError"):
        discover(DeployRequest(mode="recursive", path=root), root)


def test_error_inside_an_imported_helper_names_the_helper(project):
    root = project({"main.py": "import helper\n", "helper.py": "x = 1\ny = 1 / 0\n"})
    with pytest.raises(DiscoveryError, match=rf"{root / 'helper.py'}:2: .*ZeroDivisionError"):
        discover(DeployRequest(mode="all", path=root / "main.py"), root)


def test_recursive_needs_a_directory_and_file_mode_a_file(project):
    root = project({"a.py": "x = 1\n"})
    with pytest.raises(UsageError, match="needs a directory"):
        discover(DeployRequest(mode="recursive", path=root / "a.py"), root)
    with pytest.raises(UsageError, match="no such file"):
        discover(DeployRequest(mode="all", path=root / "missing.py"), root)


def test_file_outside_the_root_dir_is_imported_from_its_own_directory(project, tmp_path):
    root = project({"a.py": "x = 1\n"})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "far.py").write_text("import flyte_deploy as fd\nfar_env = fd.TaskEnvironment(name='far')\n")
    found = discover(DeployRequest(mode="file", path=outside / "far.py", env_names=("far_env",)), root)
    assert names(found.selected) == ["far"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["deploy", "envs.py"], ExitCode.USAGE_ERROR, "name the environment variable"),
        (["deploy", "envs.py", "nope"], ExitCode.DISCOVERY_FAILED, "no TaskEnvironment variable 'nope'"),
        (["deploy", "--all", "--recursive", "."], ExitCode.USAGE_ERROR, "cannot be combined"),
        (["deploy", "--copy-style", "bogus", "--all", "envs.py"], ExitCode.USAGE_ERROR, "bogus"),
    ],
)
def test_cli_discovery_errors_have_distinct_exit_codes(project, invoke, monkeypatch, args, code, message):
    root = project(MULTI)
    monkeypatch.chdir(root)
    result = invoke(*args)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr


def test_imported_files_index_follows_sys_modules(project):
    from flyte_deploy.importing import ImportedFiles

    root = project({"shared.py": "x = 1\n"})
    index = ImportedFiles()
    assert index.get(root / "shared.py") is None
    sys.path.insert(0, str(root))
    import shared

    assert index.get(root / "shared.py") is shared  # found after the module was added
    del sys.modules["shared"]
    assert index.get(root / "shared.py") is None  # a removed module is not returned stale


def test_module_names_need_not_be_identifiers_but_cannot_hold_a_dot(tmp_path):
    assert module_name_for(tmp_path / "flows" / "01_hello.py", tmp_path) == ("flows.01_hello", tmp_path)
    assert module_name_for(tmp_path / "my-jobs" / "__init__.py", tmp_path) == ("my-jobs", tmp_path)
    with pytest.raises(DiscoveryError, match=r"a\.b\.py: cannot be imported as a module"):
        module_name_for(tmp_path / "a.b.py", tmp_path)


def test_recursive_over_a_dangling_symlink_names_the_link(project, invoke):
    root = project({"envs.py": "import flyte_deploy as fd\nenv = fd.TaskEnvironment(name='a')\n"})
    (root / "dangling.py").symlink_to("gone.py")
    run = invoke("deploy", "--recursive", root, "--root-dir", root, "--dry-run", "-q")
    assert run.exit_code == 5
    assert f"error: {root / 'dangling.py'}: a symbolic link to gone.py, which is not a file" in run.stderr
