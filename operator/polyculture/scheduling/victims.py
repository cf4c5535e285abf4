"""Victims: the running workloads of one cycle as preemption and consolidation see them.

Each view is built on first use, since most cycles never preempt or move anything (in the
replay of the Philly trace at 400 GPUs, about four core calls in five): the candidate
victims per shape in victim order, each workload's work at risk set first
(``preemption.candidates_by_shape``); the same per node and per community, for the
node-by-node search (``preemption.victims_per_node``); and the movable workloads per node
(``consolidation.movable_by_node``). Building them late decides nothing differently: they
depend on the snapshot, on ``now`` and on the communities above their nominal share as the
cycle started, never on what the cycle decided since, and each is built before anything
reads the victim order (the movable view builds the candidates first).
"""

from __future__ import annotations

import functools

from polyculture.scheduling.consolidation import movable_by_node
from polyculture.scheduling.preemption import (
    Live,
    candidates_by_shape,
    victims_per_node,
    work_at_risk,
)
from polyculture.scheduling.snapshot import Policy


class Victims:
    """One cycle's views of its running workloads ``lives`` (see the module doc).
    ``above`` says, per community id, whether it held more than its nominal share as the
    cycle started."""

    def __init__(
        self,
        lives: list[Live],
        shape_of: list[int],
        shapes: int,
        communities: int,
        policy: Policy,
        now: float,
        above: list[bool],
    ) -> None:
        self.lives = lives
        self.shape_of = shape_of
        self.shapes = shapes
        self.communities = communities
        self.policy = policy
        self.now = now
        self.above = above

    @functools.cached_property
    def candidates(self) -> list[list[Live]]:
        """Candidate victims per shape, in victim order."""
        now = self.now
        for live in self.lives:
            live.at_risk = work_at_risk(live.running, now)
        return candidates_by_shape(self.lives, self.shape_of, self.shapes, self.policy, now)

    @functools.cached_property
    def per_node(self) -> tuple[list[list[Live]], int, list[list[Live]]]:
        """The candidates per node id, the lowest priority among them, and the candidates per
        community id (each listed once)."""
        on_node, lowest = victims_per_node(self.candidates, len(self.shape_of))
        by_community: list[list[Live]] = [[] for _ in range(self.communities)]
        seen: set[int] = set()
        for cands in self.candidates:
            for live in cands:
                if id(live) not in seen:
                    seen.add(id(live))
                    by_community[live.community].append(live)
        return on_node, lowest, by_community

    @functools.cached_property
    def movable(self) -> tuple[list[list[Live]], list[int]]:
        """Movable workloads per node and their count per shape: only of communities above
        their nominal share (``DESIGN.md``, "Consolidation"), and only restarted ones if the
        policy says so."""
        again, above = self.policy.move_restarted_only, self.above
        lives = [
            live
            for live in self.lives
            if live.community >= 0
            and above[live.community]
            and (live.running.restarts or not again)
        ]
        _ = self.candidates  # sets the victim order they are moved in
        return movable_by_node(lives, self.shape_of, self.policy, self.now)
