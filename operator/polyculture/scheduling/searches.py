"""Failed preemption searches, remembered within one cycle so that none is repeated in vain.

A search is keyed by its shape, its GPUs per worker and its rule (strict or reclaiming).
Both memories decide exactly what searching again would (``DESIGN.md``, "Speed"):

- a search that failed for ``n`` workers fails again for at least ``n`` while the free-block
  index is unchanged (its version);
- a failed search whose index moves depend on the pool's contents only (its victims freed and
  given back) is *replayed* until the next decision: a search on the same key for at least as
  many workers fails the same way, and its moves are made again instead of scanning the
  candidates. The preemptor never gives a victim (it is within its entitlement), so who asks
  changes only whether the one-victim pass runs (``preemption.Search``).
"""

from __future__ import annotations

from polyculture.scheduling.capacity import FreeIndex
from polyculture.scheduling.preemption import Search

#: (shape, GPUs per worker, strict rule?)
Key = tuple[int, int, bool]
Moves = list[tuple[int, int]]
#: (decisions made so far, fewest workers that failed, the index moves of the greedy pass and
#: of the one-victim pass (None if it did not run), the communities it could not take from)
_Failure = tuple[tuple[int, int], int, Moves, Moves | None, set[int]]


class FailedSearches:
    """The failed searches of one cycle on one free-block index."""

    __slots__ = ("_failures", "_memo", "index")

    def __init__(self, index: FreeIndex) -> None:
        self.index = index
        #: key -> (index version, fewest workers that failed)
        self._memo: dict[Key, tuple[int, int]] = {}
        self._failures: dict[Key, _Failure] = {}

    def known(self, key: Key, workers: int) -> bool:
        """Whether a search on ``key`` failed for at most ``workers`` at this index version."""
        memo = self._memo.get(key)
        return memo is not None and memo[0] == self.index.version and memo[1] <= workers

    def record(
        self,
        key: Key,
        workers: int,
        *,
        preemptor: int,
        token: tuple[int, int],
        journal: Moves,
        report: Search,
        replayable: bool,
    ) -> None:
        """Remember a failed search (``token``: the decisions made before it; ``journal``:
        the index moves it made; ``replayable``: whether they depend on contents only)."""
        self._memo[key] = (self.index.version, workers)
        if replayable:
            greedy = journal[: report.greedy_moves]
            single = journal[report.greedy_moves :] if report.skipped - {preemptor} else None
            self._failures[key] = (token, workers, greedy, single, report.skipped)

    def replay(self, key: Key, workers: int, preemptor: int, token: tuple[int, int]) -> bool:
        """Whether a replayable search on ``key`` failed since the last decision (``token``)
        for at most ``workers``: then the search for ``preemptor`` fails too, and its moves
        are made again as it would make them."""
        failed = self._failures.get(key)
        if failed is None or failed[0] != token:
            return False
        _, fewest, greedy, single, skipped = failed
        if fewest > workers:
            return False
        starved = bool(skipped - {preemptor})
        if starved and single is None:
            return False  # the search that failed did not run its one-victim pass
        self.index.replay(greedy)
        if starved and single is not None:
            self.index.replay(single)
        self._memo[key] = (self.index.version, workers)
        return True
