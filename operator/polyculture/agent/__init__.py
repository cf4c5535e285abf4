"""The node agent (``polyculture agent``), run by the chart as a DaemonSet on GPU nodes.

It reads the node's GPUs through NVML and publishes them on its own Node, for the
operator's pool reconciliation to read. Modules, bottom to top:

- ``discovery``: the pure model (frozen dataclasses) and the health rules;
- ``nvml_reader``: NVML queries -> ``NodeDiscovery`` (refusals become unknown values);
- ``labels``: pure builders of the Node labels and annotation — **the label contract
  the operator reads is documented there**;
- ``publisher``: the only Kubernetes access: get and patch of its own Node;
- ``metrics``: Prometheus metrics;
- ``cli``: ``main(argv)``, the refresh loop.
"""
