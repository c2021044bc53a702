"""Connectif's bulk product import, for the emulator in :mod:`.connectif`.

``POST /imports/`` (multipart/form-data: ``type``, ``overrideExisting``, ``updateOnlyEmptyFields``,
``delimiter``, ``file``) → 201 ``{id, status: "processing", total}``; ``GET /imports/{id}`` →
``{id, type, status, total, success, errors, errorReportFileUrl}``; ``GET /imports/{id}/error-report``
→ the CSV naming each refused row's ``productId`` and ``reason`` (https://api-docs.connectif.cloud/
connectif-api/reference/imports/create-import; columns and ``|`` lists: https://support.connectif.ai/hc/
en-us/articles/360014588839-Product-import; ``{id, total}`` and the poll's fields [V-3p]).

The emulator's choices [U] (the docs are silent): an import stays ``processing`` for ``import_seconds``
on the sandbox's clock, then the first request (or admin read) that finds it due applies it row by row
with the PATCH's validation (required columns for a new product, availability values, numbers, allowed
domains) and it reads ``finished`` — or ``error`` with nothing applied when ``import_outcome`` is
``error``; an empty cell leaves the product's field alone (as a PATCH's null does); a header naming a
column that is not a product field refuses the whole import (422, as a PATCH refuses an unknown
property); ``type`` other than ``products`` → 422 (contacts and coupons are not emulated); the error
report is served under the API with the imports:read scope; a ``reject_ids`` / ``reject_rate`` fault
drawn when the file arrives refuses that row in the report.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

from .connectif_validation import INTEGER_FIELDS, LIST_FIELDS, NUMBER_FIELDS, PRODUCT_FIELDS, ConnectifError, ConnectifSettings
from .emulator_kit import Clock, compact_json
from .platform_interface import HandlerContext, Request, Response
from .store import Store

MAX_FILE_BYTES = 50 * 1024 * 1024  # 413 above [V]
LIST_SEPARATOR = "|"
IMPORT_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS connectif_imports (id TEXT PRIMARY KEY, account TEXT NOT NULL, status TEXT NOT NULL, "
    "total INTEGER NOT NULL, success INTEGER NOT NULL, errors INTEGER NOT NULL, ready_at REAL NOT NULL, mode TEXT NOT NULL, delimiter TEXT NOT NULL, "
    "csv TEXT NOT NULL, refused_json TEXT NOT NULL, report TEXT, created_at TEXT NOT NULL)",
)
_INTEGER = re.compile(r"^[+-]?\d+$")
# applies one row: (db, account, productId, fields, mode) -> why it was refused, or None once applied;
# mode: "override" (overrideExisting), "empty" (updateOnlyEmptyFields too) or "keep" (existing products untouched)
ApplyRow = Callable[[sqlite3.Connection, str, str, dict[str, Any], str], str | None]


@dataclass(frozen=True)
class ImportForm:
    override_existing: bool
    update_only_empty: bool
    delimiter: str
    text: str

    @property
    def mode(self) -> str:
        return ("empty" if self.update_only_empty else "override") if self.override_existing else "keep"


def multipart_fields(req: Request) -> dict[str, bytes]:
    """The form fields of a multipart/form-data body (name -> content); 415 when the body is not multipart."""
    header = Message()
    header["Content-Type"] = req.header("Content-Type") or ""
    boundary = header.get_param("boundary") if header.get_content_type() == "multipart/form-data" else None
    if not isinstance(boundary, str) or not boundary:
        raise ConnectifError(415, "Content-Type must be multipart/form-data with a boundary")
    fields: dict[str, bytes] = {}
    for part in req.body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise ConnectifError(400, "Malformed multipart body: a part has no header/content separator")
        disposition = Message()
        for line in head.decode("utf-8", "replace").strip().split("\r\n"):
            name, _, value = line.partition(":")
            disposition[name.strip()] = value.strip()
        field_name = disposition.get_param("name", header="content-disposition")
        if isinstance(field_name, str):
            fields[field_name] = content[:-2] if content.endswith(b"\r\n") else content
    return fields


def import_form(fields: dict[str, bytes]) -> ImportForm:
    """The validated form of a product import; 413 for a file over 50 MB, 422 naming every bad field."""
    if len(fields.get("file", b"")) > MAX_FILE_BYTES:
        raise ConnectifError(413, f"The file exceeds the {MAX_FILE_BYTES // (1024 * 1024)} MB an import takes")
    text = {name: value.decode("utf-8", "replace").strip() for name, value in fields.items() if name != "file"}
    errors = []
    if text.get("type") != "products":
        errors.append({"path": "type", "reason": "must be products (contacts and coupons are not emulated)"})
    flags = {}
    for name in ("overrideExisting", "updateOnlyEmptyFields"):
        flags[name] = text.get(name, "").lower()
        if flags[name] not in ("true", "false"):
            errors.append({"path": name, "reason": "is required: true or false"})
    if flags["updateOnlyEmptyFields"] == "true" and flags["overrideExisting"] != "true":
        errors.append({"path": "updateOnlyEmptyFields", "reason": "may be true only when overrideExisting is true"})
    if text.get("delimiter") not in (",", ";"):
        errors.append({"path": "delimiter", "reason": "is required: , or ;"})
    content = ""
    if "file" not in fields:
        errors.append({"path": "file", "reason": "is required: a UTF-8 CSV file with a header row"})
    else:
        try:
            content = fields["file"].decode("utf-8-sig")
        except UnicodeDecodeError:
            errors.append({"path": "file", "reason": "must be UTF-8"})
    if errors:
        raise ConnectifError(422, "Import validation failed", validation_errors=errors)
    return ImportForm(flags["overrideExisting"] == "true", flags["updateOnlyEmptyFields"] == "true", text["delimiter"], content)


def csv_rows(form: ImportForm) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the file; 422 when the header lacks productId or names an unknown column."""
    reader = csv.reader(io.StringIO(form.text, newline=""), delimiter=form.delimiter)
    header = [name.strip() for name in next(reader, [])]
    unknown = [name for name in header if name != "productId" and name not in PRODUCT_FIELDS]
    problems = [{"path": f"file.{name}", "reason": "is not a product column"} for name in unknown]
    if "productId" not in header:
        problems.append({"path": "file", "reason": "the header row must name productId"})
    if len(set(header)) != len(header):
        problems.append({"path": "file", "reason": "the header row names a column twice"})
    if problems:
        raise ConnectifError(422, "Import validation failed", validation_errors=problems)
    return header, [row for row in reader if any(cell.strip() for cell in row)]


def cell_value(name: str, cell: str) -> Any:
    """A CSV cell as the JSON value a PATCH would carry (text that is no number stays text, and fails as one)."""
    if name in LIST_FIELDS:
        return [part.strip() for part in cell.split(LIST_SEPARATOR) if part.strip()]
    if name in INTEGER_FIELDS and _INTEGER.match(cell):
        return int(cell)
    if name in NUMBER_FIELDS:
        try:
            number = float(cell)
        except ValueError:
            return cell
        return number if math.isfinite(number) else cell
    if name == "isBlacklisted" and cell.lower() in ("true", "false"):
        return cell.lower() == "true"
    return cell


class ProductImports:
    """The account's imports: accepted at once, applied when due, reported on each poll."""

    def __init__(self, store: Store, clock: Clock, settings: Callable[[], ConnectifSettings]) -> None:
        self.store, self.clock, self._settings = store, clock, settings

    def create(self, req: Request, ctx: HandlerContext, account: str) -> Response:
        form = import_form(multipart_fields(req))
        header, rows = csv_rows(form)
        position = header.index("productId")
        refused = {pid: kind for row in rows if (pid := _cell(row, position)) and (kind := ctx.rejection(pid))}
        ctx.items_received = len(rows)
        import_id = secrets.token_hex(12)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO connectif_imports VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    import_id,
                    account,
                    "processing",
                    len(rows),
                    0,
                    0,
                    self.clock.time() + self._settings().import_seconds,
                    form.mode,
                    form.delimiter,
                    form.text,
                    compact_json(refused),
                    None,
                    self.clock.iso(),
                ),
            )
        return Response(201, {"id": import_id, "type": "products", "status": "processing", "total": len(rows)})

    def status(self, req: Request, account: str, import_id: str) -> Response:
        row = self._import(account, import_id)
        body: dict[str, Any] = {"id": import_id, "type": "products", "status": row[0], "total": row[1], "success": row[2], "errors": row[3]}
        body["createdAt"] = row[4]
        has_report = row[0] == "finished" and row[3] > 0
        host = req.header("Host") or "127.0.0.1"
        body["errorReportFileUrl"] = f"http://{host}/connectif/imports/{import_id}/error-report" if has_report else None
        return Response(200, body)

    def error_report(self, account: str, import_id: str) -> Response:
        row = self._import(account, import_id)
        if row[0] != "finished" or not row[3]:
            raise ConnectifError(404, f"Import {import_id} has no error report")
        return Response(200, row[5].encode("utf-8"), {"Content-Type": "text/csv; charset=utf-8"})

    def settle(self, apply_row: ApplyRow, ctx: HandlerContext | None = None) -> None:
        """Apply every import whose time has come: each row validated as a PATCH, refusals kept for the report."""
        with self.store.transaction() as db:
            due = db.execute(
                "SELECT id, account, mode, delimiter, csv, refused_json FROM connectif_imports WHERE status = 'processing' AND ready_at <= ?",
                (self.clock.time(),),
            ).fetchall()
            for import_id, account, mode, delimiter, text, refused_json in due:
                if self._settings().import_outcome == "error":
                    db.execute("UPDATE connectif_imports SET status = 'error', csv = '' WHERE id = ?", (import_id,))
                    continue
                success, report = self._apply(db, apply_row, (account, mode), delimiter, text, json.loads(refused_json))
                if ctx is not None:
                    ctx.items_applied += success
                errors = len(report) - 1
                db.execute(
                    "UPDATE connectif_imports SET status = 'finished', success = ?, errors = ?, report = ?, csv = '' WHERE id = ?",
                    (success, errors, _csv_text(report, delimiter), import_id),
                )

    def listing(self, account: str) -> dict[str, Any]:
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT id, status, total, success, errors FROM connectif_imports WHERE account = ? ORDER BY created_at, id", (account,)
            ).fetchall()
        return {"imports": [dict(zip(("id", "status", "total", "success", "errors"), row, strict=True)) for row in rows]}

    @staticmethod
    def _apply(
        db: sqlite3.Connection, apply_row: ApplyRow, where: tuple[str, str], delimiter: str, text: str, refused: dict[str, str]
    ) -> tuple[int, list[list[str]]]:
        account, mode = where
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = [name.strip() for name in next(reader)]
        report, success = [["row", "productId", "reason"]], 0
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                report.append([str(number), _cell(row, header.index("productId")), f"the row has {len(row)} cells, the header {len(header)}"])
                continue
            cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
            product_id = cells.pop("productId", "")
            reason: str | None
            if not product_id or len(product_id) > 255:
                reason = "productId: is required, at most 255 characters"
            elif product_id in refused:
                reason = f"Product {product_id} rejected by the platform (sandbox fault {refused[product_id]})"
            else:
                reason = apply_row(db, account, product_id, {name: cell_value(name, cell) for name, cell in cells.items() if cell}, mode)
            if reason is None:
                success += 1
            else:
                report.append([str(number), product_id, reason])
        return success, report

    def _import(self, account: str, import_id: str) -> tuple[Any, ...]:
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT status, total, success, errors, created_at, report FROM connectif_imports WHERE account = ? AND id = ?", (account, import_id)
            ).fetchone()
        if row is None:
            raise ConnectifError(404, f"Import {import_id} not found")
        return tuple(row)


def _cell(row: list[str], position: int) -> str:
    return row[position].strip() if position < len(row) else ""


def _csv_text(rows: list[list[str]], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue()
