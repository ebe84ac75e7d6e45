"""The listening socket the CLI binds before serving."""

from __future__ import annotations

import socket

import pytest

from exo_scaler.server import listen


def test_connections_to_the_pre_bound_socket_do_not_wait_for_delayed_acks() -> None:
    """Without TCP_NODELAY on what uvicorn accepts from a socket handed to it, each small
    webhook answer waited ~40 ms for the client's delayed ACK (the benchmark fell from ~2,000
    to ~180 webhooks/s); accepted sockets inherit it from the listener."""
    with listen("127.0.0.1", 0) as server, socket.create_connection(server.getsockname()):
        accepted, _ = server.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_port_in_use_is_an_oserror() -> None:
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            listen("127.0.0.1", port)
