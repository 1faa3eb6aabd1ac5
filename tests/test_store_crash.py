"""The store under real failures, in real deploy processes: SIGKILL and SIGINT at each
point of the registration, concurrent deploys into one store, and a full disk (a tiny
tmpfs). After each, the database is sound, holds a deploy whole or not at all, and a
rerun completes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flyte_deploy.cli import cli as flyte_deploy_cli
from flyte_deploy.cli import run_cli
from flyte_deploy.errors import ExitCode
from flyte_deploy.store import DATABASE_FILE
from flyte_deploy.testing import AUTOLOAD_VARIABLES, PACKAGE_ROOT
from tests.conftest import write_tree

pytestmark = pytest.mark.usefixtures("deploy_isolation")  # for the in-process ls of stored_tasks

FLOW = """
import flyte_deploy as fd

base = fd.TaskEnvironment(name="base")
mid = fd.TaskEnvironment(name="mid", depends_on=[base])
top = fd.TaskEnvironment(name="top", depends_on=[mid])

@base.task
def one(x: int) -> int:
    return x + 1

@mid.task
def two(x: int) -> int:
    return x * 2

@top.task
def three(x: int) -> int:
    return x - 3

@top.task
def four(x: int) -> int:
    return x
"""
TASKS = ["base.one", "mid.two", "top.three", "top.four"]

#: a local plugin that holds the deploy at STORE_TEST_STOP until the test signals it: at a
#: statement the store sends to sqlite (through a wrapper of sqlite3.connect), or after
#: the deploy finished; it writes its pid to STORE_TEST_READY when it gets there
STOPPER = """
import os
import sqlite3
import time
from pathlib import Path

import flyte_deploy as fd

STOP = os.environ.get("STORE_TEST_STOP", "")
inserts = 0


def hold() -> None:
    Path(os.environ["STORE_TEST_READY"]).write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


class Stopping:
    def __init__(self, conn):
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def execute(self, sql, *args):
        global inserts
        if sql.startswith("INSERT INTO tasks"):
            inserts += 1
        if (STOP == "schema" and sql.startswith("CREATE TABLE tasks")
                or STOP == "lookup" and sql.startswith("SELECT spec")
                or STOP == f"insert:{inserts}" and sql.startswith("INSERT INTO tasks")
                or STOP == "commit" and sql == "COMMIT" and inserts):
            hold()
        return self._conn.execute(sql, *args)


if STOP:
    _connect = sqlite3.connect
    sqlite3.connect = lambda *args, **kwargs: Stopping(_connect(*args, **kwargs))


@fd.hookimpl
def deploy_finish(session, result, error):
    if STOP == "finished" and result is not None:
        hold()
"""

#: a local plugin making STORE_TEST_PARTIES deploys meet before the store is opened and
#: again before the first registration, so that they race for it
BARRIER = """
import os
import time
from pathlib import Path

import flyte_deploy as fd


def meet(name):
    rendezvous = Path(os.environ["STORE_TEST_BARRIER"])
    (rendezvous / f"{name}-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while len(list(rendezvous.glob(f"{name}-*"))) < int(os.environ["STORE_TEST_PARTIES"]):
        assert time.monotonic() < deadline, f"the other deploys never reached {name}"
        time.sleep(0.01)


@fd.hookimpl(tryfirst=True)
def deploy_start(session, plan):
    meet("start")


@fd.hookimpl(tryfirst=True)
def register_environment(session, environment, tasks, plan):
    if environment is plan.environments[0]:
        meet("register")
"""


def cli(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k in AUTOLOAD_VARIABLES or not k.startswith(("FLYTE_DEPLOY_", "STORE_TEST_"))
    }  # the kit's autoload switches stay: an installed policy plugin must not police these deploys
    environ.update({"PYTHONPATH": str(PACKAGE_ROOT), "NO_COLOR": "1", **(env or {})})
    return subprocess.Popen(
        [sys.executable, "-m", "flyte_deploy", *args],
        cwd=project,
        env=environ,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def deploy(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return cli(project, "deploy", "flow.py", "top", "--version", "v1", "-q", "--output", "json", *args, env=env)


def stored_tasks(project: Path) -> list[str]:
    """What ``ls`` lists, task names sorted; the database is checked sound first. In this
    process (the deploys are the processes that die; ``ls`` opens the store afresh either
    way), without the project's stopping plugin."""
    database = project / ".flyte-deploy" / DATABASE_FILE
    if database.exists():
        with sqlite3.connect(database) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(flyte_deploy_cli, ["ls", "--root-dir", str(project), "--output", "json", "-p", "no:deployconf"])
    assert code == 0, err.getvalue()
    return sorted(t["name"] for r in json.loads(out.getvalue()) for t in r["tasks"])


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "flow", {"flow.py": FLOW, "deployconf.py": STOPPER})


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize(
    "stop,committed",
    [
        ("schema", False),
        ("lookup", False),
        ("insert:1", False),
        ("insert:3", False),
        ("commit", False),
        ("finished", True),
    ],
)
def test_a_deploy_killed_at_any_point_leaves_a_sound_store_and_a_rerun_completes(
    flow: Path, tmp_path: Path, signum: signal.Signals, stop: str, committed: bool
) -> None:
    ready = tmp_path / "ready"
    proc = deploy(flow, env={"STORE_TEST_STOP": stop, "STORE_TEST_READY": str(ready)})
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the deploy never reached the stop"
        time.sleep(0.02)
    proc.send_signal(signum)
    code, _, err = finish(proc)
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == ExitCode.INTERRUPTED and err.strip().splitlines()[-1] == "interrupted", err
        assert not [p.name for p in (flow / ".flyte-deploy").iterdir() if p.name.startswith(".")]  # no draft
    if stop == "schema":
        assert not (flow / ".flyte-deploy" / DATABASE_FILE).exists()  # a database appears complete or not at all

    assert stored_tasks(flow) == (sorted(TASKS) if committed else [])
    code, out, err = finish(deploy(flow))
    assert code == 0, err
    statuses = {r["status"] for r in json.loads(out)["registrations"]}
    assert statuses == ({"unchanged"} if committed else {"created"})
    assert stored_tasks(flow) == sorted(TASKS)


def test_the_rerun_after_a_kill_runs(flow: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = deploy(flow, env={"STORE_TEST_STOP": "commit", "STORE_TEST_READY": str(ready)})
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.kill()
    finish(proc)
    assert finish(deploy(flow))[0] == 0
    code, out, err = finish(cli(flow, "run", "top.three", "--input", "x=5", "--output", "json"))
    assert code == 0, err
    assert json.loads(out)["outputs"] == {"o0": 2}


@pytest.fixture
def racing(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    project = write_tree(tmp_path / "race", {"flow.py": FLOW, "deployconf.py": BARRIER})
    (tmp_path / "barrier").mkdir()
    return project, {"STORE_TEST_BARRIER": str(tmp_path / "barrier"), "STORE_TEST_PARTIES": "3"}


def test_three_identical_deploys_at_once_all_succeed(racing: tuple[Path, dict[str, str]]) -> None:
    project, env = racing
    results = [finish(p) for p in [deploy(project, env=env) for _ in range(3)]]
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    outcomes = sorted(tuple(r["status"] for r in json.loads(out)["registrations"]) for _, out, _ in results)
    assert outcomes == [("created",) * 4, ("unchanged",) * 4, ("unchanged",) * 4]  # one transaction won
    assert stored_tasks(project) == sorted(TASKS)


def test_different_specs_for_one_version_at_once_one_wins(racing: tuple[Path, dict[str, str]]) -> None:
    project, env = racing
    procs = [deploy(project, "--image", f"top=acme/top:{i}", env=env) for i in range(3)]
    results = [finish(p) for p in procs]
    winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, [err for _, _, err in results]
    for i, (code, _, err) in enumerate(results):
        if i in winners:
            continue
        assert code == ExitCode.REGISTRATION_FAILED
        [line] = err.strip().splitlines()
        assert line.startswith(
            "error: task top.three version v1 is already deployed with a different spec in"
            " flytesnacks/development (differs in task_template.container.image); task top.four"
        )
        assert "versions are immutable: pass a new --version; registered: none" in line
    code, out, _ = finish(cli(project, "ls", "--output", "json"))
    images = {r["environment"]: r["image"] for r in json.loads(out)}
    assert images["top"] == f"acme/top:{winners[0]}" and stored_tasks(project) == sorted(TASKS)


# -- a full disk ------------------------------------------------------------------------

MANY = "import flyte_deploy as fd\n\nbig = fd.TaskEnvironment(name='big')\n" + "".join(
    f"\n\n@big.task\ndef task_{i:03}(x: int, label: str = '{'x' * 200}') -> int:\n    return x + {i}\n"
    for i in range(150)
)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 2 MiB tmpfs (needs root and mount; skipped otherwise)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(mount: Path, leave: int) -> Path:
    """Fill ``mount`` until ``leave`` bytes are free."""
    stats = os.statvfs(mount)
    filler = mount / "filler"
    with open(filler, "wb") as out:
        out.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


@pytest.mark.parametrize("leave", [0, 8 << 10, 64 << 10, 256 << 10, 288 << 10, 512 << 10])
def test_a_full_disk_at_any_point_leaves_a_sound_store_and_a_rerun_completes(
    tmp_path: Path, tiny_disk: Path, leave: int
) -> None:
    project = write_tree(tmp_path / "many", {"many.py": MANY, "small.py": FLOW})
    env = {"FLYTE_DEPLOY_STORE": str(tiny_disk / "store"), "FLYTE_DEPLOY_STORAGE": (tmp_path / "bundles").as_uri()}
    assert finish(cli(project, "deploy", "small.py", "base", "--version", "v0", "-q", env=env))[0] == 0
    filler = fill(tiny_disk, leave)
    code, out, err = finish(
        cli(project, "deploy", "many.py", "big", "--version", "v1", "-q", "--output", "json", env=env)
    )
    listed = finish(cli(project, "ls", "--output", "json", env=env))
    filler.unlink()
    if code != 0:
        assert code == ExitCode.DISK_FULL, err
        [line] = err.strip().splitlines()
        assert line.startswith(f"error: {tiny_disk / 'store' / DATABASE_FILE}: the store is out of space ("), line
        assert line.endswith("; nothing was registered: free space on its filesystem and rerun the deploy"), line
    with sqlite3.connect(tiny_disk / "store" / DATABASE_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        names = [name for (name,) in conn.execute("SELECT name FROM tasks ORDER BY name")]
    assert names == ["base.one"] + ([f"big.task_{i:03}" for i in range(150)] if code == 0 else [])
    assert listed[0] in (0, ExitCode.DISK_FULL), listed[2]  # a read on a full disk: listed, or one clear line
    if listed[0]:
        assert len(listed[2].strip().splitlines()) == 1 and "is out of space" in listed[2]

    code, out, err = finish(
        cli(project, "deploy", "many.py", "big", "--version", "v1", "-q", "--output", "json", env=env)
    )
    assert code == 0, err
    with sqlite3.connect(tiny_disk / "store" / DATABASE_FILE) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (151,)


def test_a_store_created_on_a_full_disk_is_not_left_half_made(tmp_path: Path, tiny_disk: Path) -> None:
    project = write_tree(tmp_path / "small", {"flow.py": FLOW})
    env = {"FLYTE_DEPLOY_STORE": str(tiny_disk / "store"), "FLYTE_DEPLOY_STORAGE": (tmp_path / "bundles").as_uri()}
    (tiny_disk / "store").mkdir()
    filler = fill(tiny_disk, 0)
    code, _, err = finish(deploy(project, env=env))
    assert code == ExitCode.DISK_FULL, err
    [line] = err.strip().splitlines()
    assert "is out of space" in line and line.endswith("free space on its filesystem and rerun the deploy")
    assert list((tiny_disk / "store").iterdir()) == []  # neither a database nor a draft
    filler.unlink()
    assert finish(deploy(project, env=env))[0] == 0


def test_a_read_only_store_is_one_clear_error(tmp_path: Path, tiny_disk: Path) -> None:
    project = write_tree(tmp_path / "small", {"flow.py": FLOW})
    env = {"FLYTE_DEPLOY_STORE": str(tiny_disk / "store"), "FLYTE_DEPLOY_STORAGE": (tmp_path / "bundles").as_uri()}
    assert finish(deploy(project, env=env))[0] == 0
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    code, _, err = finish(deploy(project, "--version", "v2", env=env))
    assert code == ExitCode.ENVIRONMENT_FAILED, err
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: {tiny_disk / 'store' / DATABASE_FILE}: cannot write the store ("), line
    listed = finish(cli(project, "ls", "--output", "json", env=env))
    assert listed[0] == 0 and len(json.loads(listed[1])) == 3 or listed[0] == ExitCode.STORE_FAILED, listed[2]
