"""Time the local store: one deploy of N tasks (10 environments) through the CLI, its
unchanged redeploy, ``ls`` and ``run``'s lookup of the latest version, then K deploys at
once into the same store, identical and with K different versions (no assertions).

    PYTHONPATH=src python bench/store_register.py [N [K]]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flyte_deploy.store import Store

ENVS = 10
TASK = '''
@env_{e}.task(retries=1)
def task_{i}(items: list[dict[str, float]], mode: str = "fast", n: int = {i}) -> int:
    """Task {i}."""
    return n
'''


def cli(root: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "flyte_deploy", *args], cwd=root, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, proc.stderr


def phase(stderr: str, name: str) -> str:
    found = re.search(rf"{name}\s.*\(([0-9.]+)s\)", stderr)
    return f"{found.group(1)} s" if found else "?"


def race(root: Path, versions: list[str]) -> str:
    """Start one deploy per version at once; their exit codes and registration statuses."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flyte_deploy",
                "deploy",
                "many.py",
                "top",
                "--version",
                v,
                "-q",
                "--output",
                "json",
            ],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in versions
    ]
    outcomes = []
    for proc in procs:
        out, _ = proc.communicate()
        statuses = sorted({r["status"] for r in json.loads(out)["registrations"]}) if proc.returncode == 0 else []
        outcomes.append(f"exit {proc.returncode} {'/'.join(statuses)}")
    return f"{', '.join(outcomes)} in {time.perf_counter() - started:.2f} s"


def main(count: int, parallel: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = ["import flyte_deploy as fd"]
        source += [f"env_{e} = fd.TaskEnvironment(name='env{e}')" for e in range(ENVS)]
        source += [TASK.format(e=i % ENVS, i=i) for i in range(count)]
        source += [
            f"top = fd.TaskEnvironment(name='top', depends_on=[{', '.join(f'env_{e}' for e in range(ENVS))}])",
            "@top.task\ndef last() -> int:\n    return 0\n",
        ]
        (root / "many.py").write_text("\n".join(source))
        total, err = cli(root, "deploy", "many.py", "top", "--version", "v1")
        print(
            f"deploy of {count + 1} tasks: register_environment {phase(err, 'register_environment')}"
            f" (whole command {total:.2f} s)"
        )
        total, err = cli(root, "deploy", "many.py", "top", "--version", "v1")
        print(
            f"unchanged redeploy: register_environment {phase(err, 'register_environment')}"
            f" (whole command {total:.2f} s)"
        )
        store = Store(root / ".flyte-deploy")
        print(f"database: {store.path.stat().st_size:,} bytes")
        for label, call in [
            ("ls (find all)", lambda: store.find()),
            ("run's lookup of the latest", lambda: store.find(name="env3.task_503", latest_only=True, with_spec=True)),
            ("check (quick_check)", store.check),
        ]:
            started = time.perf_counter()
            call()
            print(f"{label}: {(time.perf_counter() - started) * 1000:.1f} ms")
        print(f"{parallel} identical deploys at once (v1 exists): {race(root, ['v1'] * parallel)}")
        print(f"{parallel} deploys of new versions at once: {race(root, [f'r{i}' for i in range(parallel)])}")
        print(f"rows: {len(store.find())}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
