"""What every platform's Dagster resource shares, and where its base URL and secrets come from.

A platform's resource subclasses ``PlatformResource``: the base URL, timeouts and retries are
declared here once; its secrets are fields made by ``secret_field`` (the default environment variable
and the sandbox's demo credential, declared once); every other field is a destination setting.
``PlatformSpec`` derives the platform's secret names, settings and resource factory from it.

Secrets are ``dagster.EnvVar`` in the resource's config, as Dagster documents them
(https://docs.dagster.io/guides/operate/configuration/using-environment-variables-and-secrets): the
UI shows the variable's name, never its value; Dagster resolves it when a run starts, and refuses to
start a run whose variable is unset, naming the variable and the resource key. The rule
(``from_destination``): a secret is ``EnvVar(<variable>)`` when its variable is set or the account is
not on the loopback interface; against the loopback sandbox an unset variable leaves the secret unset
(``None``) and the client sends the sandbox's demo credential, which is never sent anywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from activation_pipeline.platforms.base import PlatformError
from activation_pipeline.platforms.http import PlatformSession


def secret_field(default_env: str, *, sandbox: str, description: str = "") -> Any:
    """A secret of the platform, ``EnvVar(default_env)`` unless given; ``None`` stands for ``sandbox``,
    the demo credential, which only a loopback sandbox is sent."""
    return Field(
        default=EnvVar(default_env),
        description=description or f"secret: an EnvVar (default ${default_env}); unset: the sandbox's demo credential",
        json_schema_extra={"secret": True, "env": default_env, "sandbox": sandbox},
        repr=False,  # in a run it holds the resolved value: never in a repr or a traceback's locals
    )


class _Fields(dict):
    """A resource's fields for a path template; other placeholders (Yotpo's ``{store_id}``) are kept."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class PlatformResource(ConfigurableResource):
    """One account of a platform. Subclasses set ``PLATFORM`` and ``SANDBOX_PATH`` (formatted with the
    resource's fields, e.g. ``/batch/{api_version}``) and declare their secrets with ``secret_field``."""

    PLATFORM: ClassVar[str] = ""
    SANDBOX_PATH: ClassVar[str] = ""

    base_url: str | None = Field(default=None, description="default: $<PLATFORM>_BASE_URL, else the local sandbox")
    timeout_seconds: float = Field(default=30.0, gt=0, description="seconds to wait for one answer")
    max_retries: int = Field(default=6, ge=0, description="retries of a request on 429/5xx and transport errors")
    backoff_seconds: float = Field(default=0.25, ge=0, description="first retry's backoff (doubles each retry; Retry-After wins)")

    # --- the declaration, read by PlatformSpec ----------------------------------------------------
    @classmethod
    def base_url_env(cls) -> str:
        """The environment variable an unset ``base_url`` falls back to."""
        return f"{cls.PLATFORM.upper()}_BASE_URL"

    @classmethod
    def secret_fields(cls) -> dict[str, Any]:
        """Secret name -> its field (``rest_api_key``, made by ``secret_field``)."""
        return {
            name: info for name, info in cls.model_fields.items() if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        }

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The destination settings it takes: every field but the base URL and the secrets."""
        secrets = cls.secret_fields()
        return tuple(name for name in cls.model_fields if name != "base_url" and name not in secrets)

    @classmethod
    def secret_variables(cls, declared: Mapping[str, str]) -> dict[str, str]:
        """Secret name -> the environment variable holding it: a destination's ``secrets:`` entry, else the default."""
        return {name: declared.get(name, info.json_schema_extra["env"]) for name, info in cls.secret_fields().items()}

    @classmethod
    def from_destination(cls, destination: Any) -> PlatformResource:
        """The resource for a ``destinations:`` entry: base URL, settings, and each secret as ``EnvVar(<variable>)``;
        against the loopback sandbox a secret whose variable is unset is left unset (the demo credential)."""
        fields: dict[str, Any] = {"base_url": destination.base_url, **destination.settings}
        sandbox = cls(**fields).on_loopback()
        secrets: dict[str, Any] = {
            name: None if sandbox and not os.environ.get(variable) else EnvVar(variable)
            for name, variable in cls.secret_variables(destination.secrets).items()
        }
        return cls(**fields, **secrets)

    # --- at run time ---------------------------------------------------------------------------
    def resolved_base_url(self) -> str:
        """The config's base URL, else ``$<PLATFORM>_BASE_URL``, else the local sandbox."""
        fields = _Fields(self.model_dump(exclude=set(self.secret_fields())))  # a secret never lands in a URL template
        return resolve_base_url(self.base_url_env(), self.base_url, self.SANDBOX_PATH.format_map(fields))

    def endpoint(self) -> str:
        """Where this account's requests go (the resolved base URL; a platform with regions overrides it)."""
        return self.resolved_base_url()

    def on_loopback(self) -> bool:
        """Whether this account's requests stay on this machine (the sandbox)."""
        try:
            return is_loopback(self.endpoint())
        except PlatformError:  # a clear-text URL off this machine: not the sandbox (refused when a client is made)
            return False

    def secret_value(self, name: str, base_url: str) -> str:
        """The secret: in a run, the value Dagster resolved from its EnvVar; used outside a run (a script, a test),
        read from its EnvVar here. Unset or empty: the demo credential against a loopback sandbox, else an error."""
        value = getattr(self, name)
        variable = None
        if isinstance(value, EnvVar):  # outside a run Dagster has not resolved it
            variable, value = value.env_var_name, value.get_value()
        if value:
            return value
        if is_loopback(base_url):
            return self.secret_fields()[name].json_schema_extra["sandbox"]
        if variable:
            raise PlatformError(f"environment variable {variable} is not set (it must hold the secret for {base_url})")
        raise PlatformError(f"secrets.{name} is unset or empty (it must hold the secret for {base_url}; only the sandbox has a demo credential)")

    def session(self, base_url: str, headers: dict[str, str], secrets: tuple[str, ...]) -> PlatformSession:
        """The retrying session for this account, scrubbing ``secrets`` from every message."""
        return PlatformSession(
            base_url, headers, secrets=secrets, max_retries=self.max_retries, backoff_factor=self.backoff_seconds, timeout=self.timeout_seconds
        )


SANDBOX_HOST = "127.0.0.1"
SANDBOX_START_HINT = "start it with `python -m activation_pipeline.sandbox` (or run `activation-pipeline demo`)"


def sandbox_url() -> str:
    return f"http://{SANDBOX_HOST}:{os.environ.get('SANDBOX_PORT', '8765')}"


def is_loopback(url: str) -> bool:
    """True only for the loopback interface: an address in 127.0.0.0/8 or ::1, or "localhost".

    A host name that merely starts with "127." (127.0.0.1.example.com) is a public DNS name.
    """
    import ipaddress
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_problem(configured: str | None, env_name: str) -> str | None:
    """Why the base URL a client resolves (the config's, else ``env_name``'s) may not carry credentials, or None.
    Checked when the config loads and again when a client is made (the variable may have changed since)."""
    url = configured or os.environ.get(env_name)
    if not url or is_loopback(url) or url.startswith("https://"):
        return None
    origin = "base_url of the destination in the config file" if configured else env_name
    return f"{origin} = {url!r}: a non-loopback base URL must use https (credentials never travel in clear)"


def resolve_base_url(env_name: str, configured: str | None, sandbox_path: str) -> str:
    """Config override, else ``<PLATFORM>_BASE_URL``, else the local sandbox.

    A base URL that leaves this machine must be https: credentials never travel in clear.
    """
    problem = base_url_problem(configured, env_name)
    if problem:
        raise PlatformError(problem)
    url = configured or os.environ.get(env_name) or f"{sandbox_url()}{sandbox_path}"
    return url.rstrip("/")


def ensure_reachable(base_url: str, timeout: float = 2.0) -> None:
    """Fail at once, with the way out, when nothing listens at the base URL."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(base_url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as exc:
        hint = f"; the sandbox is not running: {SANDBOX_START_HINT}" if is_loopback(base_url) else ""
        raise PlatformError(f"cannot reach {parsed.scheme}://{parsed.hostname}:{port} ({exc.strerror or exc}){hint}") from None
