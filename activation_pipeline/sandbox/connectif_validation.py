"""Validation of Connectif product payloads for the emulator in :mod:`.connectif`.

Checks the body of ``PATCH /products/product-id/{id}`` (a ProductCreation object) without
any stored state, and holds the emulator's run-time :class:`ConnectifSettings`. Which rules
are verified against Connectif's docs and which are the emulator's choices is listed in
:mod:`.connectif`'s docstring. Failures are collected (every field, not only the first) into
:class:`ConnectifError` with ``validationErrors`` entries ``{"path", "reason"}``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

STRING_FIELDS = ("name", "description", "brand", "customField1", "customField2", "customField3")
URL_FIELDS = ("productDetailUrl", "imageUrl", "thumbnailUrl")
NUMBER_FIELDS = ("unitPrice", "unitPriceOriginal", "unitPriceWithoutVAT", "discountedAmount", "discountedPercentage", "rating")
INTEGER_FIELDS = ("inStockUnits", "ratingCount", "reviewCount", "priority")
LIST_FIELDS = ("categories", "tags", "relatedExternalProductIds")
PRODUCT_FIELDS = (*STRING_FIELDS, *URL_FIELDS, *NUMBER_FIELDS, *INTEGER_FIELDS, *LIST_FIELDS, "availability", "isBlacklisted", "publishedAt")
REQUIRED_ON_CREATE = ("name", "productDetailUrl", "unitPrice")
WRITE_AVAILABILITY = ("instock", "outofstock")
MAX_ID_CHARS = 255
MAX_STRING_CHARS = 10_000
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ConnectifError(Exception):
    """Raised by handlers; turned into a problem-JSON response by :mod:`.connectif`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        validation_errors: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code
        self.validation_errors = validation_errors or []
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "title": _TITLES.get(self.status, "Error"), "detail": self.detail}
        if self.code:
            out["code"] = self.code
        if self.validation_errors:
            out["validationErrors"] = self.validation_errors
        out.update(self.extra)
        return out


@dataclass
class ConnectifSettings:
    """Run-time settings (see :mod:`.connectif`'s docstring); env ``SANDBOX_CONNECTIF_<NAME upper>``."""

    accept_discontinued: bool = True  # writing availability "discontinued" [U]
    allow_delete: bool = False  # the hypothetical DELETE /products/product-id/{id} [U]
    create_status: int = 201
    update_status: int = 200
    scopes: list[str] = field(default_factory=lambda: ["products:read", "products:write", "imports:read", "imports:write"])
    allowed_domains: list[str] = field(default_factory=list)  # empty: any host (E0103 otherwise)
    import_seconds: float = 0.2  # how long an import stays "processing" on the sandbox's clock [U]
    import_outcome: str = "finished"  # "error": every import ends in error, nothing applied

    _KINDS = {
        "accept_discontinued": bool,
        "allow_delete": bool,
        "create_status": int,
        "update_status": int,
        "scopes": list,
        "allowed_domains": list,
        "import_seconds": float,
        "import_outcome": str,
    }

    def update(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ValueError("config must be a JSON object")
        for name, value in spec.items():
            kind = self._KINDS.get(name)
            if kind is None:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(self._KINDS)}")
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be a boolean")
            if kind is int and (isinstance(value, bool) or value not in (200, 201, 204)):
                raise ValueError(f"{name} must be 200, 201 or 204")
            if kind is list and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                raise ValueError(f"{name} must be a list of strings")
            if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400):
                raise ValueError(f"{name} must be a number of seconds from 0 to 86400")
            if kind is str and value not in ("finished", "error"):
                raise ValueError(f"{name} must be finished or error")
        for name, value in spec.items():
            setattr(self, name, value)


def product_id_problem(product_id: str) -> str | None:
    if not product_id.strip():
        return "the product id is empty"
    if len(product_id) > MAX_ID_CHARS:
        return f"the product id is longer than {MAX_ID_CHARS} characters"
    return None


def product_payload(body: Any, *, creating: bool, settings: ConnectifSettings) -> dict[str, Any]:
    """The validated fields of a ProductCreation body; 422 naming every bad field otherwise."""
    if not isinstance(body, dict):
        raise ConnectifError(400, "The request body must be a JSON object (a ProductCreation resource)")
    errors: list[dict[str, str]] = []
    for name in sorted(body):
        reason = _field_reason(name, body[name], settings) if name in PRODUCT_FIELDS else "is not a writable product property"
        if reason:
            errors.append({"path": name, "reason": reason})
    if creating:
        for name in REQUIRED_ON_CREATE:
            if body.get(name) is None:
                errors.append({"path": name, "reason": "is required to create a product"})
    if errors:
        raise ConnectifError(422, "Product validation failed", validation_errors=errors)
    return {name: value for name, value in body.items() if value is not None}


def domain_problem(fields: dict[str, Any], settings: ConnectifSettings) -> str | None:
    """E0103: the product URL must be on one of the store's allowed domains (when configured)."""
    url = fields.get("productDetailUrl")
    if not settings.allowed_domains or url is None:
        return None
    host = urlparse(url).hostname or ""
    allowed = {urlparse(d).hostname or d for d in settings.allowed_domains}
    return None if host in allowed else url


def _field_reason(name: str, value: Any, settings: ConnectifSettings) -> str | None:
    if value is None:
        return None
    if name in STRING_FIELDS:
        if not isinstance(value, str):
            return "must be a string"
        return f"must be at most {MAX_STRING_CHARS} characters" if len(value) > MAX_STRING_CHARS else None
    if name in URL_FIELDS:
        parsed = urlparse(value) if isinstance(value, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            return "must be an absolute http(s) URL"
        return None
    if name in NUMBER_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "must be a number"
        if value < 0:
            return "must not be negative"
        if name == "discountedPercentage" and value > 100:
            return "must be at most 100"
        return None
    if name in INTEGER_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        return "must not be negative" if value < 0 and name != "priority" else None
    if name in LIST_FIELDS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "must be an array of strings"
        return None
    if name == "availability":
        allowed = (*WRITE_AVAILABILITY, "discontinued") if settings.accept_discontinued else WRITE_AVAILABILITY
        return None if value in allowed else f"must be one of {', '.join(allowed)}"
    if name == "isBlacklisted":
        return None if isinstance(value, bool) else "must be a boolean"
    if name == "publishedAt":
        if not isinstance(value, str):
            return "must be an ISO 8601 date-time"
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return "must be an ISO 8601 date-time"
    return None
