"""Local HTTP emulator ("sandbox") of the marketing platforms' APIs.

It stands in for the real platforms (unreachable from dev/CI machines) and
enforces their documented contracts, so client bugs surface locally. It is
deliberately independent of ``activation_pipeline.platforms`` and
``activation_pipeline.sync`` (the clients it emulates).

    from activation_pipeline.sandbox import start_sandbox
    with start_sandbox(port=0, state_path="/tmp/sb.sqlite", rate_limit=False) as sb:
        ...  # sb.url == "http://127.0.0.1:<port>"; Batch lives under f"{sb.url}/batch/2.11"

Run it in the foreground with ``python -m activation_pipeline.sandbox``.

Layout: :mod:`.server` (HTTP, dispatch, ``/_sandbox`` admin routes, the registry
``PLATFORMS``), :mod:`.platform_interface` (what the server and an emulator exchange),
:mod:`.emulator_kit` (what every emulator shares), :mod:`.store`, :mod:`.stats`,
:mod:`.faults`, :mod:`.ratelimit`, then one module per platform (``batch``, ``yotpo``,
``connectif``, ``dotdigital``, ``synerise``), its stateless checks beside it in
``<platform>_validation.py`` and, for a large API, a second module for a separate
part of it (``dotdigital_imports``, ``synerise_catalogs``).

Adding an emulator is one module plus one line ``"<name>": ".<module>:<Class>"`` in
``server.PLATFORMS``. The module provides a class that subclasses
:class:`~.emulator_kit.Emulator` (built as ``Class(store, clock)``) with:

* ``name`` -- the first path segment (``/<name>/...``) and the platform named in faults and stats;
* ``schema`` -- its ``CREATE TABLE IF NOT EXISTS`` statements (tables prefixed with the
  name; created at start, emptied by ``POST /_sandbox/reset``);
* ``handle(req, ctx)`` -- the platform's routes, path segments after ``/<name>``: check
  credentials (:func:`~.emulator_kit.authorization`, :func:`~.emulator_kit.basic_credentials`,
  :class:`~.emulator_kit.IssuedTokens`), charge the rate limit (``ctx.throttle(key, items)``
  gives the Retry-After of a 429), read the body (:func:`~.emulator_kit.json_body` with the
  platform's own error), refuse the ids a fault draws (``ctx.rejection(id)``), count
  ``ctx.items_received`` / ``ctx.items_applied``, and answer a
  :class:`~.platform_interface.Response` in the platform's own shape;
* ``fault_response(status, retry_after)`` -- an injected status in that shape;
* ``admin(req, segments)`` -- ``/_sandbox/<name>/...`` (no auth): what the platform holds,
  for tests to assert on, and seeding or changing it behind the client's back;
* ``reset()`` when it holds more than its tables (settings, issued tokens).

Time comes from ``self.clock`` (:class:`~.emulator_kit.Clock`), never ``time.time()``:
``POST /_sandbox/clock {"advance_seconds": n}`` (or ``start_sandbox(clock=...)``) moves
token expiry, import windows and rate-limit buckets forward without sleeping.
"""

from .emulator_kit import Clock
from .server import SandboxServer, start_sandbox

__all__ = ["Clock", "SandboxServer", "start_sandbox"]
