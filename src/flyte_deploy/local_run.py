"""``flyte-deploy run``: execute a deployed task the way a remote runtime would.

From the stored ``TaskSpec`` only (the user's code is never imported here): the inputs are
parsed by the interface's literal types, defaults come from the spec's default inputs,
``inputs.pb`` is written, and the template's own command and args run in a fresh, empty
working directory with ``{{.input}}`` and ``{{.outputPrefix}}`` filled in. The subprocess
sees only the bundle it unpacks (fetched from the URI in the args) and the installed
packages: its ``PYTHONPATH`` is flyte-deploy's own location, and safe-path mode keeps the
working directory off ``sys.path``. Any failure is a ``RunError`` naming the task.
"""

from __future__ import annotations

import os
import reprlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flyteidl2.core import execution_pb2, literals_pb2
from flyteidl2.task import common_pb2, task_definition_pb2

from .builtin.serialize import INPUT_PLACEHOLDER, OUTPUT_PLACEHOLDER
from .errors import (
    BundleError,
    BundleIntegrityError,
    ExitCode,
    FlyteDeployError,
    RunError,
)
from .interface import literal_from_text, literal_to_json, named_literals
from .runtime import INPUTS_FILE, OUTPUTS_FILE

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
#: what the Flyte SDK's runtime writes when a task fails, and its message when a task calls another
ERROR_FILE = "error.pb"
NO_CONTROLLER = "Controller is not initialized"
#: set for the Flyte SDK's runtime: run the task alone, with no controller to launch others
CLUSTERED_WORKER = "FLYTE_CLUSTERED_WORKER"
#: environment variables that would let the user's environment leak into the runtime's imports
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")
#: the runtime's exit codes that keep their own error class (and so exit code) in ``run``
RUNTIME_ERRORS: dict[int, type[FlyteDeployError]] = {
    ExitCode.BUNDLE_CORRUPT: BundleIntegrityError,
    ExitCode.BUNDLE_FAILED: BundleError,
}


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run: outputs as JSON-able values by name (``o0``, ...), and the
    task's captured stdout and stderr."""

    task: str
    version: str
    outputs: dict[str, Any]
    stdout: str
    stderr: str


def build_inputs(spec: task_definition_pb2.TaskSpec, given: Mapping[str, str]) -> dict[str, literals_pb2.Literal]:
    """Literals for every input: given values parsed by their type, then the spec's defaults;
    an unknown or missing input is a ``RunError`` naming it."""
    task = spec.task_template.id.name
    variables = {v.key: v.value.type for v in spec.task_template.interface.inputs.variables}
    defaults = {p.name: p.parameter.default for p in spec.default_inputs}
    unknown = [name for name in given if name not in variables]
    if unknown:
        raise RunError(f"task {task} has no input {unknown[0]!r} (inputs: {', '.join(variables) or 'none'})")
    literals: dict[str, literals_pb2.Literal] = {}
    for name, literal_type in variables.items():
        if name in given:
            try:
                literals[name] = literal_from_text(given[name], literal_type)
            except ValueError as exc:
                raise RunError(f"task {task}: input {name!r}: {exc}") from None
        elif name in defaults:
            literals[name] = defaults[name]
    missing = [name for name in variables if name not in literals]
    if missing:
        raise RunError(f"task {task}: missing input(s) {', '.join(missing)}; pass --input NAME=VALUE")
    return literals


def clean_environment(declared: Mapping[str, str], storage_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that must see only its bundle and the installed packages
    (``run`` and ``serve``): ours without Python path settings, plus the spec's ``declared``
    env vars, with flyte-deploy's own location as the only ``PYTHONPATH`` entry, safe-path
    mode, and ``storage_env`` (``storage.storage_environment``: the runtime fetches the
    bundle through it)."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(declared)
    env.update(storage_env or {})
    env["PYTHONPATH"] = str(PACKAGE_PARENT)
    env["PYTHONSAFEPATH"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    return env


def runtime_environment(
    spec: task_definition_pb2.TaskSpec, storage_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The task's subprocess environment: ``clean_environment`` of the template's env vars."""
    env = clean_environment({kv.key: kv.value for kv in spec.task_template.container.env}, storage_env)
    env[CLUSTERED_WORKER] = "1"  # the Flyte SDK's runtime then starts no controller (no control plane)
    return env


#: the Flyte SDK's runtime entrypoint, the first container arg of the specs it serializes
SDK_ENTRYPOINT = "a0"
#: where a control plane puts the raw data prefix of a run (tasks) or an app (its ``fserve``)
RAW_DATA_PLACEHOLDER = "{{.rawOutputDataPrefix}}"


@dataclass(frozen=True)
class RunPaths:
    """Where one run reads and writes: ``inputs``/``outputs`` URIs and the working area the
    SDK's runtime needs (raw data, checkpoints, run base dir)."""

    inputs: str
    outputs: str
    raw_data: str
    checkpoint: str
    run_base: str


def sdk_command(name: str) -> list[str] | None:
    """The command running the Flyte SDK's console script ``name`` (``a0``, ``fserve``) on
    this interpreter: its entry point, read from the installed ``flyte`` distribution, called
    by ``python -c`` (with ``sys.argv[0]`` the script's name). A script file would not do: a
    virtualenv that sees the system's packages has none beside its interpreter, and the one
    on ``PATH`` may start another interpreter (a pyenv shim), without this one's packages.
    None when the SDK is not installed."""
    from importlib.metadata import entry_points

    for point in entry_points(group="console_scripts", name=name):
        if point.dist is not None and point.dist.name == "flyte":
            call = (
                f"import sys; sys.argv[0] = {name!r}; from {point.module} import {point.attr}; sys.exit({point.attr}())"
            )
            return [sys.executable, "-c", call]
    return None


def _sdk_entrypoint() -> list[str]:
    """The command running the Flyte SDK's ``a0`` on this interpreter (``sdk_command``)."""
    found = sdk_command(SDK_ENTRYPOINT)
    if not found:
        raise RunError(
            "this task runs on the Flyte SDK's runtime (a0), which is not installed here:"
            " pip install 'flyte-deploy[flyte]'"
        )
    return found


def command_line(spec: task_definition_pb2.TaskSpec, paths: RunPaths, run_name: str = "local") -> list[str]:
    """The template's command and args with the run-time placeholders filled in. Two shapes:
    our runtime's (``python -m flyte_deploy.runtime``, ``python`` being this interpreter) and
    the Flyte SDK's (no command, args starting with ``a0``; this interpreter's ``a0`` runs it,
    given the org, project, domain and run base dir a control plane would set)."""
    template = spec.task_template
    container = template.container
    if not container.command and not container.args:
        raise RunError(f"task {template.id.name} has no container command to run")
    values = {
        INPUT_PLACEHOLDER: paths.inputs,
        OUTPUT_PLACEHOLDER: paths.outputs,
        RAW_DATA_PLACEHOLDER: paths.raw_data,
        "{{.checkpointOutputPrefix}}": paths.checkpoint,
        "{{.prevCheckpointPrefix}}": "",
        "{{.runName}}": run_name,
        "{{.actionName}}": "a0",
        "{{.runStartTime}}": datetime.now(UTC).isoformat(),
    }

    def fill(arg: str) -> str:
        for placeholder, value in values.items():
            arg = arg.replace(placeholder, value)
        return arg

    args = [fill(a) for a in container.args]
    if not container.command and args[0] == SDK_ENTRYPOINT:
        return [
            *_sdk_entrypoint(),
            "--org",
            template.id.org or "local",
            "--project",
            template.id.project,
            "--domain",
            template.id.domain,
            "--run-base-dir",
            paths.run_base,
            *args[1:],
        ]
    return this_interpreter(container.command) + args


def this_interpreter(command: Sequence[str]) -> list[str]:
    """``command`` with each ``python`` word replaced by this interpreter."""
    return [sys.executable if part == "python" else part for part in command]


def sdk_runtime_error(path: Path, task: str) -> str | None:
    """The one-line failure the Flyte SDK's runtime wrote to ``error.pb`` (an
    ``ErrorDocument``), if any. A task that calls other tasks needs the SDK's controller,
    which needs a control plane: that is said as such."""
    if not path.is_file():
        return None
    document = execution_pb2.ErrorDocument()
    document.ParseFromString(path.read_bytes())
    error = document.error
    if NO_CONTROLLER in error.message:
        return (
            f"task {task} calls other tasks, which needs the Flyte SDK's controller and a control plane;"
            " flyte-deploy run runs tasks that call no other task"
        )
    first_line = error.message.strip().splitlines()[0] if error.message.strip() else "no message"
    return f"task {task} raised {error.code or 'an error'}: {first_line}"


def run_task(
    spec: task_definition_pb2.TaskSpec,
    given: Mapping[str, str],
    *,
    keep_dir: Path | None = None,
    storage_env: Mapping[str, str] | None = None,
) -> RunResult:
    """Run the task of ``spec`` with ``given`` inputs (name to command-line text);
    ``storage_env`` is how it reaches its bundle (``storage.storage_environment``)."""
    template = spec.task_template
    task = template.id.name
    literals = build_inputs(spec, given)
    run_dir = Path(tempfile.mkdtemp(prefix="flyte-deploy-run-")) if keep_dir is None else keep_dir.resolve()
    try:
        work, io_dir = run_dir / "work", run_dir / "io"
        work.mkdir(parents=True)
        (io_dir / "outputs").mkdir(parents=True)
        inputs_file = io_dir / INPUTS_FILE
        inputs_file.write_bytes(common_pb2.Inputs(literals=named_literals(literals)).SerializeToString())
        for name in ("raw", "checkpoint", "base"):
            (io_dir / name).mkdir()
        paths = RunPaths(
            inputs=inputs_file.as_uri(),
            outputs=(io_dir / "outputs").as_uri(),
            raw_data=(io_dir / "raw").as_uri(),
            checkpoint=(io_dir / "checkpoint").as_uri(),
            run_base=(io_dir / "base").as_uri(),
        )
        argv = command_line(spec, paths)
        metadata = template.metadata
        timeout = metadata.timeout.ToTimedelta().total_seconds() if metadata.HasField("timeout") else None
        try:
            proc = subprocess.run(
                argv,
                cwd=work,
                env=runtime_environment(spec, storage_env),
                capture_output=True,
                text=True,
                timeout=timeout or None,
            )
        except subprocess.TimeoutExpired:
            raise RunError(f"task {task} timed out after {timeout:g}s") from None
        except OSError as exc:
            raise RunError(f"task {task}: cannot start {argv[0]}: {exc}") from None
        failure = sdk_runtime_error(io_dir / "outputs" / ERROR_FILE, task)
        if proc.returncode != 0 or failure:
            lines = proc.stderr.splitlines(keepends=True)
            errors = [line[len("error: ") :].rstrip("\n") for line in lines if line.startswith("error: ")]
            # the task's output and traceback; its error line becomes this command's own
            sys.stderr.write(proc.stdout + "".join(line for line in lines if not line.startswith("error: ")))
            if failure:
                raise RunError(failure)
            error = RUNTIME_ERRORS.get(proc.returncode, RunError)
            raise error(errors[-1] if errors else f"task {task} exited with code {proc.returncode}")
        outputs_file = io_dir / "outputs" / OUTPUTS_FILE
        outputs = common_pb2.Outputs()
        if template.interface.outputs.variables:
            if not outputs_file.is_file():
                raise RunError(f"task {task} finished without writing {OUTPUTS_FILE}")
            outputs.ParseFromString(outputs_file.read_bytes())
        values = {named.name: literal_to_json(named.value) for named in outputs.literals}
        return RunResult(task=task, version=template.id.version, outputs=values, stdout=proc.stdout, stderr=proc.stderr)
    finally:
        if keep_dir is None:
            shutil.rmtree(run_dir, ignore_errors=True)


def parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs as a dict; a malformed pair or a name given twice is a ``RunError``."""
    given: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise RunError(f"--input takes NAME=VALUE, got {reprlib.repr(pair)}")
        if name in given:
            raise RunError(f"--input {name} is given twice")
        given[name] = value
    return given
