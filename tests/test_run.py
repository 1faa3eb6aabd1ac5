"""``flyte-deploy run``: deploy, then execute tasks from their uploaded bundle in a clean
subprocess, as a remote runtime would; an incomplete bundle fails naming the module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy.cli import cli, run_cli
from flyte_deploy.errors import ExitCode

SRC = Path(fd.__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ml_pipeline"
RAW = "[1, 2, -1, 5]"


def flyte_deploy(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, run from ``cwd`` (the user's project)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-m", "flyte_deploy", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def run_json(cwd: Path, task: str, *inputs: str, extra: tuple[str, ...] = ()) -> dict:
    args = ["run", task, "--output", "json", *extra]
    for value in inputs:
        args += ["--input", value]
    return json.loads(flyte_deploy(cwd, *args).stdout)["outputs"]


def local_call(cwd: Path, expression: str) -> object:
    """Evaluate ``expression`` against the example's source tree, in-process style (the
    reference the bundled run must agree with)."""
    code = f"import asyncio, json, workflow; print(json.dumps({expression}))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": f"{cwd}:{SRC}"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ml_pipeline example deployed to its local store (visualization and its dependencies)."""
    project = tmp_path_factory.mktemp("ml") / "ml_pipeline"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".flyte-deploy", "__pycache__"))
    flyte_deploy(project, "deploy", "workflow.py", "viz_env", "-q")
    return project


def test_async_task_calling_a_task_in_another_environment(deployed: Path) -> None:
    outputs = run_json(deployed, "visualization.report", f"raw={RAW}")
    expected = local_call(deployed, f"asyncio.run(workflow.report.func({RAW}))")
    assert outputs == {"o0": expected}
    assert expected.startswith("loss=")


def test_defaults_come_from_the_deployed_spec(deployed: Path) -> None:
    outputs = run_json(deployed, "ml_training.train", f"raw={RAW}")
    assert outputs == {"o0": local_call(deployed, f"asyncio.run(workflow.train.func({RAW}))")}
    with_epochs = run_json(deployed, "ml_training.train", f"raw={RAW}", "epochs=1")
    assert with_epochs["o0"]["loss"] == pytest.approx(outputs["o0"]["loss"] * 3)


def test_text_output_prints_one_line_per_output(deployed: Path) -> None:
    proc = flyte_deploy(deployed, "run", "preprocessing.clean", "--input", f"raw={RAW}")
    assert proc.stdout.strip().splitlines() == [f"o0 = {json.dumps([0.2, 0.4, 1.0])}"]


def test_run_needs_only_the_store_not_the_source_tree(tmp_path: Path) -> None:
    """The bundle is fetched from storage: with every source file deleted after the deploy,
    the run still works."""
    project = tmp_path / "gone"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".flyte-deploy", "__pycache__"))
    flyte_deploy(project, "deploy", "workflow.py", "viz_env", "-q")
    for path in project.iterdir():
        if path.name != ".flyte-deploy":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert [p.name for p in project.iterdir()] == [".flyte-deploy"]
    outputs = run_json(project, "visualization.report", f"raw={RAW}")
    assert outputs["o0"].startswith("loss=")


INSPECTING = '''
import importlib
import os
import sys

import flyte_deploy as fd

env = fd.TaskEnvironment(name="inspect")


@env.task
def where() -> dict[str, str]:
    """Where the runtime loaded this task from."""
    return {"file": __file__, "cwd": os.getcwd(), "path": os.pathsep.join(sys.path)}


@env.task
def use_helper(x: int) -> int:
    """Imports a module by name at run time: discovery never loads it."""
    return importlib.import_module("helpers").double(x)


@env.task
def boom(x: int) -> int:
    raise ValueError(f"bad x {x}")
'''


@pytest.fixture
def inspect_project(tmp_path: Path) -> Path:
    project = tmp_path / "inspect"
    project.mkdir()
    (project / "tasks.py").write_text(INSPECTING)
    (project / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    return project


def test_subprocess_cwd_and_sys_path_exclude_the_source_tree(inspect_project: Path) -> None:
    flyte_deploy(inspect_project, "deploy", "tasks.py", "env", "-q")
    info = run_json(inspect_project, "inspect.where")["o0"]
    root = str(inspect_project.resolve())
    assert not info["file"].startswith(root) and info["file"].endswith("tasks.py")
    assert not info["cwd"].startswith(root)
    assert [p for p in info["path"].split(os.pathsep) if p.startswith(root)] == []
    assert os.path.dirname(info["file"]) == info["cwd"]  # unpacked into the fresh working directory


def test_module_missing_from_the_bundle_fails_naming_it(inspect_project: Path) -> None:
    """helpers.py is in the source tree but not in a loaded_modules bundle: the run fails
    with exit 14 and one line naming the module; with --copy-style all it works."""
    flyte_deploy(inspect_project, "deploy", "tasks.py", "env", "-q")
    proc = flyte_deploy(inspect_project, "run", "inspect.use_helper", "--input", "x=4", check=False)
    assert proc.returncode == ExitCode.RUN_FAILED
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: task inspect.use_helper: module 'helpers' is not in the code bundle")
    flyte_deploy(inspect_project, "deploy", "tasks.py", "env", "-q", "--copy-style", "all")
    assert run_json(inspect_project, "inspect.use_helper", "x=4") == {"o0": 8}


def test_task_module_missing_without_a_bundle(inspect_project: Path) -> None:
    """Copy style none: no bundle, and the image (here: the installed packages) lacks the module."""
    flyte_deploy(inspect_project, "deploy", "tasks.py", "env", "-q", "--copy-style", "none", "--version", "v1")
    proc = flyte_deploy(inspect_project, "run", "inspect.where", check=False)
    assert proc.returncode == ExitCode.RUN_FAILED
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: module 'tasks' of task where is not in the image (no code bundle)"
    )


def test_task_exception_is_one_line_after_the_traceback(inspect_project: Path) -> None:
    flyte_deploy(inspect_project, "deploy", "tasks.py", "env", "-q")
    proc = flyte_deploy(inspect_project, "run", "inspect.boom", "--input", "x=3", check=False)
    assert proc.returncode == ExitCode.RUN_FAILED
    assert "Traceback" in proc.stderr and 'raise ValueError(f"bad x {x}")' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: task inspect.boom raised ValueError: bad x 3"


RICH = '''
import dataclasses
import datetime
import enum
from typing import Optional

import flyte_deploy as fd

env = fd.TaskEnvironment(name="rich")


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclasses.dataclass
class Window:
    start: datetime.datetime
    length: datetime.timedelta
    labels: list[str]


@env.task
async def summarize(window: Window, mode: Mode, weights: dict[str, list[float]], note: Optional[str] = None,
                    raw: bytes = b"xyz") -> tuple[Window, str, int]:
    """Exercises structured, enum, nested, optional and bytes values through the runtime."""
    later = dataclasses.replace(window, start=window.start + window.length, labels=window.labels + [mode.name])
    total = sum(sum(v) for v in weights.values())
    return later, f"{mode.value}:{note}:{raw.decode()}", int(total)


@env.task
def count_lines(data: fd.File) -> tuple[int, fd.File]:
    with data.open("rb") as handle:
        lines = handle.read().decode().splitlines()
    with open("upper.txt", "w") as out:
        out.write("\\n".join(line.upper() for line in lines))
    return len(lines), fd.File("upper.txt")
'''


def test_rich_types_through_the_runtime(tmp_path: Path) -> None:
    project = tmp_path / "rich"
    project.mkdir()
    (project / "flow.py").write_text(RICH)
    flyte_deploy(project, "deploy", "flow.py", "env", "-q")
    window = {"start": "2024-01-01T00:00:00+00:00", "length": 3600.0, "labels": ["a"]}
    outputs = run_json(
        project, "rich.summarize", f"window={json.dumps(window)}", "mode=SLOW", 'weights={"a": [1.5, 2.5], "b": []}'
    )
    assert outputs == {
        "o0": {"start": "2024-01-01T01:00:00+00:00", "length": 3600.0, "labels": ["a", "SLOW"]},
        "o1": "slow:None:xyz",
        "o2": 4,
    }
    assert (
        run_json(
            project, "rich.summarize", f"window={json.dumps(window)}", "mode=FAST", "weights={}", "note=hi", "raw=abc"
        )["o1"]
        == "fast:hi:abc"
    )

    data = tmp_path / "data.txt"
    data.write_text("one\ntwo\n")
    work = tmp_path / "kept"
    proc = flyte_deploy(
        project, "run", "rich.count_lines", "--input", f"data={data}", "--work-dir", str(work), "--output", "json"
    )
    outputs = json.loads(proc.stdout)["outputs"]
    assert outputs["o0"] == 2
    uploaded = outputs["o1"]
    assert uploaded.startswith((work / "io" / "outputs").as_uri())
    assert Path(uploaded.removeprefix("file://")).read_text() == "ONE\nTWO"


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "visualization.report"], "task visualization.report: missing input(s) raw; pass --input NAME=VALUE"),
        (
            ["run", "visualization.report", "--input", "raw=[1, oops]"],
            "task visualization.report: input 'raw': expected list[float], got '[1, oops]'",
        ),
        (
            ["run", "visualization.report", "--input", "rows=[1]"],
            "task visualization.report has no input 'rows' (inputs: raw)",
        ),
        (["run", "visualization.report", "--input", "raw"], "--input takes NAME=VALUE, got 'raw'"),
        (["run", "visualization.nothing"], "task visualization.nothing is not deployed to examples/development in"),
        (["run", "report"], "name the task as ENV.TASK, got 'report'"),
    ],
)
def test_run_errors_are_one_line_with_exit_14(
    deployed: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = run_cli(cli, [*args, "--root-dir", str(deployed)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ExitCode.RUN_FAILED
    assert len(err) == 1 and err[0].startswith(f"error: {message}")


def test_run_selects_a_version(tmp_path: Path) -> None:
    project = tmp_path / "versions"
    project.mkdir()
    source = textwrap.dedent("""
        import flyte_deploy as fd
        env = fd.TaskEnvironment(name="ver")

        @env.task
        def answer() -> int:
            return {value}
    """)
    (project / "v.py").write_text(source.format(value=1))
    flyte_deploy(project, "deploy", "v.py", "env", "-q", "--version", "one")
    (project / "v.py").write_text(source.format(value=2))
    flyte_deploy(project, "deploy", "v.py", "env", "-q", "--version", "two")
    assert run_json(project, "ver.answer", extra=("--version", "one")) == {"o0": 1}
    assert run_json(project, "ver.answer", extra=("--version", "two")) == {"o0": 2}
