"""Connectif's bulk product import, as the client uses it: products written as CSV files, each submitted
with ``POST /imports/``, polled with backoff until it ends, and each row's outcome read from the error report.

Contract (https://api-docs.connectif.cloud/connectif-api/reference/imports/create-import; columns and ``|``
lists: https://support.connectif.ai/hc/en-us/articles/360014588839-Product-import; the poll's fields [V-3p]):
multipart/form-data with ``type=products``, ``overrideExisting``, ``updateOnlyEmptyFields``, ``delimiter``
and ``file`` (UTF-8 CSV with a header row, at most 50 MB); 201 ``{id, total}``; ``GET /imports/{id}`` →
``{status, success, errors, total, errorReportFileUrl}``, ``finished`` when complete, ``error`` on failure.

Chosen here where the docs are silent [C]: ``overrideExisting=true``, ``updateOnlyEmptyFields=false``
(an import upserts, as the PATCH does); the file holds only columns every one of its rows fills, so no
cell is ever empty (what Connectif does with one is undocumented): products with other fields go in
another file; a product a CSV cannot carry exactly (an empty text or list, a list entry holding ``|``,
text with surrounding spaces an importer may trim) goes by PATCH instead; the error report is read by its
``productId`` column and its ``reason`` (else ``error`` / ``message``) column, with the API key only when
it lives under the API's base URL; an import that ends in ``error``, never ends within the timeout, or
whose report cannot be read leaves its rows ``no_answer`` (sent again next run).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from activation_pipeline.platforms.base import BatchRejected, ItemOutcome, NoAnswer, PlatformError, Record, answer_error
from activation_pipeline.platforms.connectif.product import LIST_SEPARATOR, error_message, product_body
from activation_pipeline.platforms.http import json_object

FILE_BUDGET = 48 * 1024 * 1024  # Connectif takes 50 MB [V]; the rest is left to the multipart envelope
MAX_POLL_SECONDS = 30.0  # the longest wait between two polls
FORM = {"type": "products", "overrideExisting": "true", "updateOnlyEmptyFields": "false", "delimiter": ","}
REASON_COLUMNS = ("reason", "error", "errors", "message", "description")
Call = Callable[..., requests.Response]  # (method, path, **kwargs): the client's paced, retrying request


@dataclass(frozen=True)
class ImportSettings:
    """When imports are used and how they are waited for (the destination's settings)."""

    min_records: int  # an upsert run of at least this many products goes through imports; 0: never
    rows_per_import: int
    poll_seconds: float  # the first wait; each next one is 1.5 times longer, at most MAX_POLL_SECONDS
    timeout_seconds: float

    def rows_per_request(self, planned: int) -> int | None:
        """Products per import for a run upserting ``planned``, spread evenly; None below the threshold."""
        if not self.min_records or planned < max(self.min_records, 2):
            return None
        imports = math.ceil(planned / self.rows_per_import)
        return max(2, math.ceil(planned / imports))


class ProductImports:
    """Runs one engine batch as one or more imports and answers one outcome per record."""

    def __init__(self, call: Call, base_url: str, redact: Callable[[str], str], settings: ImportSettings):
        self.call, self.base_url, self.redact, self.settings = call, base_url, redact, settings

    def run(self, records: Sequence[Record], patch: Callable[[Sequence[Record]], list[ItemOutcome]]) -> list[ItemOutcome]:
        """Every record the CSV carries through imports (grouped by the columns it fills); the others by ``patch``."""
        groups: dict[tuple[str, ...], list[tuple[Record, dict[str, str]]]] = {}
        by_patch: list[Record] = []
        for record in records:
            row = csv_row(record)
            if row is None:
                by_patch.append(record)
            else:
                groups.setdefault(tuple(sorted(row)), []).append((record, row))
        outcomes: list[ItemOutcome] = []
        for columns, rows in groups.items():
            for chunk, data in csv_files(columns, rows):
                outcomes += self._import(chunk, data)
        return outcomes + (patch(by_patch) if by_patch else [])

    def _import(self, records: list[Record], data: bytes) -> list[ItemOutcome]:
        import_id = self._submit(data)
        try:
            status = self._poll(import_id)
            if status is None:
                return _all(records, "no_answer", f"import {import_id} still processing after {self.settings.timeout_seconds:.0f} s; resent next run")
            if status.get("status") != "finished":
                return _all(records, "no_answer", f"import {import_id} ended in {status.get('status')}: nothing confirmed, resent next run")
            refused = self._refused(import_id, status)
        except NoAnswer as silence:
            return _all(records, "no_answer", f"import {import_id}: {self.redact(str(silence))}")
        if refused is None:
            return _all(records, "no_answer", f"import {import_id} refused {status.get('errors')} rows but its error report could not be read")
        unnamed = int(status.get("errors") or 0) > len(refused)
        return [
            ItemOutcome(r.key, "rejected", self.redact(refused[r.identifier]))
            if r.identifier in refused
            else ItemOutcome(r.key, "no_answer", f"import {import_id} refused rows its report does not name")
            if unnamed
            else ItemOutcome(r.key, "confirmed")
            for r in records
        ]

    def _submit(self, data: bytes) -> str:
        response = self.call("POST", "/imports/", data=FORM, files={"file": ("products.csv", data, "text/csv")})
        if response.status_code in (200, 201, 202):
            import_id = json_object(response).get("id")
            if import_id:
                return str(import_id)
            raise PlatformError(f"POST /imports/: HTTP {response.status_code} without an import id")
        if response.status_code in (401, 403, 404):
            hint = {401: "is the API key right?", 403: "does the API key have the imports read/write scopes?", 404: "is the base URL right?"}
            raise answer_error(response.status_code, f"POST /imports/: {error_message(response, self.redact)} ({hint[response.status_code]})")
        if 400 <= response.status_code < 500:  # the file as a whole: the engine splits the batch
            raise BatchRejected(f"import refused: {error_message(response, self.redact)}", response.status_code)
        raise answer_error(response.status_code, f"POST /imports/: {error_message(response, self.redact)}")

    def _poll(self, import_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.settings.timeout_seconds
        wait = self.settings.poll_seconds
        while True:
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))  # an import never ends at once: wait first
            response = self.call("GET", f"/imports/{quote(import_id, safe='')}")
            if response.status_code != 200:
                raise answer_error(response.status_code, f"GET /imports/{import_id}: {error_message(response, self.redact)}")
            status = json_object(response)
            if status.get("status") in ("finished", "error"):
                return status
            if time.monotonic() >= deadline:
                return None
            wait = min(wait * 1.5, MAX_POLL_SECONDS)

    def _refused(self, import_id: str, status: dict[str, Any]) -> dict[str, str] | None:
        """productId -> Connectif's reason for each row the import refused; None when the report cannot be read."""
        if not int(status.get("errors") or 0):
            return {}
        url = status.get("errorReportFileUrl")
        if not isinstance(url, str) or not url:
            return None
        if url.startswith(self.base_url + "/"):
            response = self.call("GET", url[len(self.base_url) :])
        else:  # elsewhere (a storage link): fetched without the API key, which only goes to the API
            try:
                response = requests.get(url, timeout=60)
            except requests.RequestException:
                return None
        if response.status_code != 200:
            return None
        return report_reasons(response.content.decode("utf-8-sig", "replace"))


def csv_row(record: Record) -> dict[str, str] | None:
    """The record's CSV cells (productId and each field it fills), or None when a CSV cannot carry it exactly."""
    row = {"productId": record.identifier}
    for name, value in product_body(record.fields).items():
        if isinstance(value, list):
            if not value or any(LIST_SEPARATOR in item or item != item.strip() for item in value):
                return None
            cell = LIST_SEPARATOR.join(value)
        elif isinstance(value, bool):
            cell = "true" if value else "false"
        elif isinstance(value, float):
            cell = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
        else:
            cell = str(value)
        if not cell or cell != cell.strip():
            return None
        row[name] = cell
    return row if row["productId"] == row["productId"].strip() else None


def csv_files(columns: tuple[str, ...], rows: list[tuple[Record, dict[str, str]]]) -> Iterator[tuple[list[Record], bytes]]:
    """CSV files of these rows with a header (productId first), each under ``FILE_BUDGET`` bytes."""
    header = ["productId", *(c for c in columns if c != "productId")]
    head = _csv_line(header)
    records: list[Record] = []
    lines: list[bytes] = []
    size = len(head)
    for record, row in rows:
        line = _csv_line([row[c] for c in header])
        if lines and size + len(line) > FILE_BUDGET:
            yield records, head + b"".join(lines)
            records, lines, size = [], [], len(head)
        records.append(record)
        lines.append(line)
        size += len(line)
    if lines:
        yield records, head + b"".join(lines)


def report_reasons(text: str) -> dict[str, str] | None:
    """productId -> reason from an error report CSV (``,`` or ``;``); None without a productId column."""
    for delimiter in (",", ";"):
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        if rows and "productId" in rows[0]:
            break
    else:
        return None
    header = [name.strip() for name in rows[0]]
    position = header.index("productId")
    reason_at = next((header.index(c) for c in REASON_COLUMNS if c in header), None)
    reasons: dict[str, str] = {}
    for row in rows[1:]:
        if position >= len(row) or not row[position].strip():
            continue
        if reason_at is not None and reason_at < len(row):
            said = row[reason_at]
        else:
            said = "; ".join(f"{name}: {cell}" for name, cell in zip(header, row, strict=False) if name != "productId" and cell)
        product_id = row[position].strip()
        reasons[product_id] = f"{reasons[product_id]}; {said}" if product_id in reasons else said or "refused by the import (no reason given)"
    return reasons


def _csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue().encode("utf-8")


def _all(records: Sequence[Record], status: Any, message: str) -> list[ItemOutcome]:
    return [ItemOutcome(r.key, status, message) for r in records]
