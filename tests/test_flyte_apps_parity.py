"""flyte-deploy's ``app.App`` of the apps in tests/flyte_projects/apps against the Flyte SDK's
own (``flyte.deploy(*apps, dry_run=True)`` in a fresh process), section by section. Every
difference left is listed in ``KNOWN`` with its reason and in docs/serialization.md (Apps);
any other difference fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyte_deploy.types import APP_VERSION_LABEL
from tests.tools import flyte_parity

pytest.importorskip("flyte")
ROOT = Path(__file__).parent / "flyte_projects" / "apps"
FILES = ["apps.py", "extras.py"]
#: sections every app differs in, and why (docs/serialization.md, "Apps")
KNOWN_FOR_EVERY_APP = [
    # the deploy version, in our label: how the store and a control plane's revision tell a
    # version's app from another's
    "metadata.labels",
]


@pytest.fixture(scope="module")
def apps():
    return flyte_parity.our_apps(ROOT, FILES)["apps"], flyte_parity.sdk_apps(ROOT, FILES)["apps"]


def test_every_app_matches_the_sdk_in_every_section_but_the_recorded_ones(apps):
    ours, theirs = apps
    report = flyte_parity.compare_apps(ours, theirs)
    assert sorted(report) == ["apps-dashboard", "apps-echo", "apps-proxy", "apps-scores"]
    assert {name: diff for name, diff in report.items() if diff != KNOWN_FOR_EVERY_APP} == {}
    assert all(app["metadata"]["labels"] == {APP_VERSION_LABEL: flyte_parity.VERSION} for app in ours.values())


def test_the_app_sections_cover_the_whole_app(apps):
    ours, _ = apps
    for app in ours.values():
        assert set(app) <= {"metadata", "spec"}
        assert set(app["metadata"]) <= {"id", "labels", "codeBundleUri", "sourceCode", "revision"}
        sections = flyte_parity.app_sections(app)
        assert sections["spec.other"] is not None  # desired state, cluster pool, runtime metadata
        assert set(sections["spec.other"]) <= {
            "desiredState",
            "clusterPool",
            "cluster",
            "runtimeMetadata",
            "extendedResources",
            "images",
            "creator",
        }
