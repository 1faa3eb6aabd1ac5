"""Repo-level pytest configuration. Real servers (registry, S3, GCS, dockerd, a Flyte
control plane) are started by the fixture modules below, on 127.0.0.1, and stopped by
process id."""

pytest_plugins = [
    "flyte_deploy.testing",
    "pytester",
    "tests.fixtures.processes",
    "tests.fixtures.flyte_server",
    "tests.fixtures.gitrepos",
    "tests.fixtures.s3",
    "tests.fixtures.gcs",
    "tests.fixtures.registry",
    "tests.fixtures.dockerd",
    "tests.fixtures.base_image",
]
