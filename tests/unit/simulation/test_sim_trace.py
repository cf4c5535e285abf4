"""Trace loading: the Philly CSV, the communities' YAML, and how a job becomes a gang.

Covers: arrival order and origin, ``limit``, rejected rows, the configuration file and its
errors, ``Trace.head``, and ``gang_shape`` for jobs larger than a node.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polyculture.simulation.trace import (
    CommunityConfig,
    TraceError,
    gang_shape,
    load_config,
    load_philly,
)

HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(HEADER + body)
    return path


def test_jobs_are_sorted_by_arrival_and_timed_from_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2017-10-01 00:01:00,30.0,2,60.0,b\n"
        "2017-10-01 00:00:00,10.0,1,10.0,a\n"
        "2017-10-01 00:01:00,5.0,4,20.0,a\n",
    )
    trace = load_philly(path)
    assert [(j.community, j.arrival, j.duration, j.gpus) for j in trace.jobs] == [
        ("a", 0.0, 10.0, 1),
        ("b", 60.0, 30.0, 2),  # same instant as the next one: file order breaks the tie
        ("a", 60.0, 5.0, 4),
    ]
    assert trace.communities == ("a", "b")
    assert len({j.key for j in trace.jobs}) == 3
    assert [j.community for j in load_philly(path, limit=2).jobs] == ["a", "b"]


def test_head_keeps_only_the_communities_it_holds(tmp_path: Path) -> None:
    path = write(tmp_path, "2017-10-01 00:00:00,10.0,1,10.0,a\n2017-10-01 00:00:09,1.0,1,1.0,b\n")
    assert load_philly(path).head(1).communities == ("a",)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param("2017-10-01 00:00:00,10.0,0,0,a\n", id="rejects a job without GPUs"),
        pytest.param("2017-10-01 00:00:00,0,1,0,a\n", id="rejects a job that never runs"),
        pytest.param("yesterday,10,1,10,a\n", id="rejects an unreadable timestamp"),
    ],
)
def test_bad_rows_name_their_line(tmp_path: Path, row: str) -> None:
    with pytest.raises(TraceError, match=r"trace.csv:2"):
        load_philly(write(tmp_path, row))


def test_config_reads_weights_guarantees_and_caps(tmp_path: Path) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text("communities:\n  a: {weight: 2, guaranteedGPUs: 8}\n  b: {maxGPUs: 16}\n")
    assert load_config(path) == {
        "a": CommunityConfig(weight=2.0, guaranteed_gpus=8),
        "b": CommunityConfig(max_gpus=16),
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("communities:\n  a: {weigth: 2}\n", "unknown keys", id="rejects a typo"),
        pytest.param("communities:\n  a: {weight: 0}\n", "weight", id="rejects a zero weight"),
        pytest.param("communities: [a]\n", "mapping", id="rejects a list of communities"),
    ],
)
def test_config_errors_say_what_is_wrong(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    with pytest.raises(TraceError, match=error):
        load_config(path)


@pytest.mark.parametrize(
    ("gpus", "want_shape"),
    [
        pytest.param(1, (1, 1), id="one GPU is one worker"),
        pytest.param(8, (1, 8), id="a full node is one worker"),
        pytest.param(16, (2, 8), id="sixteen GPUs are two full nodes"),
        pytest.param(12, (2, 6), id="twelve GPUs are two workers of six"),
        pytest.param(24, (3, 8), id="twenty-four GPUs are three full nodes"),
        pytest.param(128, (16, 8), id="the largest Philly job spans sixteen nodes"),
    ],
)
def test_gang_shape(gpus: int, want_shape: tuple[int, int]) -> None:
    assert gang_shape(gpus, 8) == want_shape
