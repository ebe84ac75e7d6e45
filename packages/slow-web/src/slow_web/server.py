"""Runs the main and admin uvicorn servers in one process, with our own signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Generator
from typing import Literal

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from slow_web.admin import create_admin_app
from slow_web.app import Runtime, create_app
from slow_web.settings import Settings

logger = logging.getLogger("slow_web.server")

# After the drain nothing is in flight any more; this only bounds closing idle connections.
_CLOSE_CONNECTIONS_SECONDS = 2


class StartupError(Exception):
    """The server cannot start (address in use, app start-up failed); one line for the user."""


class _Server(uvicorn.Server):
    """uvicorn would stop at once on SIGTERM; we turn signals into a drain instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str, port: int, what: str, option: str) -> socket.socket:
    """Bind before anything starts, so 'address in use' is one clear error, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise StartupError(
            f"cannot listen on {host}:{port} for {what} ({error.strerror}): choose another "
            f"{option} or stop what holds it"
        ) from None
    sock.set_inheritable(False)
    return sock


def run(settings: Settings) -> int:
    """Serve until drained after SIGTERM/SIGINT or an admin drain with exit; returns exit code."""
    main_socket = bind_socket(settings.host, settings.port, "the web app", "--port")
    admin_socket: socket.socket | None = None
    try:
        if settings.admin_token:
            admin_socket = bind_socket(
                settings.admin_host, settings.admin_port, "the admin API", "--admin-port"
            )
        return asyncio.run(_serve(settings, main_socket, admin_socket))
    finally:
        main_socket.close()
        if admin_socket is not None:
            admin_socket.close()


def _config(
    app: ASGIApp, sock: socket.socket, *, lifespan: Literal["on", "off"], access_log: bool
) -> uvicorn.Config:
    host, port = sock.getsockname()[:2]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        log_config=None,
        access_log=access_log,
        server_header=False,
        timeout_graceful_shutdown=_CLOSE_CONNECTIONS_SECONDS,
    )


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(
    settings: Settings, main_socket: socket.socket, admin_socket: socket.socket | None
) -> int:
    registry = CollectorRegistry()
    runtime = Runtime.build(settings, registry)
    main_server = _Server(
        _config(
            create_app(settings, registry, runtime),
            main_socket,
            lifespan="on",
            access_log=settings.access_log,
        )
    )
    servers: list[tuple[_Server, socket.socket]] = [(main_server, main_socket)]
    if admin_socket is not None:
        admin_app = create_admin_app(runtime)
        servers.append(
            (
                _Server(_config(admin_app, admin_socket, lifespan="off", access_log=True)),
                admin_socket,
            )
        )

    def stop_all(force: bool = False) -> None:
        for server, _ in servers:
            server.should_exit = True
            server.force_exit = server.force_exit or force

    interrupts = 0

    def on_signal(signum: int) -> None:
        nonlocal interrupts
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            interrupts += 1
        # A second Ctrl-C means "now"; repeated SIGTERMs (supervisors, `timeout`, kill scripts)
        # must not cut the drain short.
        if interrupts > 1:
            logger.warning("second SIGINT: stopping now without waiting for in-flight requests")
            runtime.pool.abandon()
            stop_all(force=True)
            return
        if runtime.drain.draining and runtime.drain.exit_after_drain:
            logger.info("%s received, already draining", name)
            return
        runtime.drain.begin(exit_after=True, reason=name)

    async def stop_when_drained() -> None:
        await runtime.drain.exit_requested.wait()
        logger.info("drained, shutting down")
        stop_all()

    async def serve_one(server: _Server, sock: socket.socket) -> bool:
        try:
            await server.serve(sockets=[sock])
        except SystemExit:
            # uvicorn exits this way when the app's start-up fails; it already logged why.
            pass
        finally:
            stop_all()
        return server.started

    async def announce_when_started() -> None:
        while not main_server.started:
            await asyncio.sleep(0.01)
        admin = _url(admin_socket) if admin_socket is not None else "disabled (no admin token)"
        logger.info(
            "ready instance=%s listening=%s admin=%s workers=%d queue_limit=%d",
            settings.instance_name,
            _url(main_socket),
            admin,
            runtime.pool.workers,
            runtime.pool.queue_limit,
        )

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    helpers = [
        loop.create_task(stop_when_drained()),
        loop.create_task(announce_when_started()),
    ]
    try:
        started = await asyncio.gather(*(serve_one(server, sock) for server, sock in servers))
    finally:
        for helper in helpers:
            helper.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if main_server.started and main_server.force_exit:
            # uvicorn skips the app's shutdown on a forced stop; run it so nothing is left
            # half-closed when the loop ends.
            await main_server.lifespan.shutdown()
        # A forced stop skips the app's shutdown; workers must not outlive the process.
        await runtime.pool.stop()
    if not all(started):
        raise StartupError("start-up failed (the log line above says why): fix that, start again")
    logger.info("stopped")
    return 0
