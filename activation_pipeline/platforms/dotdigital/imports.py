"""Dotdigital's asynchronous imports (contacts and insight data: submit, poll, read the report) and the
deletion of insight records.

Paths, statuses and report shapes: the v3 contacts service and insight data service
(developer.dotdigital.com/reference-link/importcontacts-1, developer.dotdigital.com/reference-link/importinsightdata);
the choices made where they are silent are in ``client.py``'s docstring and docs/platforms/dotdigital.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from activation_pipeline.platforms.base import BatchRejected, ItemOutcome, Record
from activation_pipeline.platforms.dotdigital.contract import answer_failure, error_message, names_error
from activation_pipeline.platforms.dotdigital.target import DotdigitalTarget
from activation_pipeline.platforms.http import PlatformSession

MAX_BODY_BYTES = 50 * 1024 * 1024
IMPORTS_IN_FLIGHT = {"contacts": 25, "insightData": 5}  # the account's caps on active imports per service
RUNNING = frozenset({"NotStarted", "NotFinished", "Processing"})
DONE = frozenset({"Finished", "Complete"})  # the insight enum says Complete, its own example Finished
Report = dict[str, Any]


class Imports:
    """Runs imports for one client: at most the account's number of imports in flight per service, each polled
    until it ends or ``poll_timeout`` passes."""

    def __init__(self, session: PlatformSession, *, poll_interval: float, poll_timeout: float):
        self.session = session
        self.poll_interval, self.poll_timeout = poll_interval, poll_timeout
        self._in_flight = {service: threading.BoundedSemaphore(cap) for service, cap in IMPORTS_IN_FLIGHT.items()}

    def run(
        self, service: str, body: dict[str, Any], records: Sequence[Record], outcomes_of: Callable[[Report], list[ItemOutcome]]
    ) -> list[ItemOutcome]:
        """``PUT /{service}/v3/import``, then the outcome of each record from the finished import's report."""
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        if len(payload) > MAX_BODY_BYTES:
            raise BatchRejected(f"request body of {len(payload) / 1e6:.1f} MB exceeds Dotdigital's 50 MB", 413)
        with self._in_flight[service]:
            response = self.session.request("PUT", f"/{service}/v3/import", data=payload, headers={"Content-Type": "application/json"})
            if response.status_code in (401, 403):
                raise answer_failure(response, f"PUT /{service}/v3/import (check the API user and the region)", self.session.redact)
            if response.status_code in (400, 413):
                raise BatchRejected(error_message(response, self.session.redact), response.status_code)
            if response.status_code != 202:
                raise answer_failure(response, f"PUT /{service}/v3/import", self.session.redact)
            import_id = str(response.json()["importId"])
            report = self._poll(service, import_id)
        if report is None:
            message = f"import {import_id} still running after {self.poll_timeout:.0f} s; resent next run"
            return [ItemOutcome(r.key, "no_answer", message) for r in records]
        status = report.get("status")
        if status not in DONE:
            message = f"import {import_id} ended {status}: nothing from this batch was confirmed"
            return [ItemOutcome(r.key, "rejected", message) for r in records]
        return outcomes_of(report)

    def _poll(self, service: str, import_id: str) -> Report | None:
        deadline = time.monotonic() + self.poll_timeout
        while True:
            response = self.session.request("GET", f"/{service}/v3/import/{quote(import_id, safe='')}")
            if response.status_code != 200:
                raise answer_failure(response, f"GET /{service}/v3/import/{import_id}", self.session.redact)
            report = response.json()
            if report.get("status") not in RUNNING:
                return report
            if time.monotonic() + self.poll_interval > deadline:
                return None
            time.sleep(self.poll_interval)

    def delete_insight(self, collection: str, records: Sequence[Record]) -> list[ItemOutcome]:
        """``DELETE /insightData/v3/accounts/{collection}/deleteRecords``: a key the collection lacks is deleted already."""
        keys = sorted({r.identifier for r in records})
        response = self.session.request("DELETE", f"/insightData/v3/accounts/{quote(collection, safe='')}/deleteRecords", json={"keys": keys})
        if response.status_code == 404 and names_error(response, "collectionNotFound"):
            return [ItemOutcome(r.key, "confirmed", "collection absent: nothing to delete") for r in records]
        if response.status_code != 200:
            if response.status_code == 400:
                raise BatchRejected(error_message(response, self.session.redact), 400)
            raise answer_failure(response, f"delete records of collection {collection}", self.session.redact)
        missing = set(response.json().get("notFound") or [])
        return [ItemOutcome(r.key, "confirmed", "not in the collection: nothing to delete" if r.identifier in missing else "") for r in records]


# --- reading the reports ------------------------------------------------------------------------
def contact_outcomes(target: DotdigitalTarget, report: Report, records: Sequence[Record], redact: Callable[[str], str]) -> list[ItemOutcome]:
    """Confirmed when listed under ``created`` or ``updated``; rejected under ``failures``; in neither, no answer."""
    kind = target.match_identifier
    failures, successes = contact_failures(report, kind), contact_successes(report, kind)
    outcomes = []
    for record in records:
        value = normalised(kind, record.identifier)
        if value in failures:
            outcomes.append(ItemOutcome(record.key, "rejected", redact(failures[value])))
        elif value in successes:
            outcomes.append(ItemOutcome(record.key, "confirmed"))
        else:
            outcomes.append(ItemOutcome(record.key, "no_answer", f"the import report does not mention {kind} {record.identifier}"))
    return outcomes


def insight_outcomes(report: Report, records: Sequence[Record], redact: Callable[[str], str]) -> list[ItemOutcome]:
    """Confirmed unless the report lists the record's key under ``failures``."""
    failures = insight_failures(report)
    return [
        ItemOutcome(r.key, "rejected", redact(failures[r.identifier])) if r.identifier in failures else ItemOutcome(r.key, "confirmed")
        for r in records
    ]


def contact_failures(report: Report, kind: str) -> dict[str, str]:
    """identifier value (normalised) -> "failureCode: description" for each contact the import refused."""
    out: dict[str, str] = {}
    for failure in report.get("failures") or []:
        value = (failure.get("identifiers") or {}).get(kind)
        if value is None:
            continue
        reasons = "; ".join(f"{f.get('failureCode')}: {f.get('description')}" for f in failure.get("failures") or [])
        out[normalised(kind, str(value))] = reasons or "refused by the import (no reason given)"
    return out


def contact_successes(report: Report, kind: str) -> set[str]:
    found = set()
    for entry in [*(report.get("created") or []), *(report.get("updated") or [])]:
        value = (entry.get("identifiers") or {}).get(kind)
        if value is not None:
            found.add(normalised(kind, str(value)))
    return found


def insight_failures(report: Report) -> dict[str, str]:
    """record key -> "failureReason: details" for each insight record the import refused."""
    out = {}
    for failure in report.get("failures") or []:
        details = "; ".join(str(d) for d in failure.get("details") or [])
        out[str(failure.get("key"))] = f"{failure.get('failureReason', 'Unknown')}" + (f": {details}" if details else "")
    return out


def normalised(kind: str, value: str) -> str:
    return value.strip().lower() if kind == "email" else value.strip().lstrip("+")
