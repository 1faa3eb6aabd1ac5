"""Deploy speed beside its physical limit and beside the Flyte SDK, in one run (issue 15).

Every figure is the best of ``--repeat`` runs of a fresh process (wall time, start-up
included) with its peak memory (``ru_maxrss``) and the bytes it wrote (``wchar`` of
/proc/self/io: stdout, store, cache and archive writes alike). Printed with the load
average before and after, since the machine may be shared.

* the bench project of ``bench_bundle.py`` (2,000 imported modules, 20,000 data files):
  ``tar czf`` of the tree; ``flyte-deploy deploy --all envs.py --dry-run`` per copy style,
  with an empty signature cache (cold) and a warm one; a no-change redeploy (copy style all,
  embedded backend); ``flyte.deploy(dry_run=True)`` of the same project with the SDK;
* a three-environment project: the same dry runs, ours and the SDK's;
* ``--recursive`` over a 2,000-file tree (20 packages of 100 modules, one environment per
  package): files/s of our discovery and of the SDK's ``load_python_modules(recursive=True)``,
  each in a fresh process; and our whole ``deploy --recursive --dry-run``;
* registration of 1,000 tasks (look-up, then DeployTask) to the test control plane
  (tests/fixtures/flyte_server.py, a real uvicorn server of flyteidl2's TaskService, in its
  own process) with ``remote.concurrency`` 1 and 16, with no added latency and with 5 ms per
  DeployTask (a control plane's latency).

Byte-code is cached (``PYTHONPYCACHEPREFIX``; ``PYTHONDONTWRITEBYTECODE`` is dropped), as an
installed package's would be. The SDK is the one this interpreter imports, or with
``--sdk-venv DIR`` one installed (``pip install flyte==2.12.1``) into a throwaway virtualenv.

    python bench/speed.py [--repeat 3] [--keep DIR] [--sdk-venv DIR] [--skip-registration]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "bench")]

from bench_bundle import generate, tree_size

SDK_VERSION = "2.12.1"
#: runs ``sys.argv[1:]`` as ``-m MODULE ARGS`` or ``SCRIPT ARGS``, then writes its peak RSS
#: and bytes written to $BENCH_REPORT
LAUNCHER = r"""
import json, os, resource, runpy, sys
report = os.environ.pop("BENCH_REPORT")
target, sys.argv = sys.argv[1], sys.argv[1:]
try:
    if target == "-m":
        sys.argv = sys.argv[1:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(target, run_name="__main__")
finally:
    with open("/proc/self/io") as io:
        wchar = int(next(line for line in io if line.startswith("wchar")).split()[1])
    with open(report, "w") as out:
        json.dump({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "wchar": wchar}, out)
"""
SDK_DEPLOY = r"""
import sys
from pathlib import Path
import flyte
root = Path.cwd()
sys.path.insert(0, str(root))
module = __import__(sys.argv[1])
flyte.init(endpoint="dns:///127.0.0.1:9", insecure=True, root_dir=root)  # never contacted in a dry run
envs = [v for v in vars(module).values() if isinstance(v, flyte.TaskEnvironment)]
flyte.deploy(*envs, dry_run=True, copy_style=sys.argv[2])
"""
SDK_RECURSIVE = r"""
import sys, time
from pathlib import Path
started = time.perf_counter()
from flyte._utils.module_loader import load_python_modules
root = Path.cwd()
sys.path.insert(0, str(root))
modules, failed = load_python_modules(root / sys.argv[1], root, recursive=True)
assert not failed, failed
print("RESULT", len(modules), time.perf_counter() - started)
"""
OURS_RECURSIVE = r"""
import sys, time
from pathlib import Path
started = time.perf_counter()
from flyte_deploy.builtin.discover import discover
from flyte_deploy.types import DeployRequest
root = Path.cwd()
sys.path.insert(0, str(root))
found = discover(DeployRequest(mode="recursive", path=root / sys.argv[1]), root)
print("RESULT", len(found.environments), time.perf_counter() - started)
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


class Runner:
    def __init__(self, work: Path, repeat: int, sdk_python: str) -> None:
        self.work, self.repeat, self.sdk_python = work, repeat, sdk_python
        self.launcher = work / "launcher.py"
        self.launcher.write_text(LAUNCHER)
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith("FLYTE_DEPLOY_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        self.env.update(
            {
                "PYTHONPATH": str(REPO / "src"),
                "PYTHONPYCACHEPREFIX": str(work / "pycache"),
                "FLYTE_DEPLOY_CACHE_DIR": str(work / "cache"),
            }
        )
        self.rows: list[tuple[str, float, int, int, str]] = []

    def run(
        self,
        label: str,
        argv: list[str],
        cwd: Path,
        *,
        python: str = sys.executable,
        before: object = None,
        note: str = "",
        extra_env: dict[str, str] | None = None,
    ) -> float:
        """Best wall time of ``repeat`` runs of ``python launcher argv``; ``before()`` runs
        (untimed) before each."""
        times, peak, wrote = [], 0, 0
        report = self.work / "report.json"
        for _ in range(self.repeat):
            if callable(before):
                before()
            env = {**self.env, **(extra_env or {}), "BENCH_REPORT": str(report)}
            started = time.perf_counter()
            subprocess.run(
                [python, str(self.launcher), *argv],
                cwd=cwd,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            times.append(time.perf_counter() - started)
            measured = json.loads(report.read_text())
            peak, wrote = max(peak, measured["maxrss_kib"]), measured["wchar"]
        self.rows.append((label, min(times), peak, wrote, note))
        return min(times)

    def reference(self, label: str, command: str) -> float:
        times = []
        for _ in range(self.repeat):
            started = time.perf_counter()
            subprocess.run(command, shell=True, check=True)
            times.append(time.perf_counter() - started)
        self.rows.append((label, min(times), 0, 0, "reference"))
        return min(times)

    def ours(self, *args: str) -> list[str]:
        return ["-m", "flyte_deploy", *args]

    def print(self, title: str, base: float, base_name: str) -> None:
        print(f"\n{title}  ({load()})")
        print(f"{'what':<50}{'seconds':>9}{'x ' + base_name:>12}{'peak MiB':>10}{'wrote MB':>10}  note")
        for label, seconds, peak, wrote, note in self.rows:
            print(
                f"{label:<50}{seconds:>9.3f}{seconds / base:>12.2f}{(peak / 1024 if peak else 0):>10.1f}"
                f"{wrote / 1e6:>10.2f}  {note}"
            )
        self.rows.clear()


def make_sdk_venv(directory: Path) -> str:
    python = directory / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"flyte=={SDK_VERSION}"], check=True)
    return str(python)


def bench_project(runner: Runner, root: Path) -> None:
    if not (root / "envs.py").exists():
        generate(root)
    sdk_envs = root / "envs_sdk.py"
    if not sdk_envs.exists():
        text = (root / "envs.py").read_text()
        sdk_envs.write_text(
            text.replace("import flyte_deploy as fd", "import flyte").replace(
                "fd.TaskEnvironment", "flyte.TaskEnvironment"
            )
        )
    files, size = tree_size(root)
    print(f"bench project: {root} ({files:,} files, {size / 1e6:.1f} MB)")
    out = runner.work / "ref.tar.gz"
    tar = runner.reference("tar czf (the tree)", f"tar czf '{out}' -C '{root}' .")
    runner.reference("tar cf | gzip -1 (the tree)", f"tar cf - -C '{root}' . | gzip -1 > '{out}'")
    cache = runner.work / "cache"

    def cold() -> None:
        shutil.rmtree(cache, ignore_errors=True)

    for style in ("all", "loaded_modules"):
        dry = runner.ours("deploy", "--all", "envs.py", "--copy-style", style, "--dry-run", "--output", "json", "-q")
        runner.run(f"ours {style} dry run, cold cache", dry, root, before=cold)
        runner.run(f"ours {style} dry run, warm cache", dry, root)
        runner.run(
            f"SDK {style} flyte.deploy(dry_run=True)",
            [str(runner.work / "sdk_deploy.py"), "envs_sdk", style],
            root,
            python=runner.sdk_python,
        )
    store = (runner.work / "store").as_uri()
    real = runner.ours("deploy", "--all", "envs.py", "--copy-style", "all", "--store", store, "--output", "json", "-q")
    runner.run("ours all deploy, cold cache (embedded backend)", real, root, before=cold, note="archive written")
    runner.run("ours all no-change redeploy", real, root, note="0 bundle bytes expected")
    stored = next((runner.work / "store" / "bundles").iterdir())
    print(f"(stored bundle {stored.name[:16]}... {stored.stat().st_size / 1e6:.1f} MB, unchanged by redeploys)")
    runner.print("bench project", tar, "tar czf")


def tiny_project(runner: Runner, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    body = (
        '\nbase = {m}.TaskEnvironment(name="base")\nmid = {m}.TaskEnvironment(name="mid", depends_on=[base])\n'
        'top = {m}.TaskEnvironment(name="top", depends_on=[mid])\n\n\n'
        "@base.task\ndef one(x: int) -> int:\n    return x + 1\n\n\n"
        "@mid.task\ndef two(x: int) -> int:\n    return x * 2\n\n\n"
        "@top.task\ndef three(x: int) -> int:\n    return x - 3\n"
    )
    (root / "envs.py").write_text("import flyte_deploy as fd\n" + body.format(m="fd"))
    (root / "envs_sdk.py").write_text("import flyte\n" + body.format(m="flyte"))
    sdk = runner.run(
        "SDK flyte.deploy(dry_run=True)",
        [str(runner.work / "sdk_deploy.py"), "envs_sdk", "loaded_modules"],
        root,
        python=runner.sdk_python,
    )
    runner.run(
        "ours deploy --all --dry-run",
        runner.ours("deploy", "--all", "envs.py", "--dry-run", "--output", "json", "-q"),
        root,
    )
    runner.run("ours --help", runner.ours("--help"), root)
    runner.run("python (an empty script)", [str(runner.work / "pass.py")], root)
    runner.print("three-environment project", sdk, "SDK")


def recursive_tree(runner: Runner, root: Path) -> None:
    tree = root / "flows"
    if not tree.exists():
        for p in range(20):
            package = tree / f"team{p:02d}"
            package.mkdir(parents=True)
            (package / "__init__.py").write_text("")
            for m in range(99):
                (package / f"step{m:03d}.py").write_text(f"def step_{m}(x: int) -> int:\n    return x + {m}\n")
            for name, module in (("envs.py", "flyte_deploy as fd"), ("envs_sdk.py", "flyte")):
                alias = "fd" if "deploy" in module else "flyte"
                (package / name).write_text(
                    f"import {module}\n\nenv = {alias}.TaskEnvironment(name='team{p:02d}{'_sdk' * (alias == 'flyte')}')"
                    f"\n\n\n@env.task\ndef run(x: int) -> int:\n    return x\n"
                )
    (tree / "__init__.py").write_text("")
    files = sum(1 for _ in tree.rglob("*.py"))
    print(f"\n--recursive tree: {tree} ({files:,} Python files)")
    results = {}
    for who, script, python in (("ours", OURS_RECURSIVE, sys.executable), ("SDK", SDK_RECURSIVE, runner.sdk_python)):
        path = runner.work / f"recursive_{who}.py"
        path.write_text(script)
        best = None
        for _ in range(runner.repeat):
            out = subprocess.run(
                [python, str(path), "flows"], cwd=root, env=runner.env, check=True, capture_output=True, text=True
            ).stdout
            result = next(line for line in out.splitlines() if line.startswith("RESULT")).split()
            best = min(best or float("inf"), float(result[2]))
        results[who] = best
        print(f"{who:<5} recursive load in-process: {best:.3f} s, {files / best:,.0f} files/s")
    runner.run(
        "ours deploy --recursive flows --dry-run",
        runner.ours("deploy", "--recursive", "flows", "--dry-run", "--output", "json", "-q"),
        root,
    )
    runner.print("--recursive (whole command)", results["SDK"], "SDK load")


SERVER = r"""
import sys, time
from tests.fixtures.flyte_server import start_flyte_server
server = start_flyte_server(deploy_delay=float(sys.argv[1]))
print(server.port, flush=True)
sys.stdin.read()  # until the bench closes it
"""


def registration(count: int = 1000) -> None:
    """``count`` tasks registered to the control plane served by another process (so the
    server does not share this process's interpreter lock)."""
    from flyteidl2.task import task_definition_pb2

    from flyte_deploy.builtin.remote_backend import RemoteDeploy, look_up, register
    from flyte_deploy.remote import TaskServiceConnection
    from flyte_deploy.types import SerializedTask
    from tests.fixtures.flyte_server import settings_for

    tasks = []
    for i in range(count):
        spec = task_definition_pb2.TaskSpec(short_name=f"t{i}")
        tid = spec.task_template.id
        tid.project, tid.domain, tid.name, tid.version = "p", "d", f"env.t{i:04d}", "v1"
        spec.task_template.container.image = "img:1"
        tasks.append(SerializedTask(environment="env", name=tid.name, spec=spec))
    print(f"\nregistration of {count} tasks to the test control plane in another process ({load()})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    for delay in (0.0, 0.005):
        for concurrency in (1, 16):
            server = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(delay)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            try:
                port = int(server.stdout.readline())
                settings = settings_for(f"http://127.0.0.1:{port}", timeout=30, concurrency=concurrency)
                with TaskServiceConnection(settings, None) as connection:
                    started = time.perf_counter()
                    status = look_up(connection, tasks)
                    looked = time.perf_counter() - started
                    register(RemoteDeploy(connection, status), tasks)
                    elapsed = time.perf_counter() - started
                    assert len(connection.list_tasks("p", "d")) == count
                print(
                    f"  {delay * 1000:3.0f} ms per DeployTask, concurrency {concurrency:>2}: look-up + register"
                    f" {elapsed:6.2f} s = {count / elapsed:6.0f} tasks/s (look-up {looked:.2f} s)"
                )
            finally:
                server.stdin.close()
                server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate the projects here and keep them")
    parser.add_argument("--sdk-venv", type=Path, help="install the SDK into this throwaway virtualenv")
    parser.add_argument("--skip-registration", action="store_true")
    args = parser.parse_args()
    print(f"{load()}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    work = Path(tempfile.mkdtemp(prefix="flyte-deploy-speed-"))
    keep = args.keep.resolve() if args.keep else work / "projects"
    try:
        sdk_python = make_sdk_venv(args.sdk_venv.resolve()) if args.sdk_venv else sys.executable
        (work / "sdk_deploy.py").write_text(SDK_DEPLOY)
        (work / "pass.py").write_text("")
        runner = Runner(work, args.repeat, sdk_python)
        bench_project(runner, keep / "bench")
        tiny_project(runner, keep / "tiny")
        recursive_tree(runner, keep / "recursive")
        if not args.skip_registration:
            registration()
        print(f"\ndone ({load()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
