"""Discovery of ``flyte.TaskEnvironment`` objects through the flyte adapter: the project
shapes ``flyte deploy`` accepts, mixed SDKs, dependency order, the Python API, and errors
as clear as for our own objects. Through the CLI (``invoke``) and the API."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy import ExitCode
from flyte_deploy.adapters.flyte import sdk_internals
from flyte_deploy.adapters.flyte.views import FlyteEnvironment, view_of
from flyte_deploy.builtin.discover import discover
from flyte_deploy.environments import Environment, Task
from flyte_deploy.types import DeployRequest

from .bundle_helpers import dry

flyte = pytest.importorskip("flyte")
LAYOUTS = Path(__file__).parent / "flyte_projects" / "layouts"


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A copy of ``tests/flyte_projects/layouts/NAME``, made the working directory."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(LAYOUTS / name, target)
        monkeypatch.chdir(target)
        return target

    return copy


def task_args(root: Path, *args: str) -> dict[str, list[str]]:
    """The container args of every task a dry run of ``args`` serializes (API, same request)."""
    with fd.open_session(root, options={"quiet": True}, dry_run=True) as session:
        from flyte_deploy.lifecycle import deploy

        result = deploy(session, DeployRequest(mode="all", path=root / args[0]), version="v1")
    return {t.name: list(t.spec.task_template.container.args) for t in result.tasks}


def test_a_package_module_is_named_from_the_root_and_its_dependency_comes_first(layout, invoke):
    root = layout("pkg_project")
    out = dry(invoke, "--all", "app/tasks.py")
    assert [e["name"] for e in out["environments"]] == ["pkg-shared", "pkg-main"]
    args = task_args(root, "app/tasks.py")
    assert args["pkg-main.top"][-4:] == ["mod", "app.tasks", "instance", "top"]
    assert args["pkg-shared.base"][-4:] == ["mod", "app.tasks", "instance", "base"]


def test_a_src_layout_deploys_with_root_dir_src(layout, invoke):
    root = layout("src_project")
    out = dry(invoke, "--all", "src/mypkg/flow.py", "--root-dir", "src")
    assert [t["name"] for e in out["environments"] for t in e["tasks"]] == ["srclayout.run"]
    assert task_args(root / "src", "mypkg/flow.py")["srclayout.run"][-4:] == ["mod", "mypkg.flow", "instance", "run"]


def test_a_file_name_that_is_not_an_identifier_is_imported_by_its_path(layout, invoke):
    root = layout("numbered")
    out = dry(invoke, "01_hello.py", "env")
    assert out["environments"][0]["name"] == "numbered"
    assert task_args(root, "01_hello.py")["numbered.hello"][-4:] == ["mod", "01_hello", "instance", "hello"]


def test_a_file_imports_its_siblings_in_file_mode_and_the_runtime_gets_their_directory(layout, invoke):
    root = layout("siblings")
    out = dry(invoke, "flows/main.py", "env")
    assert out["environments"][0]["tasks"][0]["name"] == "siblings.twice"
    with fd.open_session(root, options={"quiet": True}, dry_run=True) as session:
        from flyte_deploy.lifecycle import deploy

        result = deploy(
            session, DeployRequest(mode="file", path=root / "flows/main.py", env_names=("env",)), version="v1"
        )
    env = {kv.key: kv.value for kv in result.tasks[0].spec.task_template.container.env}
    assert "./flows" in env["_F_SYS_PATH"].split(":")
    assert "flows/helpers.py" in result.bundle.files


def test_a_project_mixing_both_sdks_deploys_each_with_its_own_serializer(layout, invoke):
    root = layout("mixed")
    out = dry(invoke, "both.py", "ours", "theirs")
    assert [e["name"] for e in out["environments"]] == ["mixed-ours", "mixed-flyte"]
    args = task_args(root, "both.py")
    assert args["mixed-flyte.native"][0] == "a0"
    assert "flyte_deploy.runtime" not in " ".join(args["mixed-flyte.native"])
    assert "--function" in args["mixed-ours.plain"]


def test_views_satisfy_the_core_protocols_and_one_object_has_one_view(layout):
    root = layout("pkg_project")
    with fd.open_session(root) as session:
        found = discover(DeployRequest(mode="all", path=root / "app/tasks.py"), root, session.calls)
    env = next(e for e in found.environments if e.name == "pkg-main")
    assert isinstance(env, FlyteEnvironment) and isinstance(env, Environment)
    assert env.sdk == "flyte" and env is view_of(env.native)
    task = env.tasks["top"]
    assert isinstance(task, Task) and task.name == "pkg-main.top" and task.module == "app.tasks"
    assert env.depends_on[0] is view_of(env.native.depends_on[0])
    assert env.location.endswith("tasks.py:5")


def test_environments_given_positionally_and_deployed_once_whatever_the_argument_order(tmp_path, monkeypatch):
    (tmp_path / "chain.py").write_text(
        textwrap.dedent("""
        import flyte
        a = flyte.TaskEnvironment("chain-a")
        b = flyte.TaskEnvironment("chain-b", depends_on=[a])
        c = flyte.TaskEnvironment("chain-c", depends_on=[b])

        @a.task
        def fa() -> int:
            return 1

        @c.task
        def fc() -> int:
            return 3
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import chain

    for order in ((chain.a, chain.c), (chain.c, chain.a), (chain.b, chain.a, chain.c)):
        result = fd.deploy(*order, dry_run=True, root_dir=tmp_path, options={"quiet": True})
        assert list(result.environments) == ["chain-a", "chain-b", "chain-c"]
        assert sorted(t.name for t in result.tasks) == ["chain-a.fa", "chain-c.fc"]
        assert len({t.spec.task_template.id.version for t in result.tasks}) == 1


def test_a_variable_that_is_not_an_environment_says_what_it_is(tmp_path, invoke, monkeypatch):
    (tmp_path / "envs.py").write_text(
        "import flyte\nenv = flyte.TaskEnvironment(name='real')\nimage = flyte.Image.from_debian_base()\n"
    )
    monkeypatch.chdir(tmp_path)
    result = invoke("deploy", "envs.py", "image", "--dry-run")
    assert result.exit_code == ExitCode.DISCOVERY_FAILED
    assert "'image' is a flyte._image.Image, not a TaskEnvironment" in result.stderr
    assert "environments in the file: env" in result.stderr


def test_two_flyte_environments_with_one_name_name_both_places(tmp_path, invoke, monkeypatch):
    (tmp_path / "a.py").write_text("import flyte\nx = flyte.TaskEnvironment(name='same')\n")
    (tmp_path / "b.py").write_text("import flyte\ny = flyte.TaskEnvironment(name='same')\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("deploy", "--recursive", ".", "--dry-run")
    assert result.exit_code == ExitCode.DISCOVERY_FAILED
    assert "two environments are named 'same'" in result.stderr
    assert f"{tmp_path / 'a.py'}:2" in result.stderr and f"{tmp_path / 'b.py'}:2" in result.stderr


def test_with_the_adapter_disabled_a_flyte_environment_is_refused_with_the_reason(tmp_path, invoke, monkeypatch):
    (tmp_path / "envs.py").write_text("import flyte\nenv = flyte.TaskEnvironment(name='off')\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("deploy", "envs.py", "env", "--dry-run", "-p", "no:flyte")
    assert result.exit_code == ExitCode.DISCOVERY_FAILED
    assert "flyte adapter is not active" in result.stderr and "flyte-deploy[flyte]" in result.stderr
    listed = invoke("plugins", "--json").json()
    assert any(p["name"] == "flyte" and "find_environments" in p["hooks"] for p in listed["plugins"])


def test_the_python_api_takes_flyte_environments_and_refuses_other_objects(tmp_path, monkeypatch):
    (tmp_path / "api_envs.py").write_text(
        "import flyte\nenv = flyte.TaskEnvironment(name='api')\n@env.task\ndef f(x: int) -> int:\n    return x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import api_envs

    result = fd.deploy(api_envs.env, dry_run=True, root_dir=tmp_path, options={"quiet": True})
    assert [t.name for t in result.tasks] == ["api.f"]
    with pytest.raises(fd.UsageError, match="takes TaskEnvironment objects.*got a flyte._image.Image"):
        fd.deploy(flyte.Image.from_debian_base(), dry_run=True, root_dir=tmp_path)


def test_an_installed_flyte_outside_the_tested_range_is_refused(tmp_path, invoke, monkeypatch):
    (tmp_path / "envs.py").write_text("import flyte\nenv = flyte.TaskEnvironment(name='old')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sdk_internals, "sdk_version", lambda: "2.99.0")
    result = invoke("deploy", "envs.py", "env", "--dry-run")
    assert result.exit_code == ExitCode.USAGE_ERROR
    assert "flyte 2.99.0 is installed; the flyte adapter supports flyte>=2.12,<2.13" in result.stderr


class YamlSpec:
    """A stand-in for a third SDK's environment object (not an Environment itself)."""

    def __init__(self, name: str) -> None:
        self.name = name


class ThirdSdkAdapter:
    """An adapter plugin for ``YamlSpec`` objects: both discovery hooks, through our own SDK."""

    def __init__(self) -> None:
        self.views: dict[int, fd.TaskEnvironment] = {}

    def view(self, spec: YamlSpec) -> fd.TaskEnvironment:
        if id(spec) not in self.views:
            self.views[id(spec)] = fd.TaskEnvironment(name=spec.name)
        return self.views[id(spec)]

    @fd.hookimpl
    def find_environments(self, module):
        return {var: self.view(v) for var, v in vars(module).items() if isinstance(v, YamlSpec)}

    @fd.hookimpl
    def adapt_environment(self, obj):
        return self.view(obj) if isinstance(obj, YamlSpec) else None


def test_another_adapter_plugin_adds_its_sdks_environments_to_discovery_and_the_api(
    register_plugin, tmp_path, monkeypatch, invoke
):
    adapter = ThirdSdkAdapter()
    register_plugin(adapter, "third_sdk")
    spec = YamlSpec("third")
    result = fd.deploy(spec, dry_run=True, root_dir=Path(__file__).parent, options={"quiet": True})
    assert list(result.environments) == ["third"]
    (tmp_path / "specs.py").write_text(
        "from tests.test_flyte_discovery import YamlSpec\nspec = YamlSpec('filed')\n"
        "import flyte\nenv = flyte.TaskEnvironment(name='beside')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1]))
    with fd.open_session(tmp_path) as session:
        found = discover(DeployRequest(mode="all", path=tmp_path / "specs.py"), tmp_path, session.calls)
        assert [e.name for e in found.environments] == ["filed", "beside"]
        assert session.calls.adapt_environment(found.environments[1].native) is found.environments[1]
