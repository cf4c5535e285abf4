"""Which checkpoint URIs each Ray backend can write (pure).

The API server accepts a checkpoint URI whose scheme some backend can write (``file``,
``s3``, ``gs``, ``abfs``, ``hdfs``) and that points into no system directory. Which backend
runs the model is the pool's choice, so the operator narrows it down:

- ``local`` (Ray processes on the operator's machine): ``file`` and the object stores.
- ``kubernetes`` (head and worker Pods on the owners' nodes): the object stores, and ``file``
  only under ``/var/lib/polyculture/``, the directory the backend mounts from shared storage on
  every node; any other path would be a directory of whichever node a worker lands on.
"""

from __future__ import annotations

from typing import Final

from polyculture.api.compute_pool import RayBackend

OBJECT_STORES: Final = ("s3", "gs", "abfs", "hdfs")
SHARED_CHECKPOINT_DIR: Final = "/var/lib/polyculture/"
SCHEMES: Final = {
    RayBackend.LOCAL: ("file", *OBJECT_STORES),
    RayBackend.KUBERNETES: ("file", *OBJECT_STORES),
}


def checkpoint_problem(uri: str, backend: RayBackend) -> str | None:
    """Why ``backend`` cannot write checkpoints to ``uri``; None when it can."""
    scheme, _, rest = uri.partition("://")
    if scheme not in SCHEMES[backend]:
        allowed = ", ".join(SCHEMES[backend])
        return f"the {backend.value} Ray backend writes checkpoints to {allowed}, not {scheme}"
    if (
        backend is RayBackend.KUBERNETES
        and scheme == "file"
        and not rest.startswith(SHARED_CHECKPOINT_DIR)
    ):
        return (
            f"with the kubernetes Ray backend a file checkpoint must be under "
            f"{SHARED_CHECKPOINT_DIR} (shared by every node), or use s3, gs, abfs or hdfs"
        )
    return None
