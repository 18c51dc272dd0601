"""Bounds an outsider pushes against (issue 9, items 1-2), reproduced at a scale CI can afford on a
real Prosody: the legacy outsider cache under a presence flood (RSS of the Prosody process, from
/proc/<pid>/status), a room-creation flood with Prosody's default MUC settings, a registry held
full by a client touching its own rooms, rooms the focus creates kept out of mod_muc's live cache
(reload, unload, temporary), and an external-focus room the waiter bounds refused (the empty-room
timer that requests do not extend is in test_focus.py). CR_FLOOD_ROOMS=N changes the flood's size,
CR_FLOOD_TRACE=1 prints its progress."""
import base64
import os
import re
import select
import socket
import threading
import time
import uuid

import pytest

from conftest import MUC, Http, Xmpp, conference_of, new_room, start_server, stop_server
from legacy_client import Client, query_children, register

NS_CONF_FOCUS = "http://jitsi.org/protocol/focus"


class RawXmpp:
    """A bare-socket XMPP client (SASL ANONYMOUS on guest.localhost, or PLAIN): fast enough to
    flood the server, and it never parses what it gets back beyond counting IQ replies."""

    def __init__(self, port, domain="guest.localhost", user=None, password="secret", resource=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.domain = domain
        self._open()
        self._read_until(b"</stream:features>")
        if user:
            token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
            self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % token)
        else:
            self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
        self._read_until(b"<success")
        self.buf = b""
        self._open()
        self._read_until(b"</stream:features>")
        res = "<resource>%s</resource>" % resource if resource else ""
        self.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>%s</bind></iq>" % res)
        data = self._read_until(b"</iq>")
        self.jid = re.search(rb"<jid>([^<]+)</jid>", data).group(1).decode()
        self.buf = b""

    def _open(self):
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>" % self.domain)

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("stream closed while waiting for %r: %r" % (marker, self.buf[-500:]))
            self.buf += chunk
        return self.buf

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def legacy_enter(self, room, nick):
        """A legacy jabber:iq:conference set; returns everything received up to a ping sent after
        its result (the room's presences to us included)."""
        self.buf = b""
        self.send("<iq type='set' id='enter' to='%s'><query xmlns='jabber:iq:conference'><nick>%s</nick></query></iq>"
                  % (room, nick))
        self._read_until(b"id='enter'")
        self.send("<iq type='get' id='barrier' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        data = self._read_until(b"id='barrier'").decode()
        self.buf = b""
        return data

    def ping(self):
        """Returns once the server has processed everything sent before (its answer to a ping)."""
        self.buf = b""
        self.send("<iq type='get' id='barrier' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        self._read_until(b"id='barrier'")
        self.buf = b""

    def flood_conference_requests(self, rooms, timeout, while_answering=None):
        """Sends one conference IQ per room as fast as the socket takes them while a reader thread
        counts the replies; returns (replies, errors) once all arrived or `timeout` passed.
        `while_answering()` runs once everything is sent (the server still working through it)."""
        counts = {"replies": 0, "errors": 0}
        t0 = time.monotonic()
        done = threading.Event()
        total = len(rooms)

        def reader():
            tail = b""
            deadline = time.monotonic() + timeout
            while counts["replies"] < total and time.monotonic() < deadline:
                readable, _, _ = select.select([self.sock], [], [], 0.5)
                if not readable:
                    continue
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    break
                data = tail + chunk
                before = counts["replies"] // 2500
                counts["replies"] += data.count(b"</iq>")
                if counts["replies"] // 2500 != before and os.environ.get("CR_FLOOD_TRACE"):
                    print("  %d replies at %.2f s" % (counts["replies"], time.monotonic() - t0))
                counts["errors"] += data.count(b"type='error'")
                tail = data[-16:]
                # a marker split across chunks is counted once: drop what was already counted
                if tail.endswith(b"</iq>"):
                    tail = b""
                elif b"</iq>" in tail:
                    tail = tail[tail.rindex(b"</iq>") + 5:]
            done.set()

        self.sock.settimeout(None)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        batch = []
        for i, room in enumerate(rooms):
            batch.append("<iq type='set' id='f%d' to='focus.localhost'><conference xmlns='%s' room='%s'/></iq>"
                         % (i, NS_CONF_FOCUS, room))
            if len(batch) == 200:
                self.send("".join(batch))
                batch = []
        if batch:
            self.send("".join(batch))
        if while_answering:
            while_answering(counts["replies"])
        done.wait(timeout + 5)
        return counts["replies"], counts["errors"]

    def close(self):
        try:
            self.send("</stream:stream>")
            self.sock.close()
        except OSError:
            pass


def pid_of(server):
    with open(os.path.join(server.dir, "data", "prosody.pid")) as f:
        return int(f.read().strip())


def rss_kib(server):
    """VmRSS of the Prosody process after a full Lua collection (what is still held)."""
    server.shell('>collectgarbage("collect")')
    with open("/proc/%d/status" % pid_of(server)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def timed_post(server, room):
    """One good HTTP request on a fresh connection: (status, ready, seconds)."""
    h = Http(server.http_port)
    try:
        t0 = time.monotonic()
        r = h.post({"room": room})
        return r.status, r.json().get("ready"), time.monotonic() - t0
    finally:
        h.close()


# Rate limits off (conftest's default CR_RATE_LIMITS=false), the MUC as genconf.sh sets it up
# (storage = "memory", muc_room_cache_size left at its default 100), and a timeout long enough
# that flood rooms are all alive at once.
FLOOD_CONFIG = "    conference_request_max_rooms = 100000\n"


@pytest.fixture(scope="module")
def flood_server():
    srv, _ = start_server("bounds-flood", FLOOD_CONFIG, env_extra={"CR_EMPTY_ROOM_TIMEOUT": "120",
                                                                   "CR_LOG_LEVEL": "info"})
    try:
        yield srv
    finally:
        stop_server(srv)


# ---------------------------------------------------------------------------- legacy outsiders
PRESENCES = 40
SHOWS_PER_PRESENCE = 5000  # 35 KB stanzas; the old code kept 200,000 cloned <show/> (~60 MB)


def test_legacy_presence_flood_keeps_prosody_rss_bounded(flood_server):
    guest = RawXmpp(flood_server.c2s_port)
    guest.ping()
    before = rss_kib(flood_server)
    shows = "<show/>" * SHOWS_PER_PRESENCE
    status = "<status>%s</status>" % ("x" * 100000)
    for i in range(PRESENCES):
        guest.send("<presence to='outsider-%d-%s@%s'>%s%s</presence>" % (i, uuid.uuid4().hex[:6], MUC, shows, status))
    guest.ping()
    during = rss_kib(flood_server)
    guest.close()
    time.sleep(0.5)
    after = rss_kib(flood_server)
    grown, kept = during - before, after - before
    print("RSS KiB: before %d, after the flood %d (+%d), after disconnect %d (+%d)" % (
        before, during, grown, after, kept))
    assert grown < 4096, "the legacy outsider cache grew Prosody by %d KiB" % grown
    assert kept < 4096, "Prosody kept %d KiB after the flooding guest left" % kept


def test_legacy_outsider_summary_one_show_one_truncated_status(flood_server):
    room = new_room("outsider")
    c = Client(flood_server, "admin@localhost/outsider")
    try:
        long_status = "é" * 1000  # 2000 bytes: cut to 1023 bytes at a character boundary = 511 × é
        c.raw("<presence to='%s'><show>bogus</show><show>away</show><status>%s</status><status>second</status>"
              "<priority>5</priority></presence>" % (room, long_status))
        c.barrier()
        assert query_children(c.legacy_set(room, ["lucy"]))[0] == ("nick", "lucy")
        own = c.presence_from("%s/%s" % (room, c.id))
        q = lambda tag: "{jabber:client}%s" % tag  # noqa: E731
        assert own.findall(q("show")) == [], "an invalid first <show/> keeps no show"
        statuses = [s.text for s in own.findall(q("status"))]
        assert statuses == ["é" * 511], statuses
    finally:
        c.close()


def test_legacy_outsider_entries_go_when_the_session_ends(flood_server):
    room = new_room("outsider")
    assert timed_post(flood_server, room)[1] is True  # the built-in focus creates the room
    user = "carol%s" % uuid.uuid4().hex[:6]
    register(flood_server, user)
    # The room is in carol's roster with a mutual subscription, so Prosody keeps no directed
    # presence for it (mod_presence) and sends the room no unavailable presence on disconnect:
    # only the session's end can drop what the room's outsider cache holds for carol.
    roster_dir = os.path.join(flood_server.dir, "data", "localhost", "roster")
    os.makedirs(roster_dir, exist_ok=True)
    with open(os.path.join(roster_dir, "%s.dat" % user), "w") as f:
        f.write('return { [false] = { version = 1; pending = {}; }; ["%s"] = { subscription = "both"; groups = {}; }; };\n'
                % room)
    first = RawXmpp(flood_server.c2s_port, domain="localhost", user=user, resource="again")
    first.send("<presence to='%s'><show>dnd</show><status>remembered</status></presence>" % room)
    first.ping()
    second = RawXmpp(flood_server.c2s_port, domain="localhost", user=user, resource="other")
    second.send("<presence to='%s'><status>still here</status></presence>" % room)
    second.ping()
    first.close()
    time.sleep(0.5)
    again = RawXmpp(flood_server.c2s_port, domain="localhost", user=user, resource="again")
    try:
        entered = again.legacy_enter(room, "again")
        assert "type='result'" in entered and "muc#user" in entered, entered
        assert "remembered" not in entered, "the ended session's presence was forgotten"
        entered = second.legacy_enter(room, "other")
        assert "type='result'" in entered and "<status>still here</status>" in entered, \
            "a live session's presence is still remembered"
    finally:
        again.close()
        second.close()


# ---------------------------------------------------------------------------- room flood
FLOOD_ROOMS = int(os.environ.get("CR_FLOOD_ROOMS", "20000"))


def test_room_creation_flood_leaves_good_requests_answered(flood_server):
    flooder = RawXmpp(flood_server.c2s_port)
    rooms = ["flood-%d-%s@%s" % (i, uuid.uuid4().hex[:6], MUC) for i in range(FLOOD_ROOMS)]
    during = []

    def good_request(replies_so_far):
        during.append((replies_so_far,) + timed_post(flood_server, new_room("good")))
    t0 = time.monotonic()
    replies, errors = flooder.flood_conference_requests(rooms, timeout=90, while_answering=good_request)
    took = time.monotonic() - t0
    print("flood: %d replies (%d errors) in %.1f s" % (replies, errors, took))
    status, ready, seconds = timed_post(flood_server, new_room("good"))
    print("good request during the flood (after %d replies): %s ready=%s in %.3f s" % during[0])
    print("good request after the flood: %s ready=%s in %.3f s" % (status, ready, seconds))
    flooder.close()
    assert replies == FLOOD_ROOMS and errors == 0
    for (_, s, r, sec), when in ((during[0], "during"), ((0, status, ready, seconds), "after")):
        assert s == 200 and r is True
        assert sec < 1.0, "a good request took %.3f s %s the flood" % (sec, when)


# ---------------------------------------------------------------------------- registry held full
@pytest.fixture(scope="module")
def small_registry():
    srv, _ = start_server("bounds-full", "    conference_request_max_rooms = 5\n"
                                         'Component "conference.localhost" "muc"\n'
                                         "    muc_room_default_persistent = true\n",
                          env_extra={"CR_EMPTY_ROOM_TIMEOUT": "120"})
    try:
        yield srv
    finally:
        stop_server(srv)


def test_full_registry_evicts_the_oldest_unjoined_room_for_a_new_one(small_registry):
    alice = Xmpp(small_registry, "alice@localhost")
    web = Http(small_registry.http_port)
    try:
        joined = new_room("joined")
        assert conference_of(alice.conference(joined)).get("ready") == "true"
        assert alice.join(joined, "alice")["type"] != "error"
        held = [new_room("held-%d" % i) for i in range(4)]
        # a client fills the registry and keeps touching its own rooms
        for _ in range(3):
            for room in held:
                assert web.post({"room": room}).json()["ready"] is True
        fresh = new_room("fresh")
        r = web.post({"room": fresh})
        assert r.status == 200 and r.json()["ready"] is True, (r.status, r.body)
        assert alice.disco_info(fresh) == "result"
        assert alice.disco_info(held[0]) == "item-not-found", "the oldest unjoined room made way"
        assert all(alice.disco_info(room) == "result" for room in held[1:])
        assert alice.disco_info(joined) == "result", "a joined room is never evicted"
        # the next new room takes the next oldest, not the joined one
        assert web.post({"room": new_room("fresh")}).json()["ready"] is True
        assert alice.disco_info(held[1]) == "item-not-found"
        assert alice.disco_info(joined) == "result"
    finally:
        web.close()
        alice.close()


# ---------------------------------------------------------------------------- external focus
def test_external_focus_room_refused_a_waiter_is_not_kept_pending(tmp_path):
    """A request the waiter bounds refuse (max_waiters) still notified the focus and left its room
    pending with nobody waiting: such rooms are forgotten like those whose waiters timed out, or a
    silent focus would let them fill the registry."""
    import asyncio
    from test_external_focus import FOCUS_JID, FOCUS_PASSWORD, focus_online, health, http_request, stop_all

    srv, _ = start_server("bounds-ext", "    conference_request_ready_wait = 1\n"
                                        "    conference_request_max_waiters = 1\n",
                          env_extra={"CR_FOCUS": FOCUS_JID, "CR_FOCUS_PASSWORD": FOCUS_PASSWORD})
    try:
        async def scenario():
            focus = await focus_online(srv, mode="ignore")
            answers = await asyncio.gather(http_request(srv, new_room("held")), http_request(srv, new_room("refused")))
            for _ in range(40):
                h = await health(srv)
                if h["rooms_pending"] == 0:
                    break
                await asyncio.sleep(0.25)
            await stop_all(focus)
            return answers, h
        answers, h = asyncio.run(asyncio.wait_for(scenario(), 60))
        assert all(a[0] == 200 and a[1]["ready"] is False for a in answers), answers
        assert h["rooms_pending"] == 0, "a pending room nobody waits on was kept: %s" % h
    finally:
        stop_server(srv)


def test_rooms_the_focus_creates_are_temporary_whatever_the_muc_default(small_registry):
    """mod_muc saves persistent rooms and leaves a tombstone when one is destroyed: rooms created
    for a request are temporary even where muc_room_default_persistent = true."""
    alice = Xmpp(small_registry, "alice@localhost")
    try:
        room = new_room("temporary")
        assert conference_of(alice.conference(room)).get("ready") == "true"
        reply, _ = alice.iq('<query xmlns="http://jabber.org/protocol/disco#info"/>', to=room, itype="get")
        features = {f.get("var") for f in reply.xml.iter("{http://jabber.org/protocol/disco#info}feature")}
        assert "muc_temporary" in features and "muc_persistent" not in features, features
    finally:
        alice.close()


def test_parked_room_survives_a_module_reload_and_can_be_joined(small_registry):
    """A room the focus created is kept out of mod_muc's live rooms until something is sent to
    it; a module reload hands such rooms to the next instance, so they can still be joined."""
    web = Http(small_registry.http_port)
    alice = None
    try:
        room = new_room("parked")
        assert web.post({"room": room}).json()["ready"] is True
        out = small_registry.shell('module:reload("conference_request", "focus.localhost")')
        assert "OK" in out, out
        alice = Xmpp(small_registry, "alice@localhost")
        pres = alice.join(room, "alice")
        assert pres["type"] != "error", pres
    finally:
        web.close()
        if alice:
            alice.close()


def test_unloading_the_module_destroys_the_unjoined_rooms_it_created(small_registry):
    web = Http(small_registry.http_port)
    try:
        room = new_room("unload")
        assert web.post({"room": room}).json()["ready"] is True
    finally:
        web.close()
    out = small_registry.shell('module:unload("conference_request", "focus.localhost")')
    assert "OK" in out, out
    try:
        assert "room %s was never joined and the module is unloaded, destroying it" % room in small_registry.log()
    finally:
        out = small_registry.shell('module:load("conference_request", "focus.localhost")')
        assert "OK" in out, out
