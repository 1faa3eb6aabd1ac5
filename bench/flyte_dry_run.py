"""A generated ``import flyte`` project of N tasks: ``flyte-deploy deploy --all --dry-run``
beside ``flyte.deploy(*envs, dry_run=True)``, each in a fresh process, in the same run.

    PYTHONPATH=src python bench/flyte_dry_run.py [N=200] [ROUNDS=3]

Both derive their version (none is given). Times are wall clock of the whole process
(interpreter start, imports, discovery, bundle, serialization) and, for the SDK, of the
``flyte.deploy`` call alone; the best of ROUNDS runs each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ENVS = 20

HEADER = """
import dataclasses
from typing import Optional

import flyte

@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0

image = flyte.Image.from_debian_base().with_pip_packages("six")
envs = []
for index in range({envs}):
    envs.append(flyte.TaskEnvironment(name=f"bench-{{index}}", image=image, depends_on=envs[-1:],
                                      resources=flyte.Resources(cpu=1, memory="1Gi")))
    globals()[f"env_{{index}}"] = envs[-1]  # discovery finds module variables
"""
TASK = '''
@envs[{env}].task(retries=1, cache="auto")
async def task_{i}(p: Point, items: list[dict[str, float]], mode: Optional[str] = None,
                   n: int = {i}) -> tuple[Point, int]:
    """Task {i}.

    Args:
        p: a point
    """
    return p, n
'''
SDK = """
import pathlib, sys, time
sys.path.insert(0, ".")
import flyte, flow
flyte.init(endpoint="dns:///localhost:1", insecure=True, project="p", domain="d", root_dir=pathlib.Path.cwd())
started = time.perf_counter()
# as `flyte deploy --all` does (every environment, in load order), or the last one (its depends_on closure)
flyte.deploy(*(flow.envs if sys.argv[1] == "all" else flow.envs[-1:]), dry_run=True)
print(f"@@{time.perf_counter() - started}")
"""


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{argv[:3]} failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def main(count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="flyte-bench-") as tmp:
        root = Path(tmp)
        body = [HEADER.format(envs=ENVS)] + [TASK.format(i=i, env=i % ENVS) for i in range(count)]
        (root / "flow.py").write_text("\n".join(body))
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(root),
            "DO_NOT_TRACK": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "FLYTE_IMAGE_REGISTRY": "localhost:30000",
        }
        ours_env = {**env, "PYTHONPATH": str(SRC)}
        ours: list[float] = []
        sdk: dict[str, list[tuple[float, float]]] = {"all": [], "last": []}
        for _ in range(rounds):
            elapsed, _ = timed(
                [
                    sys.executable,
                    "-m",
                    "flyte_deploy",
                    "deploy",
                    "--all",
                    "flow.py",
                    "--dry-run",
                    "-q",
                    "--output",
                    "json",
                ],
                root,
                ours_env,
            )
            ours.append(elapsed)
            for how, runs in sdk.items():
                elapsed, out = timed([sys.executable, "-c", SDK, how], root, env)
                runs.append((elapsed, float(out.rsplit("@@", 1)[1])))
        print(
            f"{count} tasks in {ENVS} environments (a depends_on chain), best of {rounds},"
            f" python {sys.version.split()[0]}, {os.cpu_count()} cpus"
        )
        print(f"  flyte-deploy deploy --all flow.py --dry-run     {min(ours):6.2f} s (process)")
        labels = {"all": "flyte.deploy(*every env, dry_run=True)", "last": "flyte.deploy(last env, dry_run=True)"}
        for how, label in labels.items():
            best = min(sdk[how])
            print(f"  {label:<46}{best[0]:6.2f} s (process), {best[1]:.2f} s in deploy")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
