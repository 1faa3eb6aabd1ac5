"""A client of a Flyte control plane's ``TaskService`` and ``AppService`` over Connect.

It wraps flyteidl2's generated synchronous clients (``TaskServiceClientSync``,
``AppServiceClientSync``) with what a deploy needs: the endpoint and TLS settings of the
configuration (a custom CA with ``ca_cert``), a bearer token from ``FLYTE_DEPLOY_TOKEN`` or
``token_command``, a timeout per request and retries of transient failures. Every failure
becomes a ``ControlPlaneError`` with a one-line message; the token never appears in one.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.app import app_definition_pb2, app_payload_pb2
from flyteidl2.common import identifier_pb2, list_pb2
from flyteidl2.task import task_definition_pb2, task_service_pb2
from google.protobuf.message import Message

from .config import Config
from .errors import ControlPlaneError, UsageError, register_secret

#: the environment variable holding a bearer token (wins over ``token_command``)
TOKEN_VARIABLE = "FLYTE_DEPLOY_TOKEN"
#: failures worth another attempt: the server may answer the next one
TRANSIENT_CODES = frozenset({Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.RESOURCE_EXHAUSTED, Code.ABORTED})
RETRY_BASE_DELAY = 0.25
PAGE_SIZE = 100

R = TypeVar("R")


def resolve_address(endpoint: str, insecure: bool) -> str:
    """The base URL of ``endpoint``: ``dns:///host:port`` and ``host:port`` become
    ``https://host:port`` (``http://`` when ``insecure``); an explicit URL is kept."""
    text = endpoint.strip().rstrip("/")
    if text.startswith(("http://", "https://")):
        return text
    text = re.sub(r"^dns:(///)?", "", text)
    if not text or "/" in text:
        raise UsageError(f"endpoint {endpoint!r} is not host:port, dns:///host:port or an http(s):// URL")
    return f"{'http' if insecure else 'https'}://{text}"


@dataclass(frozen=True)
class RemoteSettings:
    """The connection settings of a remote deploy, validated."""

    address: str
    org: str
    project: str
    domain: str
    ca_cert: Path | None
    timeout: float
    retries: int
    token_command: tuple[str, ...] | None
    #: requests in flight at once (``remote.concurrency``)
    concurrency: int = 16

    @classmethod
    def from_config(cls, config: Config) -> RemoteSettings:
        endpoint = config.get("endpoint")
        if not endpoint:
            raise UsageError(
                "the remote backend needs an endpoint: set admin.endpoint in config.yaml,"
                " FLYTE_DEPLOY_ENDPOINT, or endpoint in [tool.flyte-deploy]"
            )
        ca_cert = config.get("ca_cert")
        ca_path = None
        if ca_cert:
            ca_path = (config.root_dir / Path(str(ca_cert)).expanduser()).resolve()
            if not ca_path.is_file():
                raise UsageError(f"ca_cert {ca_path} does not exist ({config.source_of('ca_cert')})")
        try:
            timeout, retries = float(config.get("timeout")), int(config.get("retries"))
        except (TypeError, ValueError):
            raise UsageError(
                f"timeout and retries must be numbers, got {config.get('timeout')!r} and {config.get('retries')!r}"
            ) from None
        if timeout <= 0 or retries < 0:
            raise UsageError(f"timeout must be > 0 and retries >= 0, got {timeout} and {retries}")
        concurrency = config.get("remote.concurrency")
        if isinstance(concurrency, bool) or not str(concurrency).isdigit() or not 1 <= int(concurrency) <= 256:
            raise UsageError(
                f"remote.concurrency must be a whole number from 1 to 256, got {concurrency!r}"
                f" ({config.source_of('remote.concurrency')})"
            )
        command = config.get("token_command")
        if isinstance(command, str):
            command = shlex.split(command)
        if command is not None and (
            not isinstance(command, (list, tuple)) or not command or not all(isinstance(c, str) for c in command)
        ):
            raise UsageError(
                f"token_command must be a command line or a list of strings ({config.source_of('token_command')})"
            )
        return cls(
            address=resolve_address(str(endpoint), config.get_bool("insecure")),
            org=str(config.get("org") or ""),
            project=str(config.get("project")),
            domain=str(config.get("domain")),
            ca_cert=ca_path,
            timeout=timeout,
            retries=retries,
            token_command=tuple(command) if command else None,
            concurrency=int(concurrency),
        )


def read_token(settings: RemoteSettings, environ: Any) -> str | None:
    """The bearer token: ``FLYTE_DEPLOY_TOKEN``, else the stripped output of ``token_command``,
    else None. A failing command is a ``UsageError`` that shows neither its output nor the token."""
    token = environ.get(TOKEN_VARIABLE, "").strip()
    if token:
        return token
    if not settings.token_command:
        return None
    program = settings.token_command[0]
    try:
        proc = subprocess.run(
            list(settings.token_command),
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise UsageError(f"token_command: program {program!r} not found") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"token_command {program!r} did not finish within 60s") from None
    if proc.returncode != 0:
        raise UsageError(f"token_command {program!r} failed with exit code {proc.returncode}")
    token = proc.stdout.strip()
    if not token:
        raise UsageError(f"token_command {program!r} printed no token")
    register_secret(token)  # a command's token is never shown (FLYTE_DEPLOY_TOKEN is masked by name)
    return token


class ConnectConnection:
    """What a connection to one service of a control plane shares with the others: the HTTP
    client (TLS, timeouts; ``http`` reuses another connection's), the bearer token, retries
    of transient failures and one-line errors without the token. Close it when done."""

    def __init__(self, settings: RemoteSettings, token: str | None, *, http: Any = None) -> None:
        # the clients and their HTTP stack load here, not with the module (every CLI start-up)
        from pyqwest import SyncClient, SyncHTTPTransport

        self.settings = settings
        self._token = token
        self._headers = {"authorization": f"Bearer {token}"} if token else {}
        if http is None:
            transport = SyncHTTPTransport(
                tls_ca_cert=settings.ca_cert.read_bytes() if settings.ca_cert else None,
                tls_include_system_certs=True,
                timeout=settings.timeout,
                connect_timeout=min(settings.timeout, 10.0),
            )
            http = SyncClient(transport)
        self.http = http
        self._client = self._client_class()(settings.address, http_client=http, timeout_ms=int(settings.timeout * 1000))

    @classmethod
    def sharing(cls, other: ConnectConnection) -> Self:
        """A connection to this service with ``other``'s settings, token and HTTP client."""
        return cls(other.settings, other._token, http=other.http)

    @staticmethod
    def _client_class() -> Any:
        """The generated synchronous client of the service."""
        raise NotImplementedError

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _pages(
        self,
        method: str,
        call: Callable[..., Any],
        field: str,
        make: Callable[[list_pb2.ListRequest], Message],
        *,
        expect: frozenset[Code] = frozenset(),
    ) -> Iterator[Any]:
        token = ""
        while True:
            response = self._call(method, call, make(list_pb2.ListRequest(limit=PAGE_SIZE, token=token)), expect=expect)
            yield from getattr(response, field)
            token = response.token
            if not token:
                return

    def _call(
        self, method: str, call: Callable[..., R], request: Message, *, expect: frozenset[Code] = frozenset()
    ) -> R:
        """``call(request)`` with retries; a code in ``expect`` raises ``Expected`` (for the
        caller to handle, never retried), any other failure a ``ControlPlaneError``."""
        attempt = 0
        while True:
            try:
                return call(request, headers=self._headers)
            except ConnectError as exc:
                if exc.code in expect:
                    raise Expected(exc.code) from None
                if exc.code in TRANSIENT_CODES and not _is_tls_failure(exc) and attempt < self.settings.retries:
                    time.sleep(RETRY_BASE_DELAY * 2**attempt)
                    attempt += 1
                    continue
                raise ControlPlaneError(self.describe_failure(method, exc, attempt + 1)) from None

    def describe_failure(self, method: str, exc: ConnectError, attempts: int) -> str:
        """One line saying what failed and what to do, without the token."""
        address = self.settings.address
        detail = _redact(_short(exc.message), self._token)
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        if _is_tls_failure(exc):
            return (
                f"TLS with the control plane at {address} failed: {detail}; if it uses a private CA,"
                " set ca_cert (admin.caCertFilePath) to that CA's PEM file"
            )
        if exc.code == Code.UNAVAILABLE:
            return f"cannot reach the control plane at {address}{tries}: {detail}"
        if exc.code == Code.UNAUTHENTICATED:
            return (
                f"the control plane at {address} refused the credentials of {method} ({detail});"
                f" set {TOKEN_VARIABLE} or token_command"
            )
        if exc.code == Code.UNIMPLEMENTED:
            return f"the control plane at {address} does not offer {method} ({exc.code.value}: {detail})"
        return f"{method} at {address} failed{tries}: {exc.code.value}: {detail}"


class TaskServiceConnection(ConnectConnection):
    """One connection to a control plane's TaskService."""

    @staticmethod
    def _client_class() -> Any:
        from flyteidl2.task.task_service_connect import TaskServiceClientSync

        return TaskServiceClientSync

    def task_id(self, spec: task_definition_pb2.TaskSpec) -> task_definition_pb2.TaskIdentifier:
        """The identifier a spec is registered under (its template's id, our org)."""
        tid = spec.task_template.id
        return task_definition_pb2.TaskIdentifier(
            org=self.settings.org, project=tid.project, domain=tid.domain, name=tid.name, version=tid.version
        )

    def get_spec(self, task_id: task_definition_pb2.TaskIdentifier) -> task_definition_pb2.TaskSpec | None:
        """The spec deployed under ``task_id``, or None when there is none."""
        try:
            response = self._call(
                "GetTaskDetails",
                self._client.get_task_details,
                task_service_pb2.GetTaskDetailsRequest(task_id=task_id),
                expect=frozenset({Code.NOT_FOUND}),
            )
        except Expected:
            return None
        return response.details.spec

    def deploy(
        self, spec: task_definition_pb2.TaskSpec, triggers: Sequence[task_definition_pb2.TaskTrigger] = ()
    ) -> str:
        """``DeployTask`` (with the task's triggers): ``"created"``, or ``"exists"`` when the
        version is already there (the caller compares specs)."""
        request = task_service_pb2.DeployTaskRequest(task_id=self.task_id(spec), spec=spec, triggers=list(triggers))
        try:
            self._call("DeployTask", self._client.deploy_task, request, expect=frozenset({Code.ALREADY_EXISTS}))
        except Expected:
            return "exists"
        return "created"

    def list_tasks(self, project: str, domain: str) -> list[task_definition_pb2.Task]:
        """Every task of ``project``/``domain`` (latest version each), across pages."""
        project_id = identifier_pb2.ProjectIdentifier(organization=self.settings.org, name=project, domain=domain)
        return list(
            self._pages(
                "ListTasks",
                self._client.list_tasks,
                "tasks",
                lambda page: task_service_pb2.ListTasksRequest(
                    org=self.settings.org, project_id=project_id, request=page
                ),
            )
        )

    def list_versions(self, task: task_definition_pb2.TaskIdentifier) -> list[Any]:
        """Every deployed version of the task named like ``task``, across pages."""
        name = task_definition_pb2.TaskName(org=task.org, project=task.project, domain=task.domain, name=task.name)
        return list(
            self._pages(
                "ListVersions",
                self._client.list_versions,
                "versions",
                lambda page: task_service_pb2.ListVersionsRequest(task_name=name, request=page),
            )
        )


class AppServiceConnection(ConnectConnection):
    """One connection to a control plane's AppService: an app is one record per (org,
    project, domain, name), changed by ``Update`` to a new ``metadata.revision``."""

    @staticmethod
    def _client_class() -> Any:
        from flyteidl2.app.app_service_connect import AppServiceClientSync

        return AppServiceClientSync

    def app_id(self, name: str, project: str | None = None, domain: str | None = None) -> app_definition_pb2.Identifier:
        """The identifier of app ``name`` in ``project``/``domain`` (default: the configured ones), our org."""
        return app_definition_pb2.Identifier(
            org=self.settings.org,
            project=project or self.settings.project,
            domain=domain or self.settings.domain,
            name=name,
        )

    def get(self, app_id: app_definition_pb2.Identifier) -> app_definition_pb2.App | None:
        """The app stored under ``app_id`` (with its revision and status), or None."""
        try:
            response = self._call(
                "AppService.Get",
                self._client.get,
                app_payload_pb2.GetRequest(app_id=app_id),
                expect=frozenset({Code.NOT_FOUND}),
            )
        except Expected:
            return None
        return response.app

    def create(self, app: app_definition_pb2.App) -> app_definition_pb2.App | None:
        """``Create`` of ``app`` under our org; the stored app, or None when one exists already."""
        request = app_payload_pb2.CreateRequest(app=app)
        request.app.metadata.id.org = self.settings.org
        try:
            return self._call(
                "AppService.Create", self._client.create, request, expect=frozenset({Code.ALREADY_EXISTS})
            ).app
        except Expected:
            return None

    def update(self, app: app_definition_pb2.App, reason: str) -> app_definition_pb2.App | None:
        """``Update`` to ``app``, which carries the revision it replaces; the stored app at the
        next revision, or None when that revision is no longer the current one (``ABORTED``)."""
        try:
            return self._call(
                "AppService.Update",
                self._client.update,
                app_payload_pb2.UpdateRequest(app=app, reason=reason),
                expect=frozenset({Code.ABORTED}),
            ).app
        except Expected:
            return None

    def list_apps(self, project: str, domain: str) -> list[app_definition_pb2.App]:
        """Every app of ``project``/``domain``, across pages; none from a control plane that
        serves no AppService (``UNIMPLEMENTED``)."""
        project_id = identifier_pb2.ProjectIdentifier(organization=self.settings.org, name=project, domain=domain)
        pages = self._pages(
            "AppService.List",
            self._client.list,
            "apps",
            lambda page: app_payload_pb2.ListRequest(request=page, org=self.settings.org, project=project_id),
            expect=frozenset({Code.UNIMPLEMENTED}),
        )
        try:
            return list(pages)
        except Expected:
            return []


class Expected(Exception):
    """A failure code the caller of ``ConnectConnection._call`` expects and handles."""

    def __init__(self, code: Code) -> None:
        super().__init__(code.value)
        self.code = code


def _is_tls_failure(exc: ConnectError) -> bool:
    return exc.code == Code.UNAVAILABLE and ("certificate" in exc.message.lower() or "tls" in exc.message.lower())


def _short(message: str) -> str:
    """The transport's message without the request URL boilerplate, on one line."""
    text = re.sub(r"^Request failed: error sending request for url \([^)]*\): ", "", message)
    return " ".join(text.split())


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
