"""Operator-wide kopf settings, each with the problem it avoids."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

import kopf

from polyculture.kube.client import api_client


class NoDiffBase(kopf.DiffBaseStorage):
    """Every object looks unchanged to kopf's change detection (``on.create``/``on.update``
    would never fire): nothing is stored on the objects, and deletion, which does not need a
    diff, stays a cause. Register no ``on.create``/``on.update``/``on.resume`` handler."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return cast(kopf.BodyEssence, {})

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Our CRDs have structural status schemas: kopf's own bookkeeping in `status.kopf` would
    # be pruned by the API server ("patching failed with inconsistencies"), so keep it in
    # annotations instead.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="polyculture.dev"
    )
    # No handler of ours reacts to a change through kopf's change detection (models are
    # judged by an event handler, pools by daemons and event handlers; only a model's deletion
    # is a kopf cause): a last-handled copy of each object would cost one PATCH per object.
    settings.persistence.diffbase_storage = NoDiffBase()
    # Without timeouts a watch can go silently idle after a network blip and never recover.
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.watching.connect_timeout = 10
    # Events for warnings and above only from kopf itself; our handlers post their own.
    settings.posting.level = logging.WARNING
    # A restarted operator must not wait minutes to retry a failed handler.
    settings.networking.error_backoffs = [1, 2, 5, 10, 30]
    # Sync daemons hold an executor thread for their lifetime: three per pool (status,
    # admission loop, ledger). kopf's default executor (CPUs + 4 threads) would leave the
    # daemons of a third pool, and every sync handler, waiting behind the first two pools.
    settings.execution.max_workers = 256


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf connects with the credentials ``polyculture.kube.client`` loaded.

    kopf's own ``login_via_client`` reloads the kubeconfig from the default location read at
    import time, which misses a ``--kubeconfig`` given on the command line.
    """
    cfg = api_client().configuration
    keys = cfg.api_key or {}
    auth = keys.get("BearerToken") or keys.get("authorization") or ""
    token = auth.removeprefix("Bearer ").strip() or None
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )
