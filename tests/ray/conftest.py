"""Fixtures for the Ray tier: real local Ray clusters, always torn down.

- ``ray_state_dir`` (session): the local backend's state dir for this test session.
- ``backend`` (session): a fate-sharing :class:`LocalBackend` on it — if pytest dies, so
  do its clusters; at the end of the session every cluster still in the state dir is torn
  down and checked gone (by pid), even when tests failed.
- helpers for the modules (``start_cluster``, ``figure``, ``listeners``) live in
  ``pcray_support.py``.

Cluster starts are the expensive part (~15 s and ~1 GB each on 2 cores): modules share one
cluster through a module-scoped fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polyculture.ray import processes
from polyculture.ray.local import LocalBackend


@pytest.fixture(scope="session")
def ray_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray-state")


@pytest.fixture(scope="session")
def backend(ray_state_dir: Path) -> Iterator[LocalBackend]:
    local = LocalBackend(ray_state_dir)
    yield local
    survivors: dict[str, set[int]] = {}
    for handle in local.clusters():
        pids = local.pids(handle)
        local.teardown(handle)
        left = {pid for pid in pids if processes.alive(pid)}
        if left:
            survivors[handle.name] = left
    assert not survivors, f"Ray processes survived the session: {survivors}"
