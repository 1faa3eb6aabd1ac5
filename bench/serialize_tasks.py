"""Time the built-in serialize_task over many tasks with rich signatures (no assertions).

PYTHONPATH=src python bench/serialize_tasks.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from flyte_deploy.builtin.serialize import serialize
from flyte_deploy.image import Image
from flyte_deploy.importing import import_file
from flyte_deploy.types import DeployPlan, DeployRequest

TASK = '''
@env.task(retries=1, cache="auto")
def task_{i}(p: Point, items: list[dict[str, float]], mode: Optional[str] = None, n: int = {i}) -> tuple[Point, int]:
    """Task {i}."""
    return p, n
'''


def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = [
            "import dataclasses",
            "from typing import Optional",
            "import flyte_deploy as fd",
            "env = fd.TaskEnvironment(name='bench', resources=fd.Resources(cpu=1, memory='1Gi'))",
            "@dataclasses.dataclass\nclass Point:\n    x: int\n    y: float = 0.0",
        ]
        source += [TASK.format(i=i) for i in range(count)]
        (root / "many.py").write_text("\n".join(source))
        env = import_file(root / "many.py", root).env
        plan = DeployPlan(
            request=DeployRequest(mode="objects", objects=(env,)),
            root_dir=root,
            copy_style="all",
            scratch_dir=root,
            environments=(env,),
            images={"bench": Image.from_base("reg/img:1")},
            version="v1",
            bundle_uri="file:///b.tar.gz",
        )
        started = time.perf_counter()
        specs = [serialize(task, env, plan, "p", "d").spec for task in env.tasks.values()]
        elapsed = time.perf_counter() - started
        size = sum(len(s.SerializeToString()) for s in specs)
        print(f"{count} tasks serialized in {elapsed:.3f} s ({elapsed / count * 1000:.2f} ms/task), {size:,} bytes")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
