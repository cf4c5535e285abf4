"""A tiny Ray Serve application whose answers are deterministic, for tests and the demo.

Import path ``serve_app:app``; the ingress deployment is named ``Model`` (the Polyculture
backend sets its replicas and GPUs per replica through Serve's declarative config).

``GET <route>?text=abc`` answers JSON ``{"model": "polyculture-echo", "text": "abc",
"reversed": "cba", "length": 3}`` — the same on every replica, so a test can assert it.
``GET <route>/whoami`` names the replica that answered (to see scaling at work).
"""

from __future__ import annotations

from starlette.requests import Request

from ray import serve

MODEL_NAME = "polyculture-echo"


def answer(text: str) -> dict[str, object]:
    """The application's output for ``text``: pure, so the tests can compute it too."""
    return {"model": MODEL_NAME, "text": text, "reversed": text[::-1], "length": len(text)}


@serve.deployment(name="Model", ray_actor_options={"num_cpus": 0})
class Model:
    async def __call__(self, request: Request) -> dict[str, object]:
        if request.url.path.rstrip("/").endswith("/whoami"):
            ctx = serve.get_replica_context()
            return {"model": MODEL_NAME, "replica": ctx.replica_tag}
        return answer(request.query_params.get("text", ""))


app = Model.bind()  # type: ignore[attr-defined]  # serve.deployment returns a Deployment
