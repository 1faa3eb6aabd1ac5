"""Bundling safety, built with hostile trees: special files are never opened, a task module
that copy style ``all`` would leave out is an error naming the rule, secret-looking files
are not bundled silently, and a broken ignore file is a user error naming file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from flyte_deploy.bundle.archive import write_archive
from flyte_deploy.bundle.secrets import find_secrets
from flyte_deploy.bundle.select import all_files
from flyte_deploy.errors import BundleError, ExitCode

from .bundle_helpers import (
    cli,
    cli_env,
    deploy_json,
    local_archive,
    make_project,
    write,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "shop")


def deploy_within(args: list[str], cwd: Path, seconds: float = 60) -> subprocess.CompletedProcess:
    """The CLI with a deadline: a deploy that blocks on a FIFO fails the test, never hangs it."""
    return subprocess.run(
        [sys.executable, "-m", "flyte_deploy", "deploy", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
    )


# -- special files ------------------------------------------------------------------------

FIFO_NAMES = [
    "data.csv",
    "data/prices.csv",
    "sub/CACHEDIR.TAG",
    ".gitignore",
    "sub/.flyteignore",
    "sub/pyvenv.cfg",
    "helpers/late.py",
    "sub/__init__.py",
]


@pytest.mark.parametrize("copy_style", ["all", "loaded_modules"])
def test_fifos_anywhere_in_the_tree_never_block_a_deploy(project: Path, copy_style: str) -> None:
    for name in FIFO_NAMES:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(project / name)
    (project / "feed.csv").symlink_to("data.csv")  # a link to a FIFO is not followed into it either
    done = deploy_within(["flows.py", "audit", "--copy-style", copy_style, "--output", "json", "-q"], project)
    assert done.returncode == 0, done.stderr
    with tarfile.open(local_archive(json.loads(done.stdout))) as tar:
        names = tar.getnames()
    assert not set(FIFO_NAMES + ["feed.csv"]) & set(names) and "flows.py" in names


def test_a_file_replaced_by_a_fifo_after_selection_is_an_error_not_a_hang(tmp_path: Path) -> None:
    write(tmp_path / "p", {"app.py": "A = 1\n", "data.csv": "a\n"})
    files = all_files(tmp_path / "p")
    os.unlink(files["data.csv"])
    os.mkfifo(files["data.csv"])
    with pytest.raises(BundleError, match=r"data\.csv: not a regular file \(it was replaced while bundling\?\)"):
        write_archive(files, tmp_path / "b.tar.gz")


# -- task modules that copy style all would leave out ---------------------------------------


def test_a_task_module_dropped_by_an_ignore_rule_names_the_rule(project: Path) -> None:
    write(project, {".gitignore": "# build output\n*.log\nfl*.py\n"})
    refused = cli(["deploy", "flows.py", "audit", "--copy-style", "all", "--dry-run"], project)
    assert refused.returncode == ExitCode.BUNDLE_FAILED, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    expected = (
        f"error: task shop.total (environment shop) is defined in flows.py, which the bundle (copy style"
        f" all) would leave out: it is ignored by {project / '.gitignore'}:3:fl*.py; the task could not"
        " be loaded from it"
    )
    assert errors == [expected]
    # a .flyteignore re-including it fixes the deploy
    write(project, {".flyteignore": "!flows.py\n"})
    deploy_json(["flows.py", "audit", "--copy-style", "all", "--dry-run"], project)


def test_a_task_module_in_an_ignored_directory_names_the_directory_rule(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(
        root,
        {
            ".gitignore": "",
            "services/.gitignore": "# built elsewhere\n\n/jobs/\n",
            "services/jobs/__init__.py": "",
            "services/__init__.py": "",
            "services/jobs/flow.py": "import flyte_deploy as fd\nenv = fd.TaskEnvironment(name='jobs')\n\n\n"
            "@env.task\ndef nightly() -> int:\n    return 1\n",
        },
    )
    refused = cli(["deploy", "services/jobs/flow.py", "env", "--copy-style", "all", "--dry-run", "-q"], root)
    assert refused.returncode == ExitCode.BUNDLE_FAILED
    assert (
        f"task jobs.nightly (environment jobs) is defined in services/jobs/flow.py, which the bundle (copy style"
        f" all) would leave out: its directory services/jobs is ignored by {root / 'services/.gitignore'}:3:/jobs/"
    ) in refused.stderr


# -- secrets --------------------------------------------------------------------------------

SECRETS = {
    ".env": "API_TOKEN=abc\n",
    "config/.env.production": "DB_PASSWORD=x\n",
    "keys/id_rsa": "k",
    "deploy/server.pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
    "home/.aws/credentials": "[default]\naws_secret_access_key=x\n",
    ".netrc": "machine h login u password p\n",
    "gcp/application_default_credentials.json": "{}",
    "gcp/my-service-account.json": "{}",
    "home/.config/gcloud/credentials.db": "x",
    "home/.ssh/id_ed25519": "k",
    "home/.docker/config.json": "{}",
    "certs/client.p12": "x",
    ".git-credentials": "https://u:p@host\n",
}
NOT_SECRETS = {
    ".env.example": "API_TOKEN=\n",
    "certs/ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "home/.ssh/id_ed25519.pub": "ssh-ed25519 AAAA\n",
    "home/.ssh/known_hosts": "h ssh-rsa AAAA\n",
    "environment.py": "",
    "src/env.py": "",
    "data/credentials.csv": "a,b\n",
    "keys.py": "",
}


def test_secret_looking_files_are_found_by_name_and_private_key_content(tmp_path: Path) -> None:
    write(tmp_path, {**SECRETS, **NOT_SECRETS})
    found = find_secrets(all_files(tmp_path))
    assert [s.name for s in found] == sorted(SECRETS)
    assert dict(found)["deploy/server.pem"] == "a private key (PEM)"


def test_secrets_are_bundled_with_a_warning_each_unless_allowed(project: Path) -> None:
    write(
        project,
        {
            ".env": "API_TOKEN=abc\n",
            "deploy/server.pem": SECRETS["deploy/server.pem"],
            "config/dev.env": "A=1\n",
            "config/.env.local": "B=2\n",
        },
    )
    result = cli(["deploy", "flows.py", "audit", "--copy-style", "all", "--dry-run", "-q", "--output", "json"], project)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert [w.split(",")[0] for w in warnings] == [
        "warning: bundling .env",
        "warning: bundling config/.env.local",
        "warning: bundling deploy/server.pem",
    ]
    assert "looks like a dotenv file" in warnings[0] and "bundle_allow_secrets" in warnings[0]
    assert "API_TOKEN" not in result.stderr + result.stdout  # never the content
    json.loads(result.stdout)  # warnings stay off stdout
    # loaded_modules bundles no such file: no warning
    quiet = cli(["deploy", "flows.py", "audit", "--dry-run", "-q"], project)
    assert "warning:" not in quiet.stderr
    # an explicit allow list silences exactly what it names
    with (project / "pyproject.toml").open("a") as handle:
        handle.write('bundle_allow_secrets = ["deploy/*.pem", "/.env"]\n')
    allowed = cli(["deploy", "flows.py", "audit", "--copy-style", "all", "--dry-run", "-q"], project)
    assert [line.split(",")[0] for line in allowed.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: bundling config/.env.local"
    ]
    # the environment variable (comma-separated) takes precedence over pyproject
    by_env = cli(
        ["deploy", "flows.py", "audit", "--copy-style", "all", "--dry-run", "-q"],
        project,
        {"FLYTE_DEPLOY_BUNDLE_ALLOW_SECRETS": "*.env.local, /.env"},
    )
    assert [line.split(",")[0] for line in by_env.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: bundling deploy/server.pem"
    ]


def test_an_invalid_allow_pattern_is_a_usage_error(project: Path) -> None:
    with (project / "pyproject.toml").open("a") as handle:
        handle.write('bundle_allow_secrets = ["!"]\n')
    refused = cli(["deploy", "flows.py", "audit", "--copy-style", "all", "--dry-run", "-q"], project)
    assert refused.returncode == ExitCode.USAGE_ERROR
    assert f"error: {project / 'pyproject.toml'}: bundle_allow_secrets: invalid pattern" in refused.stderr


# -- broken ignore files --------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["!", "[z-a].py", "trailing\\"])
def test_an_invalid_gitignore_pattern_is_a_user_error_naming_file_and_line(project: Path, pattern: str) -> None:
    write(project, {"helpers/.gitignore": f"*.log\n{pattern}\n"})
    refused = cli(["deploy", "flows.py", "audit", "--copy-style", "all", "--dry-run", "-q"], project)
    assert refused.returncode == ExitCode.BUNDLE_FAILED, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: {project / 'helpers/.gitignore'}:2: invalid ignore pattern {pattern!r}"
    ), errors
    assert "internal error" not in refused.stderr and "Traceback" not in refused.stderr


def test_non_utf8_and_directory_ignore_files_do_not_break_bundling(project: Path) -> None:
    (project / ".gitignore").write_bytes(b"caf\xe9.txt\n*.log\n")
    (project / "helpers" / ".flyteignore").mkdir()
    write(project, {"x.log": "", "café.txt": ""})
    result = deploy_json(["flows.py", "audit", "--copy-style", "all", "--dry-run"], project)
    # the 9 project files, .gitignore and café.txt (UTF-8, not the Latin-1 pattern); x.log ignored
    assert result["bundle"]["files"] == 11
