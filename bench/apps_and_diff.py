"""Apps, diff, history and serve, in one run beside ``tar czf`` and the Flyte SDK.

    PYTHONPATH=src python bench/apps_and_diff.py [ENVS=20] [APPS=10] [ROUNDS=3]

A generated ``import flyte`` project of ENVS task environments (five tasks each) and APPS
FastAPI app environments, each app depending on one task environment. Every figure is the
wall clock of a fresh process, the best of ROUNDS:

* ``tar czf`` of the project tree (the floor for reading and compressing the code);
* ``flyte-deploy deploy --all --dry-run`` beside the SDK's ``flyte.deploy(*envs, dry_run=True)``
  over the same environments, apps included;
* a real deploy to the embedded store (the first one, then a no-change redeploy);
* ``flyte-deploy diff --all`` with nothing changed (exit 0) and after one task changed (exit 20);
* ``flyte-deploy history ENV.TASK`` after the deploys;
* ``flyte-deploy serve APP --port 0`` from start to the URL printed (the server answering),
  then stopped with SIGINT.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
TASKS_PER_ENV = 5

HEADER = """
import fastapi
import flyte
from flyte.app.extras import FastAPIAppEnvironment

image = "docker.io/library/python:3.11-slim"  # prebuilt: the deploys build no image
envs = []
"""
ENV = """
env_{e} = flyte.TaskEnvironment(name="bench-{e}", image=image, resources=flyte.Resources(cpu=1, memory="1Gi"))
envs.append(env_{e})
"""
TASK = '''
@env_{e}.task(retries=1)
async def task_{e}_{t}(x: int, label: str = "t{t}") -> str:
    """Task {t} of environment {e}."""
    return f"{{label}}:{{x + {t}}}"
'''
APP = """
api_{a} = fastapi.FastAPI()


@api_{a}.get("/ping")
def ping_{a}() -> dict[str, int]:
    return {{"app": {a}}}


app_{a} = FastAPIAppEnvironment(name="bench-app-{a}", app=api_{a}, port={port}, requires_auth=False, image=image,
                                depends_on=[env_{e}], resources=flyte.Resources(cpu=1, memory="1Gi"))
envs.append(app_{a})
"""
SDK = """
import pathlib, sys, time
sys.path.insert(0, ".")
import flyte, flow
flyte.init(endpoint="dns:///localhost:1", insecure=True, project="p", domain="d", root_dir=pathlib.Path.cwd())
started = time.perf_counter()
flyte.deploy(*flow.envs, dry_run=True)
print(f"@@{time.perf_counter() - started}")
"""


def write_project(root: Path, envs: int, apps: int) -> None:
    body = [HEADER]
    for e in range(envs):
        body.append(ENV.format(e=e))
        body += [TASK.format(e=e, t=t) for t in range(TASKS_PER_ENV)]
    body += [APP.format(a=a, e=a % envs, port=9000 + a) for a in range(apps)]
    (root / "flow.py").write_text("\n".join(body))


def timed(argv: list[str], cwd: Path, env: dict[str, str], expect: int = 0) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != expect:
        sys.exit(f"{' '.join(argv[:5])} exited {proc.returncode}, expected {expect}:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def time_to_url(cwd: Path, env: dict[str, str]) -> float:
    """Seconds from starting ``serve`` to its URL answering; the server is then stopped."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flyte_deploy", "serve", "bench-app-0", "--port", "0"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    with urllib.request.urlopen(f"{url}/ping", timeout=30) as answer:
        answer.read()
    elapsed = time.perf_counter() - started
    proc.send_signal(signal.SIGINT)
    if proc.wait(timeout=30) != 0:
        sys.exit("serve did not stop cleanly on SIGINT")
    return elapsed


def main(envs: int, apps: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="flyte-bench-apps-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        write_project(root, envs, apps)
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": tmp,
            "DO_NOT_TRACK": "1",
            "FLYTE_IMAGE_REGISTRY": "localhost:30000",
        }
        ours_env = {**env, "PYTHONPATH": str(SRC)}
        cli = [sys.executable, "-m", "flyte_deploy"]
        figures: dict[str, list[float]] = {}

        def record(label: str, seconds: float) -> None:
            figures.setdefault(label, []).append(seconds)

        for _ in range(rounds):
            record("tar czf of the tree", timed(["tar", "czf", f"{tmp}/tree.tgz", "."], root, env)[0])
            record(
                "flyte-deploy deploy --all --dry-run",
                timed([*cli, "deploy", "--all", "flow.py", "--dry-run", "-q"], root, ours_env)[0],
            )
            elapsed, out = timed([sys.executable, "-c", SDK], root, env)
            record("flyte.deploy(*envs, dry_run=True) (process)", elapsed)
            record("flyte.deploy(*envs, dry_run=True) (the call)", float(out.rsplit("@@", 1)[1]))
            shutil.rmtree(root / ".flyte-deploy", ignore_errors=True)
            record(
                "deploy --all to the embedded store (first)",
                timed([*cli, "deploy", "--all", "flow.py", "-q"], root, ours_env)[0],
            )
            record(
                "deploy --all again (no change)", timed([*cli, "deploy", "--all", "flow.py", "-q"], root, ours_env)[0]
            )
            record(
                "diff --all, nothing changed (exit 0)",
                timed([*cli, "diff", "--all", "flow.py", "-q"], root, ours_env)[0],
            )
            source = (root / "flow.py").read_text()
            (root / "flow.py").write_text(source.replace("@env_0.task(retries=1)", "@env_0.task(retries=2)", 1))
            record(
                "diff --all, one task changed (exit 20)",
                timed([*cli, "diff", "--all", "flow.py", "-q"], root, ours_env, expect=20)[0],
            )
            (root / "flow.py").write_text(source)
            record("history bench-0.task_0_0", timed([*cli, "history", "bench-0.task_0_0"], root, ours_env)[0])
            record("serve bench-app-0: start to answering URL", time_to_url(root, ours_env))

        load = os.getloadavg()[0]
        print(
            f"{envs} task environments x {TASKS_PER_ENV} tasks + {apps} FastAPI apps, best of {rounds},"
            f" python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {load:.2f}"
        )
        for label, runs in figures.items():
            print(f"  {label:<48}{min(runs):7.3f} s")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [20, 10, 3][len(args) :]))
