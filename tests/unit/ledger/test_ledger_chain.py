"""The ledger's chain and its offline verifier.

Covers: canonical form and hash of an entry; appending from status counters (deltas, restart
with the stored head appends each increase once, counters missing or restarted); chunking by
day and size; verify passes an untouched log and names the first bad entry on a flipped byte,
a deleted entry, two swapped entries, a cut-off end (with the published head); property tests:
any sequence of counter readings gives a log that verifies and whose totals equal the last
counters, and any single-byte change or reordering is caught.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyculture.ledger import GENESIS, Entry, Head, canonical_json, due, next_entry, verify_lines
from polyculture.ledger.appender import ModelUsage
from polyculture.ledger.chunks import MAX_CHUNK_ENTRIES, Chunk, parse_chunk_name, place
from polyculture.ledger.entries import LedgerFormatError

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POOL = "coop"


def run(readings: list[tuple[dict[str, int], list[ModelUsage]]], period_s: int = 300) -> list[str]:
    """Append one entry per reading, ``period_s`` apart; the export's lines."""
    head = Head()
    lines = []
    for i, (given_now, used_now) in enumerate(readings):
        entry, head = next_entry(
            head,
            pool=POOL,
            given=given_now,
            used=used_now,
            now=T0 + timedelta(seconds=period_s * (i + 1)),
            start=T0,
        )
        lines.append(entry.line())
    return lines


def usage(model: str, ms: int, community: str = "lingua") -> ModelUsage:
    return ModelUsage(model=model, community=community, gpu_ms=ms)


READINGS = [
    ({"ada": 1000, "bo": 0}, [usage("lingua/m1", 0)]),
    ({"ada": 5000, "bo": 2000}, [usage("lingua/m1", 3000), usage("medic/x", 500, "medic")]),
    ({"ada": 9000, "bo": 2000}, [usage("lingua/m1", 3000), usage("medic/x", 1500, "medic")]),
    ({"ada": 9500, "bo": 7000}, [usage("lingua/m1", 8000), usage("medic/x", 1500, "medic")]),
]


def test_entry_is_canonical_json_with_its_hash() -> None:
    entry = Entry(
        pool=POOL,
        seq=0,
        start="2026-11-29T12:00:00.000Z",
        end="2026-11-29T12:05:00.000Z",
        prev=GENESIS,
        given={"ada": 5, "bo": 0},
        used={"c": {"c/m": 0}, "d": {"d/m": 7}},
    )
    obj = json.loads(entry.line())
    assert obj["given"] == {"ada": 5} and obj["used"] == {"d": {"d/m": 7}}  # zeros left out
    assert entry.line() == canonical_json(obj)
    assert " " not in entry.line()
    assert obj["hash"] == entry.hash and len(entry.hash) == 64
    assert Entry.from_json(obj) == Entry(
        pool=POOL,
        seq=0,
        start=entry.start,
        end=entry.end,
        prev=GENESIS,
        given={"ada": 5},
        used={"d": {"d/m": 7}},
    )


def test_from_json_names_the_bad_field() -> None:
    good = json.loads(run(READINGS[:1])[0])
    with pytest.raises(LedgerFormatError, match=r"given\.ada"):
        Entry.from_json({**good, "given": {"ada": -1}})
    with pytest.raises(LedgerFormatError, match="seq"):
        Entry.from_json({**good, "seq": "1"})
    with pytest.raises(LedgerFormatError, match="unknown"):
        Entry.from_json({**good, "extra": 1})


def test_entries_record_increases_and_totals_equal_the_last_counters() -> None:
    lines = run(READINGS)
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == [0, 1, 2, 3]
    assert entries[0]["from"] == "2026-11-29T12:00:00.000Z"
    assert entries[1]["given"] == {"ada": 4000, "bo": 2000}
    assert entries[1]["used"] == {"lingua": {"lingua/m1": 3000}, "medic": {"medic/x": 500}}
    assert entries[2]["used"] == {"medic": {"medic/x": 1000}}
    result = verify_lines(lines)
    assert result.ok, result.problem
    assert result.totals.given == {"ada": 9500, "bo": 7000}
    assert result.totals.used_by_model() == {"lingua/m1": 8000, "medic/x": 1500}
    assert result.totals.used_by_community() == {"lingua": 8000, "medic": 1500}
    assert result.head == entries[-1]["hash"]


def test_restart_from_the_stored_head_counts_each_increase_once() -> None:
    head = Head()
    lines = []
    for i, (given_now, used_now) in enumerate(READINGS):
        # an operator restart between every two entries: the head is read back from JSON
        head = Head.from_json(json.loads(json.dumps(head.to_json())))
        entry, head = next_entry(
            head,
            pool=POOL,
            given=given_now,
            used=used_now,
            now=T0 + timedelta(minutes=5 * (i + 1)),
            start=T0,
        )
        lines.append(entry.line())
    assert lines == run(READINGS)


def test_a_missing_model_adds_nothing_and_is_not_counted_twice_when_back() -> None:
    lines = run(
        [
            ({}, [usage("lingua/m1", 4000)]),
            ({}, []),  # not indexed yet after a restart
            ({}, [usage("lingua/m1", 6000)]),
        ]
    )
    result = verify_lines(lines)
    assert result.totals.used_by_model() == {"lingua/m1": 6000}


def test_a_counter_restarted_from_zero_counts_from_zero() -> None:
    lines = run([({}, [usage("lingua/m1", 4000)]), ({}, [usage("lingua/m1", 1000)])])
    assert verify_lines(lines).totals.used_by_model() == {"lingua/m1": 5000}


def test_due_once_per_period() -> None:
    head = Head()
    assert due(head, T0, 300)
    _, head = next_entry(head, pool=POOL, given={}, used=[], now=T0)
    assert not due(head, T0 + timedelta(seconds=299), 300)
    assert due(head, T0 + timedelta(seconds=300), 300)


def test_head_rebuilt_from_entries_matches_the_stored_one() -> None:
    lines = run(READINGS)
    stored = Head()
    for given_now, used_now in READINGS:
        _, stored = next_entry(
            stored,
            pool=POOL,
            given=given_now,
            used=used_now,
            now=T0 + timedelta(minutes=5 * (stored.seq + 2)),
            start=T0,
        )
    rebuilt = Head.from_entries(Entry.from_json(json.loads(line)) for line in lines)
    assert rebuilt.to_json() == stored.to_json()


# --- verify names the first bad entry -------------------------------------------------------


def test_verify_passes_an_untouched_log_and_checks_the_head() -> None:
    lines = run(READINGS)
    head = json.loads(lines[-1])["hash"]
    assert verify_lines(lines, head=head).ok
    assert verify_lines([line + "\n" for line in lines] + ["\n"], head=head).ok


@pytest.mark.parametrize("line", [1, 2, 3, 4])
def test_verify_names_an_entry_with_a_flipped_byte(line: int) -> None:
    lines = run(READINGS)
    text = lines[line - 1]
    at = text.index('"to":"') + 8  # a digit of the year: still valid JSON, different content
    lines[line - 1] = text[:at] + ("7" if text[at] != "7" else "8") + text[at + 1 :]
    result = verify_lines(lines)
    assert not result.ok
    assert result.problem is not None and result.problem.line == line
    assert f"seq {line - 1}" in str(result.problem)
    assert "does not match its hash" in str(result.problem)
    assert result.entries == line - 1


def test_verify_names_the_entry_after_a_deleted_one() -> None:
    lines = run(READINGS)
    del lines[1]
    result = verify_lines(lines)
    assert result.problem is not None
    assert (result.problem.line, result.problem.seq) == (2, 2)
    assert "seq 2 where 1 was expected (an entry is missing)" in str(result.problem)


def test_verify_names_swapped_entries() -> None:
    lines = run(READINGS)
    lines[1], lines[2] = lines[2], lines[1]
    result = verify_lines(lines)
    assert result.problem is not None
    assert (result.problem.line, result.problem.seq) == (2, 2)


def test_verify_with_the_head_catches_a_cut_off_end() -> None:
    lines = run(READINGS)
    head = json.loads(lines[-1])["hash"]
    result = verify_lines(lines[:-1], head=head)
    assert result.problem is not None and "published head" in str(result.problem)
    assert verify_lines(lines[:-1]).ok  # without the head, a shorter log is still a log


def test_verify_catches_a_recomputed_hash_through_the_next_link() -> None:
    lines = run(READINGS)
    obj = json.loads(lines[1])
    obj["given"]["ada"] += 1000  # forged, and its own hash recomputed to match
    obj["hash"] = Entry.from_json(obj).hash
    lines[1] = canonical_json(obj)
    result = verify_lines(lines)
    assert result.problem is not None and (result.problem.line, result.problem.seq) == (3, 2)
    assert "prev" in str(result.problem)


def test_verify_rejects_non_canonical_and_non_json() -> None:
    lines = run(READINGS)
    lines[0] = json.dumps(json.loads(lines[0]), indent=1).replace("\n", "")
    assert "canonical" in str(verify_lines(lines).problem)
    assert "not JSON" in str(verify_lines(["{", *run(READINGS)]).problem)


# --- chunks ---------------------------------------------------------------------------------


def test_chunks_split_by_day_and_by_count() -> None:
    head = Head()
    chunk: Chunk | None = None
    names = []
    now = T0
    for _ in range(MAX_CHUNK_ENTRIES + 10):
        now += timedelta(seconds=1)
        entry, head = next_entry(head, pool=POOL, given={"ada": 1}, used=[], now=now)
        chunk = place(chunk, entry)
        names.append(chunk.name)
    assert names[0] == "polyculture-ledger-coop-00000000"
    assert names[MAX_CHUNK_ENTRIES] == f"polyculture-ledger-coop-{MAX_CHUNK_ENTRIES:08d}"
    assert chunk is not None and len(chunk.lines) == 10
    entry, head = next_entry(head, pool=POOL, given={}, used=[], now=now + timedelta(days=1))
    assert place(chunk, entry).first_seq == entry.seq  # a new day, a new chunk
    assert parse_chunk_name(names[0]) == (POOL, 0)
    assert parse_chunk_name("kube-root-ca.crt") is None


# --- properties -----------------------------------------------------------------------------

owners = st.sampled_from(["ada", "bo", "cy"])
models = st.sampled_from([("lingua", "lingua/a"), ("lingua", "lingua/b"), ("medic", "medic/c")])
steps = st.lists(
    st.tuples(
        st.dictionaries(owners, st.integers(0, 10**6)),
        st.dictionaries(models, st.integers(0, 10**6)),
    ),
    min_size=1,
    max_size=8,
)


def monotone(
    raw: list[tuple[dict[str, int], dict[tuple[str, str], int]]],
) -> list[tuple[dict[str, int], list[ModelUsage]]]:
    """Counters only grow (as the statuses' do): each reading adds to the last one seen."""
    given_now: dict[str, int] = {}
    used_now: dict[tuple[str, str], int] = {}
    out = []
    for g, u in raw:
        for k, v in g.items():
            given_now[k] = given_now.get(k, 0) + v
        for k, v in u.items():
            used_now[k] = used_now.get(k, 0) + v
        out.append(
            (
                {k: given_now[k] for k in g},
                [ModelUsage(model=m, community=c, gpu_ms=used_now[(c, m)]) for c, m in u],
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(steps)
def test_any_log_verifies_and_totals_equal_the_last_counters(
    raw: list[tuple[dict[str, int], dict[tuple[str, str], int]]],
) -> None:
    readings = monotone(raw)
    lines = run(readings)
    result = verify_lines(lines, head=json.loads(lines[-1])["hash"])
    assert result.ok, result.problem
    last_given: dict[str, int] = {}
    last_used: dict[str, int] = {}
    for g, u in readings:
        last_given.update(g)
        last_used.update({x.model: x.gpu_ms for x in u})
    assert result.totals.given == {k: v for k, v in last_given.items() if v}
    assert result.totals.used_by_model() == {k: v for k, v in last_used.items() if v}


@settings(max_examples=80, deadline=None)
@given(steps, st.data())
def test_any_changed_byte_is_caught_at_its_entry(
    raw: list[tuple[dict[str, int], dict[tuple[str, str], int]]], data: st.DataObject
) -> None:
    lines = run(monotone(raw))
    head = json.loads(lines[-1])["hash"]
    index = data.draw(st.integers(0, len(lines) - 1))
    at = data.draw(st.integers(0, len(lines[index]) - 1))
    new = data.draw(st.characters(min_codepoint=32, max_codepoint=126))
    if new == lines[index][at]:
        return
    lines[index] = lines[index][:at] + new + lines[index][at + 1 :]
    result = verify_lines(lines, head=head)
    assert not result.ok
    assert result.problem is not None and result.problem.line == index + 1


@settings(max_examples=60, deadline=None)
@given(steps.filter(lambda s: len(s) >= 2), st.data())
def test_any_reordering_is_caught(
    raw: list[tuple[dict[str, int], dict[tuple[str, str], int]]], data: st.DataObject
) -> None:
    lines = run(monotone(raw))
    order = data.draw(st.permutations(range(len(lines))))
    if list(order) == sorted(order):
        return
    first_moved = next(i for i, j in enumerate(order) if i != j)
    result = verify_lines([lines[i] for i in order])
    assert result.problem is not None and result.problem.line == first_moved + 1


def test_readings_from_the_statuses() -> None:
    from polyculture.ledger.appender import readings

    pool_status = {"members": [{"owner": "ada", "gpuSecondsProvided": 12.3456}, {"owner": "bo"}]}
    models = [
        {
            "metadata": {"namespace": "lingua", "name": "m1"},
            "spec": {"pool": POOL},
            "status": {"gpuSecondsUsed": 1.5, "community": "lingua"},
        },
        {
            "metadata": {"namespace": "x", "name": "m2"},
            "spec": {"pool": POOL, "community": "c"},
            "status": {"gpuSecondsUsed": 2.0},
        },
        {
            "metadata": {"namespace": "x", "name": "other"},
            "spec": {"pool": "elsewhere"},
            "status": {"gpuSecondsUsed": 9.0},
        },
        {"metadata": {"namespace": "x", "name": "fresh"}, "spec": {"pool": POOL}, "status": {}},
    ]
    given_now, used_now = readings(POOL, pool_status, models)
    assert given_now == {"ada": 12346, "bo": 0}
    assert used_now == [usage("lingua/m1", 1500), usage("x/m2", 2000, "c")]
