"""Reading the file layout that releases before the database wrote into the store
directory: ``environments/<env>/<version>/environment.json`` (the environment record) and
``environments/<env>/<version>/<task>.pb`` (each ``TaskSpec``).

The database imports it once, in the transaction that creates its schema (database.py);
the files are left in place, unused from then on. A directory without
``environment.json`` holds the specs of a deploy that was interrupted before its record was
written: the old store never listed or ran it, so it is skipped. Anything else that cannot
be read as it was written refuses the migration, naming the file and what to do.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flyteidl2.task import task_definition_pb2
from google.protobuf.message import DecodeError

from ..errors import StoreError
from ..versions import RULE, version_problem
from .records import TaskRecord

OLD_LAYOUT_DIR = "environments"
RECORD_FILE = "environment.json"
#: the ``store_info`` key saying the old layout was imported (value: when, and what)
MIGRATED_KEY = "migrated_file_layout"
_BUNDLE_NAME = re.compile(r"([0-9a-f]{64})\.tar\.gz")


def old_layout_present(directory: Path) -> bool:
    return (directory / OLD_LAYOUT_DIR).is_dir()


def read_old_layout(directory: Path) -> tuple[list[TaskRecord], str]:
    """Every task of every environment record under ``directory/environments``, and a note
    of what was read and skipped; a ``StoreError`` for a record that cannot be migrated."""
    base = directory / OLD_LAYOUT_DIR
    records: list[TaskRecord] = []
    record_files = sorted(base.rglob(RECORD_FILE))
    for path in record_files:
        records += _read_record(base, path)
    interrupted = {p.parent for p in base.rglob("*.pb")} - {p.parent for p in record_files}
    note = f"{len(records)} task version(s) from {len(record_files)} environment record(s) in {base}" + (
        f"; skipped {len(interrupted)} interrupted deploy(s) without {RECORD_FILE}" if interrupted else ""
    )
    return records, note


def _refuse(base: Path, path: Path, problem: str) -> StoreError:
    return StoreError(
        f"{path}: {problem}; the old store layout in {base} cannot be migrated into the database:"
        f" fix or delete {path.parent}, or move {base} away to start an empty store, then rerun"
    )


def _read_record(base: Path, path: Path) -> list[TaskRecord]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(base, path, f"unreadable environment record ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise _refuse(base, path, "not an environment record")
    version = str(data.get("version", ""))
    if version_problem(version) is not None or path.parent.name != version:
        raise _refuse(base, path, f"version {version!r} is not valid (a version is {RULE})")
    bundle = data.get("bundle")
    named = _BUNDLE_NAME.fullmatch(str(bundle).rsplit("/", 1)[-1]) if bundle else None
    deployed_at = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    records = []
    for task in data["tasks"]:
        name = str(task.get("name", "")) if isinstance(task, dict) else ""
        env, _, short = name.partition(".")
        spec_path = path.parent / f"{short}.pb"
        if env != data.get("environment") or not short:
            raise _refuse(base, path, f"task {name!r} is not a task of environment {data.get('environment')!r}")
        try:
            spec = task_definition_pb2.TaskSpec.FromString(spec_path.read_bytes())
        except (OSError, DecodeError) as exc:
            raise _refuse(base, spec_path, f"unreadable task spec ({exc})") from None
        task_id = spec.task_template.id
        if (task_id.name, task_id.version) != (name, version) or not task_id.project or not task_id.domain:
            raise _refuse(base, spec_path, f"not the spec of task {name} version {version}")
        records.append(
            TaskRecord(
                project=task_id.project,
                domain=task_id.domain,
                name=name,
                version=version,
                environment=env,
                image=str(data.get("image") or ""),
                bundle_uri=bundle or None,
                bundle_digest=named.group(1) if named else None,
                copy_style=str(data.get("copy_style") or ""),
                depends_on=tuple(data.get("depends_on") or ()),
                source_link=task.get("source_link") or None,
                spec=spec.SerializeToString(deterministic=True),
                deployed_at=deployed_at,
            )
        )
    return records
