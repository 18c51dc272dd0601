"""Rate limits (docs/protocol.md §2.3, issue #9 item 3): per IP over HTTP, per JID over XMPP (per IP for
anonymous sessions), requests and room creations counted separately, admins exempt, refusals
answered resource-constraint (wait) / 429 + Retry-After and counted; and a flood of new rooms from
one client with the default limits. HTTP clients get distinct IPs through X-Forwarded-For
(loopback is one of mod_http's default trusted_proxies)."""
import json
import re
import socket
import time

import pytest

from conftest import Http, Xmpp, conference_of, error_of, new_room, start_server, stop_server

# Small buckets that barely refill during a test (one token per 20 s).
LIMITS = '''
    conference_request_rate_limits = { requests = 0.05, requests_burst = 10, creations = 0.05, creations_burst = 3 }
'''


@pytest.fixture(scope="module")
def limited():
    srv, _ = start_server("ratelimit", LIMITS, env_extra={"CR_RATE_LIMITS": ""})
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def lweb(limited):
    h = Http(limited.http_port)
    yield h
    h.close()


def post_as(web, ip, room):
    return web.post({"room": room}, headers={"X-Forwarded-For": ip})


def health(web):
    return web.request("GET", "/conference-request/v1/health").json()


def assert_limited_http(res):
    assert res.status == 429, (res.status, res.body)
    assert res.json()["error"] == "resource-constraint"
    retry = res.header("retry-after")
    assert retry is not None and retry.isdigit() and int(retry) >= 1, retry


def assert_limited_xmpp(reply):
    assert reply["type"] == "error"
    etype, cond, text = error_of(reply)
    assert (etype, cond) == ("wait", "resource-constraint"), (etype, cond, text)
    assert text and "retry in" in text


def test_http_requests_are_limited_per_ip(lweb):
    room = new_room("rl-ip")
    for _ in range(10):
        assert post_as(lweb, "10.9.0.1", room).status == 200
    assert_limited_http(post_as(lweb, "10.9.0.1", room))
    # bad requests count too: the limit is checked before the request is parsed
    assert_limited_http(lweb.post("not json", headers={"X-Forwarded-For": "10.9.0.1"}))
    # another IP has its own bucket
    assert post_as(lweb, "10.9.0.2", room).status == 200


def test_xmpp_requests_are_limited_per_jid(limited):
    alice = Xmpp(limited, "alice@localhost")
    bob = Xmpp(limited, "bob@localhost")
    try:
        room = new_room("rl-jid")
        for _ in range(10):
            assert conference_of(alice.conference(room)).get("ready") == "true"
        assert_limited_xmpp(alice.conference(room))
        # another connection of the same user shares the bucket (per bare JID)
        alice2 = Xmpp(limited, "alice@localhost")
        try:
            assert_limited_xmpp(alice2.conference(room))
        finally:
            alice2.close()
        assert conference_of(bob.conference(room)).get("ready") == "true"
    finally:
        alice.close()
        bob.close()


def test_creations_are_limited_separately_over_http(lweb):
    rooms = [new_room("rl-create") for _ in range(4)]
    for room in rooms[:3]:
        assert post_as(lweb, "10.9.1.1", room).status == 200
    assert_limited_http(post_as(lweb, "10.9.1.1", rooms[3]))
    # requests for rooms that exist are still served: the request budget is not spent
    assert post_as(lweb, "10.9.1.1", rooms[0]).status == 200
    # and the refused room was not created
    assert post_as(lweb, "10.9.1.2", rooms[3]).status == 200


def test_creations_are_limited_separately_over_xmpp(limited):
    bob = Xmpp(limited, "bob@localhost")
    try:
        rooms = [new_room("rl-create-x") for _ in range(4)]
        for room in rooms[:3]:
            assert conference_of(bob.conference(room)).get("ready") == "true"
        assert_limited_xmpp(bob.conference(rooms[3]))
        assert bob.disco_info(rooms[3]) == "item-not-found"
        assert conference_of(bob.conference(rooms[0])).get("ready") == "true"
    finally:
        bob.close()


def test_admins_are_exempt(limited):
    admin = Xmpp(limited, "admin@localhost")
    try:
        for _ in range(8):  # 8 new rooms, 16 requests: over both buckets
            room = new_room("rl-admin")
            assert conference_of(admin.conference(room)).get("ready") == "true"
            assert conference_of(admin.conference(room)).get("ready") == "true"
    finally:
        admin.close()


def test_anonymous_sessions_are_limited_per_ip(limited):
    """SASL ANONYMOUS gives a fresh JID per connection: those sessions are keyed by their IP."""
    room = new_room("rl-anon")
    first = Xmpp(limited, "guest.localhost", password=None)
    try:
        for _ in range(10):
            assert conference_of(first.conference(room)).get("ready") == "true"
        assert_limited_xmpp(first.conference(room))
    finally:
        first.close()
    second = Xmpp(limited, "guest.localhost", password=None)
    try:
        assert_limited_xmpp(second.conference(room))
    finally:
        second.close()


def test_refusals_are_counted(limited, lweb):
    before = health(lweb)
    assert_limited_http(lweb.post({"room": new_room()}, headers={"X-Forwarded-For": "10.9.0.1"}))
    after = health(lweb)
    assert after["rate_limited_requests"] == before["rate_limited_requests"] + 1
    assert after["rate_limited_creations"] >= 1
    shown = limited.shell('stats:show("mod_conference_request/rate_limited")')
    for name in ("rate_limited_requests", "rate_limited_creations"):
        assert "mod_conference_request/" + name in shown, shown


# ------------------------------------------------------------------------------ defaults: a flood
@pytest.fixture(scope="module")
def defaults():
    srv, _ = start_server("ratelimit-defaults", env_extra={"CR_RATE_LIMITS": ""})
    try:
        yield srv
    finally:
        stop_server(srv)


def pipelined(port, bodies, xff=None, meanwhile=None):
    """Sends the POSTs pipelined on one connection, calls `meanwhile()` while the server works
    through them; returns their (status, retry_after) in order."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    extra = "X-Forwarded-For: %s\r\n" % xff if xff else ""
    reqs = []
    for b in bodies:
        data = json.dumps(b).encode()
        reqs.append(("POST /conference-request/v1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %d\r\n\r\n" % (extra, len(data))).encode() + data)
    sock.sendall(b"".join(reqs))
    if meanwhile:
        meanwhile()
    out, buf = [], b""
    try:
        while len(out) < len(bodies):
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                headers = buf[:end].decode("latin-1")
                length = int(re.search(r"(?i)content-length: *(\d+)", headers).group(1))
                if len(buf) >= end + 4 + length:
                    retry = re.search(r"(?i)retry-after: *(\d+)", headers)
                    out.append((int(headers.split(" ")[1]), retry and int(retry.group(1))))
                    buf = buf[end + 4 + length:]
                    continue
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    finally:
        sock.close()
    return out


def test_a_flood_of_new_rooms_from_one_client_is_refused_early(defaults):
    """20,000 requests for new rooms from one client with the default limits (requests 20/s,
    burst 200; creations 0.2/s, burst 30): all answered, the rest 429 with Retry-After, the rooms
    created stay bounded, and other clients are served meanwhile and afterwards."""
    web = Http(defaults.http_port)
    try:
        before = health(web)["rooms_created"]
        started = time.monotonic()
        answers = []
        waits = []

        def good_client():  # another client is served while the flood goes on
            t = time.monotonic()
            assert post_as(web, "10.7.0.1", new_room("good")).status == 200
            waits.append(time.monotonic() - t)
        for _ in range(20):
            answers += pipelined(defaults.http_port, [{"room": new_room("flood")} for _ in range(1000)],
                                 meanwhile=good_client)
        assert max(waits) < 1.0, waits
        elapsed = time.monotonic() - started
        assert len(answers) == 20000
        ok = sum(1 for s, _ in answers if s == 200)
        limited = [r for s, r in answers if s == 429]
        assert ok + len(limited) == 20000, set(s for s, _ in answers)
        assert all(r is not None and r >= 1 for r in limited)
        created = health(web)["rooms_created"] - before - 20  # the good client made 20
        print("flood: %d requests in %.1f s: %d answered 200, %d answered 429, %d rooms created; "
              "good client answered in %.0f ms at most" % (len(answers), elapsed, ok, len(limited), created,
                                                          max(waits) * 1000))
        # creations: burst 30 + 0.2/s; requests: burst 200 + 20/s
        assert created <= 30 + 0.2 * elapsed + 2, (created, elapsed)
        assert ok <= 30 + 0.2 * elapsed + 2, (ok, elapsed)
        assert ok >= 30
        t = time.monotonic()
        assert post_as(web, "10.7.0.2", new_room("after")).status == 200
        assert time.monotonic() - t < 1.0
    finally:
        web.close()


# ------------------------------------------------------------------- external focus: exempt
def test_the_external_focus_is_exempt():
    """The focus's own account is never refused, though its requests are over both buckets;
    another user on the same server is."""
    srv, _ = start_server("ratelimit-ext", LIMITS + "    conference_request_ready_wait = 1\n",
                          env_extra={"CR_RATE_LIMITS": "", "CR_FOCUS": "focus@auth.localhost"})
    try:
        focus = Xmpp(srv, "focus@auth.localhost")
        try:
            for _ in range(12):  # 12 requests for 12 new rooms
                reply = focus.conference(new_room("rl-focus"))
                # the test client answers its own notification with an error, which is relayed:
                # anything but a rate limit
                assert reply["type"] == "result" or error_of(reply)[1] != "resource-constraint", reply
        finally:
            focus.close()
        alice = Xmpp(srv, "alice@localhost")
        try:
            room = new_room("rl-ext")
            for _ in range(10):
                assert alice.conference(room)["type"] == "result"
            assert_limited_xmpp(alice.conference(room))
        finally:
            alice.close()
    finally:
        stop_server(srv)
