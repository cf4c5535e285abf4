"""A Ray cluster that does not become ready within the operator's start timeout is torn down
and its model requeued (``ClusterStartFailed``), without counting an attempt.

``polyculture run --cluster-start-timeout`` sets that timeout (300 s by default); the
operator benchmark sets it beyond its run on kwok, where no container runs and no cluster is
ever ready. Here the session's operator is restarted with a 5 s timeout: the model's head Pod
is created and bound on its kwok node, never becomes a ready Ray head, and after 5 s the
model's objects are deleted and it is admitted again.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from polyculture.controlplane.manifests import compute_pool, member, training_model
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

GROUP, VERSION = "polyculture.dev", "v1alpha1"
START_TIMEOUT_S = 5


@pytest.fixture
def short_timeout(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator, restarted with a short cluster start timeout (then as before)."""
    before = operator.extra_args
    operator.extra_args = (*before, "--cluster-start-timeout", str(START_TIMEOUT_S))
    operator.restart()
    try:
        yield operator
    finally:
        operator.extra_args = before
        operator.restart()


def test_a_cluster_not_ready_in_time_is_requeued_without_an_attempt(
    api_client: Any, crds: object, short_timeout: OperatorProcess
) -> None:
    tag = uuid.uuid4().hex[:6]
    core, objs = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    pool, ns, node = f"st-{tag}", f"st-{tag}", f"st-{tag}-node"
    create_gpu_node(api_client, node, "ada", 1, labels={"st": tag})
    core.create_namespace({"metadata": {"name": ns}})
    try:
        objs.create_cluster_custom_object(
            GROUP,
            VERSION,
            "computepools",
            compute_pool(pool, [member("ada", {"polyculture.dev/owner": "ada", "st": tag})], [ns]),
        )
        objs.create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            "communitymodels",
            training_model("m", pool),
        )

        def status() -> dict[str, Any]:
            got: Any = objs.get_namespaced_custom_object(GROUP, VERSION, ns, "communitymodels", "m")
            return dict(got.get("status") or {})

        def pods() -> list[Any]:
            return list(core.list_namespaced_pod(ns).items)

        wait_for(lambda: status().get("run") == 1 and pods(), 60, "admitted, head Pod created")
        first_pod = pods()[0].metadata.uid
        events: list[str] = []

        def requeued() -> bool:
            found = core.list_namespaced_event(ns, field_selector="reason=ClusterStartFailed")
            events[:] = [e.message for e in found.items]
            return bool(events)

        wait_for(requeued, START_TIMEOUT_S + 60, "a ClusterStartFailed Event")
        assert f"not ready after {START_TIMEOUT_S:g} s" in events[0], events
        # the model is admitted again (the only node is free again) with a new cluster
        wait_for(lambda: int(status().get("run") or 0) >= 2, 60, "admitted again")
        st = status()
        assert int(st.get("attempts") or 0) == 0, st
        wait_for(
            lambda: pods() and all(p.metadata.uid != first_pod for p in pods()),
            60,
            "the first cluster's Pod replaced",
        )
    finally:
        with contextlib.suppress(client.ApiException):
            objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", pool)
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(ns)
        with contextlib.suppress(client.ApiException):
            core.delete_node(node)
