"""The admission loop: one :class:`~polyculture.loop.pool.PoolLoop` per ComputePool.

It builds the core's snapshot from what the handlers index (``reconcile.admission``), runs
the core, writes the decisions, and carries them out on a Ray cluster backend in worker
threads, so that no Ray or HTTP call ever blocks kopf's event loop.
"""
