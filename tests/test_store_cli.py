"""The store through the command line: projects and domains, ``ls`` filters and JSON, the
version ``run`` picks, a damaged database, and the migration of the old file layout."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from flyte_deploy.errors import ExitCode
from flyte_deploy.store import DATABASE_FILE, Store
from tests.conftest import write_tree

FLOW = """\
import flyte_deploy as fd

base = fd.TaskEnvironment(name="base")
top = fd.TaskEnvironment(name="top", depends_on=[base])

@base.task
def one(x: int) -> int:
    return x + {increment}

@top.task
def two(x: int) -> int:
    return x * 2
"""


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project without configuration (default project and domain), as the current directory."""
    root = write_tree(tmp_path / "flow", {"flow.py": FLOW.format(increment=1)})
    monkeypatch.chdir(root)
    return root


def deploy(invoke, *args: str) -> dict:
    result = invoke("deploy", "flow.py", "top", "-q", "--output", "json", *args)
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_the_same_code_deploys_to_a_second_project_and_domain(flow: Path, invoke) -> None:
    for scope in ([], ["--project", "second"], ["--domain", "production"]):
        statuses = [r["status"] for r in deploy(invoke, "--version", "v1", *scope)["registrations"]]
        assert statuses == ["created", "created"]
    listed = invoke("ls", "--output", "json").json()
    assert sorted({(r["project"], r["domain"]) for r in listed}) == [
        ("flytesnacks", "development"),
        ("flytesnacks", "production"),
        ("second", "development"),
    ]
    assert all(r["version"] == "v1" and r["latest"] for r in listed)


def test_ls_filters_by_project_and_domain_and_json_has_the_table_data(flow: Path, invoke) -> None:
    deploy(invoke, "--version", "v1")
    deploy(invoke, "--version", "v1", "--project", "second")
    deploy(invoke, "--version", "v1", "--project", "second", "--domain", "production")
    only = invoke("ls", "--project", "second", "--output", "json").json()
    assert {(r["project"], r["domain"], r["environment"]) for r in only} == {
        ("second", "development", "base"),
        ("second", "development", "top"),
        ("second", "production", "base"),
        ("second", "production", "top"),
    }
    prod = invoke("ls", "--project", "second", "--domain", "production", "--output", "json").json()
    assert {r["domain"] for r in prod} == {"production"} and len(prod) == 2
    top = next(r for r in prod if r["environment"] == "top")
    assert top["depends_on"] == ["base"] and top["copy_style"] == "loaded_modules"
    assert top["bundle"].endswith(f"/{top['bundle_digest']}.tar.gz")
    assert [t["name"] for t in top["tasks"]] == ["top.two"] and top["tasks"][0]["latest"] is True
    table = invoke("ls", "--domain", "production")
    assert f"Deployed in {flow / '.flyte-deploy' / DATABASE_FILE} for production" in table.stdout
    assert "second/production" in table.stdout and "second/development" not in table.stdout
    assert top["deployed_at"][:19].replace("T", " ") in table.stdout
    nothing = invoke("ls", "--project", "nobody")
    assert nothing.exit_code == 0 and nothing.stdout.startswith("nothing deployed in ")


def test_run_picks_the_latest_deployed_version_and_ls_marks_it(flow: Path, invoke) -> None:
    deploy(invoke, "--version", "zzz-old")
    (flow / "flow.py").write_text(FLOW.format(increment=100))
    deploy(invoke, "--version", "aaa-new", "--copy-style", "all")  # deployed later, sorts first
    ran = invoke("run", "base.one", "--input", "x=1", "--output", "json")
    assert ran.exit_code == 0, ran.stderr
    assert ran.json()["version"] == "aaa-new" and ran.json()["outputs"] == {"o0": 101}
    (flow / "flow.py").write_text(FLOW.format(increment=1))
    redeployed = deploy(invoke, "--version", "zzz-old")  # an unchanged redeploy does not make it the latest
    assert [r["status"] for r in redeployed["registrations"]] == ["unchanged", "unchanged"]
    assert invoke("run", "base.one", "--input", "x=1", "--output", "json").json()["version"] == "aaa-new"
    listed = invoke("ls", "--output", "json").json()
    assert [(r["environment"], r["version"], r["latest"]) for r in listed] == [
        ("base", "zzz-old", False),
        ("base", "aaa-new", True),
        ("top", "zzz-old", False),
        ("top", "aaa-new", True),
    ]
    old = invoke("run", "base.one", "--input", "x=1", "--version", "zzz-old", "--output", "json")
    assert old.json()["outputs"] == {"o0": 2}
    table = invoke("ls").stdout
    assert table.count("yes") == 2


def test_run_names_where_a_task_is_deployed(flow: Path, invoke) -> None:
    deploy(invoke, "--version", "v1", "--project", "first")
    deploy(invoke, "--version", "v1", "--project", "second")
    store = flow / ".flyte-deploy" / DATABASE_FILE
    ambiguous = invoke("run", "base.one", "--input", "x=1")
    assert ambiguous.exit_code == ExitCode.RUN_FAILED
    assert ambiguous.stderr.strip().splitlines() == [
        f"error: task base.one is deployed to first/development, second/development in {store}: pass --project and"
        " --domain to choose"
    ]
    chosen = invoke("run", "base.one", "--input", "x=1", "--project", "second", "--output", "json")
    assert chosen.exit_code == 0 and chosen.json()["outputs"] == {"o0": 2}
    missing = invoke("run", "base.one", "--project", "third")
    assert missing.stderr.strip().splitlines() == [
        f"error: task base.one is not deployed to third in {store} (deployed: v1 in first/development,"
        " v1 in second/development)"
    ]
    assert missing.exit_code == ExitCode.RUN_FAILED


def damage(path: Path) -> None:
    with open(path, "r+b") as db:
        db.truncate(path.stat().st_size // 2)


def test_a_truncated_database_is_one_error_with_its_own_exit_code(flow: Path, invoke) -> None:
    for version in ("v1", "v2", "v3"):
        deploy(invoke, "--version", version)
    store = flow / ".flyte-deploy" / DATABASE_FILE
    with open(store, "r+b") as db:
        db.truncate(4096)
    for args in (
        ["ls"],
        ["ls", "--output", "json"],
        ["run", "base.one", "--input", "x=1"],
        ["deploy", "flow.py", "top", "--version", "v4"],
    ):
        result = invoke(*args)
        assert result.exit_code == ExitCode.STORE_FAILED, (args, result.stderr)
        assert result.stderr.strip().splitlines() == [
            f"error: {store} is damaged (database disk image is malformed): restore it from a backup, or move it"
            " away to start an empty store (bundles are kept)"
        ], args
        assert result.stdout == ""
    assert list((flow / ".flyte-deploy" / "bundles").glob("*.tar.gz"))  # bundles are kept
    store.rename(store.with_name("damaged.db"))  # what the message says to do
    assert deploy(invoke, "--version", "v4")["registrations"][0]["status"] == "created"


# -- migration of the file layout of earlier releases --------------------------------------


def write_old_layout(store: Path) -> dict[str, float]:
    """Rewrite ``store``'s database in the layout earlier releases wrote (environment.json and
    <task>.pb per environment and version), with the specs they hold; returns the mtime
    given to each environment record, by ``env/version``."""
    records = Store(store).find(with_spec=True)
    (store / DATABASE_FILE).unlink()
    stamps: dict[str, float] = {}
    for index, key in enumerate(sorted({(r.environment, r.version) for r in records})):
        env, version = key
        mine = [r for r in records if (r.environment, r.version) == key]
        directory = store / "environments" / env / version
        directory.mkdir(parents=True)
        for r in mine:
            (directory / f"{r.name.split('.', 1)[1]}.pb").write_bytes(r.spec)
        first = mine[0]
        record = {
            "environment": env,
            "version": version,
            "project": first.project,
            "domain": first.domain,
            "image": first.image,
            "bundle": first.bundle_uri,
            "copy_style": first.copy_style,
            "depends_on": list(first.depends_on),
            "tasks": [{"name": r.name, "source_link": r.source_link} for r in mine],
        }
        path = directory / "environment.json"
        path.write_text(json.dumps(record, indent=2, sort_keys=True))
        stamps[f"{env}/{version}"] = time.time() - 1000 + index
        os.utime(path, (stamps[f"{env}/{version}"],) * 2)
    return stamps


def test_the_old_file_layout_is_migrated_once(flow: Path, invoke) -> None:
    deploy(invoke, "--version", "v1")
    (flow / "flow.py").write_text(FLOW.format(increment=5))
    deploy(invoke, "--version", "v2", "--copy-style", "all")
    store = flow / ".flyte-deploy"
    before = invoke("ls", "--output", "json").json()
    stamps = write_old_layout(store)
    (store / "environments" / "top" / "v9").mkdir()  # a deploy the old store was killed in: specs, no record
    shutil.copy(store / "environments" / "top" / "v1" / "two.pb", store / "environments" / "top" / "v9")

    after = invoke("ls", "--output", "json").json()
    strip = [
        {k: v for k, v in r.items() if k != "deployed_at"} | {"tasks": [t["name"] for t in r["tasks"]]} for r in before
    ]
    assert [
        {k: v for k, v in r.items() if k != "deployed_at"} | {"tasks": [t["name"] for t in r["tasks"]]} for r in after
    ] == strip
    assert [r["version"] for r in after if r["latest"]] == ["v2", "v2"]  # the newer environment.json wins
    for r in after:
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamps[f"{r['environment']}/{r['version']}"]))
        assert r["deployed_at"].startswith(expected)
    with sqlite3.connect(store / DATABASE_FILE) as conn:
        [(note,)] = conn.execute("SELECT value FROM store_info WHERE key = 'migrated_file_layout'").fetchall()
    assert "4 task version(s) from 4 environment record(s)" in note and "skipped 1 interrupted deploy(s)" in note

    ran = invoke("run", "base.one", "--input", "x=1", "--output", "json")
    assert ran.json() == {"task": "base.one", "version": "v2", "outputs": {"o0": 6}}
    again = deploy(invoke, "--version", "v2", "--copy-style", "all")
    assert [r["status"] for r in again["registrations"]] == ["unchanged", "unchanged"]
    shutil.rmtree(store / "environments" / "base")  # the old files are not read again
    assert len(invoke("ls", "--output", "json").json()) == 4


@pytest.mark.parametrize(
    "breakage,named",
    [
        ("torn-record", "environments/top/v1/environment.json: unreadable environment record"),
        ("empty-spec", "environments/top/v1/two.pb: not the spec of task top.two version v1"),
        ("missing-spec", "environments/top/v1/two.pb: unreadable task spec"),
        ("nested-version", "environments/top/release/1.0/environment.json: version 'release/1.0' is not valid"),
    ],
)
def test_an_old_layout_that_cannot_be_read_is_refused_saying_how(flow: Path, invoke, breakage: str, named: str) -> None:
    deploy(invoke, "--version", "v1")
    store = flow / ".flyte-deploy"
    write_old_layout(store)
    top = store / "environments" / "top" / "v1"
    if breakage == "torn-record":
        (top / "environment.json").write_text('{"environment": "top", "vers')
    elif breakage == "empty-spec":
        (top / "two.pb").write_bytes(b"")
    elif breakage == "missing-spec":
        (top / "two.pb").unlink()
    else:
        nested = store / "environments" / "top" / "release" / "1.0"
        nested.mkdir(parents=True)
        record = json.loads((top / "environment.json").read_text()) | {"version": "release/1.0"}
        (nested / "environment.json").write_text(json.dumps(record))
    for args in (["ls"], ["deploy", "flow.py", "top", "--version", "v2"]):
        refused = invoke(*args)
        assert refused.exit_code == ExitCode.STORE_FAILED, refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: {store}/{named}")
        directory = (store / named.split(":")[0]).parent
        assert line.endswith(
            f"cannot be migrated into the database: fix or delete {directory}, or move"
            f" {store}/environments away to start an empty store, then rerun"
        )
        assert not (store / DATABASE_FILE).exists()
        assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no draft left behind
    shutil.move(store / "environments", flow / "old-environments")
    assert deploy(invoke, "--version", "v2")["registrations"][0]["status"] == "created"
