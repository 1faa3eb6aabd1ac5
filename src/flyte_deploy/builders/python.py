"""Python content of built images, shared by every builder so they put the same bytes in.

* Python packages (``with_pip_packages``, ``with_requirements`` and the runtime's own
  dependencies) are resolved once, on the build host, with ``pip install --target`` for the
  image's platform (``--platform manylinux_2_X_<arch> --python-version X --implementation cp
  --only-binary=:all:``): no compiler, network or pip is needed inside the image, and the
  result is one reproducible layer at ``SITE_PACKAGES``. Installed sets are cached under
  ``$FLYTE_DEPLOY_CACHE_DIR`` (default ``~/.cache/flyte-deploy``), keyed by the requirements,
  the content of requirement files, the platform and the Python version, so a rebuild
  whose Python requirements did not change (e.g. only code changed) skips pip, as Docker's
  layer cache would.
* The runtime: images from ``Image.from_debian_base`` carry the running flyte-deploy package
  (its source files and a dist-info, at ``RUNTIME_DIR``) so the image runs exactly the code
  that serialized the tasks; its dependencies are pinned to the versions installed here.
  The runtime's fingerprint is part of the image's content hash.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ImageBuildError

if TYPE_CHECKING:
    from ..image import Image

SITE_PACKAGES = "/opt/flyte-deploy/site-packages"
RUNTIME_DIR = "/opt/flyte-deploy/runtime"
DISTRIBUTION = "flyte-deploy"
#: glibc versions accepted for manylinux wheels (Debian bookworm has glibc 2.36)
GLIBC_MINORS = range(36, 16, -1)
_ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}


def python_env(base_env: list[str] | None = None) -> dict[str, str]:
    """Environment variables an image with Python content needs (PYTHONPATH, PATH)."""
    env = dict(item.split("=", 1) for item in (base_env or []) if "=" in item)
    path = env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return {
        "PYTHONPATH": f"{RUNTIME_DIR}:{SITE_PACKAGES}",
        "PATH": f"{path}:{SITE_PACKAGES}/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def pip_platforms(platform: str) -> list[str]:
    """pip ``--platform`` tags for a ``linux/<arch>`` image platform."""
    os_name, _, arch = platform.partition("/")
    machine = _ARCHES.get(arch.split("/")[0])
    if os_name != "linux" or machine is None:
        raise ImageBuildError(
            f"cannot install Python packages for platform {platform!r} (linux/amd64 or linux/arm64 only)"
        )
    return [f"manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS] + [f"manylinux2014_{machine}"]


def _checkout_pyproject() -> Path | None:
    candidate = Path(__file__).resolve().parents[3] / "pyproject.toml"
    if candidate.is_file() and f'name = "{DISTRIBUTION}"' in candidate.read_text(encoding="utf-8"):
        return candidate
    return None


def _declared_requirements() -> list[str]:
    pyproject = _checkout_pyproject()
    if pyproject is not None:
        import tomllib

        return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])
    return [r for r in importlib.metadata.requires(DISTRIBUTION) or [] if "extra ==" not in r]


@functools.cache
def runtime_requirements() -> tuple[str, ...]:
    """The runtime's dependencies, pinned to the versions installed on this host (so the
    image matches the code that serialized the tasks); markers are kept."""
    pinned = []
    for requirement in _declared_requirements():
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert name is not None
        marker = requirement.partition(";")[2].strip()
        try:
            spec = f"{name.group(0)}=={importlib.metadata.version(name.group(0))}"
        except importlib.metadata.PackageNotFoundError:
            spec = requirement.partition(";")[0].strip()
        pinned.append(f"{spec}; {marker}" if marker else spec)
    return tuple(pinned)


def runtime_package_dir() -> Path:
    import flyte_deploy

    return Path(flyte_deploy.__file__).resolve().parent


def runtime_version() -> str:
    pyproject = _checkout_pyproject()
    if pyproject is not None:
        found = re.search(r'^version = "([^"]+)"', pyproject.read_text(encoding="utf-8"), re.M)
        if found:
            return found.group(1)
    return importlib.metadata.version(DISTRIBUTION)


@functools.cache
def runtime_fingerprint() -> str:
    """sha256 over the runtime's source files and pinned requirements."""
    digest = hashlib.sha256("\n".join(runtime_requirements()).encode())
    root = runtime_package_dir()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def write_runtime(dest: Path) -> Path:
    """Lay the runtime out under ``dest`` (``flyte_deploy/`` and its dist-info): the
    content of ``RUNTIME_DIR``."""
    import shutil

    package = runtime_package_dir()
    shutil.copytree(package, dest / "flyte_deploy", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    info = dest / f"flyte_deploy-{runtime_version()}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {DISTRIBUTION}", f"Version: {runtime_version()}"]
    lines += [f"Requires-Dist: {r}" for r in runtime_requirements()]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (info / "top_level.txt").write_text("flyte_deploy\n", encoding="utf-8")
    return dest


def image_requirements(image: Image) -> tuple[list[str], list[Path]]:
    """``(requirement strings, requirement files)`` to install for ``image``."""
    packages: list[str] = list(runtime_requirements()) if image.install_runtime else []
    files: list[Path] = []
    for layer in image.layers:
        if layer.kind == "pip":
            packages += [str(v) for v in layer.values]
        elif layer.kind == "requirements":
            files.append(Path(layer.values[0]))
    return packages, files


def cache_dir() -> Path:
    """Where built content is cached between builds."""
    explicit = os.environ.get("FLYTE_DEPLOY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flyte-deploy"


def _pip_argv(image: Image, target: Path, packages: list[str], files: list[Path]) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--python-version",
        image.python_version,
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "--no-compile",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--no-input",
    ]
    for platform in pip_platforms(image.platform):
        argv += ["--platform", platform]
    for file in files:
        argv += ["-r", str(file)]
    return argv + packages


def install_packages(image: Image, log: Path) -> Path | None:
    """The directory holding the image's requirements installed for its platform (from the
    cache, or ``pip install --target`` now), or ``None`` when there is nothing to install.

    A failure raises ``ImageBuildError`` with pip's last lines; nothing is cached then.
    """
    packages, files = image_requirements(image)
    if not packages and not files:
        return None
    key = hashlib.sha256(
        json.dumps(
            [
                packages,
                [f.read_text(encoding="utf-8") for f in files],
                pip_platforms(image.platform),
                image.python_version,
            ]
        ).encode()
    ).hexdigest()
    cached = cache_dir() / "site-packages" / key[:32]
    if cached.is_dir():
        with log.open("a", encoding="utf-8") as out:
            out.write(f"python packages from cache {cached}\n")
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cached.parent))
    try:
        with log.open("ab") as out:
            out.write(b"$ pip install " + " ".join(packages + [f"-r {f}" for f in files]).encode() + b"\n")
            out.flush()
            proc = subprocess.run(
                _pip_argv(image, staging, packages, files), stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if proc.returncode != 0:
            raise ImageBuildError(
                f"image {image.name}: step 'pip install' failed (exit {proc.returncode})" + log_tail(log)
            )
        _fix_scripts(staging / "bin")
        try:
            staging.rename(cached)
        except OSError:  # a concurrent build cached the same set first
            if not cached.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached


def _fix_scripts(bin_dir: Path) -> None:
    """Point console scripts at the image's Python instead of this host's."""
    if not bin_dir.is_dir():
        return
    for script in sorted(bin_dir.iterdir()):
        if not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
            script.write_bytes(b"#!/usr/bin/env python3" + data[data.index(b"\n") :] if b"\n" in data else data)


def log_tail(log: Path, lines: int = 12) -> str:
    """The last ``lines`` lines of a build log, indented for an error message."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "".join(f"\n  | {line}" for line in text[-lines:])
