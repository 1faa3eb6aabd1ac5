"""flyte-deploy's ``app.App`` of the apps in tests/flyte_projects/apps against the Flyte SDK's
own (``flyte.deploy(*apps, dry_run=True)`` in a fresh process), section by section. Every
difference left is listed in ``KNOWN`` with its reason and in docs/serialization.md (Apps);
any other difference fails."""

from __future__ import annotations

import shutil
import subprocess
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
    # the SDK links the tree of the current directory's commit, ours the line defining the app
    "metadata.source_code",
]
REMOTE = "https://github.com/acme/apps"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, str]:
    """The apps project committed to a repository of its own with a github.com remote, so
    both sides link sources whatever checkout the suite runs from; and its commit."""
    root = tmp_path_factory.mktemp("apps-parity") / "apps"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(".flyte-deploy", "__pycache__"))
    git(root, "init", "-q")
    (root / ".git" / "info" / "exclude").write_text(".flyte-deploy/\n__pycache__/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "apps")
    git(root, "remote", "add", "origin", f"{REMOTE}.git")
    return root, git(root, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def apps(project):
    root, _ = project
    return flyte_parity.our_apps(root, FILES)["apps"], flyte_parity.sdk_apps(root, FILES)["apps"]


def test_every_app_matches_the_sdk_in_every_section_but_the_recorded_ones(apps):
    ours, theirs = apps
    report = flyte_parity.compare_apps(ours, theirs)
    assert sorted(report) == ["apps-dashboard", "apps-echo", "apps-proxy", "apps-scores"]
    assert {name: diff for name, diff in report.items() if diff != KNOWN_FOR_EVERY_APP} == {}
    assert all(app["metadata"]["labels"] == {APP_VERSION_LABEL: flyte_parity.VERSION} for app in ours.values())


def test_the_sdk_links_the_commits_tree_and_flyte_deploy_the_line_defining_each_app(apps, project):
    ours, theirs = apps
    root, commit = project
    assert {app["metadata"]["sourceCode"]["link"] for app in theirs.values()} == {f"{REMOTE}/tree/{commit}"}
    for name, app in ours.items():
        link = app["metadata"]["sourceCode"]["link"]
        assert link.startswith(f"{REMOTE}/blob/{commit}/"), (name, link)
        file, line = link.removeprefix(f"{REMOTE}/blob/{commit}/").split("#L")
        defining = (root / file).read_text().splitlines()[int(line) - 1 :]
        assert "Environment(" in defining[0] and f'name="{name}"' in " ".join(defining[:2]), (name, link)


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
