"""The local stack's ports, with real sockets: moto's server refuses a busy port at once (moto's own start waits
forever), and the stack's port check names the variable that moves each one."""

from __future__ import annotations

import socket
import time

import pytest
from stack.aws import serial_moto_server
from stack.runner import PortUnavailable, Stack, StackConfig, StartFailure


def listening_socket() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_moto_on_a_busy_port_raises_at_once() -> None:
    with listening_socket() as holder:
        server = serial_moto_server("127.0.0.1", holder.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(OSError):
            server.start()
        assert time.monotonic() - started < 2
        server.stop()  # nothing started: nothing to stop, no error


def test_moto_on_a_free_port_serves_and_stops() -> None:
    server = serial_moto_server("127.0.0.1", 0)
    server.start()
    host, port = server.get_host_and_port()
    with socket.create_connection((host, port), timeout=2):
        pass
    server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex((host, port)) != 0


PORTS = [("api_port", "API_PORT"), ("dynamodb_port", "DYNAMODB_PORT"), ("sandbox_port", "SANDBOX_PORT")]


@pytest.mark.parametrize(("field", "variable"), PORTS)
def test_a_busy_port_names_its_variable_and_a_free_one(field: str, variable: str) -> None:
    with listening_socket() as holder:
        busy = holder.getsockname()[1]
        config = StackConfig(api_port=0, dynamodb_port=0, sandbox_port=0)
        setattr(config, field, busy)
        with pytest.raises(PortUnavailable) as caught:
            Stack(config).check_ports()
    message = str(caught.value)
    assert message.startswith(f"port {busy} (") and f"set {variable}=" in message, message
    assert f"`{variable}=" in message and "make run`" in message, message


def test_the_sandbox_port_is_not_checked_without_the_sandbox() -> None:
    with listening_socket() as holder:
        config = StackConfig(api_port=0, dynamodb_port=0, sandbox_port=holder.getsockname()[1], sandbox=False)
        Stack(config).check_ports()


def test_two_listeners_on_one_port_are_refused() -> None:
    config = StackConfig(api_port=4999, dynamodb_port=0, sandbox_port=4999)
    with pytest.raises(StartFailure, match="API_PORT and SANDBOX_PORT are both 4999"):
        Stack(config).check_ports()
