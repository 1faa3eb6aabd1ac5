"""Serialize the same task file with flyte-deploy and with the real Flyte v2 SDK and list
where the interface, default inputs, container and metadata differ.

    python -m venv /tmp/flyte-venv && /tmp/flyte-venv/bin/pip install flyte==2.12.1
    PYTHONPATH=src python tests/tools/compare_with_flyte_sdk.py --venv /tmp/flyte-venv \\
        tests/tools/sdk_parity_tasks.py examples/ml_pipeline/workflow.py

The task files import ``flyte_deploy as fd``; in the SDK's virtualenv a small shim module of
that name maps ``fd.TaskEnvironment``, ``fd.Resources``... onto ``flyte``'s own classes, so
both sides read the very same source. The SDK is never imported into this process.
Findings are recorded in docs/serialization.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from google.protobuf import json_format

SHIM = '''
"""flyte_deploy's user-facing names mapped onto the Flyte SDK (comparison only)."""
import flyte
import flyte.io

Resources = flyte.Resources
Secret = flyte.Secret
File = flyte.io.File
Dir = flyte.io.Dir


def Cache(behavior="auto", version=None, serialize=False):
    return flyte.Cache(behavior=behavior, version_override=version, serialize=serialize)


class _Env(flyte.TaskEnvironment):
    def task(self, _func=None, **options):
        for unsupported in ("resources", "env_vars", "secrets", "docs"):
            options.pop(unsupported, None)  # per-task overrides go through .override() in the SDK
        return super().task(_func, **options) if _func is not None else super().task(**options)


def TaskEnvironment(name, *, image=None, resources=None, env_vars=None, secrets=(), depends_on=(), cache=None,
                    interruptible=False, description=None):
    return _Env(name=name, resources=resources, env_vars=env_vars, secrets=list(secrets) or None,
                depends_on=list(depends_on), cache=cache or "disable", interruptible=interruptible,
                description=description)
'''

SDK_DUMP = """
import importlib, json, sys
from pathlib import Path
from google.protobuf import json_format
import flyte
from flyte.extras._serialize import serialize

root, path = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(root))
module = importlib.import_module(".".join(path.relative_to(root).with_suffix("").parts))
flyte.init(endpoint="dns:///localhost:1", insecure=True, project="p", domain="d")
envs = [v for v in vars(module).values() if isinstance(v, flyte.TaskEnvironment)]
out = {}
for env in envs:
    for deployment in flyte.deploy(env, dry_run=True, version="v1"):
        for denv in deployment.envs.values():
            for deployed in denv.deployed_entities:
                spec = deployed.deployed_task
                out[spec.task_template.id.name] = json_format.MessageToDict(spec)
for env in envs:
    for task in env.tasks.values():
        name = task.name
        if name in out:
            out[name]["defaultInputs"] = json_format.MessageToDict(serialize(task)).get("defaultInputs", [])
print("@@JSON@@" + json.dumps(out))
"""


def sdk_specs(venv: Path, root: Path, path: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flyte-shim-") as shim_dir:
        (Path(shim_dir) / "flyte_deploy.py").write_text(textwrap.dedent(SHIM))
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-c", SDK_DUMP, str(root), str(path)],
            cwd=root,
            env={"PYTHONPATH": shim_dir, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0 or "@@JSON@@" not in proc.stdout:
        sys.exit(f"the Flyte SDK failed on {path}:\n{proc.stderr[-6000:]}")
    return json.loads(proc.stdout.split("@@JSON@@", 1)[1])


def our_specs(root: Path, path: Path) -> dict[str, Any]:
    from flyte_deploy.api import open_session
    from flyte_deploy.lifecycle import deploy
    from flyte_deploy.types import DeployRequest

    with open_session(root, options={"project": "p", "domain": "d", "quiet": True}, dry_run=True) as session:
        result = deploy(session, DeployRequest(mode="all", path=path), version="v1")
    return {t.name: json_format.MessageToDict(t.spec) for t in result.tasks}


def _args(args: list[str]) -> dict[str, Any]:
    """The container args reduced to what both runtimes need to load and run the task."""

    def after(flag: str) -> str | None:
        return args[args.index(flag) + 1] if flag in args else None

    module = after("--module") or after("mod")
    function = after("--function") or after("instance")
    return {
        "inputs": after("--inputs"),
        "outputs": after("--outputs-path"),
        "version": after("--version"),
        "bundle": "--tgz" in args,
        "dest": after("--dest"),
        "module": module,
        "function": function,
    }


def _variables(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["key"]: e["value"].get("type") for e in entries}


def normalize(spec: dict[str, Any]) -> dict[str, Any]:
    template = spec["taskTemplate"]
    container = template.get("container", {})
    metadata = template.get("metadata", {})
    return {
        "id": {k: v for k, v in template["id"].items() if k != "version"},
        "type": template["type"],
        "interface.inputs": _variables(template.get("interface", {}).get("inputs", {}).get("variables", [])),
        "interface.outputs": _variables(template.get("interface", {}).get("outputs", {}).get("variables", [])),
        "default_inputs": {d["name"]: d["parameter"].get("default") for d in spec.get("defaultInputs", [])},
        "container.args": _args(container.get("args", [])),
        "container.resources": container.get("resources", {}),
        "container.env": {e["key"]: e["value"] for e in container.get("env", []) if e["key"] != "_F_SYS_PATH"},
        "security_context": template.get("securityContext", {}),
        "extended_resources": template.get("extendedResources", {}),
        "metadata": {
            k: metadata.get(k) for k in ("retries", "timeout", "interruptible", "discoverable", "cacheSerializable")
        },
        "short_name": spec.get("shortName"),
        "environment": spec.get("environment"),
    }


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    lines = []
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            lines.append(f"{name}: only in {'flyte-deploy' if name in ours else 'the Flyte SDK'}")
            continue
        a, b = normalize(ours[name]), normalize(theirs[name])
        for section in a:
            if a[section] == b[section]:
                continue
            if isinstance(a[section], dict) and isinstance(b[section], dict):
                for key in sorted(set(a[section]) | set(b[section])):
                    if a[section].get(key) != b[section].get(key):
                        lines.append(
                            f"{name} {section}.{key}:\n    flyte-deploy: {json.dumps(a[section].get(key))}"
                            f"\n    flyte SDK:    {json.dumps(b[section].get(key))}"
                        )
            else:
                lines.append(
                    f"{name} {section}:\n    flyte-deploy: {json.dumps(a[section])}\n"
                    f"    flyte SDK:    {json.dumps(b[section])}"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/flyte-venv"))
    parser.add_argument("files", nargs="+", type=Path)
    options = parser.parse_args()
    for path in options.files:
        path = path.resolve()
        root = path.parent
        differences = compare(our_specs(root, path), sdk_specs(options.venv, root, path))
        print(f"== {path.name}: {len(differences)} difference(s)")
        for line in differences:
            print(line)


if __name__ == "__main__":
    main()
