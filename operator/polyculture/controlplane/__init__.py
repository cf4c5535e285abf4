"""A real local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler,
kwok) run as processes on 127.0.0.1: what ``make demo``, ``make cluster-up`` and the test
fixtures stand on. Nothing here is used by the operator at run time."""

from polyculture.controlplane.binaries import Binaries, locate, versions
from polyculture.controlplane.runner import ControlPlane, ControlPlaneError, pid_alive

__all__ = ["Binaries", "ControlPlane", "ControlPlaneError", "locate", "pid_alive", "versions"]
