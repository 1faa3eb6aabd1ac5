"""The task runtime: what a container's ``python -m flyte_deploy.runtime ARGS`` does.

    --inputs URI         a serialized flyteidl2 ``task.Inputs`` (named literals), any fsspec URL
    --outputs-path URI   where ``outputs.pb`` (a ``task.Outputs``, names ``o0``, ``o1``...) is
                         written; files a task returns go under ``URI/data/oN/``
    --version V          the deployed version (informational)
    --tgz URI --dest D   fetch the code bundle and unpack it into D, which goes first on sys.path
    --module M --function F   the task to load: attribute F of module M

The runtime imports the module from the bundle (or, without ``--tgz``, from what is installed),
converts the inputs by the function's type hints, calls it (a coroutine runs under asyncio),
and writes the outputs. Any failure prints one ``error:`` line on stderr (after the task's
traceback, if it raised) and exits with code 14 (``ExitCode.RUN_FAILED``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flyteidl2.task import common_pb2

from .bundle import fetch as bundle_fetch
from .errors import ExitCode, FlyteDeployError, RunError
from .interface import (
    UnsupportedType,
    a_type,
    from_literal,
    input_parameters,
    named_literals,
    output_types,
    to_literal,
)
from .sdk import Dir, File, Task
from .storage import OPTIONS_ENV, filesystem, join

INPUTS_FILE = "inputs.pb"
OUTPUTS_FILE = "outputs.pb"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flyte_deploy.runtime", description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--outputs-path", required=True)
    parser.add_argument("--version", default="")
    parser.add_argument("--tgz", default=None)
    parser.add_argument("--dest", default=".")
    parser.add_argument("--module", required=True)
    parser.add_argument("--function", required=True)
    return parser.parse_args(list(argv))


def fetch_bundle(uri: str, dest: Path) -> list[str]:
    """Download the bundle at ``uri``, verify it against the digest in its name and unpack
    it into ``dest``. Filesystem options (an S3 endpoint, credentials) come from
    ``FLYTE_DEPLOY_STORAGE_OPTIONS`` (JSON)."""
    try:
        options = json.loads(os.environ.get(OPTIONS_ENV) or "{}")
    except json.JSONDecodeError as exc:
        raise RunError(f"{OPTIONS_ENV} is not valid JSON: {exc.msg}") from None
    return bundle_fetch.fetch_bundle(uri, dest, options)


def _missing_module(exc: ModuleNotFoundError, where: str) -> RunError:
    return RunError(
        f"{where}: module {exc.name!r} is not in the code bundle nor installed"
        " (an incomplete bundle? try --copy-style all)"
    )


def load_task(module_name: str, function: str, bundle: str | None) -> tuple[Callable[..., Any], str]:
    """The function to call and the task's name (``env.function`` for a ``Task``)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            source = f"the code bundle {bundle}" if bundle else "the image (no code bundle)"
            raise RunError(f"module {module_name!r} of task {function} is not in {source}") from None
        raise _missing_module(exc, f"importing {module_name}") from None
    except Exception as exc:
        raise RunError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    target = getattr(module, function, None)
    if isinstance(target, Task):
        return target.func, target.name
    if callable(target):
        return target, f"{module_name}.{function}"
    raise RunError(f"module {module_name} ({module.__file__}) has no task {function!r}")


def read_inputs(uri: str, func: Callable[..., Any], task_name: str) -> dict[str, Any]:
    """The keyword arguments of the call, converted by the function's type hints."""
    fs, path = filesystem(uri)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise RunError(f"task {task_name}: no inputs at {uri}") from None
    message = common_pb2.Inputs()
    message.ParseFromString(data)
    types = {name: tp for name, tp, _ in input_parameters(func)}
    kwargs: dict[str, Any] = {}
    for named in message.literals:
        if named.name not in types:
            raise RunError(f"task {task_name} has no input {named.name!r} (inputs: {', '.join(types) or 'none'})")
        try:
            kwargs[named.name] = from_literal(named.value, types[named.name])
        except UnsupportedType as exc:
            raise RunError(
                f"task {task_name}: input {named.name!r} is not {a_type(types[named.name])}: {exc}"
            ) from None
    return kwargs


def _upload(value: Any, prefix: str) -> Any:
    """A returned ``File``/``Dir`` with a local path, copied under the outputs prefix."""
    if not isinstance(value, (File, Dir)) or "://" in value.path:
        return value
    source = Path(value.path)
    target = join(prefix, source.name)
    fs, path = filesystem(target)
    fs.put(str(source), path, recursive=isinstance(value, Dir))
    return type(value)(path=target)


def write_outputs(result: Any, func: Callable[..., Any], uri: str, task_name: str) -> list[str]:
    """Write ``outputs.pb`` under ``uri``; returns the output names."""
    types = output_types(func)
    if len(types) > 1 and (not isinstance(result, tuple) or len(result) != len(types)):
        raise RunError(f"task {task_name} must return a tuple of {len(types)} values, got {result!r}")
    values = list(result) if len(types) > 1 else [result][: len(types)]
    literals = {}
    for index, (value, tp) in enumerate(zip(values, types, strict=True)):
        name = f"o{index}"
        try:
            literals[name] = to_literal(_upload(value, join(uri, "data", name)), tp)
        except UnsupportedType as exc:
            raise RunError(f"task {task_name}: output {name} is not {a_type(tp)}: {exc}") from None
    fs, path = filesystem(join(uri, OUTPUTS_FILE))
    fs.pipe_file(path, common_pb2.Outputs(literals=named_literals(literals)).SerializeToString(deterministic=True))
    return list(literals)


def call(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    result = func(**kwargs)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def run(argv: Sequence[str]) -> None:
    """Load, run and store one task; ``RunError`` on any failure."""
    args = parse_args(argv)
    dest = Path(args.dest).resolve()
    if args.tgz:
        fetch_bundle(args.tgz, dest)
    sys.path.insert(0, str(dest))
    os.chdir(dest)
    func, task_name = load_task(args.module, args.function, args.tgz)
    try:
        kwargs = read_inputs(args.inputs, func, task_name)
    except UnsupportedType as exc:
        raise RunError(f"task {task_name}: {exc}") from None
    try:
        result = call(func, kwargs)
    except ModuleNotFoundError as exc:
        traceback.print_exc()
        raise _missing_module(exc, f"task {task_name}") from None
    except Exception as exc:
        traceback.print_exc()
        raise RunError(f"task {task_name} raised {type(exc).__name__}: {exc}") from None
    write_outputs(result, func, args.outputs_path, task_name)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except FlyteDeployError as exc:  # a bad or unsafe bundle keeps its own exit code
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
