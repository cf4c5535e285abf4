"""Prometheus metrics of the node agent: its GPU readings and its own work.

Each GPU's series carry ``gpu`` (NVML index), ``uuid`` and ``product``. A reading that is
unknown (refused by NVML) has no sample at all rather than a made-up zero, and the series of
a GPU that disappeared are dropped at the next update. The registry is private to the agent
so that tests can build as many as they like.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from polyculture.agent.discovery import GPU, NodeDiscovery

_GPU_LABELS = ("gpu", "uuid", "product")


class AgentMetrics:
    """The agent's metrics; ``update`` after each discovery, ``serve`` to expose them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.temperature = Gauge(
            "polyculture_gpu_temperature_celsius", "GPU core temperature.", _GPU_LABELS,
            registry=r,
        )  # fmt: skip
        self.power = Gauge(
            "polyculture_gpu_power_watts", "GPU power draw.", _GPU_LABELS, registry=r
        )
        self.memory = Gauge(
            "polyculture_gpu_memory_total_bytes", "GPU memory.", _GPU_LABELS, registry=r
        )
        self.ecc = Gauge(
            "polyculture_gpu_ecc_uncorrected_errors",
            "Uncorrectable ECC errors (counter=volatile: since the driver loaded; "
            "counter=aggregate: lifetime).",
            (*_GPU_LABELS, "counter"),
            registry=r,
        )
        self.healthy = Gauge(
            "polyculture_gpu_healthy",
            "1 when the GPU counts as capacity (ok or degraded), 0 when unhealthy.",
            _GPU_LABELS,
            registry=r,
        )
        self.gpus = Gauge("polyculture_node_gpus", "GPUs NVML shows on this node.", registry=r)
        self.healthy_gpus = Gauge(
            "polyculture_node_gpus_healthy", "GPUs counted as capacity.", registry=r
        )
        self.last_discovery = Gauge(
            "polyculture_agent_last_discovery_timestamp_seconds",
            "When the GPUs were last read successfully (Unix time).",
            registry=r,
        )
        self.discoveries = Counter(
            "polyculture_agent_discoveries", "GPU discoveries, by result.", ("result",),
            registry=r,
        )  # fmt: skip
        self.publishes = Counter(
            "polyculture_agent_node_publishes",
            "Publications to the Node, by result (patched, unchanged, error).",
            ("result",),
            registry=r,
        )

    def update(self, discovery: NodeDiscovery, *, now: float) -> None:
        """Replace the GPU series with this discovery's readings, taken at ``now``."""
        for gauge in (self.temperature, self.power, self.memory, self.ecc, self.healthy):
            gauge.clear()
        for gpu in discovery.gpus:
            labels = _labels(gpu)
            _set(self.temperature, labels, gpu.temperature_c)
            _set(self.power, labels, gpu.power_w)
            memory = None if gpu.memory_total_mib is None else gpu.memory_total_mib * 1024**2
            _set(self.memory, labels, memory)
            _set(self.ecc, (*labels, "volatile"), gpu.ecc_uncorrected_volatile)
            _set(self.ecc, (*labels, "aggregate"), gpu.ecc_uncorrected_aggregate)
            self.healthy.labels(*labels).set(1 if gpu.usable else 0)
        self.gpus.set(discovery.count)
        self.healthy_gpus.set(discovery.healthy_count)
        self.last_discovery.set(now)
        self.discoveries.labels("ok").inc()

    def unavailable(self) -> None:
        """NVML could not be read: no GPU series, none healthy."""
        for gauge in (self.temperature, self.power, self.memory, self.ecc, self.healthy):
            gauge.clear()
        self.healthy_gpus.set(0)
        self.discoveries.labels("nvml_unavailable").inc()

    def serve(self, *, port: int, address: str) -> None:
        """Expose ``/metrics`` on ``address:port`` from a daemon thread."""
        start_http_server(port, addr=address, registry=self.registry)


def _labels(gpu: GPU) -> tuple[str, str, str]:
    return (str(gpu.index), gpu.uuid or "", gpu.name or "")


def _set(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is not None:
        gauge.labels(*labels).set(value)
