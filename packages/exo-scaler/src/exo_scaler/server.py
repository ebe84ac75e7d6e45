"""Serving the app with uvicorn; SIGTERM/SIGINT end it cleanly (exit 0) within seconds."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette

# Webhook senders retry; there is nothing worth more than a few seconds of waiting at exit.
GRACEFUL_SHUTDOWN_SECONDS = 3


def serve(app: Starlette, host: str, port: int, *, log_level: str = "info") -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )
    uvicorn.Server(config).run()
