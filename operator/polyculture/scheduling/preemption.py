"""Preemption for fair share: free GPUs for a community below its entitlement.

Design (see ``DESIGN.md``): only for a preemptor that stays within its entitlement once
admitted (the caller checks). A candidate victim is a running workload of the snapshot on the
shape being tried that ran at least the minimum runtime (filtered by the caller); it may be
taken only while its community is above its entitlement and keeps at least ``keep`` without
it — its entitlement under the strict rule, its guarantee when reclaiming borrowed GPUs —
and a serving workload only while its community stays at or above its guarantee. Candidates
are taken in order (lowest priority, fewest past restarts, least work since its last
checkpoint, most recently started) until the gang fits; then
victims that are not needed are put back, newest taken first. If the greedy pass failed
because a community had nothing left to give, each candidate is tried alone. The preemptor
never ends above its entitlement, so it is no victim for anybody unless it borrows later:
no cycles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from polyculture.scheduling.capacity import FreeIndex
from polyculture.scheduling.entitlement import EPSILON
from polyculture.scheduling.snapshot import Policy, Running


class Live:
    """A running workload of the snapshot, as the cycle tracks it (mutable, numbers only)."""

    __slots__ = (
        "at_risk",
        "community",
        "gpus",
        "movable",
        "nodes",
        "preempted",
        "running",
        "serving",
        "units",
    )

    def __init__(
        self,
        running: Running,
        community: int,
        nodes: list[int],
        gpus: int,
        units: float,
        at_risk: float = 0.0,
    ) -> None:
        self.running = running
        #: community id, -1 for a community the pool does not know (never a victim)
        self.community = community
        self.nodes = nodes
        #: GPUs per worker
        self.gpus = gpus
        #: normalised units it holds
        self.units = units
        self.serving = running.workload.serving
        #: preempted or moved in this cycle (no longer a victim or movable)
        self.preempted = False
        #: may be moved by consolidation (set by the cycle, see ``consolidation``)
        self.movable = False
        #: seconds of work it would redo if stopped now (see :func:`work_at_risk`)
        self.at_risk = at_risk


def work_at_risk(running: Running, now: float) -> float:
    """Seconds of work ``running`` loses if stopped at ``now``: since its latest checkpoint.

    The latest checkpoint is ``last_checkpoint`` (else ``started``), moved on by whole
    ``checkpoint_interval_s`` when the workload saves periodically.
    """
    since = running.started if running.last_checkpoint is None else running.last_checkpoint
    interval = running.checkpoint_interval_s
    if interval > 0 and now > since:
        since += (now - since) // interval * interval
    return max(0.0, now - since)


#: see :func:`victim_order`
VictimOrder = tuple[int, int, float, float, str]


def victim_order(live: Live, concentrate: bool = False) -> VictimOrder:
    """Lowest priority first, then fewest past restarts (most when ``concentrate``), then
    least work at risk, then most recently started, then key (without restarts or
    checkpoints: most recently started)."""
    r = live.running
    restarts = -r.restarts if concentrate else r.restarts
    return (r.workload.priority, restarts, live.at_risk, -r.started, r.workload.key)


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may give a victim (per community id): what each holds now (``alloc``, updated in
    place as victims are taken), its entitlement, what it must keep (its entitlement under
    the strict rule, its guarantee floor when reclaiming) and its guarantee."""

    alloc: list[float]
    entitled: list[float]
    keep: list[float]
    guaranteed: list[float]


def givable(live: Live, taken: float, rule: Rule) -> bool:
    """Whether ``live`` may be a victim once ``taken`` units of its community were chosen.

    Its community must be above its entitlement before giving it and keep at least
    ``keep`` (its entitlement under the strict rule, its guarantee floor when reclaiming)
    after; a serving workload also leaves its community at or above its guarantee.
    """
    c = live.community
    held = rule.alloc[c] - taken
    left = held - live.units
    if held <= rule.entitled[c] + EPSILON or left < rule.keep[c] - EPSILON:
        return False
    return not (live.serving and left < rule.guaranteed[c] - EPSILON)


def release(index: FreeIndex, live: Live, alloc: list[float]) -> None:
    """Free ``live``'s GPUs in ``index`` and take its units off its community."""
    for node in live.nodes:
        index.give(node, live.gpus)
    alloc[live.community] -= live.units


def restore(index: FreeIndex, live: Live, alloc: list[float]) -> None:
    """Undo :func:`release`."""
    for node in live.nodes:
        index.take(node, live.gpus)
    alloc[live.community] += live.units


def put_back(
    index: FreeIndex, taken: list[Live], alloc: list[float], fits: Callable[[], bool]
) -> list[Live]:
    """Give back every victim of ``taken`` not needed for ``fits`` to hold, newest taken
    first; the victims still needed, in the order taken (their GPUs stay freed)."""
    needed: list[Live] = []
    for live in reversed(taken):
        restore(index, live, alloc)
        if fits():
            continue
        release(index, live, alloc)
        needed.append(live)
    needed.reverse()
    return needed


@dataclass(slots=True)
class Search:
    """What a :func:`find_victims` that failed saw: the communities whose candidates it could
    not take (the preemptor's own included), and how many index moves its greedy pass made
    (its victims freed and given back); the moves after those are its one-victim pass, which
    runs only when ``skipped`` holds a community other than the preemptor."""

    skipped: set[int] = field(default_factory=set)
    greedy_moves: int = 0


def find_victims(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    *,
    preemptor: int,
    candidates: list[Live],
    rule: Rule,
    report: Search | None = None,
) -> list[Live] | None:
    """Victims whose removal lets the gang fit on ``shape``, or None.

    On success the victims' GPUs are already freed in ``index`` and their units taken off
    ``alloc`` (the caller marks them preempted); on failure both are as they were.
    ``candidates`` are in :func:`victim_order` and already filtered by minimum runtime.
    ``report``, if given, is filled in as the search goes (see :class:`Search`).
    """
    alloc, entitled, keep, guaranteed = rule.alloc, rule.entitled, rule.keep, rule.guaranteed
    taken: list[Live] = []
    starved = False  # a candidate was skipped because its community had no surplus left
    fits = False
    # the pass counts the slots its victims would free (``grown``: a node's free GPUs once
    # those taken so far are freed) and makes the index moves only once it knows the outcome
    g = gpus_per_worker
    have = index.slots(shape, g)
    grown: dict[int, int] = {}
    for live in candidates:
        v = live.community
        if live.preempted or v == preemptor or v < 0:
            if report is not None and v == preemptor and not live.preempted:
                report.skipped.add(v)
            continue
        # givable, inlined: this loop is the hot part of preemption
        left = alloc[v] - live.units
        if (
            alloc[v] <= entitled[v] + EPSILON
            or left < keep[v] - EPSILON
            or (live.serving and left < guaranteed[v] - EPSILON)
        ):
            starved = True
            if report is not None:
                report.skipped.add(v)
            continue
        alloc[v] = left  # as release does
        taken.append(live)
        have += _more_slots(index, shape, g, live, grown)
        if have >= workers:
            fits = True
            break
    if fits:
        for live in taken:
            for node in live.nodes:
                index.give(node, live.gpus)
        return put_back(index, taken, alloc, lambda: index.slots(shape, gpus_per_worker) >= workers)
    index.round_trip([(node, live.gpus) for live in taken for node in live.nodes])
    for live in reversed(taken):
        alloc[live.community] += live.units  # as restore does
    if report is not None:
        report.greedy_moves = 2 * sum(len(live.nodes) for live in taken)
    if not starved:
        return None
    return _one_victim(index, shape, workers, gpus_per_worker, preemptor, candidates, rule)


def _more_slots(index: FreeIndex, shape: int, g: int, live: Live, grown: dict[int, int]) -> int:
    """How many more workers of ``g`` GPUs fit on ``shape`` once ``live`` is freed too;
    ``grown`` (a node's free GPUs with the victims counted so far) is updated."""
    more, free, shape_of = 0, index.free, index.shape_of
    for node in live.nodes:
        if shape_of[node] == shape:
            f = grown.get(node, free[node])
            grown[node] = f + live.gpus
            more += (f + live.gpus) // g - f // g
    return more


def _one_victim(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    preemptor: int,
    candidates: list[Live],
    rule: Rule,
) -> list[Live] | None:
    """The first candidate that lets the gang fit alone (after :func:`find_victims`' greedy
    pass failed because a community had nothing left to give), or None.

    A candidate on one node that does not let the gang fit is not freed and put back: what it
    would free is counted (``base`` slots, less the node's, plus the node's once freed) and
    ``FreeIndex.bounce`` makes the same index moves at once."""
    g, alloc = gpus_per_worker, rule.alloc
    base = index.slots(shape, g)
    free, shape_of = index.free, index.shape_of
    for live in candidates:
        if live.preempted or live.community == preemptor or live.community < 0:
            continue
        if not givable(live, 0.0, rule):
            continue
        if len(live.nodes) == 1:
            node = live.nodes[0]
            f = free[node]
            alone = base - f // g + (f + live.gpus) // g if shape_of[node] == shape else base
            if alone < workers:
                index.bounce(node, live.gpus)
                # as release, then restore, would leave it
                alloc[live.community] = alloc[live.community] - live.units + live.units
                continue
        release(index, live, alloc)
        if index.slots(shape, g) >= workers:
            return [live]
        restore(index, live, alloc)
    return None


def _clear_node(
    node: int, lives: list[Live], lacking: int, rule: Rule, spare_new: bool = False
) -> list[Live] | None:
    """Victims among ``lives`` (on ``node``) that free ``lacking`` GPUs there, lowest
    priority and fewest units first, each givable counting those already chosen; or None.
    With ``spare_new``, the set restarts the fewest workloads never restarted before, then the
    fewest workloads (:func:`_fewest_new`)."""
    if sum(live.gpus * live.nodes.count(node) for live in lives) < lacking:
        return None
    if spare_new:
        return _fewest_new(node, lives, lacking, rule)
    lives.sort(key=lambda live: (live.running.workload.priority, live.units))
    return _take(node, lives, lacking, rule)


def _take(node: int, ranked: Sequence[Live], lacking: int, rule: Rule) -> list[Live] | None:
    """The first of ``ranked`` that free ``lacking`` GPUs on ``node``, each givable counting
    those already chosen; or None."""
    chosen: list[Live] = []
    spent: dict[int, float] = {}
    freed = 0
    for live in ranked:
        v = live.community
        if not givable(live, spent.get(v, 0.0), rule):
            continue
        spent[v] = spent.get(v, 0.0) + live.units
        chosen.append(live)
        freed += live.gpus * live.nodes.count(node)
        if freed >= lacking:
            return chosen
    return None


def new_victims(victims: Sequence[Live]) -> int:
    """How many of ``victims`` were never restarted before."""
    return sum(1 for live in victims if not live.running.restarts)


def _fewest_new(node: int, lives: list[Live], lacking: int, rule: Rule) -> list[Live] | None:
    """Victims on ``node`` freeing ``lacking`` GPUs there: of the lowest priorities, the one
    givable workload that frees enough alone, restarted before and then smallest; else workloads
    restarted before first, then largest first, each givable counting those chosen, less those
    the others turn out to free enough without (newest chosen first)."""
    lives.sort(key=lambda live: live.running.workload.priority)
    alone = [
        live
        for live in lives
        if live.gpus * live.nodes.count(node) >= lacking and givable(live, 0.0, rule)
    ]
    ranked = sorted(
        lives,
        key=lambda live: (
            live.running.workload.priority,
            not live.running.restarts,
            -live.gpus * live.nodes.count(node),
            victim_order(live, True),
        ),
    )
    chosen = _take(node, ranked, lacking, rule) or []
    freed = sum(live.gpus * live.nodes.count(node) for live in chosen)
    for live in reversed(chosen[:-1]):
        if freed - live.gpus * live.nodes.count(node) >= lacking:
            chosen.remove(live)
            freed -= live.gpus * live.nodes.count(node)
    if alone:
        lowest = alone[0].running.workload.priority
        single = min(
            (live for live in alone if live.running.workload.priority == lowest),
            key=lambda live: (not live.running.restarts, live.gpus, victim_order(live, True)),
        )
        if not chosen or _set_cost([single]) <= _set_cost(chosen):
            return [single]
    return chosen or None


def _set_cost(victims: Sequence[Live]) -> tuple[int, int, int]:
    """Highest priority, workloads never restarted before, workloads (``spare_new``)."""
    return (
        max(live.running.workload.priority for live in victims),
        new_victims(victims),
        len(victims),
    )


def _nodes_to_cost(
    index: FreeIndex,
    shape: int,
    g: int,
    rule: Rule,
    by_community: Sequence[Sequence[Live]] | None,
) -> list[int]:
    """The nodes of ``shape`` short of a block of ``g`` GPUs, most free GPUs first, then in
    bucket order. With ``by_community``, only those where the candidates of communities
    above their entitlement (the only ones that may give a victim) hold enough GPUs to
    complete the block: the other nodes cannot be cleared."""
    count, buckets = index.count[shape], index.buckets[shape]
    levels = range(min(g, len(count)) - 1, -1, -1)
    if by_community is None:
        return [node for f in levels if count[f] for node in buckets[f]]
    alloc, entitled = rule.alloc, rule.entitled
    shape_of, free, pos = index.shape_of, index.free, index.pos
    held: dict[int, int] = {}
    for v, lives in enumerate(by_community):
        if not lives or alloc[v] <= entitled[v] + EPSILON:
            continue
        for live in lives:
            if live.preempted:
                continue
            for node in live.nodes:
                if shape_of[node] == shape and pos[node] >= 0 and free[node] < g:
                    held[node] = held.get(node, 0) + live.gpus
    nodes = [node for node, gpus in held.items() if free[node] + gpus >= g]
    nodes.sort(key=lambda node: (-free[node], pos[node]))
    return nodes


def find_block_victims(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    *,
    preemptor: int,
    on_node: list[list[Live]],
    rule: Rule,
    lowest_priority: int = 0,
    by_community: Sequence[Sequence[Live]] | None = None,
    spare_new: bool = False,
) -> list[Live] | None:
    """Victims that clear whole blocks for the gang on ``shape``, node by node, or None.

    Defragmenting preemption: while the gang does not fit, every node of the shape whose
    free GPUs are short of a block is costed — the victims on it (``on_node``, candidates
    only) needed to complete the block, taken lowest priority and fewest GPUs first, each
    givable as in :func:`find_victims` counting the victims already chosen — and the
    cheapest node is cleared: lowest highest-priority among its victims, then fewest GPUs
    preempted, then most free GPUs already, then victim order (nodes with fewer free GPUs
    are not costed once they cannot beat the best: a block short of ``k`` GPUs costs ``k``).
    ``lowest_priority`` is the lowest priority of any candidate (for that bound). Victims not
    needed in the end are put back (newest chosen first). Same contract as
    :func:`find_victims`. ``by_community`` (the candidates of each community id) lets the
    search cost only the nodes where victims of communities above their entitlement could
    complete a block (:func:`_nodes_to_cost`), in the same order. With ``spare_new`` a node
    costs, after the priority, the workloads never restarted before that clearing it
    restarts, then the workloads it restarts (``Policy.spare_new``), and is cleared as
    :func:`_fewest_new` chooses.
    """
    g = gpus_per_worker
    alloc = rule.alloc
    taken: list[Live] = []
    while index.slots(shape, g) < workers:
        best: tuple[tuple[int, int, int, int, int, VictimOrder], list[Live]] | None = None
        level = -1
        for node in _nodes_to_cost(index, shape, g, rule, by_community):
            lacking = g - index.free[node]
            if lacking != level:
                level = lacking
                # nodes with fewer free GPUs cost at least ``lacking`` units: no better than best
                bound = (lowest_priority, 0, 1 if spare_new else 0, lacking)
                if best is not None and best[0][:4] < bound:
                    break
            lives = [
                live for live in on_node[node] if not live.preempted and live.community != preemptor
            ]
            chosen = _clear_node(node, lives, lacking, rule, spare_new)
            if chosen is None:
                continue
            cost = (
                max(live.running.workload.priority for live in chosen),
                new_victims(chosen) if spare_new else 0,
                len(chosen) if spare_new else 0,
                sum(live.gpus * len(live.nodes) for live in chosen),
                lacking,
                min(victim_order(live) for live in chosen),
            )
            if best is None or cost < best[0]:
                best = (cost, chosen)
        if best is None:
            for live in reversed(taken):
                restore(index, live, alloc)
                live.preempted = False
            return None
        for live in best[1]:
            release(index, live, alloc)
            # marked while searching so that no node counts it twice; the caller marks again
            live.preempted = True
            taken.append(live)
    for live in taken:
        live.preempted = False
    return put_back(index, taken, alloc, lambda: index.slots(shape, g) >= workers)


def fewer_new(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    greedy: list[Live],
    *,
    preemptor: int,
    on_node: list[list[Live]],
    rule: Rule,
    lowest_priority: int = 0,
    by_community: Sequence[Sequence[Live]] | None = None,
) -> list[Live]:
    """``greedy`` (victims :func:`find_victims` found, their GPUs freed), or the victims of
    :func:`find_block_victims` under ``spare_new`` if those restart fewer workloads never
    restarted before, then fewer workloads, at no higher priority (``Policy.spare_new``).
    Only for a gang of several GPUs per worker with a victim never restarted before: one GPU
    frees wherever a victim runs, and the greedy pass already takes those restarted before
    first. Same contract as :func:`find_victims`."""
    if gpus_per_worker <= 1 or not new_victims(greedy):
        return greedy
    for live in reversed(greedy):
        restore(index, live, rule.alloc)
    other = find_block_victims(
        index,
        shape,
        workers,
        gpus_per_worker,
        preemptor=preemptor,
        on_node=on_node,
        rule=rule,
        lowest_priority=lowest_priority,
        by_community=by_community,
        spare_new=True,
    )
    if other is not None and _set_cost(other) < _set_cost(greedy):
        return other
    if other is not None:
        for live in reversed(other):
            restore(index, live, rule.alloc)
    for live in greedy:
        release(index, live, rule.alloc)
    return greedy


def free_in_total(
    index: FreeIndex,
    shape: int,
    need: int,
    *,
    preemptor: int,
    candidates: list[Live],
    rule: Rule,
) -> list[Live]:
    """Preempt givable victims (strict rule, victim order) until ``shape`` has ``need`` GPUs
    free in total, wherever they are; the victims taken, marked preempted (for consolidation
    to gather the free GPUs into blocks: see :func:`keep_used`)."""
    taken: list[Live] = []
    for live in candidates:
        if index.free_total[shape] >= need:
            break
        v = live.community
        if live.preempted or v == preemptor or v < 0:
            continue
        if not givable(live, 0.0, rule):
            continue
        release(index, live, rule.alloc)
        live.preempted = True  # neither a victim twice nor moved
        taken.append(live)
    return taken


def keep_used(index: FreeIndex, taken: list[Live], alloc: list[float]) -> list[Live]:
    """Of ``taken``, give back (newest first) each victim whose GPUs all stayed free; the
    victims whose GPUs were used, in the order taken."""
    needed: list[Live] = []
    for live in reversed(taken):
        held = Counter(live.nodes)
        if all(index.free[i] >= live.gpus * k for i, k in held.items()):
            restore(index, live, alloc)
            live.preempted = False
        else:
            needed.append(live)
    needed.reverse()
    return needed


def undo(index: FreeIndex, taken: list[Live], alloc: list[float]) -> None:
    """Give back every victim of ``taken`` (newest first) and unmark it."""
    for live in reversed(taken):
        restore(index, live, alloc)
        live.preempted = False


def victims_per_node(candidates: list[list[Live]], nodes: int) -> tuple[list[list[Live]], int]:
    """Candidate victims (of any shape) per node id, each listed once per node it uses; and
    the lowest priority among them (0 if none lower)."""
    on_node: list[list[Live]] = [[] for _ in range(nodes)]
    seen: set[int] = set()
    lowest = 0
    for cands in candidates:
        for live in cands:
            if id(live) in seen:
                continue
            seen.add(id(live))
            for i in sorted(set(live.nodes)):
                on_node[i].append(live)
            lowest = min(lowest, live.running.workload.priority)
    return on_node, lowest


def protected(running: Running, policy: Policy, now: float) -> bool:
    """Whether ``running`` is inside its minimum runtime, which grows with its restarts
    (``min_runtime_s × restart_backoff ** restarts``), or was restarted ``restart_limit``
    times already (then until it ends)."""
    if policy.restart_limit and running.restarts >= policy.restart_limit:
        return True
    runtime = policy.min_runtime_s * policy.restart_backoff**running.restarts
    return now - running.started < runtime


def candidates_by_shape(
    lives: list[Live], shape_of: list[int], shapes: int, policy: Policy, now: float
) -> list[list[Live]]:
    """Victim candidates per shape, in :func:`victim_order`: of known communities, past
    their minimum runtime; none when preemption is off. With a restart back-off or a restart
    limit, which bound how often one workload can be restarted, workloads restarted before go
    first (fewest workloads restarted); without either, the fewest restarted (``DESIGN.md``)."""
    candidates: list[list[Live]] = [[] for _ in range(shapes)]
    if not policy.preemption:
        return candidates
    for live in lives:
        if live.community >= 0 and not protected(live.running, policy, now):
            nodes = live.nodes
            if len(nodes) == 1:  # most workloads: one worker
                candidates[shape_of[nodes[0]]].append(live)
                continue
            for s in sorted({shape_of[i] for i in nodes}):
                candidates[s].append(live)
    concentrate = policy.restart_backoff > 1 or policy.restart_limit > 0
    for cands in candidates:
        cands.sort(key=lambda live: victim_order(live, concentrate))
    return candidates
