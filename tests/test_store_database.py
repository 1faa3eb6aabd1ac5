"""The store of record through its library API (flyte_deploy.store): keys, immutability,
the latest version, and files that are not a sound store of this schema."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from flyteidl2.task import task_definition_pb2

from flyte_deploy.errors import EnvironmentFailure, ExitCode, RegistrationError, StoreError, UsageError
from flyte_deploy.store import DATABASE_FILE, Store, TaskRecord
from flyte_deploy.store.database import SCHEMA_VERSION, STALE_DRAFT


def record(
    name: str = "env.task",
    version: str = "v1",
    *,
    project: str = "p",
    domain: str = "d",
    image: str = "acme/img:1",
    link: str = "",
    padding: int = 0,
) -> TaskRecord:
    spec = task_definition_pb2.TaskSpec()
    task_id = spec.task_template.id
    task_id.project, task_id.domain, task_id.name, task_id.version = project, domain, name, version
    spec.task_template.container.image = image
    spec.task_template.container.args.extend(["--arg", "x" * padding])
    if link:
        spec.documentation.source_code.link = link
    return TaskRecord(
        project=project,
        domain=domain,
        name=name,
        version=version,
        environment=name.split(".")[0],
        image=image,
        bundle_uri="file:///b/0.tar.gz",
        bundle_digest="0" * 64,
        copy_style="all",
        depends_on=("base",),
        source_link=link or None,
        spec=spec.SerializeToString(deterministic=True),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_created_then_unchanged_whatever_the_source_link(store: Store) -> None:
    assert store.find() == [] and not store.directory.exists()  # reading creates nothing
    first = record(link="https://git.example/a#L1")
    assert store.register([first]) == {first.key: "created"}
    relinked = record(link="https://git.example/b#L1")  # a new commit, the same code
    assert store.register([relinked]) == {first.key: "unchanged"}
    [stored] = store.find(with_spec=True)
    assert stored.source_link == "https://git.example/a#L1" and stored.task_spec() == first.task_spec()
    assert (stored.environment, stored.depends_on, stored.bundle_digest, stored.latest) == (
        "env",
        ("base",),
        "0" * 64,
        True,
    )
    assert stored.deployed_at.endswith("Z") and len(stored.deployed_at) == len("2026-01-01T00:00:00.000000Z")


def test_a_changed_spec_refuses_the_whole_batch(store: Store) -> None:
    store.register([record("env.a")])
    with pytest.raises(RegistrationError) as refused:
        store.register([record("env.new"), record("env.a", image="acme/img:2")])
    assert str(refused.value) == (
        "task env.a version v1 is already deployed with a different spec in p/d (differs in"
        " task_template.container.image); versions are immutable: pass a new --version"
    )
    assert [r.name for r in store.find()] == ["env.a"]  # env.new was not written either


def test_many_conflicts_are_counted_not_all_listed(store: Store) -> None:
    store.register([record(f"env.t{i}") for i in range(8)])
    with pytest.raises(RegistrationError, match=r"env\.t4 .*; and 3 more; versions are immutable") as refused:
        store.register([record(f"env.t{i}", image="other") for i in range(8)])
    assert "env.t5" not in str(refused.value)


def test_the_key_is_project_domain_task_and_version(store: Store) -> None:
    keys = [record(project="p"), record(project="q"), record(domain="prod"), record(version="v2")]
    assert set(store.register(keys).values()) == {"created"}
    assert len(store.find()) == 4
    assert [r.project for r in store.find(project="q")] == ["q"]
    assert [(r.domain, r.version) for r in store.find(project="p", domain="d")] == [("d", "v1"), ("d", "v2")]


def test_latest_is_the_most_recent_first_registration(store: Store) -> None:
    store.register([record(version="v1")])
    store.register([record(version="v2")])
    store.register([record(version="v1")])  # unchanged: does not move deployed_at
    assert [(r.version, r.latest) for r in store.find()] == [("v1", False), ("v2", True)]
    assert [r.version for r in store.find(latest_only=True)] == ["v2"]
    assert [r.version for r in store.find(version="v1", latest_only=True)] == []


def test_deployed_at_ties_go_to_the_later_commit(store: Store) -> None:
    store.register([record(version="b")])
    store.register([record(version="a")])
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE tasks SET deployed_at = '2026-01-01T00:00:00.000000Z'")
    assert [r.version for r in store.find(latest_only=True)] == ["a"]


def test_a_store_must_be_a_local_directory(tmp_path: Path) -> None:
    assert Store.at((tmp_path / "s").as_uri()).directory == tmp_path / "s"
    assert Store.at(str(tmp_path / "s")).path == tmp_path / "s" / DATABASE_FILE
    for url in ("memory://x", "s3://KEY:SECRET@bucket/store", "gs://b/s"):
        with pytest.raises(UsageError, match="must be a local directory") as refused:
            Store.at(url)
        assert "SECRET" not in str(refused.value)


def test_the_database_file_appears_complete(store: Store) -> None:
    store.register([record()])
    assert sorted(p.name for p in store.directory.iterdir()) == [DATABASE_FILE]  # no draft, WAL closed
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_drafts_left_by_killed_creators_are_removed_when_stale(store: Store) -> None:
    store.directory.mkdir()
    stale, fresh = (store.directory / f".{DATABASE_FILE}.creating-{n}-0000" for n in (1, 2))
    for draft in (stale, fresh):
        draft.write_bytes(b"half a database")
    os.utime(stale, (time.time() - STALE_DRAFT - 60,) * 2)
    store.register([record()])
    assert not stale.exists() and fresh.exists()  # a fresh one may be another creator's
    os.utime(fresh, (time.time() - STALE_DRAFT - 60,) * 2)
    store.register([record()])  # also once the database exists
    assert not fresh.exists()


@pytest.mark.parametrize("damage", ["garbage", "half", "header", "empty", "middle"])
def test_a_damaged_database_is_one_error_naming_the_file(store: Store, damage: str) -> None:
    store.register([record(f"env.t{i}", padding=400) for i in range(300)])
    size = store.path.stat().st_size
    with open(store.path, "r+b") as db:
        if damage == "garbage":
            db.write(os.urandom(size))
        elif damage == "middle":
            db.seek(size // 2)
            db.write(os.urandom(8192))
        else:
            db.truncate({"half": size // 2, "header": 100, "empty": 0}[damage])
    reads = (
        [store.check] if damage == "middle" else [store.check, store.find, lambda: store.register([record("env.new")])]
    )
    for operation in reads:
        with pytest.raises(StoreError) as damaged:
            operation()
        assert str(damaged.value).startswith(f"{store.path} is damaged (")
        assert damaged.value.exit_code == ExitCode.STORE_FAILED and "\n" not in str(damaged.value)


def test_a_foreign_or_newer_database_is_refused(store: Store) -> None:
    store.directory.mkdir()
    with sqlite3.connect(store.path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StoreError, match="is a SQLite database but not a flyte-deploy store"):
        store.find()
    store.path.unlink()
    store.register([record()])
    with sqlite3.connect(store.path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer = rf"written by a newer flyte-deploy \(schema {SCHEMA_VERSION + 1}, this release reads {SCHEMA_VERSION}\)"
    with pytest.raises(StoreError, match=newer):
        store.register([record(version="v2")])


def test_a_store_path_that_is_a_file_is_an_environment_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(EnvironmentFailure, match=f"^{blocker}/{DATABASE_FILE}: cannot write the store ") as refused:
        Store(blocker).register([record()])
    assert refused.value.exit_code == ExitCode.ENVIRONMENT_FAILED


def test_a_writer_waits_for_another_and_names_the_lock_when_it_times_out(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.register([record()])
    monkeypatch.setattr("flyte_deploy.store.database.BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistrationError, match="stayed locked by another deploy for more than 0s") as busy:
            store.register([record(version="v2")])
        assert busy.value.hint == "rerun the deploy"
        assert [r.version for r in store.find()] == ["v1"]  # readers do not wait for a writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.register([record(version="v2")]) == {record(version="v2").key: "created"}
