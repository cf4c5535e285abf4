"""Start one Ray node (head or worker) bound to the loopback interface only.

Run as ``python -m polyculture.ray.nodestart [ray start options]`` by the cluster keeper
(never imported by the operator). It is ``ray start`` with two corrections for a cluster
whose every node lives on this machine:

- Ray's gRPC servers (GCS, raylet, agents) listen on 127.0.0.1 only when the node's IP is
  exactly ``127.0.0.1``; with any other address they listen on all interfaces.
- ``ray start`` rewrites ``127.0.0.1`` (in ``--node-ip-address`` and ``--address``) to the
  machine's routable address, and with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (which makes
  every Ray process pick 127.0.0.1 itself) it refuses to start a worker node.

So the caller sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment (read by every
Ray process it spawns), and this process lifts the worker-node guard and pins its own view
of the node address to loopback before handing over to Ray's CLI. Ray is pinned to one
version in ``pyproject.toml``; ``tests/ray`` checks with ``ss`` that nothing listens beyond
loopback, which is what would break first if Ray changed these internals.
"""

from __future__ import annotations

import sys

LOOPBACK = "127.0.0.1"


def main(argv: list[str]) -> int:
    from ray._private import ray_constants, services
    from ray.scripts.scripts import cli

    def loopback_address(address: str | None = None) -> str:
        return LOOPBACK

    services.get_node_ip_address = loopback_address
    ray_constants.ENABLE_RAY_CLUSTER = True
    cli.main(args=["start", *argv], prog_name="ray", standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
