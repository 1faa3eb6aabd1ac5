"""The local backend's store of record: one SQLite database (``deployments.db``, WAL mode)
in the store directory. Schema, guarantees and failure handling: docs/store.md.

The database is created complete (schema, and the old file layout's records when there
is one) under another name and linked into place, so a ``deployments.db`` that exists is
always a whole store. Every write after that is one ``BEGIN IMMEDIATE`` transaction: a
deploy's registrations commit whole or not at all, so a process killed, interrupted or out
of disk at any point leaves the store as it was before or after the deploy, and a rerun
completes. Writers wait up to ``BUSY_TIMEOUT`` seconds for each other; readers never wait.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flyteidl2.app import app_definition_pb2
from flyteidl2.task import task_definition_pb2

from ..errors import DiskFull, EnvironmentFailure, FlyteDeployError, RegistrationError, StoreError, UsageError
from ..storage import local_path, redact_url
from ..types import same_app_registration, same_registration
from . import migration
from .records import AppRecord, AppStatus, DeployedRecord, TaskRecord

DATABASE_FILE = "deployments.db"
#: seconds a writer waits for another one to commit before giving up
BUSY_TIMEOUT = 30.0
#: seconds after which a draft database left by a killed creator is removed
STALE_DRAFT = 3600
#: ``PRAGMA user_version`` of the current schema; a store with a greater one is refused
SCHEMA_VERSION = 2  # 2: the apps table
#: the ``store_info`` key saying when a store was upgraded from schema N: f"{UPGRADED_KEY}{N}"
UPGRADED_KEY = "upgraded_from_schema_"

APPS_TABLE = """CREATE TABLE apps (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- commit order
        project TEXT NOT NULL,
        domain TEXT NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,                  -- the deploy version this revision runs
        environment TEXT NOT NULL,
        image TEXT NOT NULL,
        bundle_uri TEXT,
        bundle_digest TEXT,
        source_link TEXT,
        deployed_at TEXT NOT NULL,              -- UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ
        revision INTEGER NOT NULL,              -- 1, 2, ... per (project, domain, name)
        spec BLOB NOT NULL,                     -- serialized flyteidl2 app.App
        UNIQUE (project, domain, name, revision)
    )"""

#: schema N -> (what upgrading it to N + 1 does, its statements); a write upgrades an older
#: store in its own transaction, a read leaves it as it is
UPGRADES = {1: ("apps table added", (APPS_TABLE,))}

SCHEMA = (
    """CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- commit order: breaks deployed_at ties
        project TEXT NOT NULL,
        domain TEXT NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        environment TEXT NOT NULL,
        image TEXT NOT NULL,
        bundle_uri TEXT,
        bundle_digest TEXT,
        copy_style TEXT NOT NULL,
        depends_on TEXT NOT NULL,               -- JSON array of environment names
        source_link TEXT,
        deployed_at TEXT NOT NULL,              -- UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ
        spec BLOB NOT NULL,                     -- serialized flyteidl2 TaskSpec
        UNIQUE (project, domain, name, version)
    )""",
    "CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    APPS_TABLE,
)

#: the order that makes a version the latest of its task: the rule ``run`` and ``ls`` share
LATEST_FIRST = "deployed_at DESC, seq DESC"

#: the columns of the fields every record has (``DeployedRecord``), first in both tables
_DEPLOYED_COLUMNS = tuple(f.name for f in dataclasses.fields(DeployedRecord))
_APP_COLUMNS = (
    *_DEPLOYED_COLUMNS,
    "source_link",
    "deployed_at",
    "revision",
)
_COLUMNS = (
    *_DEPLOYED_COLUMNS,
    "copy_style",
    "depends_on",
    "source_link",
    "deployed_at",
)
#: free bytes below which an I/O error is taken for a full disk (a shared-memory chunk is 32 KiB)
_NEARLY_FULL = 128 << 10
#: conflicts named in one error before "and N more"
_SHOWN_CONFLICTS = 5


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """The database in ``directory`` (a relative one is resolved against the current
    directory). Nothing is created until the first write."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).absolute()
        self.path = self.directory / DATABASE_FILE

    @classmethod
    def at(cls, url: str) -> Store:
        """The store at ``url``, a local path or ``file://`` URL; any other URL is refused,
        since a SQLite database needs a local filesystem (bundles can go anywhere)."""
        path = local_path(url)
        if path is None:
            raise UsageError(
                f"the local backend's store must be a local directory, got {redact_url(url)}: it is a"
                " SQLite database; put bundles at any fsspec URL with the storage setting"
            )
        return cls(Path(path))

    # -- deploying -------------------------------------------------------------------

    def check(self) -> None:
        """Refuse, writing nothing, a store a deploy could not use: a database that is
        damaged or not of this schema, one sqlite cannot open (a full or read-only
        filesystem: reported as for a registration), or an old file layout that cannot be
        migrated."""
        if not self.path.exists():
            if migration.old_layout_present(self.directory):
                migration.read_old_layout(self.directory)
            return
        with self._translated(writing=True), self._connection() as conn:
            result = conn.execute("PRAGMA quick_check").fetchall()
            if [tuple(r) for r in result] != [("ok",)]:
                problems = " ".join(str(r[0]) for r in result[:3]).split()
                raise self._damaged(" ".join(problems[:40]))

    def register(
        self, records: Sequence[TaskRecord], apps: Sequence[AppRecord] = ()
    ) -> dict[tuple[str, ...], AppStatus]:
        """Commit ``records`` and ``apps`` in one transaction; the status by record key
        (a task's and an app's keys differ in length).

        A task key that is new is ``created``; one already holding the same spec (source
        link aside) is ``unchanged``. An app with no revision yet is ``created`` (revision
        1); one whose latest revision is this version with the same spec (revision and
        source link aside) is ``unchanged``; one at another version is ``updated`` (a new
        revision). If any task key holds a different spec, or any revision of an app holds
        this version with a different spec, nothing is written and a ``RegistrationError``
        names them (versions are immutable)."""
        statuses: dict[tuple[str, ...], AppStatus] = {}
        conflicts: list[str] = []
        self._remove_stale_drafts()
        with self._translated(writing=True), self._transaction() as conn:
            deployed_at = utc_now()
            for record in records:
                row = conn.execute(
                    "SELECT spec FROM tasks WHERE project = ? AND domain = ? AND name = ? AND version = ?", record.key
                ).fetchone()
                if row is None:
                    insert(conn, record, deployed_at)
                    statuses[record.key] = "created"
                elif same_registration(task_definition_pb2.TaskSpec.FromString(row[0]), record.task_spec()):
                    statuses[record.key] = "unchanged"
                else:
                    conflicts.append(_conflict(record, row[0]))
            for app in apps:
                status = _app_status(conn, app)
                if isinstance(status, bytes):
                    conflicts.append(_app_conflict(app, status))
                    continue
                statuses[app.key] = status
                if status != "unchanged":
                    insert_app(conn, app, deployed_at)
            if conflicts:
                more = len(conflicts) - _SHOWN_CONFLICTS
                raise RegistrationError(
                    "; ".join(conflicts[:_SHOWN_CONFLICTS])
                    + (f"; and {more} more" if more > 0 else "")
                    + "; versions are immutable: pass a new --version"
                )
        return statuses

    # -- reading ---------------------------------------------------------------------

    def find(
        self,
        *,
        project: str | None = None,
        domain: str | None = None,
        name: str | None = None,
        version: str | None = None,
        latest_only: bool = False,
        with_spec: bool = False,
    ) -> list[TaskRecord]:
        """The records matching every given filter, ordered by project, domain, environment
        and deployed_at; ``latest`` is computed over the whole store whatever the filters, and
        ``latest_only`` keeps only the latest. An empty list when the store does not exist
        yet (an old file layout is migrated first)."""
        if not self.path.exists() and not migration.old_layout_present(self.directory):
            return []  # nothing deployed yet: nothing to create
        columns = ", ".join(_COLUMNS) + ", latest" + (", spec" if with_spec else "")
        query = (
            f"SELECT {columns} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY project, domain, name"
            f" ORDER BY {LATEST_FIRST}) = 1 AS latest FROM tasks)"
            " WHERE (:project IS NULL OR project = :project) AND (:domain IS NULL OR domain = :domain)"
            " AND (:name IS NULL OR name = :name)"
            " AND (:version IS NULL OR version = :version) AND (NOT :latest_only OR latest)"
            " ORDER BY project, domain, environment, deployed_at, seq"
        )
        params = {"project": project, "domain": domain, "name": name, "version": version, "latest_only": latest_only}
        with self._translated(writing=False), self._connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_record(row, with_spec) for row in rows]

    def find_apps(
        self, *, project: str | None = None, domain: str | None = None, name: str | None = None, with_spec: bool = False
    ) -> list[AppRecord]:
        """The latest revision of each app matching every given filter, ordered by project,
        domain and name; an empty list when the store does not exist yet or predates apps."""
        if not self.path.exists() and not migration.old_layout_present(self.directory):
            return []
        columns = ", ".join(_APP_COLUMNS) + (", spec" if with_spec else "")
        query = (
            f"SELECT {columns} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY project, domain, name"
            " ORDER BY revision DESC) AS rank FROM apps)"
            " WHERE rank = 1 AND (:project IS NULL OR project = :project) AND (:domain IS NULL OR domain = :domain)"
            " AND (:name IS NULL OR name = :name) ORDER BY project, domain, name"
        )
        params = {"project": project, "domain": domain, "name": name}
        with self._translated(writing=False), self._connection() as conn:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION:
                return []  # written before apps: a write upgrades it
            rows = conn.execute(query, params).fetchall()
        return [
            AppRecord(
                **dict(zip(_APP_COLUMNS, row[: len(_APP_COLUMNS)], strict=True)),
                spec=bytes(row[-1]) if with_spec else b"",
            )
            for row in rows
        ]

    # -- connections, transactions, errors ----------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """An autocommit connection (transactions are explicit) to a sound database of
        this schema, created first if it does not exist."""
        if not self.path.exists():
            self._create()
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            self._check_schema(conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on a store of the current schema: an older one is upgraded
        inside it (so with the write, or not at all)."""
        with self._connection() as conn, _immediate(conn):
            _upgrade(conn)
            yield conn

    def _create(self) -> None:
        """Create the database beside its final name, with the schema and the records of the
        old file layout when there is one, and link it into place: a database file that
        exists is complete, whoever was killed when. Concurrent creators: the first link
        wins, the others discard theirs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        draft = self.directory / f".{DATABASE_FILE}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            conn = sqlite3.connect(draft, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                with _immediate(conn):
                    for statement in SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    if migration.old_layout_present(self.directory):
                        records, note = migration.read_old_layout(self.directory)
                        for record in records:
                            insert(conn, record, record.deployed_at)
                        conn.execute(
                            "INSERT INTO store_info (key, value) VALUES (?, ?)",
                            (migration.MIGRATED_KEY, f"{utc_now()}: {note}"),
                        )
            finally:
                conn.close()
            with suppress(FileExistsError):
                os.link(draft, self.path)
        finally:
            for leftover in (draft, Path(f"{draft}-wal"), Path(f"{draft}-shm")):
                leftover.unlink(missing_ok=True)

    def _remove_stale_drafts(self) -> None:
        """Remove the drafts (see ``_create``) of creators killed more than ``STALE_DRAFT``
        seconds ago; a younger one may be another creator's."""
        for draft in self.directory.glob(f".{DATABASE_FILE}.creating-*"):
            with suppress(OSError):
                if time.time() - draft.stat().st_mtime > STALE_DRAFT:
                    draft.unlink()

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Refuse a file that is not a database of this schema (before anything writes to it)."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION or version in UPGRADES:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer flyte-deploy (schema {version}, this release reads"
                f" {SCHEMA_VERSION}); upgrade flyte-deploy"
            )
        if self.path.stat().st_size == 0:
            raise self._damaged("the file is empty")
        raise StoreError(
            f"{self.path} is a SQLite database but not a flyte-deploy store; move it away or pass another --store"
        )

    @contextmanager
    def _translated(self, writing: bool) -> Iterator[None]:
        """Turn sqlite and filesystem errors into one-line errors naming the database:
        damage (or, when reading, anything but a full disk) is a ``StoreError``; a full disk
        is ``DiskFull``; while writing, a lock held too long is a ``RegistrationError`` and a
        store that cannot be written an ``EnvironmentFailure``. A rerun completes each."""
        try:
            yield
        except FlyteDeployError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self._failure(exc, writing) from None

    def _failure(self, exc: sqlite3.Error | OSError, writing: bool) -> FlyteDeployError:
        if isinstance(exc, OSError):
            text = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            kind = "full" if exc.errno == errno.ENOSPC else "unusable"
        else:
            text = str(exc)
            kind = _kind(exc, self.directory)
        if kind == "damaged":
            return self._damaged(text)
        if kind == "full":
            return DiskFull(
                f"{self.path}: the store is out of space ({text})"
                + (
                    "; nothing was registered: free space on its filesystem and rerun the deploy"
                    if writing
                    else ": free space on its filesystem"
                )
            )
        if not writing:
            return StoreError(f"{self.path}: cannot read the store ({text})")
        if kind == "busy":
            return RegistrationError(
                f"{self.path}: the store stayed locked by another deploy for more than {BUSY_TIMEOUT:.0f}s ({text})",
                hint="rerun the deploy",
            )
        return EnvironmentFailure(
            f"{self.path}: cannot write the store ({text}); nothing was registered: make it"
            " writable (or pass another --store) and rerun the deploy"
        )

    def _damaged(self, detail: str) -> StoreError:
        return StoreError(
            f"{self.path} is damaged ({detail}): restore it from a backup, or move it away to start an"
            " empty store (bundles are kept)"
        )


def _deployed_values(record: DeployedRecord) -> tuple[Any, ...]:
    """``record``'s values of ``_DEPLOYED_COLUMNS``, the columns tasks and apps share, in their order."""
    return tuple(getattr(record, column) for column in _DEPLOYED_COLUMNS)


def insert(conn: sqlite3.Connection, record: TaskRecord, deployed_at: str) -> None:
    conn.execute(
        f"INSERT INTO tasks ({', '.join(_COLUMNS)}, spec) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})",
        (
            *_deployed_values(record),
            record.copy_style,
            json.dumps(list(record.depends_on)),
            record.source_link,
            deployed_at,
            record.spec,
        ),
    )


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a store of an older schema (``UPGRADES``) to this one, within the caller's
    transaction, noting it in ``store_info``; its tasks are kept as they are."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    while version < SCHEMA_VERSION:
        note, statements = UPGRADES[version]
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO store_info (key, value) VALUES (?, ?)", (f"{UPGRADED_KEY}{version}", f"{utc_now()}: {note}")
        )
        version += 1
        conn.execute(f"PRAGMA user_version = {version}")


def _app_status(conn: sqlite3.Connection, app: AppRecord) -> AppStatus | bytes:
    """What registering ``app`` does (see ``Store.register``), or the spec of a revision
    already holding its version with a different spec."""
    new = app.app()
    for (spec,) in conn.execute(
        "SELECT spec FROM apps WHERE project = ? AND domain = ? AND name = ? AND version = ?", (*app.key, app.version)
    ):
        if not same_app_registration(app_definition_pb2.App.FromString(spec), new):
            return bytes(spec)
    latest = conn.execute(
        "SELECT version FROM apps WHERE project = ? AND domain = ? AND name = ? ORDER BY revision DESC LIMIT 1", app.key
    ).fetchone()
    if latest is None:
        return "created"
    return "unchanged" if latest[0] == app.version else "updated"


def insert_app(conn: sqlite3.Connection, record: AppRecord, deployed_at: str) -> None:
    """Insert ``record`` as the app's next revision (its spec's ``metadata.revision`` set to it)."""
    revision = int(
        conn.execute(
            "SELECT COALESCE(MAX(revision), 0) + 1 FROM apps WHERE project = ? AND domain = ? AND name = ?", record.key
        ).fetchone()[0]
    )
    spec = record.app()
    spec.metadata.revision = revision
    conn.execute(
        f"INSERT INTO apps ({', '.join(_APP_COLUMNS)}, spec) VALUES ({', '.join('?' * (len(_APP_COLUMNS) + 1))})",
        (
            *_deployed_values(record),
            record.source_link,
            deployed_at,
            revision,
            spec.SerializeToString(deterministic=True),
        ),
    )


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (the write lock, waiting up to the busy timeout) ... ``COMMIT``;
    any exception, ``KeyboardInterrupt`` included, rolls back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):  # closing the connection rolls back as well
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _kind(exc: sqlite3.Error, directory: Path) -> str:
    """damaged, full, busy or unusable (read-only, cannot open, I/O error, ...). An I/O
    error on a filesystem with almost nothing free is a full disk: sqlite reports a full
    disk as ``SQLITE_IOERR_SHMSIZE`` (or another I/O error) when its shared-memory file or a
    sync cannot get space, and as ``SQLITE_FULL`` only for its own pages."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    text = str(exc).lower()
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return "damaged"
    if name.startswith("SQLITE_FULL") or "is full" in text:
        return "full"
    if name.startswith("SQLITE_IOERR") and _free_bytes(directory) < _NEARLY_FULL:
        return "full"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "is locked" in text:
        return "busy"
    return "unusable"


def _free_bytes(directory: Path) -> int:
    try:
        stats = os.statvfs(directory)
    except OSError:
        return _NEARLY_FULL
    return stats.f_bavail * stats.f_frsize


def _record(row: Sequence[Any], with_spec: bool) -> TaskRecord:
    values = dict(zip((*_COLUMNS, "latest"), row[: len(_COLUMNS) + 1], strict=True))
    values["depends_on"] = tuple(json.loads(values["depends_on"]))
    values["latest"] = bool(values["latest"])
    return TaskRecord(**values, spec=bytes(row[-1]) if with_spec else b"")


def _conflict(record: TaskRecord, existing: bytes) -> str:
    from ..diffing import spec_conflict
    from ..types import without_source_link

    deployed = without_source_link(task_definition_pb2.TaskSpec.FromString(existing))
    where = f" in {record.project}/{record.domain}"
    return spec_conflict("task", record.name, record.version, deployed, without_source_link(record.task_spec()), where)


def _app_conflict(record: AppRecord, existing: bytes) -> str:
    from ..diffing import spec_conflict
    from ..types import without_app_revision

    deployed = without_app_revision(app_definition_pb2.App.FromString(existing))
    where = f" in {record.project}/{record.domain}"
    return spec_conflict("app", record.name, record.version, deployed, without_app_revision(record.app()), where)


# -- read-only queries for diff and history ------------------------------------------------


def latest_of_environments(store: Store, project: str, domain: str, environments: Sequence[str]) -> list[TaskRecord]:
    """The latest version (``LATEST_FIRST``) of every task of ``environments`` in
    ``project``/``domain``, with its spec; tasks no longer in their environment's code too."""
    wanted = set(environments)
    return [
        r
        for r in store.find(project=project, domain=domain, latest_only=True, with_spec=True)
        if r.environment in wanted
    ]


def task_versions(store: Store, project: str, domain: str, name: str) -> list[TaskRecord]:
    """Every version of task ``name`` in ``project``/``domain``, with its spec, first deployed first."""
    return store.find(project=project, domain=domain, name=name, with_spec=True)  # one environment: by deployed_at


def latest_apps(store: Store, project: str, domain: str, names: Sequence[str]) -> list[AppRecord]:
    """The latest revision, with its spec, of each of the apps ``names`` in ``project``/``domain``."""
    wanted = set(names)
    return [r for r in store.find_apps(project=project, domain=domain, with_spec=True) if r.name in wanted]


def app_revisions(store: Store, project: str, domain: str, name: str) -> list[AppRecord]:
    """Every revision of app ``name`` in ``project``/``domain``, with its spec, first first;
    an empty list when the store does not exist yet or predates apps (nothing is written)."""
    if not store.path.exists():
        return []  # an old file layout holds no apps
    with store._translated(writing=False), store._connection() as conn:
        if int(conn.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION:
            return []
        rows = conn.execute(
            f"SELECT {', '.join(_APP_COLUMNS)}, spec FROM apps WHERE project = ? AND domain = ? AND name = ?"
            " ORDER BY revision",
            (project, domain, name),
        ).fetchall()
    return [AppRecord(**dict(zip(_APP_COLUMNS, row[:-1], strict=True)), spec=bytes(row[-1])) for row in rows]
