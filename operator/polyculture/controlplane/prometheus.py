"""A real Prometheus on 127.0.0.1 that scrapes the operator, and promtool: for tests and tools.

The binaries come from Debian's ``prometheus`` package, unpacked into the cache by
``hack/fetch-prometheus.sh`` (``make prometheus``); ``ensure()`` runs it when they are missing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from polyculture.controlplane.binaries import cache_dir
from polyculture.controlplane.runner import die_with_parent, free_port
from polyculture.controlplane.waiting import wait_for

FETCH_SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "fetch-prometheus.sh"


@dataclass(frozen=True, slots=True)
class PrometheusBinaries:
    prometheus: Path
    promtool: Path


def locate() -> PrometheusBinaries | None:
    """The newest cached prometheus/promtool pair, or None."""
    bin_dir = cache_dir() / "bin"
    for server in sorted(bin_dir.glob("prometheus-*"), reverse=True):
        tool = bin_dir / server.name.replace("prometheus-", "promtool-", 1)
        if tool.is_file():
            return PrometheusBinaries(server, tool)
    return None


def ensure() -> PrometheusBinaries:
    """The binaries, fetched into the cache first when missing."""
    found = locate()
    if found is None:
        subprocess.run(["bash", str(FETCH_SCRIPT)], check=True)
        found = locate()
    if found is None:
        raise RuntimeError(f"{FETCH_SCRIPT} left no prometheus/promtool in {cache_dir()}/bin")
    return found


def operator_crds() -> list[Path]:
    """The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs (fetched when missing)."""
    found = sorted((cache_dir() / "crds").glob("prometheus-operator-*/*.yaml"))
    if len(found) < 2:
        subprocess.run(["bash", str(FETCH_SCRIPT)], check=True)
        found = sorted((cache_dir() / "crds").glob("prometheus-operator-*/*.yaml"))
    return found


@dataclass
class Prometheus:
    """A Prometheus server scraping ``targets`` (host:port) every ``interval_s`` seconds."""

    run_dir: Path
    targets: list[str]
    interval_s: float = 1.0
    job: str = "polyculture-operator"
    rule_files: list[Path] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binaries = ensure()
        self.port = self.port or free_port()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        interval = f"{int(self.interval_s * 1000)}ms"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(f) for f in self.rule_files],
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": self.targets}]}
            ],
        }
        config_file = self.run_dir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        with (self.run_dir / "prometheus.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(binaries.prometheus),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.run_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        wait_for(self._ready, 30, "prometheus ready")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; returns the result vector (raises on a query error)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str, **labels: str) -> float | None:
        """The value of the one series of ``expr`` matching ``labels`` (None when absent)."""
        for series in self.query(expr):
            if all(series["metric"].get(k) == v for k, v in labels.items()):
                return float(series["value"][1])
        return None

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/alerts", timeout=10) as resp:
            alerts: list[dict[str, Any]] = json.load(resp)["data"]["alerts"]
            return alerts

    def log_tail(self, lines: int = 30) -> str:
        log = self.run_dir / "prometheus.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
