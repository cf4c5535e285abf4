"""A tiny data-parallel training run on Ray that honours Polyculture's checkpoint contract.

It fits a linear model to synthetic data that it generates itself (fixed seed, no downloads,
pure Python, CPU only). One Ray actor per worker holds a shard of the data and computes
gradients; the driver averages them and takes a step — the shape of real data-parallel
training, small enough for a laptop.

Contract with the operator (see README.md):

- ``POLYCULTURE_CHECKPOINT_URI`` (``file://`` URI of a directory): every
  ``--checkpoint-every`` steps the script writes ``checkpoint.json`` there atomically
  (step number + model state); at start it resumes from that file if present.
- ``POLYCULTURE_ATTEMPT``: the attempt number (1, 2, ...), printed and stored in the
  checkpoint.
- ``POLYCULTURE_NUM_WORKERS`` / ``POLYCULTURE_GPUS_PER_WORKER``: the admitted gang; each
  worker actor asks for that many GPUs, so the gang spreads over the placed nodes.

Provenance: with ``--data PATH --artifact NAME_OR_URI`` the script reads the data set at
``PATH`` (``data/corpus`` ships with it), attests it with ``polyculture.provenance.attest``
(the operator compares the digest with what the model declares) and seeds its synthetic data
from it, so the run depends on what it read.

Lines the tests read: ``resumed from step N`` or ``starting from step 0``,
``step N loss X``, ``checkpoint saved at step N``, ``training complete at step N``.

``--fail`` raises after the first step, to show how a failing entrypoint is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import ray

FEATURES = 4
SAMPLES_PER_WORKER = 64
TRUE_WEIGHTS = [1.5, -2.0, 0.5, 3.0]


def checkpoint_dir(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise SystemExit(f"only file:// checkpoint URIs are supported here, got {uri!r}")
    return Path(unquote(parsed.path))


def load_checkpoint(directory: Path) -> dict[str, object] | None:
    path = directory / "checkpoint.json"
    if not path.exists():
        return None
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def save_checkpoint(directory: Path, state: dict[str, object]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".checkpoint.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state))
    # rename is atomic: a run stopped mid-write leaves the previous checkpoint intact
    tmp.replace(directory / "checkpoint.json")


def read_data(path: str, artifact: str) -> int:
    """Attest the data set at ``path`` as ``artifact`` and derive the data seed from it."""
    try:
        from polyculture.provenance import attest
    except ImportError:  # provenance.py uses only the standard library: copy it next to this
        from provenance import attest  # type: ignore[no-redef]
    record = attest(path, artifact)
    print(f"read {record['files']} file(s), {record['bytes']} bytes of {artifact}", flush=True)
    return int(hashlib.sha256(record["sha256"].encode()).hexdigest()[:6], 16)


@ray.remote(num_cpus=0)
class Shard:
    """One data-parallel worker: a fixed shard of synthetic data, gradients on demand."""

    def __init__(self, rank: int, seed: int = 1000) -> None:
        rng = random.Random(seed + rank)
        self.rank = rank
        self.rows = []
        for _ in range(SAMPLES_PER_WORKER):
            x = [rng.uniform(-1.0, 1.0) for _ in range(FEATURES)]
            y = sum(w * xi for w, xi in zip(TRUE_WEIGHTS, x, strict=True)) + rng.gauss(0, 0.01)
            self.rows.append((x, y))

    def where(self) -> dict[str, object]:
        ctx = ray.get_runtime_context()
        return {"rank": self.rank, "node_id": ctx.get_node_id(), "gpu_ids": ray.get_gpu_ids()}

    def gradient(self, weights: list[float]) -> tuple[list[float], float]:
        grad = [0.0] * FEATURES
        loss = 0.0
        for x, y in self.rows:
            err = sum(w * xi for w, xi in zip(weights, x, strict=True)) - y
            loss += err * err
            for i in range(FEATURES):
                grad[i] += 2 * err * x[i]
        n = len(self.rows)
        return [g / n for g in grad], loss / n


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--step-seconds", type=float, default=0.0, help="sleep per step")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--fail", action="store_true", help="raise after the first step")
    parser.add_argument("--data", help="a file or directory to read and attest (data/corpus)")
    parser.add_argument("--artifact", help="the declared name or URI that --data is")
    args = parser.parse_args(argv)
    if bool(args.data) != bool(args.artifact):
        parser.error("--data and --artifact go together")

    attempt = int(os.environ.get("POLYCULTURE_ATTEMPT", "1"))
    workers = int(os.environ.get("POLYCULTURE_NUM_WORKERS", "1"))
    gpus = float(os.environ.get("POLYCULTURE_GPUS_PER_WORKER", "0"))
    uri = os.environ.get("POLYCULTURE_CHECKPOINT_URI")
    directory = checkpoint_dir(uri) if uri else None

    ray.init()
    print(f"attempt {attempt}: {workers} worker(s) x {gpus:g} GPU, checkpoint {uri}", flush=True)

    weights = [0.0] * FEATURES
    start = 0
    state = load_checkpoint(directory) if directory else None
    if state is not None:
        start = int(str(state["step"]))
        weights = [float(w) for w in state["weights"]]  # type: ignore[attr-defined]
        print(f"resumed from step {start}", flush=True)
    else:
        print("starting from step 0", flush=True)

    seed = read_data(args.data, args.artifact) if args.data else 1000
    shards = [Shard.options(num_gpus=gpus).remote(rank, seed) for rank in range(workers)]  # type: ignore[attr-defined]
    for info in ray.get([s.where.remote() for s in shards]):
        print(f"worker {info['rank']} on node {info['node_id']} gpus {info['gpu_ids']}", flush=True)

    loss = float("nan")
    for step in range(start + 1, args.steps + 1):
        results = ray.get([s.gradient.remote(weights) for s in shards])
        grads = [g for g, _ in results]
        loss = sum(lo for _, lo in results) / len(results)
        weights = [
            w - args.learning_rate * sum(g[i] for g in grads) / len(grads)
            for i, w in enumerate(weights)
        ]
        print(f"step {step} loss {loss:.6f}", flush=True)
        if args.fail:
            raise RuntimeError(f"failing on purpose at step {step} (--fail)")
        if directory and (step % args.checkpoint_every == 0 or step == args.steps):
            save_checkpoint(
                directory, {"step": step, "weights": weights, "loss": loss, "attempt": attempt}
            )
            print(f"checkpoint saved at step {step}", flush=True)
        if args.step_seconds:
            time.sleep(args.step_seconds)

    print(f"training complete at step {args.steps} loss {loss:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
