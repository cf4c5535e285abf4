"""Provenance at the source: the helper's digests and attestations, and the operator's verdicts.

Covers: the directory digest is order-stable (files written in any order, listed in any order),
changes with a rename, a move or one changed byte, counts empty files and ignores empty
directories (property tests); a symlink to a directory is refused; ``attest`` prints the
attestation line, repeats it at exit, writes it next to a file:// checkpoint and warns (or
raises with strict) on a declared digest it does not match; the operator's reader turns a
job's log into verified / mismatch / unverified per declared artifact; the status patch, the
condition, the Event and whether the model may serve; a trained model held back from serving;
the shipped example corpus has the documented digest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyculture import provenance
from polyculture.api.community_model import ArtifactVerdict, Provenance
from polyculture.provenance import (
    MARKER,
    ProvenanceMismatchError,
    attest,
    digest,
    directory_digest,
    file_digest,
)
from polyculture.ray.backend import ARTIFACTS_ENV, CHECKPOINT_URI_ENV
from polyculture.reconcile.admission import ModelView
from polyculture.reconcile.provenance import (
    CONDITION,
    after_training,
    attestations_from_log,
    declared_artifacts,
    job_artifacts,
    provenance_outcome,
    serving_blocked,
    verdicts_from_log,
)

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SHA_A = hashlib.sha256(b"corpus a").hexdigest()
SHA_B = hashlib.sha256(b"base model").hexdigest()
OTHER = "0" * 63 + "1"

PROVENANCE = Provenance.model_validate(
    {
        "baseModel": {
            "name": "base",
            "uri": "hf://org/base",
            "sha256": SHA_B,
            "license": "Apache-2.0",
        },
        "datasets": [{"uri": "s3://c/corpus", "sha256": SHA_A, "license": "CC-BY-4.0"}],
    }
)


def line(artifact: str, sha: str) -> str:
    return f"{MARKER} " + json.dumps({"v": 1, "artifact": artifact, "sha256": sha, "path": "/x"})


# --- digests --------------------------------------------------------------------------------

names = st.lists(
    st.text(alphabet="abcdefgh-_.0123456789", min_size=1, max_size=8).filter(
        lambda n: n not in (".", "..")
    ),
    min_size=1,
    max_size=3,
).map("/".join)
trees = st.dictionaries(names, st.binary(max_size=64), min_size=1, max_size=6).filter(
    # a path cannot be both a file and a directory
    lambda t: not any(a != b and b.startswith(a + "/") for a in t for b in t)
)


def write(root: Path, tree: dict[str, bytes], order: list[str]) -> Path:
    root.mkdir(parents=True)
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tree[name])
    return root


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(trees, st.data())
def test_directory_digest_does_not_depend_on_write_order(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, bytes], data: st.DataObject
) -> None:
    base = tmp_path_factory.mktemp("d")
    order = data.draw(st.permutations(sorted(tree)))
    one = write(base / "one", tree, sorted(tree))
    two = write(base / "two", tree, list(order))
    assert directory_digest(one) == directory_digest(two)
    assert directory_digest(one)[1:] == (len(tree), sum(len(v) for v in tree.values()))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(trees, st.data())
def test_directory_digest_changes_with_a_rename_or_a_changed_byte(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, bytes], data: st.DataObject
) -> None:
    base = tmp_path_factory.mktemp("d")
    original = directory_digest(write(base / "original", tree, sorted(tree)))[0]
    victim = data.draw(st.sampled_from(sorted(tree)))
    renamed = {**{k: v for k, v in tree.items() if k != victim}, victim + "x": tree[victim]}
    if not any(a != b and b.startswith(a + "/") for a in renamed for b in renamed):
        assert directory_digest(write(base / "renamed", renamed, sorted(renamed)))[0] != original
    changed = {**tree, victim: tree[victim] + b"!"}
    assert directory_digest(write(base / "changed", changed, sorted(changed)))[0] != original


def test_empty_files_count_and_empty_directories_do_not(tmp_path: Path) -> None:
    write(tmp_path / "a", {"x.txt": b"data"}, ["x.txt"])
    write(tmp_path / "b", {"x.txt": b"data", "empty": b""}, ["x.txt", "empty"])
    write(tmp_path / "c", {"x.txt": b"data"}, ["x.txt"])
    (tmp_path / "c" / "nothing" / "here").mkdir(parents=True)
    assert directory_digest(tmp_path / "a")[0] != directory_digest(tmp_path / "b")[0]
    assert directory_digest(tmp_path / "a")[0] == directory_digest(tmp_path / "c")[0]
    # the documented construction, by hand
    lines = [
        f"{n}\0{hashlib.sha256(c).hexdigest()}\n" for n, c in [("empty", b""), ("x.txt", b"data")]
    ]
    assert (
        directory_digest(tmp_path / "b")[0] == hashlib.sha256("".join(lines).encode()).hexdigest()
    )


def test_a_file_digest_is_its_sha256_and_directory_symlinks_are_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"corpus a")
    assert file_digest(tmp_path / "f") == digest(tmp_path / "f") == SHA_A
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    with pytest.raises(ValueError, match="symlink to a directory"):
        digest(tmp_path / "d")


def test_the_shipped_corpus_has_the_documented_digest() -> None:
    corpus = REPO / "examples" / "ray" / "data" / "corpus"
    readme = (REPO / "examples" / "ray" / "data" / "README.md").read_text()
    assert digest(corpus) in readme


# --- attest ---------------------------------------------------------------------------------


def test_attest_prints_writes_next_to_the_checkpoint_and_repeats_at_exit(tmp_path: Path) -> None:
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    ckpt = tmp_path / "ckpt"
    script = (
        "from polyculture.provenance import attest\n"
        f"attest({str(data)!r}, 's3://c/corpus')\n"
        "print('training complete')\n"
    )
    env = {CHECKPOINT_URI_ENV: ckpt.as_uri(), ARTIFACTS_ENV: job_artifacts(PROVENANCE)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, **env},
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith(MARKER) and lines[1] == "training complete"
    assert lines[2] == lines[0]  # repeated at exit: in the log's tail
    record = json.loads(lines[0].removeprefix(MARKER + " "))
    assert record["sha256"] == digest(data) and record["kind"] == "directory"
    stored = (ckpt / "attestations.jsonl").read_text().splitlines()
    assert [json.loads(s) for s in stored] == [record]
    assert "declared " + SHA_A in out.stderr  # warns: the corpus is not what was declared


def test_attest_strict_raises_on_a_declared_digest_it_does_not_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provenance, "_made", [])  # nothing to repeat when pytest exits
    (tmp_path / "f").write_bytes(b"corpus a")
    env = {ARTIFACTS_ENV: job_artifacts(PROVENANCE)}
    assert attest(tmp_path / "f", "s3://c/corpus", strict=True, environ=env)["sha256"] == SHA_A
    with pytest.raises(ProvenanceMismatchError, match="hf://org/base"):
        attest(tmp_path / "f", "base", strict=True, environ=env)  # by name


def test_the_helper_and_the_contract_name_the_same_variables() -> None:
    assert provenance.ARTIFACTS_ENV == ARTIFACTS_ENV
    assert provenance.CHECKPOINT_URI_ENV == CHECKPOINT_URI_ENV
    assert json.loads(job_artifacts(PROVENANCE))[0] == {
        "role": "baseModel",
        "name": "base",
        "uri": "hf://org/base",
        "sha256": SHA_B,
        "license": "Apache-2.0",
    }
    assert job_artifacts(None) == ""


# --- verdicts -------------------------------------------------------------------------------

DECLARED = declared_artifacts(PROVENANCE)


@pytest.mark.parametrize(
    ("log", "want"),
    [
        pytest.param(
            [line("hf://org/base", SHA_B), line("s3://c/corpus", SHA_A)],
            {"hf://org/base": "verified", "s3://c/corpus": "verified"},
            id="both read with their declared digests are verified",
        ),
        pytest.param(
            [line("base", SHA_B), "noise", line("s3://c/corpus", OTHER)],
            {"hf://org/base": "verified", "s3://c/corpus": "mismatch"},
            id="named by name counts; another digest is a mismatch",
        ),
        pytest.param(
            [line("s3://c/corpus", SHA_A), line("s3://c/corpus", OTHER)],
            {"hf://org/base": "unverified", "s3://c/corpus": "mismatch"},
            id="one wrong read is enough for a mismatch; never attested is unverified",
        ),
        pytest.param(
            [f"{MARKER} {{not json", line("s3://other", SHA_A)],
            {"hf://org/base": "unverified", "s3://c/corpus": "unverified"},
            id="broken lines and undeclared artifacts are ignored",
        ),
    ],
)
def test_verdicts_from_log(log: list[str], want: dict[str, str]) -> None:
    got = verdicts_from_log("\n".join(log), DECLARED)
    assert {k: v.value for k, v in got.items()} == want


def test_repeated_attestations_are_read_once() -> None:
    text = "\n".join([line("base", SHA_B)] * 3)
    assert len(attestations_from_log(text)) == 1


def outcome(log: list[str], serve_on_mismatch: bool = False, prov: Provenance | None = PROVENANCE):
    return provenance_outcome(
        "\n".join(log),
        prov,
        previous_status={"conditions": [{"type": "Trained", "status": "True"}]},
        serve_on_mismatch=serve_on_mismatch,
        now=NOW,
    )


def test_outcome_verified() -> None:
    out = outcome([line("hf://org/base", SHA_B), line("s3://c/corpus", SHA_A)])
    assert out.verdict == out.status["provenanceVerdict"] == "Verified" and out.may_serve
    cond = {c["type"]: c for c in out.status["conditions"]}
    assert cond[CONDITION]["status"] == "True" and "Trained" in cond  # others kept
    assert [a["verdict"] for a in out.status["provenance"]] == ["verified", "verified"]
    assert out.event is not None and out.event[:2] == ("Normal", "ProvenanceVerified")


def test_outcome_mismatch_blocks_serving_unless_the_pool_allows_it() -> None:
    out = outcome([line("hf://org/base", SHA_B), line("s3://c/corpus", OTHER)])
    assert out.verdict == "Mismatch" and not out.may_serve
    cond = {c["type"]: c for c in out.status["conditions"]}[CONDITION]
    assert (cond["status"], cond["reason"]) == ("False", "Mismatch")
    assert OTHER in cond["message"] and "will not serve" in cond["message"]
    assert out.status["provenance"][1]["observedSHA256"] == [OTHER]
    assert out.event is not None and out.event[:2] == ("Warning", "ProvenanceMismatch")
    assert outcome([line("s3://c/corpus", OTHER)], serve_on_mismatch=True).may_serve


def test_outcome_unverified_and_undeclared() -> None:
    out = outcome([])
    assert out.verdict == "Unverified" and out.may_serve and out.event is None
    assert {c["type"]: c for c in out.status["conditions"]}[CONDITION]["reason"] == "NotAttested"
    assert outcome([], prov=None).verdict == "Undeclared"


def test_a_trained_model_with_a_mismatch_is_held_back_from_serving() -> None:
    transition = {
        "phase": "Trained",
        "trainedAt": "2026-11-29T12:00:00Z",
        "waiting": None,
        "conditions": [{"type": "Trained", "status": "True", "message": "job succeeded"}],
    }
    patch, event = after_training(
        transition,
        line("s3://c/corpus", OTHER),
        PROVENANCE,
        previous_status={},
        serves_next=True,
        serve_on_mismatch=False,
        now=NOW,
    )
    assert patch["phase"] == "Trained" and patch["waiting"]["reason"] == "ProvenanceMismatch"
    trained = {c["type"]: c for c in patch["conditions"]}["Trained"]
    assert "held back" in trained["message"]
    assert event is not None and event[1] == "ProvenanceMismatch"
    assert serving_blocked(patch)
    spec = {
        "pool": "p",
        "training": {"entrypoint": "python t.py"},
        "serving": {"importPath": "app:app"},
        "provenance": PROVENANCE.model_dump(by_alias=True),
    }
    from polyculture.api.community_model import CommunityModelSpec

    view = ModelView(
        namespace="c",
        name="m",
        uid="u",
        created=0.0,
        generation=1,
        spec=CommunityModelSpec.model_validate(spec),
        status=patch,
    )
    assert not view.queueable
    allowed, _ = after_training(
        transition,
        line("s3://c/corpus", OTHER),
        PROVENANCE,
        previous_status={},
        serves_next=True,
        serve_on_mismatch=True,
        now=NOW,
    )
    assert allowed["waiting"] is None and not serving_blocked(allowed)
    assert ArtifactVerdict.MISMATCH.value == "mismatch"
