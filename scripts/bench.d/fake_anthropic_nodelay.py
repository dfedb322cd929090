#!/usr/bin/python3
"""tests/fakes/fake_anthropic.py with TCP_NODELAY on every accepted socket (scripts/bench).

The fake writes each SSE event with its own send(); without TCP_NODELAY,
Nagle's algorithm holds the second small write until the client ACKs the
first, and a client that delays its ACK (libcurl's upstream connection in
ccr's token proxy does) waits ~40 ms per streamed answer.  That stall is the
fake's, not the proxy's, so the benchmark removes it.  Same arguments as
the fake.
"""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fakes"))
import fake_anthropic  # noqa: E402

_get_request = fake_anthropic.FakeServer.get_request


def get_request(self):
    sock, addr = _get_request(self)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, addr


fake_anthropic.FakeServer.get_request = get_request

if __name__ == "__main__":
    sys.exit(fake_anthropic.main())
