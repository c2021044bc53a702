"""``python -m activation_pipeline.sandbox``: run the sandbox in the foreground.

Options: ``--host`` (default 127.0.0.1), ``--port`` (default env ``SANDBOX_PORT``
or 8765), ``--state`` (default env ``SANDBOX_STATE`` or
``data/sandbox/state.sqlite``), ``--no-rate-limit`` (or env
``SANDBOX_RATE_LIMIT=off``), ``--requests-per-second``, ``--items-per-second``,
``--verbose`` (access log: method, path, status; never headers).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from .server import DEFAULT_STATE_PATH, SandboxServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation_pipeline.sandbox", description="Local emulator of the marketing platforms' APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8765")))
    parser.add_argument(
        "--state", default=os.environ.get("SANDBOX_STATE", DEFAULT_STATE_PATH), help="SQLite state file (created with its parent directories)"
    )
    parser.add_argument("--no-rate-limit", action="store_true", help="disable rate limiting")
    parser.add_argument("--requests-per-second", type=float, default=None)
    parser.add_argument("--items-per-second", type=float, default=None)
    parser.add_argument("--verbose", action="store_true", help="log one line per request")
    args = parser.parse_args(argv)

    server = SandboxServer(
        args.host,
        args.port,
        args.state,
        rate_limit=not args.no_rate_limit,
        requests_per_second=args.requests_per_second,
        items_per_second=args.items_per_second,
        verbose=args.verbose,
    )

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    print(f"sandbox listening on {server.url} (state: {args.state})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
