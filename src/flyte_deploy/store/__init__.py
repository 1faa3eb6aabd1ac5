"""The embedded (local) backend's store of record: a SQLite database in the store
directory, keyed by (project, domain, task name, version). Library code: no hooks here;
builtin/local_backend.py adapts it to ``register_environment``. docs/store.md describes
the schema and the guarantees."""

from .database import BUSY_TIMEOUT, DATABASE_FILE, LATEST_FIRST, Store
from .records import Status, TaskRecord

__all__ = ["BUSY_TIMEOUT", "DATABASE_FILE", "LATEST_FIRST", "Status", "Store", "TaskRecord"]
