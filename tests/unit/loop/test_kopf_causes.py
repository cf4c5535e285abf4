"""kopf's change detection stores nothing on the objects (``handlers.settings.NoDiffBase``):
an ``on.create``/``on.update``/``on.resume`` handler would then never fire. The only kopf
cause the operator registers is a model's deletion (its finalizer)."""

from __future__ import annotations

import inspect

import kopf

from polyculture.handlers.main import load_handlers


def test_the_only_changing_handler_is_the_models_deletion() -> None:
    load_handlers()
    registry = kopf.get_default_registry()
    changing = list(registry._changing.get_all_handlers())
    assert [(h.id, h.reason) for h in changing] == [("release_model", kopf.Reason.DELETE)]


def test_the_indexes_run_on_kopfs_event_loop() -> None:
    """Every index is a coroutine: kopf sends a plain function to its thread pool for each
    event of each object (a thread hand-off per event of every model in a burst)."""
    load_handlers()
    registry = kopf.get_default_registry()
    indexers = list(registry._indexing.get_all_handlers())
    assert {h.id for h in indexers} >= {"models_by_pool", "pools_index", "nodes_index"}
    assert [h.id for h in indexers if not inspect.iscoroutinefunction(h.fn)] == []
