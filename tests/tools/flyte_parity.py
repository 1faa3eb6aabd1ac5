"""Serialize the same ``import flyte`` files with flyte-deploy and with the Flyte SDK itself,
each in a fresh process, and compare the specs section by section.

The SDK side is ``flyte.deploy(*envs, dry_run=True, version=V)`` of each file's
environments (as ours deploys each file with ``--all``) after
``flyte.init(endpoint="dns:///localhost:1", insecure=True, ...)`` (nothing is contacted). Its
dry run leaves out what only a real ``flyte deploy`` adds (default inputs, documentation,
docstring descriptions of inputs and outputs, the environment's description): those come
from the SDK's own functions for them, called in the same process. The SDK's image
existence checks find no ``docker`` on its ``PATH``, so it assumes the images exist and
builds none, as it does without a daemon. Both sides read ``FLYTE_IMAGE_REGISTRY``.

    PYTHONPATH=src:. python -m tests.tools.flyte_parity tests/flyte_projects/*.py

Flyte apps are compared the same way (``sdk_apps``/``our_apps``, ``compare_apps``): the
SDK's side is the ``app.App`` its ``flyte.deploy(*apps, dry_run=True)`` returns, cut into
``APP_SECTIONS``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from flyte_deploy.testing import AUTOLOAD_VARIABLES

REPO = Path(__file__).resolve().parents[2]
VERSION = "parity-v1"
PROJECT, DOMAIN = "parity", "development"
#: the push registry both sides are configured with (Flyte's own variable, which both read);
#: without one the SDK's local builder picks localhost:30000 for a local endpoint
REGISTRY = "localhost:30000"
#: every section of a TaskSpec the comparison looks at, in report order
SECTIONS = (
    "id",
    "type",
    "metadata",
    "interface",
    "container.image",
    "container.args",
    "container.env",
    "container.resources",
    "container.other",
    "security_context",
    "custom",
    "k8s_pod",
    "reuse_policy",
    "extended_resources",
    "config",
    "default_inputs",
    "short_name",
    "environment",
    "documentation",
)

SDK_SCRIPT = r"""
import importlib, json, pathlib, sys, time
from google.protobuf import json_format
root = pathlib.Path(sys.argv[1]); modules = sys.argv[2].split(","); version = sys.argv[3]
project, domain = sys.argv[4], sys.argv[5]
started = time.perf_counter()
import flyte, flyte.extras
from flyte._deploy import _get_documentation_entity, _update_interface_inputs_and_outputs_docstring
flyte.init(endpoint="dns:///localhost:1", insecure=True, project=project, domain=domain, root_dir=root)
per_module = []
for name in modules:
    module = importlib.import_module(name)
    envs = []
    for value in vars(module).values():
        if isinstance(value, flyte.TaskEnvironment) and all(value is not e for e in envs):
            envs.append(value)
    per_module.append(envs)
imported = time.perf_counter()
deployments = [d for envs in per_module for d in flyte.deploy(*envs, dry_run=True, version=version)]
deployed = time.perf_counter()
all_envs = [e for envs in per_module for e in envs]
specs = {}
for deployment in deployments:
    for denv in deployment.envs.values():
        for entity in denv.deployed_entities:
            spec = entity.deployed_task
            task = next(t for e in all_envs + [d.env for d in deployment.envs.values()] for t in e.tasks.values()
                        if t.name == spec.task_template.id.name)
            env = task.parent_env()
            spec.default_inputs.extend(flyte.extras.serialize(task).default_inputs)
            spec.documentation.CopyFrom(_get_documentation_entity(task))
            spec.task_template.interface.CopyFrom(
                _update_interface_inputs_and_outputs_docstring(spec.task_template.interface, task.native_interface))
            if env.description:
                spec.environment.description = env.description
            specs.setdefault(spec.task_template.id.name, []).append(json_format.MessageToDict(spec))
print("@@JSON@@" + json.dumps({"specs": specs, "import_s": imported - started, "deploy_s": deployed - imported}))
"""

OURS_SCRIPT = r"""
import json, pathlib, sys, time
from google.protobuf import json_format
root = pathlib.Path(sys.argv[1]); files = sys.argv[2].split(","); version = sys.argv[3]
project, domain = sys.argv[4], sys.argv[5]
started = time.perf_counter()
from flyte_deploy.api import open_session
from flyte_deploy.lifecycle import deploy
from flyte_deploy.types import DeployRequest
specs, triggers = {}, {}
with open_session(root, options={"project": project, "domain": domain, "quiet": True}, dry_run=True) as session:
    for file in files:
        result = deploy(session, DeployRequest(mode="all", path=root / file), version=version)
        for task in result.tasks:
            specs.setdefault(task.name, []).append(json_format.MessageToDict(task.spec))
            triggers[task.name] = [json_format.MessageToDict(t) for t in task.triggers]
print("@@JSON@@" + json.dumps({"specs": specs, "triggers": triggers, "total_s": time.perf_counter() - started}))
"""


def _run(script: str, root: Path, names: list[str], version: str, extra_env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flyte-parity-home-") as home:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            "DO_NOT_TRACK": "1",
            "FLYTE_DISABLE_TELEMETRY": "1",
            "FLYTE_IMAGE_REGISTRY": REGISTRY,
            "PYTHONDONTWRITEBYTECODE": "1",
            # the kit's autoload switches: installed plugins must not police or change the specs
            **{name: os.environ[name] for name in AUTOLOAD_VARIABLES if name in os.environ},
            **extra_env,
        }
        proc = subprocess.run(
            [sys.executable, "-c", script, str(root), ",".join(names), version, PROJECT, DOMAIN],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if proc.returncode != 0 or "@@JSON@@" not in proc.stdout:
        raise RuntimeError(f"serializing {names} failed:\n{proc.stderr[-6000:]}")
    return json.loads(proc.stdout.split("@@JSON@@", 1)[1])


def sdk_specs(root: Path, files: list[str], version: str = VERSION) -> dict[str, Any]:
    """``{"specs": {task: [spec dict, ...]}, ...}`` from the Flyte SDK (a list: it may
    deploy one task twice)."""
    modules = [".".join(Path(f).with_suffix("").parts) for f in files]
    return _run(SDK_SCRIPT, root, modules, version, {})


def our_specs(root: Path, files: list[str], version: str = VERSION) -> dict[str, Any]:
    return _run(OURS_SCRIPT, root, files, version, {"PYTHONPATH": f"{REPO / 'src'}"})


def _image_cache(value: str) -> Any:
    return json.loads(gzip.decompress(base64.b64decode(value)))


def _args(args: list[str]) -> list[Any]:
    """Container args with the bundle's location (a local path in the SDK's dry run, the
    uploaded URI in ours) replaced by a marker and the image cache decoded."""
    out: list[Any] = []
    for index, arg in enumerate(args):
        previous = args[index - 1] if index else ""
        if previous == "--tgz":
            out.append("<bundle>")
        elif previous == "--image-cache":
            out.append(_image_cache(arg))
        else:
            out.append(arg)
    return out


def _pod(pod: dict[str, Any]) -> dict[str, Any]:
    pod = json.loads(json.dumps(pod))
    for container in pod.get("podSpec", {}).get("containers", []):
        if "args" in container:
            container["args"] = _args(container["args"])
    return pod


def sections(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (a TaskSpec as JSON) cut into the comparison's sections."""
    template = spec.get("taskTemplate", {})
    container = dict(template.get("container", {}))
    metadata = dict(template.get("metadata", {}))
    if metadata.get("codeBundleUri"):
        metadata["codeBundleUri"] = "<bundle>"
    return {
        "id": template.get("id"),
        "type": template.get("type"),
        "metadata": metadata,
        "interface": template.get("interface"),
        "container.image": container.pop("image", None),
        "container.args": _args(container.pop("args", [])),
        "container.env": container.pop("env", None),
        "container.resources": container.pop("resources", None),
        "container.other": container or None,
        "security_context": template.get("securityContext"),
        "custom": template.get("custom"),
        "k8s_pod": _pod(template["k8sPod"]) if "k8sPod" in template else None,
        "reuse_policy": template.get("reusePolicy"),
        "extended_resources": template.get("extendedResources"),
        "config": template.get("config"),
        "default_inputs": spec.get("defaultInputs"),
        "short_name": spec.get("shortName"),
        "environment": spec.get("environment"),
        "documentation": spec.get("documentation"),
    }


def compare(ours: dict[str, list[dict[str, Any]]], theirs: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Per task, the sections where our spec differs from the SDK's (``["missing"]`` when
    one side lacks the task). The SDK's last spec of a task counts."""
    report: dict[str, list[str]] = {}
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            report[name] = ["missing in " + ("the SDK" if name in ours else "flyte-deploy")]
            continue
        a, b = sections(ours[name][-1]), sections(theirs[name][-1])
        report[name] = [s for s in SECTIONS if a[s] != b[s]]
    return report


# -- apps ------------------------------------------------------------------------------------

#: every section of an app.App the comparison looks at, in report order
APP_SECTIONS = (
    "metadata.id",
    "metadata.labels",
    "metadata.code_bundle_uri",
    "metadata.source_code",
    "container.image",
    "container.command",
    "container.args",
    "container.env",
    "container.ports",
    "container.resources",
    "container.other",
    "pod",
    "autoscaling",
    "ingress",
    "security_context",
    "profile",
    "links",
    "timeouts",
    "inputs",
    "spec.other",
)

SDK_APPS_SCRIPT = r"""
import importlib, json, pathlib, sys
from google.protobuf import json_format
root = pathlib.Path(sys.argv[1]); modules = sys.argv[2].split(","); version = sys.argv[3]
project, domain = sys.argv[4], sys.argv[5]
import flyte, flyte.app
flyte.init(endpoint="dns:///localhost:1", insecure=True, project=project, domain=domain, root_dir=root)
apps = {}
for name in modules:
    module = importlib.import_module(name)
    envs = [v for v in vars(module).values() if isinstance(v, flyte.app.AppEnvironment)]
    for deployment in flyte.deploy(*envs, dry_run=True, version=version):
        for denv in deployment.envs.values():
            if isinstance(denv, flyte.app.DeployedAppEnvironment):
                apps[denv.env.name] = json_format.MessageToDict(denv.deployed_app.pb2)
print("@@JSON@@" + json.dumps({"apps": apps}))
"""

OURS_APPS_SCRIPT = r"""
import json, pathlib, sys
from google.protobuf import json_format
root = pathlib.Path(sys.argv[1]); files = sys.argv[2].split(","); version = sys.argv[3]
project, domain = sys.argv[4], sys.argv[5]
from flyte_deploy.api import open_session
from flyte_deploy.lifecycle import deploy
from flyte_deploy.types import DeployRequest
apps = {}
with open_session(root, options={"project": project, "domain": domain, "quiet": True}, dry_run=True) as session:
    for file in files:
        for app in deploy(session, DeployRequest(mode="all", path=root / file), version=version).apps:
            apps[app.name] = json_format.MessageToDict(app.spec)
print("@@JSON@@" + json.dumps({"apps": apps}))
"""


def sdk_apps(root: Path, files: list[str], version: str = VERSION) -> dict[str, Any]:
    """``{"apps": {app: App dict}}`` from ``flyte.deploy(dry_run=True)`` of each file's apps."""
    modules = [".".join(Path(f).with_suffix("").parts) for f in files]
    return _run(SDK_APPS_SCRIPT, root, modules, version, {})


def our_apps(root: Path, files: list[str], version: str = VERSION) -> dict[str, Any]:
    return _run(OURS_APPS_SCRIPT, root, files, version, {"PYTHONPATH": f"{REPO / 'src'}"})


def app_sections(app: dict[str, Any]) -> dict[str, Any]:
    """``app`` (an app.App as JSON) cut into the comparison's sections; the bundle's location
    (a local path in the SDK's dry run, the uploaded URI in ours) is a marker and the image
    cache is decoded, in the command as in task args."""
    metadata = app.get("metadata", {})
    spec = dict(app.get("spec", {}))
    container = dict(spec.pop("container", {}))
    return {
        "metadata.id": metadata.get("id"),
        "metadata.labels": metadata.get("labels"),
        "metadata.code_bundle_uri": "<bundle>" if metadata.get("codeBundleUri") else None,
        "metadata.source_code": metadata.get("sourceCode"),
        "container.image": container.pop("image", None),
        "container.command": _args(container.pop("command", [])),
        "container.args": container.pop("args", None),
        "container.env": container.pop("env", None),
        "container.ports": container.pop("ports", None),
        "container.resources": container.pop("resources", None),
        "container.other": container or None,
        "pod": spec.pop("pod", None),
        "autoscaling": spec.pop("autoscaling", None),
        "ingress": spec.pop("ingress", None),
        "security_context": spec.pop("securityContext", None),
        "profile": spec.pop("profile", None),
        "links": spec.pop("links", None),
        "timeouts": spec.pop("timeouts", None),
        "inputs": spec.pop("inputs", None),
        "spec.other": spec or None,
    }


def compare_apps(ours: dict[str, dict[str, Any]], theirs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per app, the sections where our app differs from the SDK's (``["missing ..."]`` when
    one side lacks it)."""
    report: dict[str, list[str]] = {}
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            report[name] = ["missing in " + ("the SDK" if name in ours else "flyte-deploy")]
            continue
        a, b = app_sections(ours[name]), app_sections(theirs[name])
        report[name] = [s for s in APP_SECTIONS if a[s] != b[s]]
    return report


def main() -> None:
    files = [Path(f).resolve() for f in sys.argv[1:]]
    root = files[0].parent
    names = [str(f.relative_to(root)) for f in files]
    ours, theirs = our_specs(root, names), sdk_specs(root, names)
    report = compare(ours["specs"], theirs["specs"])
    identical = [t for t, diff in report.items() if not diff]
    print(f"{len(identical)} of {len(report)} task(s) identical in every section")
    for task, diff in report.items():
        if diff:
            print(f"  {task}: {', '.join(diff)}")
            if os.environ.get("PARITY_VERBOSE"):
                a, b = sections(ours["specs"][task][-1]), sections(theirs["specs"][task][-1])
                for s in diff:
                    print(f"    {s}:\n      ours: {json.dumps(a[s])[:600]}\n      sdk:  {json.dumps(b[s])[:600]}")


if __name__ == "__main__":
    main()
