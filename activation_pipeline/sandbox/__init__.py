"""Local HTTP emulator ("sandbox") of the marketing platforms' APIs.

It stands in for the real platforms (unreachable from dev/CI machines) and
enforces their documented contracts, so client bugs surface locally. It is
deliberately independent of ``activation_pipeline.platforms`` and
``activation_pipeline.sync`` (the clients it emulates).

    from activation_pipeline.sandbox import start_sandbox
    with start_sandbox(port=0, state_path="/tmp/sb.sqlite", rate_limit=False) as sb:
        ...  # sb.url == "http://127.0.0.1:<port>"; Batch lives under f"{sb.url}/batch/2.11"

Run it in the foreground with ``python -m activation_pipeline.sandbox``.
"""

from .server import SandboxServer, start_sandbox

__all__ = ["SandboxServer", "start_sandbox"]
