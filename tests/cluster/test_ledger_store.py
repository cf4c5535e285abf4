"""The ledger's chunks in the real API server (``polyculture.kube.ledger_store``).

Covers: appends create a chunk per day and grow it, each write carrying its head; a second
appender that read the same head loses the race (resourceVersion) and, once it reads the
store again, continues the chain without counting an increase twice; the export verifies;
a head that does not match its chunk's last entry is ignored and rebuilt from the entries;
an account without the right to ConfigMaps gets a clear error, not a crash.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from kubernetes import client

from polyculture.kube.ledger_store import (
    HEAD_KEY,
    ConflictError,
    NotAllowedError,
    PoolLedger,
    export_lines,
    read_chunks,
)
from polyculture.ledger import next_entry, verify_lines

pytestmark = pytest.mark.cluster

T0 = datetime(2026, 11, 29, 23, 50, tzinfo=UTC)


def append(ledger: PoolLedger, given: int, minutes: int) -> None:
    ledger.append(
        partial(
            next_entry,
            pool=ledger.pool,
            given={"ada": given},
            used=[],
            now=T0 + timedelta(minutes=minutes),
            start=T0,
        )
    )


def test_chunks_heads_and_a_lost_race(api_client: Any) -> None:
    pool = f"store-{uuid.uuid4().hex[:6]}"
    one = PoolLedger(api_client, "default", pool)
    append(one, 1000, 5)
    append(one, 3000, 8)
    append(one, 4000, 15)  # the next UTC day: a new chunk
    chunks = read_chunks(api_client, "default", pool)
    assert [(c.chunk.first_seq, len(c.chunk.lines)) for c in chunks] == [(0, 2), (2, 1)]
    assert chunks[-1].head is not None and chunks[-1].head.seq == 2

    two = PoolLedger(api_client, "default", pool)
    two.load()
    append(one, 6000, 20)
    with pytest.raises(ConflictError):
        append(two, 6000, 21)  # read the same head as `one`: refused, nothing written
    append(two, 7000, 22)  # reads the store again first: only the new 1000 ms count
    result = verify_lines(export_lines(api_client, "default", pool))
    assert result.ok, result.problem
    assert result.entries == 5 and result.totals.given == {"ada": 7000}


def test_a_head_that_does_not_match_is_rebuilt_from_the_entries(api_client: Any) -> None:
    pool = f"store-{uuid.uuid4().hex[:6]}"
    ledger = PoolLedger(api_client, "default", pool)
    append(ledger, 1000, 1)
    append(ledger, 2500, 2)
    core = client.CoreV1Api(api_client)
    name = read_chunks(api_client, "default", pool)[0].chunk.name
    stale = json.dumps({"seq": 0, "hash": "0" * 64, "to": None, "counters": {}, "totals": {}})
    core.patch_namespaced_config_map(name, "default", {"data": {HEAD_KEY: stale}})
    fresh = PoolLedger(api_client, "default", pool)
    assert fresh.load().totals.given == {"ada": 2500}
    append(fresh, 3000, 3)
    assert verify_lines(export_lines(api_client, "default", pool)).totals.given == {"ada": 3000}


def test_no_right_to_configmaps_is_a_clear_error(control_plane: Any, tmp_path: Any) -> None:
    import yaml
    from kubernetes import config

    sa = f"nobody-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "serviceaccount", sa, "-n", "default")
    token = control_plane.kubectl("create", "token", sa, "-n", "default").stdout.strip()
    kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
    kubeconfig["users"] = [{"name": sa, "user": {"token": token}}]
    kubeconfig["contexts"][0]["context"]["user"] = sa
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    api = config.new_client_from_config(config_file=str(path))
    with pytest.raises(NotAllowedError, match="ConfigMaps in namespace 'default'"):
        PoolLedger(api, "default", "p").load()
