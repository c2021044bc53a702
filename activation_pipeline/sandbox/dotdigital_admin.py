"""The Dotdigital emulator's admin routes (no auth) under ``/_sandbox/dotdigital/...``: its state for tests,
its strictness knobs, and lists and contacts seeded behind the sync's back."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .dotdigital_imports import InsightData
from .dotdigital_validation import error_response, v3_error
from .emulator_kit import optional_json
from .platform_interface import Request, Response


class DotdigitalAdmin:
    """Mixed into ``DotdigitalPlatform`` (its store, settings and contact upsert)."""

    store: Any
    settings: Any
    _upsert_contact: Any

    def admin(self, req: Request, segs: list[str]) -> Response:
        try:
            spec = optional_json(req)
            route = (req.method, "/".join(segs))
            if route == ("GET", "state"):
                return Response(200, self.state())
            if route in (("GET", "config"), ("POST", "config")):
                if req.method == "POST":
                    self.settings.update(spec)
                return Response(200, asdict(self.settings))
            if route == ("POST", "lists"):
                with self.store.transaction() as db:
                    db.executemany("INSERT OR IGNORE INTO dd_lists (name, visibility) VALUES (?, 'Private')", [(n,) for n in spec])
                return Response(201, self.state()["lists"])
            if route == ("POST", "contacts"):
                self._seed_contacts(spec)
                return Response(201, self.state()["contacts"])
            if req.method == "POST" and len(segs) == 3 and segs[0] == "lists" and segs[2] == "remove":
                with self.store.transaction() as db:
                    for email in spec:
                        db.execute(
                            "DELETE FROM dd_members WHERE list_id = (SELECT id FROM dd_lists WHERE name = ?) AND "
                            "contact_id = (SELECT id FROM dd_contacts WHERE email = ?)",
                            (segs[1], email),
                        )
                return Response(200, self.state()["lists"])
        except (ValueError, TypeError, KeyError) as exc:
            return error_response(v3_error(400, "sandbox", "badRequest", str(exc)))
        return error_response(v3_error(404, "sandbox", "notFound", f"No dotdigital admin route for {req.method} {req.path}"))

    def _seed_contacts(self, contacts: Any) -> None:
        if not isinstance(contacts, list):
            raise ValueError("body must be a list of contacts")
        with self.store.transaction() as db:
            for contact in contacts:
                kind = "email" if contact.get("email") else "mobileNumber"
                identifiers = {k: contact[k] for k in ("email", "mobileNumber") if contact.get(k)}
                contact_id, _ = self._upsert_contact(db, kind, identifiers, contact.get("dataFields") or {}, "overwrite")
                for name in contact.get("lists") or []:
                    db.execute("INSERT OR IGNORE INTO dd_lists (name, visibility) VALUES (?, 'Private')", (name,))
                    db.execute("INSERT OR IGNORE INTO dd_members SELECT id, ? FROM dd_lists WHERE name = ?", (contact_id, name))

    def state(self) -> dict[str, Any]:
        """Everything the account holds, for tests: lists with their members' emails, data fields, contacts, insight."""
        with self.store.transaction() as db:
            lists = {
                name: {
                    "id": i,
                    "contacts": sorted(
                        e or m
                        for e, m in db.execute(
                            "SELECT c.email, c.mobile FROM dd_contacts c JOIN dd_members m ON m.contact_id = c.id WHERE m.list_id = ?", (i,)
                        )
                    ),
                }
                for i, name in db.execute("SELECT id, name FROM dd_lists ORDER BY id").fetchall()
            }
            fields = {n: t for n, t in db.execute("SELECT name, type FROM dd_data_fields ORDER BY name")}
            contacts = {
                e or m: {"contactId": i, "mobileNumber": m, "dataFields": json.loads(d)}
                for i, e, m, d in db.execute("SELECT id, email, mobile, data_json FROM dd_contacts ORDER BY id")
            }
            insight = InsightData.state(db)
        return {"lists": lists, "data_fields": fields, "contacts": contacts, "insight": insight}
