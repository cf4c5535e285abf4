"""``polyculture demo`` (``make demo``): the whole story on an embedded control plane.

1. A real control plane starts on 127.0.0.1 (etcd, kube-apiserver, controller-manager,
   scheduler, kwok), with the CRDs installed.
2. Three owners contribute fake GPU nodes (kwok keeps them Ready): a university lab's A100s,
   a community co-op's L4s, a start-up's H100s.
3. The example pool, namespaces and models of ``examples/`` are applied, plus one model that
   can never fit, and the operator (a child process, logging to the run directory) takes them
   over: the pool's capacity per owner and class, each model's phase and why it waits.
4. The start-up reclaims its nodes; the pool drops exactly its capacity; it lends them again.
5. Everything keeps running until Ctrl-C (or ``--duration``), then stops: no process is left.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

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


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


class Demo:
    def __init__(self, run_dir: Path) -> None:
        self.cp = ControlPlane(run_dir=run_dir / "cluster")
        self.run_dir = run_dir
        self.operator: OperatorProcess | None = None
        self.last_shown = ""

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.cp.kubectl(*args, input=input).stdout

    def show(self, force: bool = False) -> None:
        text = (
            self.kubectl("get", "pool", "-o", "wide")
            + "\n"
            + self.kubectl("get", "cmodel", "-A", "-o", "wide")
        )
        if force or text != self.last_shown:
            print(text, flush=True)
            self.last_shown = text

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
        members = json.loads(self.kubectl("get", "pool", "cooperative", "-o", "json"))["spec"][
            "members"
        ]
        index = next(i for i, m in enumerate(members) if m["owner"] == owner)
        patch = [{"op": "replace", "path": f"/spec/members/{index}/reclaim", "value": reclaim}]
        self.kubectl("patch", "pool", "cooperative", "--type=json", "-p", json.dumps(patch))

    def run(self, duration: float | None) -> None:
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
        self.operator.start()

        say("the cooperative's pool, its communities' namespaces and their models")
        for name in ("namespaces.yaml", "pool-cooperative.yaml"):
            print(self.kubectl("apply", "-f", str(EXAMPLES / name)).strip())
        for path in sorted(EXAMPLES.glob("model-*.yaml")):
            print(self.kubectl("apply", "-f", str(path)).strip())
        print(self.kubectl("apply", "-f", "-", input=NEVER_FITS).strip())
        wait_for(lambda: "startup-h100" in self.members(), what="pool status")
        wait_for(lambda: "Invalid" in self.kubectl("get", "cmodel", "-A"), what="model verdicts")
        self.show(force=True)
        print("what each owner lends now (the university lends only in its windows):")
        print(self.members())

        say("the start-up reclaims its H100s")
        self.set_reclaim("startup-h100", True)
        wait_for(lambda: "Reclaimed" in self.members(), what="reclaim")
        print(self.members())
        print(self.kubectl("get", "events", "--field-selector", "reason=Reclaimed").strip())
        say("... and lends them again")
        self.set_reclaim("startup-h100", False)
        wait_for(lambda: "Reclaimed" not in self.members(), what="lending again")
        print(self.members())

        say(
            "running: try `KUBECONFIG="
            + str(self.cp.kubeconfig)
            + " kubectl get pool,cmodel -A`; Ctrl-C stops everything"
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
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    demo = Demo(run_dir)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        demo.run(args.duration)
    except KeyboardInterrupt:
        say("Ctrl-C: stopping")
    except (ControlPlaneError, AssertionError) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        if demo.operator is not None:
            print(demo.operator.log_tail(), file=sys.stderr)
        return 1
    finally:
        demo.stop()
    say("stopped: control plane and operator are down")
    return 0
