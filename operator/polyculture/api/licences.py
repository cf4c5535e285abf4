"""Licences of artifacts: SPDX identifiers and expressions, checked against the SPDX list.

The check uses ``license-expression`` with the SPDX index it bundles (nothing is downloaded).
``LicenseRef-<name>`` stands for a licence outside the list (SPDX's own rule for custom
licences such as a model's community licence); any other unknown key is a mistake.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from license_expression import Licensing, get_spdx_licensing

_LICENSE_REF: Final = re.compile(r"^(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$")


@functools.cache
def _licensing() -> Licensing:
    return get_spdx_licensing()


def licence_problem(text: str) -> str | None:
    """Why ``text`` is not an SPDX licence identifier or expression; None if it is one."""
    if not text.strip():
        return "must name a licence: an SPDX identifier or expression such as Apache-2.0"
    try:
        result = _licensing().validate(text)
    except Exception:  # the parser has raised AttributeError on some malformed input
        return f"{text!r} is not an SPDX licence expression (e.g. Apache-2.0 OR MIT)"
    unknown = [s for s in result.invalid_symbols if s and not _LICENSE_REF.match(s)]
    other = [e for e in result.errors if not e.startswith("Unknown license key")]
    if other or (result.errors and not result.invalid_symbols):
        return f"{text!r} is not an SPDX licence expression (e.g. Apache-2.0 OR MIT)"
    if unknown:
        return (
            f"{', '.join(unknown)} is not an SPDX licence identifier (e.g. Apache-2.0, MIT, "
            "CC-BY-4.0; LicenseRef-<name> for a licence outside the SPDX list)"
        )
    return None


def check_licence(text: str) -> str:
    """Pydantic validator: ``text`` if it is an SPDX licence, else ``ValueError``."""
    problem = licence_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text
