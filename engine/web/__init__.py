"""The web UI of a job: Flink's REST API, Prometheus metrics and a dashboard (ASGI).

Needs the optional extra ``streamlet[web]`` (starlette, uvicorn, prometheus-client).
``create_app(client)`` gives the ASGI app to mount in an asyncio application;
``serve_web_ui`` serves it on its own, as ``streamlet run --web-ui`` and
``env.execute(..., web_ui=...)`` do.
"""

from __future__ import annotations

try:
    import prometheus_client as _prometheus_client  # noqa: F401
    import starlette as _starlette  # noqa: F401
    import uvicorn as _uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the web UI needs the 'web' extra, which is not installed ({exc}): "
        "pip install 'streamlet[web]'"
    ) from exc

from streamlet.web.app import JobRegistry as JobRegistry
from streamlet.web.app import create_app as create_app
from streamlet.web.server import parse_address as parse_address
from streamlet.web.server import run_with_web_ui as run_with_web_ui
from streamlet.web.server import serve_web_ui as serve_web_ui

__all__ = ["JobRegistry", "create_app", "parse_address", "run_with_web_ui", "serve_web_ui"]
