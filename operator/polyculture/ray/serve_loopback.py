"""A worker setup hook that keeps Ray Serve replicas' gRPC servers on loopback.

Ray Serve 2.60 starts, in every replica, a gRPC server for calls between deployments on
``[::]:0`` — all interfaces, hard-coded (``ray/serve/_private/replica.py``), with no flag or
variable to change it. The local backend runs every node on 127.0.0.1, so it installs this
function as the replicas' worker setup hook, and it rewrites that one address to
``127.0.0.1`` before the replica starts. Other replicas reach it at the node's address,
which is 127.0.0.1 on a local cluster.

How it is installed: the ``worker_process_setup_hook`` field of a runtime environment only
works through ``ray.init`` (which turns it into the variable below); Serve's declarative
config ignores it. So the local backend sets that variable in the application's
``env_vars`` directly — Ray's worker (``default_worker.py``) imports and calls the named
function at start — and ships this package as a ``py_modules`` entry so that it imports.

``tests/ray/test_ray_serve.py`` checks with ``ss`` that the replicas listen on loopback.
"""

from __future__ import annotations

from typing import Any

HOOK = "polyculture.ray.serve_loopback.bind_loopback"
#: what ``ray.init`` turns ``worker_process_setup_hook`` into (ray_constants, Ray 2.60)
HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"
ALL_INTERFACES = "[::]:"


def bind_loopback() -> None:
    from ray.serve._private import replica

    original: Any = getattr(replica, "add_port_to_grpc_server")  # noqa: B009 (not exported)
    if getattr(original, "__polyculture_loopback__", False):
        return

    def add_port_on_loopback(server: Any, address: str) -> Any:
        if address.startswith(ALL_INTERFACES):
            address = "127.0.0.1:" + address[len(ALL_INTERFACES) :]
        return original(server, address)

    add_port_on_loopback.__polyculture_loopback__ = True  # type: ignore[attr-defined]
    setattr(replica, "add_port_to_grpc_server", add_port_on_loopback)  # noqa: B010
