"""The incremental snapshot (``SnapshotBuilder``) equals the one built from scratch.

Over random sequences of steps (models added, removed, kept as the very same view, or given a
new view in another phase; the clock moving), each build equals
``reconcile.admission.snapshot`` of the same input; a part is reused (the same object) only
for the same view, and a holding model without an admission time (taken as admitted now) is
made again at each ``now``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from polyculture.api.community_model import CommunityModelSpec
from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.inventory import NodeInfo
from polyculture.reconcile.admission import ModelView, pool_view, snapshot
from polyculture.reconcile.snapshots import SnapshotBuilder

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SPEC = ComputePoolSpec.model_validate(
    {
        "members": [{"owner": "coop", "nodeSelector": {"o": "coop"}}],
        "communities": [{"name": "yoruba"}, {"name": "sign"}],
    }
)
NODES = [
    NodeInfo(
        name=f"n-{i}",
        labels={"o": "coop", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        gpus=8,
    )
    for i in range(3)
]
POOL = pool_view("p", SPEC, NODES, NOW)
TRAIN = CommunityModelSpec.model_validate(
    {"pool": "p", "training": {"entrypoint": "python t.py", "workers": 1, "gpusPerWorker": 2}}
)
TRAIN_SERVE = CommunityModelSpec.model_validate(
    {
        "pool": "p",
        "training": {"entrypoint": "python t.py", "workers": 2, "gpusPerWorker": 1},
        "serving": {"importPath": "app:deployment", "gpusPerReplica": 1},
    }
)

ADMISSION = {
    "gpus": 2,
    "admittedAt": "2026-11-28T11:00:00Z",
    "placement": [{"owner": "coop", "node": "n-0", "gpus": 2}],
}
#: statuses a model may have: pending, queued, holding (with or without an admission time),
#: draining, trained (serving next), failed
STATUSES: list[dict[str, Any]] = [
    {"phase": "Pending"},
    {"phase": "Queued", "community": "yoruba", "queuePosition": 1},
    {"phase": "Admitted", "admission": ADMISSION, "run": 1},
    {"phase": "Admitted", "admission": {**ADMISSION, "admittedAt": None}, "run": 2, "attempts": 0},
    {"phase": "Training", "admission": ADMISSION, "run": 3, "attempts": 1},
    {"phase": "Preempted", "admission": ADMISSION, "run": 1},
    {"phase": "Preempted", "run": 2},
    {"phase": "Trained", "trainedAt": "2026-11-28T11:30:00Z", "run": 1},
    {"phase": "Failed", "run": 3, "attempts": 3},
]


def view(name: str, status: int, serves: bool) -> ModelView:
    return ModelView(
        namespace="sign" if name.endswith(("1", "3")) else "yoruba",
        name=name,
        uid=f"uid-{name}",
        created=float(len(name)),
        generation=1,
        spec=TRAIN_SERVE if serves else TRAIN,
        status=STATUSES[status],
    )


NAMES = [f"m-{i}" for i in range(8)]
#: one step: for each model, absent (None), the same view as before (-1) or a new view in
#: status i; the seconds the clock moves
STEP = st.tuples(
    st.lists(
        st.one_of(st.none(), st.just(-1), st.integers(0, len(STATUSES) - 1)),
        min_size=len(NAMES),
        max_size=len(NAMES),
    ),
    st.integers(0, 30),
)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=8), serves=st.lists(st.booleans(), min_size=8))
def test_each_build_equals_the_snapshot_from_scratch(
    steps: list[tuple[list[int | None], int]], serves: list[bool]
) -> None:
    builder = SnapshotBuilder()
    views: dict[str, ModelView] = {}
    now = NOW
    for choices, seconds in steps:
        now += timedelta(seconds=seconds)
        for name, choice, serving in zip(NAMES, choices, serves, strict=False):
            if choice is None:
                views.pop(name, None)
            elif choice >= 0 or name not in views:
                views[name] = view(name, max(choice, 0), serving)
        models = list(views.values())
        built = builder.build(POOL, SPEC, {}, models, now)
        assert built == snapshot(POOL, SPEC, {}, models, now)


def test_parts_of_unchanged_views_are_reused_and_new_views_remade() -> None:
    builder = SnapshotBuilder()
    a, b, c = view("m-0", 1, False), view("m-1", 2, False), view("m-2", 4, False)
    first = builder.build(POOL, SPEC, {}, [a, b, c], NOW)
    assert builder.made == 3
    later = NOW + timedelta(seconds=5)
    again = builder.build(POOL, SPEC, {}, [c, b, a], later)  # order of the input does not matter
    assert builder.made == 0
    assert again == snapshot(POOL, SPEC, {}, [a, b, c], later)
    assert all(x is y for x, y in zip(again.running, first.running, strict=True))
    assert again.pending[0] is first.pending[0]
    b2 = view("m-1", 2, False)  # the same status, a new view: made again
    third = builder.build(POOL, SPEC, {}, [a, b2, c], later)
    assert builder.made == 1
    assert third.running[0] is not first.running[0] and third.running[0] == first.running[0]


def test_a_holding_model_without_an_admission_time_is_made_again_at_each_now() -> None:
    builder = SnapshotBuilder()
    untimed = view("m-0", 3, False)
    first = builder.build(POOL, SPEC, {}, [untimed], NOW)
    later = NOW + timedelta(seconds=7)
    second = builder.build(POOL, SPEC, {}, [untimed], later)
    assert builder.made == 1
    assert first.running[0].started == NOW.timestamp()
    assert second.running[0].started == later.timestamp()
