"""Benchmark of the built-in bundle phase on a generated project.

The project: one environment file importing 2,000 small modules (20 packages of 100),
plus 20,000 data files of about 2 KB in 100 directories, a pyproject.toml and a
.gitignore (22,023 files, about 43 MB). For each copy style the real code path runs:

* ``select``: choosing the files (``loaded_module_files`` / ``all_files``);
* ``build``: ``flyte_deploy.bundle.build.build`` (selection + deterministic tar.gz);
* ``upload, stored``: ``flyte_deploy.bundle.upload.upload`` when the bundle is already at
  its content address (the no-change path: the stored object is verified, not re-sent);
* ``cli``: ``flyte-deploy deploy --all envs.py --copy-style STYLE --dry-run`` in a fresh
  process (discovery, bundle, version, serialization), wall time;
* ``cli, no change``: the same deploy for real (local backend and storage), run again
  with nothing changed (bundle verified in storage, registrations unchanged);

next to ``tar czf`` of the whole tree as the physical reference, and ``tar cf | gzip -1``
(the compression level the bundle uses). Each figure is the best
of ``--repeat`` runs (default 3). Usage: ``python bench/bench_bundle.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from flyte_deploy.builtin.discover import discover
from flyte_deploy.bundle import build as bundle_build
from flyte_deploy.bundle.upload import upload
from flyte_deploy.types import DeployPlan, DeployRequest

PACKAGES, MODULES_PER_PACKAGE = 20, 100
DATA_DIRS, DATA_FILES = 100, 20_000


def generate(root: Path) -> None:
    """Write the benchmark project under ``root`` (deterministic content)."""
    rng = random.Random(1234)
    imports = []
    for p in range(PACKAGES):
        package = root / f"pkg{p:02d}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f'"""Package {p}."""\n')
        for m in range(MODULES_PER_PACKAGE):
            (package / f"mod{m:03d}.py").write_text(
                f'"""Module {p}.{m}."""\n\nFACTOR = {rng.randint(1, 999)}\n\n\n'
                f"def scale_{m}(values: list[float]) -> list[float]:\n"
                f"    return [v * FACTOR / {m + 1} for v in values]\n"
            )
            imports.append(f"import pkg{p:02d}.mod{m:03d}")
    (root / "envs.py").write_text(
        "import flyte_deploy as fd\n" + "\n".join(imports) + "\n\n"
        'env = fd.TaskEnvironment(name="bench")\n\n\n'
        "@env.task\ndef total(values: list[float]) -> float:\n"
        "    return sum(pkg00.mod000.scale_0(values))\n"
    )
    (root / "pyproject.toml").write_text('[project]\nname = "bench"\nversion = "0"\n')
    (root / ".gitignore").write_text("*.log\nbuild/\n/dist\n!keep.log\n**/tmp/\n")
    per_dir = DATA_FILES // DATA_DIRS
    for d in range(DATA_DIRS):
        directory = root / "data" / f"d{d:03d}"
        directory.mkdir(parents=True)
        for f in range(per_dir):
            rows = "\n".join(",".join(f"{rng.random():.6f}" for _ in range(5)) for _ in range(47))
            (directory / f"part{f:04d}.csv").write_text(f"a,b,c,d,e\n{rows}\n")


def tree_size(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return files, size


def best(repeat: int, action) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate the project here and keep it")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flyte-deploy-bench-"))
    root = args.keep.resolve() if args.keep else work / "project"
    try:
        if not (root / "envs.py").exists():
            generate(root)
        files, size = tree_size(root)
        print(f"project: {root} ({files:,} files, {size / 1e6:.1f} MB)")

        rows = []
        seconds, _ = best(
            args.repeat,
            lambda: subprocess.run(["tar", "czf", str(work / "ref.tar.gz"), "-C", str(root), "."], check=True),
        )
        rows.append(("tar czf (reference)", files, size, seconds, (work / "ref.tar.gz").stat().st_size))
        seconds, _ = best(
            args.repeat,
            lambda: subprocess.run(
                f"tar cf - -C '{root}' . | gzip -1 > '{work / 'ref1.tar.gz'}'", shell=True, check=True
            ),
        )
        rows.append(("tar cf | gzip -1 (reference)", files, size, seconds, (work / "ref1.tar.gz").stat().st_size))

        sys.path.insert(0, str(root))
        discovery = discover(DeployRequest(mode="all", path=root / "envs.py"), root)
        for style in ("loaded_modules", "all"):
            plan = DeployPlan(
                request=DeployRequest(mode="all", path=root / "envs.py"),
                root_dir=root,
                copy_style=style,
                scratch_dir=work,
                discovery=discovery,
                environments=discovery.selected,
            )
            seconds, selected = best(args.repeat, lambda plan=plan: bundle_build.select_files(plan))
            selected_size = sum(os.path.getsize(p) for p in selected.values())
            rows.append((f"{style}: select", len(selected), selected_size, seconds, None))
            seconds, (built, _) = best(args.repeat, lambda plan=plan: bundle_build.build(plan))
            rows.append((f"{style}: build", len(built.files), selected_size, seconds, built.size))
            stored = work / "storage" / built.filename
            upload(built, stored.as_uri())
            seconds, _ = best(args.repeat, lambda built=built, stored=stored: upload(built, stored.as_uri()))
            rows.append((f"{style}: upload, stored", len(built.files), selected_size, seconds, None))
            # byte-code is cached outside the project, as a user's __pycache__ would be
            env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONPYCACHEPREFIX": str(work / "pycache")}
            command = [
                sys.executable,
                "-m",
                "flyte_deploy",
                "deploy",
                "--all",
                "envs.py",
                "--copy-style",
                style,
                "--dry-run",
                "--output",
                "json",
                "-q",
            ]
            seconds, _ = best(
                args.repeat,
                lambda command=command, env=env: subprocess.run(
                    command, cwd=root, env=env, check=True, capture_output=True
                ),
            )
            rows.append((f"{style}: cli --dry-run", len(built.files), selected_size, seconds, None))
            real = [*command[:-4], "--store", (work / f"store-{style}").as_uri(), "--output", "json", "-q"]
            subprocess.run(real, cwd=root, env=env, check=True, capture_output=True)
            seconds, _ = best(
                args.repeat,
                lambda real=real, env=env: subprocess.run(real, cwd=root, env=env, check=True, capture_output=True),
            )
            rows.append((f"{style}: cli, no change", len(built.files), selected_size, seconds, None))

        print(f"\n{'what':<32}{'files':>8}{'MB':>8}{'seconds':>9}{'files/s':>10}{'MB/s':>8}{'gz MB':>8}")
        for what, n, nbytes, secs, gz in rows:
            print(
                f"{what:<32}{n:>8,}{nbytes / 1e6:>8.1f}{secs:>9.4f}{n / secs:>10,.0f}{nbytes / 1e6 / secs:>8.1f}"
                f"{'' if gz is None else f'{gz / 1e6:.1f}':>8}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
