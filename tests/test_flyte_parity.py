"""flyte-deploy's specs of the projects in tests/flyte_projects against the Flyte SDK's
own (``flyte.deploy(dry_run=True)`` in a fresh process, plus what only a real deploy adds),
section by section. Every difference left is listed in ``KNOWN`` with its reason and in
docs/serialization.md; any other difference fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import flyte_parity

pytest.importorskip("flyte")
pytest.importorskip("kubernetes")  # the SDK needs it for pod template objects
PROJECTS = Path(__file__).parent / "flyte_projects"
FILES = ["basics.py", "types_env.py", "reuse.py", "triggers.py", "pods.py", "images.py"]
#: task -> sections that differ, and why (docs/serialization.md, "Flyte SDK projects")
KNOWN = {
    # the actor version hashes CodeBundle.computed_version: the md5 of the SDK's own tar.gz
    # bytes there, our content-derived version here
    "reuse.work": ["custom"],
    "reuse.more": ["custom"],
}


@pytest.fixture(scope="module")
def specs():
    return (flyte_parity.our_specs(PROJECTS, FILES), flyte_parity.sdk_specs(PROJECTS, FILES))


def test_every_task_matches_the_sdk_in_every_section_but_the_recorded_ones(specs):
    ours, theirs = specs
    report = flyte_parity.compare(ours["specs"], theirs["specs"])
    assert len(report) >= 20
    assert {task: diff for task, diff in report.items() if diff} == KNOWN
    identical = sum(1 for diff in report.values() if not diff)
    print(f"{identical} of {len(report)} tasks identical to the Flyte SDK in every section")


def test_each_task_is_serialized_once_and_triggers_travel_with_their_task(specs):
    ours, _ = specs
    assert all(len(versions) == 1 for versions in ours["specs"].values())
    assert [t["name"] for t in ours["triggers"]["triggers.report"]] == ["nightly"]
    assert ours["triggers"]["triggers.poll"][0]["automationSpec"]["schedule"]["rate"]["value"] == 30
    assert ours["triggers"]["basics-base.add"] == []


def test_the_sections_cover_the_whole_spec(specs):
    ours, _ = specs
    spec = ours["specs"]["basics-top.pipeline"][0]
    covered = {
        "id",
        "type",
        "metadata",
        "interface",
        "container",
        "securityContext",
        "custom",
        "k8sPod",
        "reusePolicy",
        "extendedResources",
        "config",
    }
    assert set(spec["taskTemplate"]) <= covered
    assert set(spec) <= {"taskTemplate", "defaultInputs", "shortName", "environment", "documentation"}
