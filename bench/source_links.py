"""What source links cost a deploy: a dry run of N tasks (one file, a clean git repository
with a github.com remote) with the built-in ``source_link`` and with ``-p no:source_link``.

    PYTHONPATH=src python bench/source_links.py [--tasks 100] [--repeat 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_project(root: Path, tasks: int) -> None:
    body = "".join(f"\n\n@env.task\n@(lambda f: f)\ndef task_{i}(x: int) -> int:\n    return x\n" for i in range(tasks))
    (root / "bench_tasks.py").write_text('import flyte_deploy as fd\n\nenv = fd.TaskEnvironment(name="bench")\n' + body)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.com",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.com",
    }
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["commit", "-qm", "bench"],
        ["remote", "add", "origin", "https://github.com/acme/bench.git"],
    ):
        subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=root, env=env, check=True)
    (root / ".git" / "info" / "exclude").write_text(".flyte-deploy/\n__pycache__/\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()

    import flyte_deploy as fd

    with tempfile.TemporaryDirectory(prefix="bench-source-links-") as tmp:
        root = Path(tmp)
        make_project(root, options.tasks)
        spec = importlib.util.spec_from_file_location("bench_tasks", root / "bench_tasks.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_tasks"] = module
        spec.loader.exec_module(module)
        for label, plugins in (("with source links", ()), ("-p no:source_link", ("no:source_link",))):
            times, links = [], 0
            for _ in range(options.repeat):
                started = time.perf_counter()
                result = fd.deploy(module.env, root_dir=root, dry_run=True, plugins=plugins, options={"quiet": True})
                times.append(time.perf_counter() - started)
                links = sum(1 for t in result.tasks if t.source_link)
            print(
                f"{label:<20} {options.tasks} tasks, {links} links: median {statistics.median(times) * 1000:.0f} ms"
                f" (min {min(times) * 1000:.0f} ms, {options.repeat} runs)"
            )


if __name__ == "__main__":
    main()
