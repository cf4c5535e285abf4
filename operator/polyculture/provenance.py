"""Provenance at the source: a training script attests what it actually reads.

A script calls :func:`attest` on the file or directory it opens for a declared artifact (its
base model or a data set); the helper computes the SHA-256 and records an *attestation*:

- one line ``POLYCULTURE-ATTESTATION {json}`` printed to the job's log at once, and again
  when the process exits, so that the tail of the log that the operator reads when the
  attempt ends holds every attestation, whatever the backend (local Ray processes or Pods);
- the same JSON appended to ``attestations.jsonl`` next to the checkpoint, when
  ``POLYCULTURE_CHECKPOINT_URI`` is a ``file://`` directory.

The operator compares each attestation with the artifacts the model declares (given to the job
as JSON in ``POLYCULTURE_ARTIFACTS``) and sets, per artifact, ``verified`` (what was read has
the declared digest), ``mismatch`` (it does not) or ``unverified`` (never attested).

Digest of a directory (documented, order-stable): every regular file below it, symlinks to
files counted by the content they point to, sorted by their path relative to the directory
(``/``-separated, compared as UTF-8 bytes); the digest is the SHA-256 of, for each file in
that order, ``<relative path> NUL <hex SHA-256 of the content> LF``. Renaming or moving a file
changes it; the order in which the file system lists files does not; empty files count (as
the digest of no bytes); empty directories do not. A symlink to a directory is refused (it
could loop, or point outside).

This module uses only the standard library, so it can also be copied next to a training script
that runs where Polyculture is not installed.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlparse

#: the marker that starts an attestation line in a job's log
MARKER: Final = "POLYCULTURE-ATTESTATION"
#: JSON list of the declared artifacts: [{"role", "name", "uri", "sha256", "license"}, ...]
ARTIFACTS_ENV: Final = "POLYCULTURE_ARTIFACTS"
CHECKPOINT_URI_ENV: Final = "POLYCULTURE_CHECKPOINT_URI"
ATTESTATIONS_FILE: Final = "attestations.jsonl"
_CHUNK: Final = 1 << 20

_made: list[str] = []


class ProvenanceMismatchError(RuntimeError):
    """Raised by ``attest(..., strict=True)`` when the digest differs from the declared one."""


def file_digest(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                raise ValueError(f"{here / name}: a symlink to a directory is not attested")
        for name in filenames:
            path = here / name
            if path.is_file():  # follows symlinks to files; skips sockets, fifos, broken links
                yield path.relative_to(root).as_posix(), path


def directory_digest(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """``(hex digest, files, bytes)`` of a directory, as documented in the module docstring."""
    root = Path(path)
    entries = sorted(_files(root), key=lambda item: item[0].encode())
    digest = hashlib.sha256()
    total = 0
    for relative, file in entries:
        digest.update(relative.encode() + b"\0" + file_digest(file).encode() + b"\n")
        total += file.stat().st_size
    return digest.hexdigest(), len(entries), total


def digest(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, or the directory digest of a directory."""
    return directory_digest(path)[0] if Path(path).is_dir() else file_digest(path)


def declared_artifacts(environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The artifacts the model declares (``POLYCULTURE_ARTIFACTS``); empty when not given."""
    text = (os.environ if environ is None else environ).get(ARTIFACTS_ENV, "")
    if not text.strip():
        return []
    value = json.loads(text)
    return [a for a in value if isinstance(a, dict)] if isinstance(value, list) else []


def _checkpoint_dir(environ: Mapping[str, str]) -> Path | None:
    parsed = urlparse(environ.get(CHECKPOINT_URI_ENV, ""))
    return Path(unquote(parsed.path)) if parsed.scheme == "file" and parsed.path else None


def attest(
    path: str | os.PathLike[str],
    artifact: str,
    *,
    strict: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Record that this run reads ``path`` as the declared ``artifact`` (its name or URI).

    Returns the attestation (``artifact``, ``path``, ``kind``, ``sha256``, ``files``,
    ``bytes``, ``at``). With ``strict=True`` it raises :class:`ProvenanceMismatchError` when the
    artifact is declared with another digest (the operator records the mismatch either way).
    """
    env = os.environ if environ is None else environ
    source = Path(path).resolve()
    if source.is_dir():
        sha, files, size = directory_digest(source)
        kind = "directory"
    else:
        sha, files, size = file_digest(source), 1, source.stat().st_size
        kind = "file"
    record: dict[str, Any] = {
        "v": 1,
        "artifact": artifact,
        "path": str(source),
        "kind": kind,
        "sha256": sha,
        "files": files,
        "bytes": size,
        "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    line = f"{MARKER} {json.dumps(record, sort_keys=True, separators=(',', ':'))}"
    print(line, flush=True)
    if not _made:
        atexit.register(_repeat)
    _made.append(line)
    directory = _checkpoint_dir(env)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / ATTESTATIONS_FILE).open("a") as f:
            f.write(line.removeprefix(MARKER + " ") + "\n")
    declared = [a for a in declared_artifacts(env) if artifact in (a.get("name"), a.get("uri"))]
    if declared and all(a.get("sha256") != sha for a in declared):
        message = (
            f"provenance: {artifact} ({declared[0].get('uri')}) read from {source} has sha256 "
            f"{sha}, declared {declared[0].get('sha256')}"
        )
        print(message, file=sys.stderr, flush=True)
        if strict:
            raise ProvenanceMismatchError(message)
    return record


def _repeat() -> None:
    """At exit, print every attestation again: the tail of the log then holds them all."""
    for line in _made:
        print(line, flush=True)
