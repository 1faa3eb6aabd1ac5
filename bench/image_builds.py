"""Time the daemonless oci builder against a real docker-registry (no assertions).

Starts a registry on 127.0.0.1, pushes the cached Debian+python3 test base, then times:
a first build (Python packages from the cache if present, runtime and code layers, push),
the skip of an unchanged spec, and a rebuild after a code-only change.

    PYTHONPATH=src python bench/image_builds.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flyte_deploy import Image, TaskEnvironment  # noqa: E402
from flyte_deploy.api import open_session  # noqa: E402
from tests.fixtures.base_image import BASE_REPOSITORY, BASE_TAG, base_layout, push_layout  # noqa: E402
from tests.fixtures.registry import start_registry  # noqa: E402


def timed(label: str, func):
    started = time.perf_counter()
    result = func()
    print(f"{label:<34} {time.perf_counter() - started:7.2f}s  built={result.built} {result.note}")
    return result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        root = Path(tmp)
        registry = start_registry(root / "registry")
        try:
            started = time.perf_counter()
            push_layout(base_layout(), f"{registry.address}/{BASE_REPOSITORY}:{BASE_TAG}")
            print(f"{'push base (skopeo)':<34} {time.perf_counter() - started:7.2f}s")
            code = root / "code"
            code.mkdir()
            (code / "tasks.py").write_text("X = 1\n")
            options = {
                "image.builder": "oci",
                "image.registry": registry.address,
                "image.base_registry": registry.address,
                "quiet": True,
            }
            image = Image.from_debian_base().with_pip_packages("six").with_source_folder(code)

            def build(spec: Image):
                with open_session(root, options=options) as session:
                    env = TaskEnvironment(name="bench", image=spec)
                    return session.hook.build_image(
                        session=session, environment=env, image=spec.resolved(registry.address)
                    )

            timed("first build", lambda: build(image))
            timed("unchanged spec (skip)", lambda: build(image))
            (code / "tasks.py").write_text("X = 2\n")
            timed("code-only change (rebuild)", lambda: build(image))
        finally:
            registry.server.stop()


if __name__ == "__main__":
    main()
