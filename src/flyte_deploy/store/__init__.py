"""The embedded (local) backend's store of record: a SQLite database in the store
directory, keyed by (project, domain, task name, version) for tasks and by (project,
domain, app name, revision) for apps. Library code: no hooks here;
builtin/local_backend.py adapts it to ``register_environment``. docs/store.md describes
the schema and the guarantees."""

from .database import BUSY_TIMEOUT, DATABASE_FILE, LATEST_FIRST, Store
from .records import AppRecord, AppStatus, Status, TaskRecord

__all__ = [
    "BUSY_TIMEOUT",
    "DATABASE_FILE",
    "LATEST_FIRST",
    "AppRecord",
    "AppStatus",
    "Status",
    "Store",
    "TaskRecord",
]
