"""GPU product names: the one normal form the node agent labels and the pools match.

NVML reports names such as ``NVIDIA H100 80GB HBM3``, ``NVIDIA H200`` or ``Tesla T4 (PCIe)``.
A Node label value allows only letters, digits and ``-_.`` (at most 63, alphanumeric at both
ends), so the node agent publishes ``product_label(name)`` in ``nvidia.com/gpu.product`` (GPU
Feature Discovery's convention: spaces become ``-``), and a pool's ``gpuClasses[].products``
match a node when both sides have the same ``product_label``: a pool may list the NVML name or
the label value, with or without parentheses, and still see the agent's node.
"""

from __future__ import annotations

import functools
import re
from typing import Final

LABEL_VALUE_MAX: Final = 63
_NOT_LABEL_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")  # whitespace and punctuation
_RUNS_OF_DASHES: Final = re.compile(r"-{2,}")
_UNSAFE_ENDS: Final = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


@functools.lru_cache(maxsize=4096)
def product_label(name: str) -> str:
    """The label value of a GPU product name: each run of characters a label cannot hold
    becomes one ``-``, at most 63 characters, alphanumeric at both ends (may be empty)."""
    value = _RUNS_OF_DASHES.sub("-", _NOT_LABEL_SAFE.sub("-", name.strip()))
    value = value[:LABEL_VALUE_MAX]
    return _UNSAFE_ENDS.sub("", value)


def same_product(a: str, b: str) -> bool:
    """Whether two spellings name one product (NVML name, label value, any case)."""
    key = product_label(a).casefold()
    return bool(key) and key == product_label(b).casefold()
