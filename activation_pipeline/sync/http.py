"""The HTTP session every platform client shares.

- Retries: urllib3 ``Retry`` on 429/500/502/503/504 and on connection/read errors, with
  exponential backoff plus jitter, honouring ``Retry-After``. Every call here is
  idempotent (upserts and deletes by key), so POST/PUT/PATCH are retried too.
- Counting: requests sent and retries taken, for the run's metadata.
- Redaction: secret values are scrubbed from every message this module raises, so a
  key never reaches a log line, metadata entry, ledger row or exception.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from activation_pipeline.platforms.base import NoAnswer, PlatformError, answer_error

RETRY_STATUSES = (429, 500, 502, 503, 504)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            # as written, and as it appears in a URL path or query (a store id in the path) or inside JSON
            for form in dict.fromkeys((secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1])):
                text = text.replace(form, "***")
    return text


class PlatformSession:
    """A pooled, retrying requests session bound to one platform account."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        secrets: Iterable[str],
        *,
        max_retries: int = 6,
        backoff_factor: float = 0.25,
        backoff_max: float = 30.0,
        timeout: float = 30.0,
        pool_size: int = 16,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self.requests_sent = 0
        self.retries = 0
        retry = Retry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=max_retries,
            allowed_methods=None,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(headers)

    def add_secret(self, secret: str) -> None:
        """Scrub a value learnt at run time (an access token) from every later message."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send with retries; raise NoAnswer (redacted) when no usable answer came back."""
        url = f"{self.base_url}{path}"
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self._session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            with self._lock:
                self.requests_sent += 1
            raise NoAnswer(self.redact(f"{method} {path}: no answer after retries ({type(exc).__name__}: {exc})")) from None
        history = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
        with self._lock:
            self.requests_sent += 1 + len(history)
            self.retries += len(history)
        if response.status_code in RETRY_STATUSES:
            raise NoAnswer(self.redact(f"{method} {path}: HTTP {response.status_code} after {len(history)} retries: ")
                           + self.redact(response.text)[:300])
        return response

    def fail(self, response: requests.Response, what: str) -> PlatformError:
        """A redacted PlatformError describing an unexpected answer."""
        # redact the whole body first: a key cut in half by the truncation would no longer match
        return answer_error(response.status_code, self.redact(f"{what}: HTTP {response.status_code}: ") + self.redact(response.text)[:500])

    def close(self) -> None:
        self._session.close()
