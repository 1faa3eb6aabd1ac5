"""``flyte-deploy run`` of deployed flyte tasks: the template's own ``a0`` command on the Flyte
SDK's runtime, in a fresh directory, from the bundle in storage, inputs and outputs in
Flyte's wire format; through the CLI."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy import ExitCode
from flyte_deploy.local_run import RunPaths, command_line
from flyte_deploy.task_specs import find_task_spec

pytest.importorskip("flyte")
REPO = Path(__file__).resolve().parents[1]
PROJECTS = REPO / "tests" / "flyte_projects"


@pytest.fixture
def deployed(tmp_path, monkeypatch, invoke):
    """Deploy ``files`` (copied from tests/flyte_projects or examples/) to the embedded backend."""

    def deploy(*files: Path, args: tuple[str, ...] = ()) -> Path:
        root = tmp_path / "proj"
        root.mkdir(exist_ok=True)
        for file in files:
            shutil.copy(file, root / file.name)
        monkeypatch.chdir(root)
        for file in files:
            result = invoke("deploy", "--all", file.name, "-q", *args)
            assert result.exit_code == 0, result.stderr
        return root

    return deploy


def test_the_example_runs_from_its_bundle_with_the_source_tree_gone(deployed, invoke):
    root = deployed(REPO / "examples" / "flyte_hello" / "hello.py")
    (root / "hello.py").unlink()  # the run must use the bundle in storage, not the user's tree
    result = invoke("run", "hello.greet", "--input", "name=World")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == 'o0 = "Hello, World."\n'
    loud = invoke("run", "hello.shout", "--input", 'names=["ann", "bo"]', "--output", "json")
    assert loud.exit_code == 0, loud.stderr
    assert loud.json()["outputs"] == {"o0": ["HELLO, ANN!", "HELLO, BO!"]}


def test_the_command_is_the_templates_own_a0_with_what_a_control_plane_would_add(deployed):
    root = deployed(PROJECTS / "basics.py")
    with fd.open_session(root) as session:
        spec = find_task_spec(session.backend, session.config, "basics-base.add", None)
    paths = RunPaths(
        inputs="file:///i/inputs.pb",
        outputs="file:///o",
        raw_data="file:///r",
        checkpoint="file:///c",
        run_base="file:///b",
    )
    argv = command_line(spec, paths, run_name="r1")
    assert argv[:2] == [sys.executable, "-c"] and "sys.argv[0] = 'a0'" in argv[2]
    argv = ["a0", *argv[3:]]
    assert argv[1:9] == [
        "--org",
        "local",
        "--project",
        "flytesnacks",
        "--domain",
        "development",
        "--run-base-dir",
        "file:///b",
    ]
    rest = argv[9:]
    assert rest[rest.index("--inputs") + 1] == "file:///i/inputs.pb"
    assert rest[rest.index("--run-name") + 1] == "r1"
    assert not [arg for arg in rest if "{{" in arg]
    assert rest[-4:] == ["mod", "basics", "instance", "add"]


def test_typed_inputs_and_outputs_in_flyte_wire_format(deployed, invoke):
    deployed(PROJECTS / "types_env.py")
    point = invoke(
        "run",
        "types.structured",
        "--input",
        'point={"x": 1, "y": 2.5}',
        "--input",
        'model={"name": "m", "tags": ["a", "b"]}',
        "--output",
        "json",
    )
    assert point.exit_code == 0, point.stderr
    assert point.json()["outputs"] == {"o0": {"x": 3, "y": 2.5}}
    pair = invoke(
        "run",
        "types.containers",
        "--input",
        "items=[1, 2]",
        "--input",
        'table={"a": 1.5}',
        "--input",
        'nested=[{"k": [1]}]',
    )
    assert pair.stdout == 'o0 = 4\no1 = "ok"\n'
    assert invoke("run", "types.choices", "--input", "color=GREEN", "--input", "maybe=3").stdout == 'o0 = "green3"\n'


def test_a_default_input_comes_from_the_deployed_spec(deployed, invoke):
    deployed(PROJECTS / "basics.py")
    assert invoke("run", "basics-base.add", "--input", "x=40").stdout == "o0 = 42\n"
    assert invoke("run", "basics-base.multiply", "--input", "x=2").stdout == "o0 = 3.0\n"


def test_a_task_calling_other_tasks_says_it_needs_a_controller(deployed, invoke):
    deployed(PROJECTS / "basics.py")
    result = invoke("run", "basics-top.pipeline", "--input", "n=2")
    assert result.exit_code == ExitCode.RUN_FAILED
    assert result.stderr.strip().splitlines()[-1] == (
        "error: task basics-top.pipeline calls other tasks, which needs the Flyte SDK's controller and a control"
        " plane; flyte-deploy run runs tasks that call no other task"
    )


def test_a_task_that_raises_is_one_line_naming_the_task(tmp_path, deployed, invoke):
    (tmp_path / "boom.py").write_text(
        "import flyte\nenv = flyte.TaskEnvironment(name='boom')\n\n\n"
        "@env.task\ndef explode(x: int) -> int:\n    raise ValueError(f'bad {x}')\n"
    )
    deployed(tmp_path / "boom.py")
    result = invoke("run", "boom.explode", "--input", "x=7")
    assert result.exit_code == ExitCode.RUN_FAILED
    assert result.stderr.strip().splitlines()[-1] == "error: task boom.explode raised ValueError: bad 7"
