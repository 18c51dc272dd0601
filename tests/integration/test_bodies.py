"""HTTP bodies Prosody does not hand over whole (issue #9 item 4): chunked bodies within and over
conference_request_max_body (16384 by default), with and without Connection: close, and a
Content-Length over Prosody's http_max_content_size (genconf.sh sets 1 MiB) refused before the
body is sent. Raw sockets: http.client cannot send a chunked body and stop halfway."""
import json
import socket
import time

import pytest
from conftest import new_room, start_server, stop_server

V1 = "/conference-request/v1"


def parse_responses(data):
    """[(status, headers, body)] of the complete HTTP responses in `data`, and the rest."""
    out = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return out, data
        head = data[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ")[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        if len(data) < end + 4 + length:
            return out, data
        out.append((status, headers, data[end + 4:end + 4 + length]))
        data = data[end + 4 + length:]


class Raw:
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def responses(self, n, timeout=10):
        """Reads until n responses arrived (or EOF / timeout); returns the responses."""
        deadline = time.monotonic() + timeout
        while True:
            got, _ = parse_responses(self.buf)
            if len(got) >= n or self.eof or time.monotonic() > deadline:
                return got
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def closed_after(self, timeout=5):
        """True if the server closes the connection (EOF) within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.eof:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk
        return self.eof

    def close(self):
        self.sock.close()


def head(extra=""):
    return ("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n%s\r\n" % (V1, extra)).encode()


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def health_request():
    return b"GET /conference-request/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n"


def refused(got, status, condition):
    assert [r[0] for r in got] == [status], got
    _, headers, body = got[0]
    assert json.loads(body)["error"] == condition
    assert headers.get("connection", "").lower() == "close"
    assert headers.get("access-control-allow-origin") == "*"


@pytest.mark.parametrize("connection", ["", "Connection: close\r\n", "Connection: keep-alive\r\n"])
@pytest.mark.parametrize("size", [100, 40000])
def test_chunked_body_is_answered_411_once_and_closed(server, connection, size):
    """Prosody 0.12.3 cannot hand a chunked request body to a module (README "HTTP bodies and
    connections"): the request gets one clear answer, never silence or two answers."""
    body = json.dumps({"room": new_room("chunked"), "properties": {"pad": "x" * size}}).encode()
    raw = Raw(server.http_port)
    try:
        raw.send(head("Transfer-Encoding: chunked\r\n" + connection) + chunked(body, 4096))
        got = raw.responses(1)
        refused(got, 411, "bad-request")
        assert b"Content-Length" in got[0][2]
        assert raw.closed_after()
        assert len(raw.responses(2, timeout=0.2)) == 1
    finally:
        raw.close()


def test_chunked_headers_alone_are_answered_at_once(server):
    raw = Raw(server.http_port)
    try:
        raw.send(head("Transfer-Encoding: chunked\r\n"))
        refused(raw.responses(1, timeout=5), 411, "bad-request")
        # the client goes on with its chunks: Prosody cannot parse them and closes
        raw.send(chunked(b"{}" * 10, 5))
        assert raw.closed_after()
    finally:
        raw.close()


def test_content_length_over_http_max_content_size_is_refused_before_the_body(server):
    raw = Raw(server.http_port)
    try:
        raw.send(head("Content-Length: %d\r\n" % (2 * 1024 * 1024)))  # and no body at all
        refused(raw.responses(1, timeout=5), 413, "policy-violation")
        assert raw.closed_after()
    finally:
        raw.close()


def test_content_length_over_http_max_content_size_with_connection_close(server):
    raw = Raw(server.http_port)
    try:
        raw.send(head("Content-Length: %d\r\nConnection: close\r\n" % (5 * 1024 * 1024)) + b"{" * 1000)
        refused(raw.responses(1, timeout=5), 413, "policy-violation")
        assert raw.closed_after()
    finally:
        raw.close()


def test_content_length_over_max_body_is_413_and_the_connection_stays(server):
    """Under http_max_content_size Prosody reads the body first; the answer is still 413."""
    raw = Raw(server.http_port)
    try:
        body = b"{" + b" " * 20000 + b"}"
        raw.send(head("Content-Length: %d\r\n" % len(body)) + body + health_request())
        got = raw.responses(2)
        assert [r[0] for r in got] == [413, 200], got
    finally:
        raw.close()


def test_server_serves_after_refused_bodies(server):
    raw = Raw(server.http_port)
    try:
        body = json.dumps({"room": new_room("after")}).encode()
        raw.send(head("Content-Length: %d\r\n" % len(body)) + body)
        got = raw.responses(1)
        assert [r[0] for r in got] == [200]
    finally:
        raw.close()


@pytest.fixture(scope="module")
def big_body_server():
    srv, _ = start_server("bigbody", "    conference_request_max_body = %d\n" % (2 * 1024 * 1024))
    try:
        yield srv
    finally:
        stop_server(srv)


def test_body_over_http_max_content_size_within_max_body_is_served(big_body_server):
    """max_body above Prosody's http_max_content_size (1 MiB here): Prosody streams such a body
    to the module, which collects it and serves the request."""
    body = (json.dumps({"room": new_room("big")}) + " " * (1536 * 1024)).encode()
    raw = Raw(big_body_server.http_port)
    try:
        raw.send(head("Content-Length: %d\r\n" % len(body)) + body + health_request())
        got = raw.responses(2)
        assert [r[0] for r in got] == [200, 200], got
        assert json.loads(got[0][2])["ready"] is True
        over = b" " * (3 * 1024 * 1024)
        raw.send(head("Content-Length: %d\r\n" % len(over)))
        refused(raw.responses(3, timeout=5)[2:], 413, "policy-violation")
    finally:
        raw.close()
