"""Configuration for remote deploys: Flyte's config.yaml shape, where it is found, and the
precedence CLI > environment > config.yaml > pyproject > ~/.flyte/config.yaml > defaults."""

from __future__ import annotations

import pytest

from flyte_deploy.config import Config
from flyte_deploy.errors import ExitCode, UsageError
from flyte_deploy.remote import RemoteSettings, read_token, resolve_address

FLYTE_CONFIG = """
admin:
  endpoint: dns:///flyte.example.com:8089
  insecure: true
  caCertFilePath: certs/ca.pem
  command: ["print-token", "--audience", "flyte"]
  authType: ExternalCommand
logger:
  level: 5
task:
  org: acme
  project: from-yaml
  domain: staging
image:
  builder: local
  registry: ghcr.io/acme
storage: s3://bucket/bundles
flyte-deploy:
  timeout: 7
  retries: 1
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home directory, so the machine's ~/.flyte/config.yaml never leaks in."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    for var in ("UCTL_CONFIG", "FLYTECTL_CONFIG", "FLYTE_ADMIN_ENDPOINT", "FLYTE_TASK_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    return path


def load(root, options=None, **environ):
    return Config.load(root, options or {}, environ={"HOME": str(root / "home"), **environ})


def test_flyte_shaped_keys_map_to_flyte_deploy_keys(tmp_path, home):
    (tmp_path / "config.yaml").write_text(FLYTE_CONFIG)
    config = load(tmp_path)
    assert config.config_file == tmp_path / "config.yaml"
    assert config.get("endpoint") == "dns:///flyte.example.com:8089"
    assert config.get_bool("insecure") is True
    assert config.get("ca_cert") == "certs/ca.pem"
    assert config.get("token_command") == ["print-token", "--audience", "flyte"]
    assert (config.get("org"), config.get("project"), config.get("domain")) == ("acme", "from-yaml", "staging")
    assert (config.get("image.builder"), config.get("image.registry")) == ("local", "ghcr.io/acme")
    assert config.storage_url == "s3://bucket/bundles"
    assert (config.get("timeout"), config.get("retries")) == (7, 1)
    assert config.get("level") is None and config.get("logger.level") is None  # other sections ignored
    assert config.backend == "remote"  # the project configures an endpoint


def test_precedence_cli_over_env_over_config_file_over_pyproject(tmp_path, home):
    (tmp_path / "config.yaml").write_text("task:\n  project: yaml\n  domain: yaml-domain\n")
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nproject = "pyproject"\nstore = "memory://s"\n')
    assert load(tmp_path).get("project") == "yaml"
    assert load(tmp_path).get("store") == "memory://s"  # keys the file lacks still come from pyproject
    assert load(tmp_path, FLYTE_TASK_PROJECT="flyte-env").get("project") == "flyte-env"
    assert load(tmp_path, FLYTE_TASK_PROJECT="flyte-env", FLYTE_DEPLOY_PROJECT="ours").get("project") == "ours"
    assert load(tmp_path, {"project": "cli"}, FLYTE_DEPLOY_PROJECT="ours").get("project") == "cli"
    assert load(tmp_path).source_of("project") == str(tmp_path / "config.yaml")
    assert load(tmp_path, FLYTE_TASK_PROJECT="x").source_of("project") == "environment variable FLYTE_TASK_PROJECT"


def test_explicit_config_file_wins_over_the_project_one_and_must_exist(tmp_path, home):
    (tmp_path / "config.yaml").write_text("task:\n  project: project-file\n")
    other = tmp_path / "elsewhere.yaml"
    other.write_text("task:\n  project: explicit\n")
    assert load(tmp_path, {"config": str(other)}).get("project") == "explicit"
    assert load(tmp_path, FLYTE_DEPLOY_CONFIG=str(other)).get("project") == "explicit"
    assert load(tmp_path, FLYTECTL_CONFIG=str(other)).get("project") == "explicit"
    with pytest.raises(UsageError, match=r"config file .*missing.yaml \(from --config\) does not exist"):
        load(tmp_path, {"config": str(tmp_path / "missing.yaml")})


def test_user_level_config_ranks_below_pyproject_and_does_not_switch_the_backend(tmp_path, home):
    (home / ".flyte").mkdir()
    (home / ".flyte" / "config.yaml").write_text(
        "admin:\n  endpoint: dns:///cluster:443\ntask:\n  project: from-home\n  domain: home-domain\n"
    )
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nproject = "pyproject"\n')
    config = load(tmp_path)
    assert config.config_file_is_user_level
    assert config.get("project") == "pyproject"
    assert config.get("domain") == "home-domain"
    assert config.get("endpoint") == "dns:///cluster:443"  # still usable with --backend remote
    assert config.backend == "local"
    assert load(tmp_path, {"backend": "remote"}).backend == "remote"


def test_invalid_yaml_names_the_file_and_line(tmp_path, home):
    (tmp_path / "config.yaml").write_text("admin:\n  endpoint: [unclosed\n")
    with pytest.raises(UsageError, match=r"config\.yaml:\d+: invalid YAML"):
        load(tmp_path)


def test_a_bad_boolean_names_its_source(tmp_path, home):
    config = load(tmp_path, FLYTE_DEPLOY_INSECURE="maybe")
    with pytest.raises(UsageError, match="insecure must be true or false, got 'maybe' .*FLYTE_DEPLOY_INSECURE"):
        config.get_bool("insecure")


@pytest.mark.parametrize(
    "endpoint, insecure, address",
    [
        ("dns:///flyte.example.com:443", False, "https://flyte.example.com:443"),
        ("flyte.example.com:8089", True, "http://flyte.example.com:8089"),
        ("https://union.example.com/", True, "https://union.example.com"),
        ("http://127.0.0.1:30080", False, "http://127.0.0.1:30080"),
    ],
)
def test_endpoint_forms_resolve_to_a_base_url(endpoint, insecure, address):
    assert resolve_address(endpoint, insecure) == address


def test_remote_settings_explain_what_is_missing_or_wrong(tmp_path, home):
    with pytest.raises(UsageError, match="the remote backend needs an endpoint"):
        RemoteSettings.from_config(load(tmp_path))
    missing_ca = r"ca_cert .*nope\.pem does not exist \(environment variable FLYTE_DEPLOY_CA_CERT\)"
    with pytest.raises(UsageError, match=missing_ca):
        RemoteSettings.from_config(load(tmp_path, FLYTE_DEPLOY_ENDPOINT="h:1", FLYTE_DEPLOY_CA_CERT="nope.pem"))
    with pytest.raises(UsageError, match="is not host:port"):
        RemoteSettings.from_config(load(tmp_path, FLYTE_DEPLOY_ENDPOINT="dns:///h:1/path"))
    with pytest.raises(UsageError, match="timeout and retries must be numbers"):
        RemoteSettings.from_config(load(tmp_path, FLYTE_DEPLOY_ENDPOINT="h:1", FLYTE_DEPLOY_TIMEOUT="soon"))


def test_token_from_environment_wins_over_command_and_command_failures_hide_output(tmp_path, home):
    script = tmp_path / "token.sh"
    script.write_text("#!/bin/sh\necho s3cr3t-from-command\n")
    script.chmod(0o755)
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\necho s3cr3t-partial\necho oops >&2\nexit 3\n")
    failing.chmod(0o755)
    settings = RemoteSettings.from_config(
        load(tmp_path, FLYTE_DEPLOY_ENDPOINT="h:1", FLYTE_DEPLOY_TOKEN_COMMAND=str(script))
    )
    assert read_token(settings, {}) == "s3cr3t-from-command"
    assert read_token(settings, {"FLYTE_DEPLOY_TOKEN": "from-env"}) == "from-env"
    bad = RemoteSettings.from_config(
        load(tmp_path, FLYTE_DEPLOY_ENDPOINT="h:1", FLYTE_DEPLOY_TOKEN_COMMAND=str(failing))
    )
    with pytest.raises(UsageError) as info:
        read_token(bad, {})
    assert "failed with exit code 3" in str(info.value) and "s3cr3t" not in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE_ERROR
