"""A Ray Serve application that turns unhealthy on demand, for the fault-path tests.

Import path ``faulty_app:app``, ingress deployment ``Model``. Its health check fails while the
file named by ``FAULTY_SERVE_SICK_FILE`` exists, so a test makes a running application
unhealthy (and healthy again) by creating (and removing) that file.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request

from ray import serve

SICK_FILE_ENV = "FAULTY_SERVE_SICK_FILE"


@serve.deployment(
    name="Model",
    ray_actor_options={"num_cpus": 0},
    health_check_period_s=1,
    health_check_timeout_s=5,
)
class Model:
    def check_health(self) -> None:
        path = os.environ.get(SICK_FILE_ENV, "")
        if path and Path(path).exists():
            raise RuntimeError(f"unhealthy while {path} exists")

    async def __call__(self, request: Request) -> dict[str, object]:
        return {"text": request.query_params.get("text", "")}


app = Model.bind()  # type: ignore[attr-defined]  # serve.deployment returns a Deployment
