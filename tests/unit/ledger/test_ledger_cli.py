"""``polyculture ledger verify`` and ``show --file``: offline, on an export.

Covers: verify prints OK with the totals (table or CSV) and exits 0; with a wrong head or a
changed entry it exits 1 naming the entry; show --file prints the same totals; ``ledger
--pool`` is read as ``show --pool``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polyculture import ledger_cli
from polyculture.ledger import Head, next_entry
from polyculture.ledger.appender import ModelUsage

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def export(path: Path) -> str:
    head = Head()
    lines = []
    for i, ms in enumerate([1000, 4000, 9000]):
        entry, head = next_entry(
            head,
            pool="coop",
            given={"ada": ms},
            used=[ModelUsage(model="lingua/m1", community="lingua", gpu_ms=ms // 2)],
            now=T0 + timedelta(minutes=5 * (i + 1)),
            start=T0,
        )
        lines.append(entry.line())
    path.write_text("".join(line + "\n" for line in lines))
    return head.hash


def test_verify_ok_prints_totals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = export(tmp_path / "l.jsonl")
    assert ledger_cli.main(["verify", str(tmp_path / "l.jsonl"), "--head", head, "--csv"]) == 0
    out, err = capsys.readouterr()
    assert "OK: 3 entries of pool coop" in err and head in err
    assert out.splitlines() == [
        "kind,owner_or_community,model,gpu_seconds",
        "given,ada,,9.000",
        "used,lingua,,4.500",
        "used,lingua,lingua/m1,4.500",
    ]
    assert ledger_cli.main(["show", "--file", str(tmp_path / "l.jsonl")]) == 0
    assert "lingua/m1" in capsys.readouterr().out


def test_verify_fails_naming_the_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.jsonl"
    export(path)
    assert ledger_cli.main(["verify", str(path), "--head", "f" * 64]) == 1
    assert "published head" in capsys.readouterr().err
    path.write_text(path.read_text().replace('"ada":3000', '"ada":3001'))
    assert ledger_cli.main(["verify", str(path)]) == 1
    assert "entry at line 2 (seq 1)" in capsys.readouterr().err


def test_ledger_pool_is_show(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    export(path)
    seen: list[str] = []
    monkeypatch.setattr(ledger_cli, "_export", lambda args: seen.append(args.pool) or [])
    assert ledger_cli.main(["--pool", "coop", "--csv"]) == 0
    assert seen == ["coop"]
