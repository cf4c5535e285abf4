"""``polyculture demo`` (``make demo``): the whole story on an embedded control plane.

1. A real control plane starts on 127.0.0.1 (etcd, kube-apiserver, controller-manager,
   scheduler, kwok), with the CRDs installed.
2. Three owners contribute fake GPU nodes (kwok keeps them Ready): a university lab's A100s,
   a community co-op's L4s, a start-up's H100s.
3. The example pool (on the embedded ``local`` Ray backend), namespaces and models of
   ``examples/`` are applied, plus one model that can never fit (``Invalid``); the operator
   (a child process, logging to the run directory) admits what fits by fair share.
4. ``sign-translator`` trains on the start-up's H100s; the start-up reclaims its nodes: the
   training is preempted (``OwnerReclaim``), drains within the grace period and is requeued;
   the start-up lends again, and the next run resumes from the checkpoint.
5. Meanwhile ``yoruba-base`` trains on Ray to ``Trained`` (its checkpoint written) and
   ``quechua-asr`` serves: its endpoint answers. ``sign-translator`` trains to the end, then
   serves, and its endpoint answers.
6. With ``--once`` the demo stops there (exit 0); otherwise it keeps showing the pool until
   Ctrl-C (or ``--duration``). Either way no process is left.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.api.windows import window_open
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.runner import ControlPlane, ControlPlaneError
from polyculture.controlplane.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: owner -> (nodes, GPUs per node, product as GPU Feature Discovery labels it)
OWNERS = {
    "university-lab": (4, 4, "NVIDIA-A100-SXM4-40GB"),
    "community-coop": (6, 2, "NVIDIA-L4"),
    "startup-h100": (2, 8, "NVIDIA-H100-80GB-HBM3"),
}
NEVER_FITS = """
apiVersion: polyculture.dev/v1alpha1
kind: CommunityModel
metadata: {name: too-big-to-fit, namespace: marine-biology}
spec:
  pool: cooperative
  training: {entrypoint: python train.py, workers: 1, gpusPerWorker: 16, gpuClass: H100}
"""


#: the university lends in evenings and at weekends (Berlin): the demo's clock is moved to a
#: Saturday noon there when the window is closed, so that the story is the same any day
LAB_WINDOW_OPEN = (5, 12)  # weekday (Saturday), hour
#: seconds the demo waits for each step of the story (Ray clusters start in ~15-30 s here)
STEP_TIMEOUT_S = 300.0


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def window_offset(now: datetime) -> float:
    """Seconds to add to ``now`` for the university's lending window to be open (0 if it is):
    the next Saturday noon in Berlin, where the example pool's windows are open."""
    pool = ComputePoolSpec.model_validate(
        yaml.safe_load((EXAMPLES / "pool-cooperative.yaml").read_text())["spec"]
    )
    lab = next(m for m in pool.members if m.owner == "university-lab")
    if not lab.windows or window_open(lab.windows, now):
        return 0.0
    berlin = now.astimezone(ZoneInfo("Europe/Berlin"))
    days = (LAB_WINDOW_OPEN[0] - berlin.weekday()) % 7
    target = (berlin + timedelta(days=days)).replace(
        hour=LAB_WINDOW_OPEN[1], minute=0, second=0, microsecond=0
    )
    return (target - berlin).total_seconds()


def ask(url: str) -> Any:
    """The endpoint's JSON answer, or None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


class Demo:
    def __init__(self, run_dir: Path) -> None:
        self.cp = ControlPlane(run_dir=run_dir / "cluster")
        self.run_dir = run_dir
        self.operator: OperatorProcess | None = None
        self.last_shown = ""

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.cp.kubectl(*args, input=input).stdout

    def get(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return result

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get("cmodel", "-n", namespace, name).get("status") or {}
        return result

    def phase(self, namespace: str, name: str) -> str:
        return str(self.status(namespace, name).get("phase") or "")

    def wait_phase(self, namespace: str, name: str, *phases: str) -> dict[str, Any]:
        wait_for(
            lambda: self.phase(namespace, name) in phases,
            STEP_TIMEOUT_S,
            f"{namespace}/{name} {' or '.join(phases)}",
            every=1.0,
        )
        return self.status(namespace, name)

    def show(self, force: bool = False) -> None:
        """The live view of ``polyculture status`` (one frame), when it changed."""
        from rich.console import Console

        from polyculture.statusview import render

        pools = self.get("pool").get("items") or []
        models = self.get("cmodel", "-A").get("items") or []
        console = Console(width=150, force_terminal=sys.stdout.isatty())
        with console.capture() as capture:
            console.print(render(pools, models))
        text = capture.get()
        key = "\n".join(line for line in text.splitlines() if "polyculture status ·" not in line)
        if force or key != self.last_shown:
            print(text, flush=True)
            self.last_shown = key

    def members(self) -> str:
        return self.kubectl(
            "get",
            "pool",
            "cooperative",
            "-o",
            "jsonpath={range .status.members[*]}{.owner}{': '}{.availableGPUs}"
            "{' GPUs lent'}{' '}{.unavailableReason}{'\\n'}{end}",
        )

    def set_reclaim(self, owner: str, reclaim: bool) -> None:
        members = self.get("pool", "cooperative")["spec"]["members"]
        index = next(i for i, m in enumerate(members) if m["owner"] == owner)
        patch = [{"op": "replace", "path": f"/spec/members/{index}/reclaim", "value": reclaim}]
        self.kubectl("patch", "pool", "cooperative", "--type=json", "-p", json.dumps(patch))

    def apply_examples(self) -> None:
        """The examples as a reader would apply them, on the embedded ``local`` Ray backend,
        with the working directory and checkpoints under the run directory."""
        print(self.kubectl("apply", "-f", str(EXAMPLES / "namespaces.yaml")).strip())
        pool = yaml.safe_load((EXAMPLES / "pool-cooperative.yaml").read_text())
        pool["spec"]["ray"]["backend"] = "local"
        print(self.kubectl("apply", "-f", "-", input=json.dumps(pool)).strip())
        for path in sorted(EXAMPLES.glob("model-*.yaml")):
            model = yaml.safe_load(path.read_text())
            name = model["metadata"]["name"]
            for stage in ("training", "serving"):
                spec = model["spec"].get(stage)
                if spec is None:
                    continue
                spec.setdefault("runtimeEnv", {})["workingDir"] = str(EXAMPLES / "ray")
                if stage == "training":
                    spec["checkpointURI"] = (self.run_dir / "checkpoints" / name).as_uri()
            print(self.kubectl("apply", "-f", "-", input=json.dumps(model)).strip())
        print(self.kubectl("apply", "-f", "-", input=NEVER_FITS).strip())

    def checkpoint_step(self, name: str) -> int:
        path = self.run_dir / "checkpoints" / name / "checkpoint.json"
        try:
            return int(json.loads(path.read_text())["step"])
        except (OSError, ValueError, KeyError):
            return 0

    def run(self, duration: float | None, once: bool) -> None:
        say("starting a real Kubernetes control plane on 127.0.0.1")
        started = time.monotonic()
        self.cp.start()
        print(f"ready in {time.monotonic() - started:.1f} s at {self.cp.server}")
        print(f"kubeconfig: {self.cp.kubeconfig}   logs: {self.cp.logs}")
        self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

        say("three owners contribute GPU nodes (kwok plays their kubelets)")
        from kubernetes import config

        api = config.new_client_from_config(config_file=str(self.cp.kubeconfig))  # type: ignore[no-untyped-call]
        for owner, (count, gpus, product) in OWNERS.items():
            for i in range(count):
                create_gpu_node(api, f"{owner}-{i}", owner, gpus, product)
        print(self.kubectl("get", "nodes", "-L", "polyculture.dev/owner,nvidia.com/gpu.product"))

        say("the operator starts (log: operator.log in the run directory)")
        self.operator = OperatorProcess(self.cp.kubeconfig, self.run_dir)
        offset = window_offset(datetime.now(UTC))
        if offset:
            self.operator.move_clock(offset)
            print(
                f"(its clock moved {offset / 3600:.1f} h ahead: the university lends at weekends)"
            )
        self.operator.start()

        say("the cooperative's pool, its communities' namespaces and their models")
        self.apply_examples()
        wait_for(lambda: "startup-h100" in self.members(), what="pool status")
        wait_for(lambda: "Invalid" in self.kubectl("get", "cmodel", "-A"), what="model verdicts")
        print(self.kubectl("get", "cmodel", "-A", "-o", "wide"))
        print("what each owner lends now:")
        print(self.members())

        say("the admission loop admits what fits, fairly; Ray clusters start on the placed nodes")
        self.wait_phase("sign-language", "sign-translator", "Training")
        self.show(force=True)

        say("sign-translator trains on the start-up's H100s (its own reserve and borrowed GPUs)")
        wait_for(lambda: self.checkpoint_step("sign-translator") >= 5, STEP_TIMEOUT_S, "ckpt")
        print(f"sign-translator: checkpoint at step {self.checkpoint_step('sign-translator')}")
        say("... and the start-up reclaims its nodes: the training is preempted and requeued")
        self.set_reclaim("startup-h100", True)
        st = self.wait_phase("sign-language", "sign-translator", "Preempted", "Queued")
        print(f"sign-translator: {st['phase']} ({(st.get('waiting') or {}).get('reason')})")
        st = self.wait_phase("sign-language", "sign-translator", "Queued")
        print(f"sign-translator: Queued after draining; attempts counted: {st.get('attempts', 0)}")
        print(self.members())
        print(self.kubectl("get", "events", "-A", "--field-selector", "reason=Preempted").strip())

        say("the start-up lends again: the next run resumes from the checkpoint")
        resumed_from = self.checkpoint_step("sign-translator")
        self.set_reclaim("startup-h100", False)
        st = self.wait_phase("sign-language", "sign-translator", "Training")
        print(f"sign-translator: run {st.get('run')} resumes from step {resumed_from}")

        say("meanwhile yoruba-base trained on Ray and wrote its checkpoint")
        self.wait_phase("yoruba-nlp", "yoruba-base", "Trained")
        print(f"yoruba-base: Trained, checkpoint at step {self.checkpoint_step('yoruba-base')}")

        say("quechua-asr serves: its endpoint answers")
        endpoint = self.wait_phase("quechua-speech", "quechua-asr", "Serving")["endpoint"]
        print(f"GET {endpoint}?text=allinllachu -> {ask(endpoint + '?text=allinllachu')}")

        self.wait_phase("sign-language", "sign-translator", "Trained", "Queued", "Serving")
        print("sign-translator: Trained")
        self.show()

        say("then it serves what it trained")
        endpoint = self.wait_phase("sign-language", "sign-translator", "Serving")["endpoint"]
        print(f"GET {endpoint}?text=hello -> {ask(endpoint + '?text=hello')}")
        self.show(force=True)
        if once:
            say("--once: the story is told")
            return

        say(
            "running: try `KUBECONFIG="
            + str(self.cp.kubeconfig)
            + " polyculture status --watch`; Ctrl-C stops everything"
        )
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            self.show()
            time.sleep(5)

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        self.cp.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="polyculture demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", type=Path, default=Path(".polyculture/demo"))
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="keep running this many seconds after the story (default: until Ctrl-C)",
    )
    parser.add_argument("--once", action="store_true", help="stop (exit 0) once the story is told")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    demo = Demo(run_dir)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        demo.run(args.duration, args.once)
    except KeyboardInterrupt:
        say("Ctrl-C: stopping")
    except (ControlPlaneError, AssertionError) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        if demo.operator is not None:
            print(demo.operator.log_tail(), file=sys.stderr)
        return 1
    finally:
        demo.stop()
    say("stopped: control plane, operator and Ray clusters are down")
    return 0
