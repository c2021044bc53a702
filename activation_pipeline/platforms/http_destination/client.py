"""The ``http`` destination's client: records → JSON requests built from templates, answers → outcomes.

- A batch operation (its body holds ``{{records}}``) sends the engine's batch in requests of at most
  ``max_items_per_request`` records and ``max_bytes_per_request`` bytes, split before sending. A
  request refused whole (a status of ``rejected_statuses``) raises ``BatchRejected`` when it carried
  the engine's whole batch, so the engine splits it until the offending record stands alone; when the
  batch needed several requests, the refused one is split here the same way (the others stand).
- A one-record operation (no ``{{records}}``; the path may hold ``{identifier}``) sends each record
  alone; a refusal rejects that record with the body's words.
- A 2xx answer confirms its records, except those an item error names (``item_errors``): they are
  rejected alone and sent again next run. An item error naming no record of the request refuses the
  request (nothing unconfirmable is taken as confirmed).
- A delete answered with one of ``absent_statuses`` (404, 410) holds: the record is not there.
- 429 and 5xx are retried by the session (``Retry-After`` honoured) and paced by the account's ``Pacer``;
  still failing, the records are unanswered and sent again next run. 401/403 stop the run naming the
  secret's variable; any other answer stops the run with the platform's words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from activation_pipeline.platforms.base import BatchRejected, ItemOutcome, NoAnswer, Op, Record, SyncTarget, non_finite_number
from activation_pipeline.platforms.http import PlatformSession, SessionClient, body_parts, error_text, json_value
from activation_pipeline.platforms.http_destination.target import HttpTarget
from activation_pipeline.platforms.http_destination.template import Template
from activation_pipeline.platforms.resource import ensure_reachable

POINTER_STEP = re.compile(r"^([A-Za-z0-9_$-]*)((?:\[(?:\*|\d+)\])*)$")


@dataclass(frozen=True)
class Operation:
    """How one operation (upsert or delete) is sent: method, path, body template, per-record template."""

    method: str
    path: str
    body: Template | None
    record: Template

    @property
    def batch(self) -> bool:
        return self.body is not None and self.body.is_batch

    @property
    def batch_body(self) -> Template:
        """The body of a batch operation (one holding ``{{records}}``)."""
        if self.body is None or not self.body.is_batch:
            raise ValueError(f"{self.method} {self.path} sends one record per request, not a batch")
        return self.body


@dataclass(frozen=True)
class ItemErrors:
    """Where a 2xx answer lists the items it refused, and which of their fields say which and why."""

    path: str
    index: str | None = None
    id: str | None = None
    message: str = "message"


@dataclass(frozen=True)
class Rules:
    upsert: Operation
    delete: Operation
    max_items: int
    max_bytes: int | None
    rejected_statuses: frozenset[int]
    absent_statuses: frozenset[int]
    item_errors: ItemErrors | None = None


def pointer_problem(path: str) -> str | None:
    """Why ``path`` (``errors[*]``, ``result.failures[*]``) is not a pointer this client can follow."""
    steps = path.split(".")
    if not path or any(not step or not POINTER_STEP.fullmatch(step) for step in steps):
        return f"{path!r}: a pointer is keys separated by '.', each optionally followed by [*] (every element) or [n]"
    return None


def follow(body: Any, path: str) -> list[Any]:
    """What ``path`` points at in ``body``: every match, in order ([] when nothing does)."""
    found = [body]
    for step in path.split("."):
        matched = POINTER_STEP.fullmatch(step)
        if matched is None:
            return []  # the settings checked the pointer (pointer_problem); nothing to follow
        name, brackets = matched.groups()
        if name:
            found = [node[name] for node in found if isinstance(node, dict) and name in node]
        for index in re.findall(r"\[(\*|\d+)\]", brackets):
            lists = [node for node in found if isinstance(node, list)]
            found = [item for node in lists for item in node] if index == "*" else [node[int(index)] for node in lists if int(index) < len(node)]
    return found


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


class HttpDestinationClient(SessionClient):
    def __init__(self, session: PlatformSession, rules: Rules):
        self.session, self.rules = session, rules
        self._overheads: dict[tuple[str, str, int], int] = {}  # (endpoint, op, count) -> bytes: rendered once, not per record

    def prepare(self, target: SyncTarget[HttpTarget]) -> None:
        ensure_reachable(self.session.base_url)

    def invalid_reason(self, target: SyncTarget[HttpTarget], record: Record, op: Op) -> str | None:
        if not record.identifier:
            return "identifier is empty"
        if op != "delete":
            for name, value in record.fields.items():
                if problem := non_finite_number(name, value):
                    return problem
        if self.rules.max_bytes is not None:
            operation = self._operation(target, op)
            size = self._overhead(target, op, operation, 1) + len(dumps(self._render(target, op, operation, record)))
            if size > self.rules.max_bytes:
                return f"its request would be {size} bytes, over max_bytes_per_request ({self.rules.max_bytes})"
        return None

    def send(self, target: SyncTarget[HttpTarget], op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        operation = self._operation(target, op)
        if not operation.batch:
            return [outcome for record in records for outcome in self._send_one(target, op, operation, record)]
        chunks = self._chunks(target, op, operation, records)
        if len(chunks) == 1:
            return self._send_batch(target, op, operation, chunks[0])  # refused whole: the engine splits it
        outcomes: list[ItemOutcome] = []
        for position, chunk in enumerate(chunks):
            try:
                outcomes += self._isolate(target, op, operation, chunk)
            except NoAnswer as silence:
                if not outcomes:
                    raise
                message = self.session.redact(str(silence))  # what was confirmed stands; the rest is sent next run
                outcomes += [ItemOutcome(record.key, "no_answer", message) for rest in chunks[position:] for record, _ in rest]
                break
        return outcomes

    # --- requests --------------------------------------------------------------------------------
    def _operation(self, target: SyncTarget[HttpTarget], op: Op) -> Operation:
        if op == "delete":
            return self.rules.delete
        own = target.platform.record
        if own is None:
            return self.rules.upsert
        upsert = self.rules.upsert  # the activation's own template: its records' shape (in one-record mode, the body)
        return Operation(upsert.method, upsert.path, upsert.body if upsert.batch else own, own)

    def _render(self, target: SyncTarget[HttpTarget], op: Op, operation: Operation, record: Record) -> Any:
        values = {"identifier": record.identifier, "fields": json_value(record.fields), "object": target.platform.endpoint, "operation": op}
        template = operation.record if operation.batch else operation.body
        return template.render(values) if template is not None else None

    def _overhead(self, target: SyncTarget[HttpTarget], op: Op, operation: Operation, count: int) -> int:
        """Bytes of a request body around its records (a one-record body has none)."""
        if not operation.batch:
            return 0
        key = (target.platform.endpoint, op, count)
        if key not in self._overheads:  # a benign race: two threads may both render it once
            values = {"object": target.platform.endpoint, "operation": op, "records": [], "count": count}
            self._overheads[key] = len(dumps(operation.batch_body.render(values)))
        return self._overheads[key]

    def _chunks(self, target: SyncTarget[HttpTarget], op: Op, operation: Operation, records: Sequence[Record]) -> list[list[tuple[Record, Any]]]:
        """The batch as requests within the item and byte limits (each record fits alone: invalid_reason checked)."""
        overhead = self._overhead(target, op, operation, len(records))
        chunks: list[list[tuple[Record, Any]]] = [[]]
        size = overhead
        for record in records:
            item = self._render(target, op, operation, record)
            item_size = len(dumps(item))
            needed = item_size + (1 if chunks[-1] else 0)  # the comma between items
            full = len(chunks[-1]) >= self.rules.max_items
            if chunks[-1] and (full or (self.rules.max_bytes is not None and size + needed > self.rules.max_bytes)):
                chunks.append([])
                size, needed = overhead, item_size
            chunks[-1].append((record, item))
            size += needed
        return chunks

    def _isolate(self, target: SyncTarget[HttpTarget], op: Op, operation: Operation, chunk: list[tuple[Record, Any]]) -> list[ItemOutcome]:
        try:
            return self._send_batch(target, op, operation, chunk)
        except BatchRejected as refused:
            if len(chunk) == 1:
                return [ItemOutcome(chunk[0][0].key, "rejected", str(refused))]
            middle = len(chunk) // 2
            return self._isolate(target, op, operation, chunk[:middle]) + self._isolate(target, op, operation, chunk[middle:])

    def _send_batch(self, target: SyncTarget[HttpTarget], op: Op, operation: Operation, chunk: list[tuple[Record, Any]]) -> list[ItemOutcome]:
        values = {"object": target.platform.endpoint, "operation": op, "records": [item for _, item in chunk], "count": len(chunk)}
        body = operation.batch_body.render(values)
        path = operation.path.replace("{object}", target.platform.endpoint)
        response = self._request(operation.method, path, body, len(chunk))
        return self._outcomes(op, [record for record, _ in chunk], response, f"{operation.method} {path}")

    def _send_one(self, target: SyncTarget[HttpTarget], op: Op, operation: Operation, record: Record) -> list[ItemOutcome]:
        path = operation.path.replace("{object}", target.platform.endpoint).replace("{identifier}", quote(record.identifier, safe=""))
        response = self._request(operation.method, path, self._render(target, op, operation, record), 1)
        return self._outcomes(op, [record], response, f"{operation.method} {path}")

    def _request(self, method: str, path: str, body: Any, items: int) -> requests.Response:
        if body is None:
            return self.session.request(method, path, items=items)
        return self.session.request(method, path, items=items, data=dumps(body), headers={"Content-Type": "application/json"})

    # --- answers ---------------------------------------------------------------------------------
    def _outcomes(self, op: Op, records: list[Record], response: requests.Response, what: str) -> list[ItemOutcome]:
        status = response.status_code
        if 200 <= status < 300:
            refused = self._item_errors(records, response) if self.rules.item_errors else {}
            return [ItemOutcome(r.key, "rejected", refused[r.key]) if r.key in refused else ItemOutcome(r.key, "confirmed") for r in records]
        if op == "delete" and status in self.rules.absent_statuses:
            return [ItemOutcome(r.key, "confirmed", f"HTTP {status}: not there, nothing to delete") for r in records]
        if status in self.rules.rejected_statuses:
            return self._refused(records, error_text(response, self.session.redact), status)
        raise self.session.fail(response, what)

    def _refused(self, records: list[Record], message: str, status: int) -> list[ItemOutcome]:
        if len(records) == 1:
            return [ItemOutcome(records[0].key, "rejected", message)]
        raise BatchRejected(message, status)

    def _item_errors(self, records: list[Record], response: requests.Response) -> dict[str, str]:
        """Record key -> the platform's words, for every item error of a 2xx answer."""
        rules = self.rules.item_errors
        assert rules is not None
        try:
            errors = follow(response.json(), rules.path)
        except ValueError:
            return {}  # no JSON body: no item errors
        by_id: dict[str, list[Record]] = {}
        for record in records:
            by_id.setdefault(record.identifier, []).append(record)
        refused: dict[str, str] = {}
        for error in errors:
            named = self._named(error, records, by_id)
            text = str(error.get(rules.message)) if isinstance(error, dict) and error.get(rules.message) not in (None, "") else ""
            message = self.session.redact(f"HTTP {response.status_code}: {text or '; '.join(body_parts(error)) or 'item refused'}")
            if not named and len(records) > 1:  # which record it means is unknown: none is taken as confirmed
                raise BatchRejected(f"{message} (an item error naming no record of the request)", response.status_code)
            if not named:
                return {records[0].key: message}
            refused.update((record.key, message) for record in named)
        return refused

    def _named(self, error: Any, records: list[Record], by_id: dict[str, list[Record]]) -> list[Record]:
        rules = self.rules.item_errors
        if not isinstance(error, dict) or rules is None:
            return []
        index = error.get(rules.index) if rules.index else None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(records):
            return [records[index]]
        identifier = error.get(rules.id) if rules.id else None
        return by_id.get(str(identifier), []) if identifier is not None else []
