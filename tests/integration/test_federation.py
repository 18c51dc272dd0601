"""Visitor servers over Prosody federation (issue 12; README "Visitor servers"): three real Prosody
processes on loopback (tests/integration/federation.py), a main server `localhost` and visitor nodes
`v1.meet.jitsi`, `v2.meet.jitsi`, federated over s2s (dialback, no TLS) with
mod_conference_request_s2sout steering each server's outgoing connections to the others' loopback
ports, real clients (slixmpp) on each.

First the plumbing alone (stanzas from a client of one server to another server's hosts cross s2s
and are answered, both directions), then the report protocol end to end (docs/protocol.md §6.2)."""
import os
import re
import signal
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from conftest import NS, NS_STANZAS, Http, conference_of, eventually, new_room, props_of
from federation import Federation

DISCO_INFO = '<query xmlns="http://jabber.org/protocol/disco#info"/>'


# ------------------------------------------------------------------------------------ plumbing
@pytest.fixture(scope="module")
def plain():
    """The federation alone: the main server knows the nodes but none reports (reports=False keeps
    the config readable by a module without the report protocol)."""
    fed = Federation("fed-plain", reports=False).start()
    try:
        yield fed
    finally:
        fed.stop()


def conference(client, room, to):
    reply, _ = client.iq('<conference xmlns="%s" room="%s"/>' % (NS, room), to=to)
    return reply


@pytest.mark.parametrize("node_id", ["v1", "v2"])
def test_a_node_client_reaches_the_main_server_over_s2s(plain, node_id):
    node = plain.nodes[node_id]
    c = node.client("alice")
    try:
        # disco#info of the main server's MUC and a conference request to its module host, answered
        reply, _ = c.iq(DISCO_INFO, to=plain.main.muc, itype="get")
        assert reply["type"] == "result", reply
        assert reply.xml.find("{http://jabber.org/protocol/disco#info}query/"
                              "{http://jabber.org/protocol/disco#info}identity").get("category") == "conference"
        reply = conference(c, "fedroom-%s@%s" % (node_id, plain.main.muc), plain.main.focus)
        assert reply["type"] == "result", reply
        assert conference_of(reply).get("ready") == "true"
        assert str(reply["from"]) == plain.main.focus
    finally:
        c.close()
    # the connection went where mod_conference_request_s2sout sent it, not through DNS
    assert "s2s to %s: 127.0.0.1:%d" % (plain.main.focus, plain.main.s2s_port) in node.log()


@pytest.mark.parametrize("node_id", ["v1", "v2"])
def test_a_main_client_reaches_a_node_over_s2s(plain, node_id):
    node = plain.nodes[node_id]
    c = plain.main.client("bob")
    try:
        reply, _ = c.iq(DISCO_INFO, to=node.muc, itype="get")
        assert reply["type"] == "result", reply
        reply = conference(c, "back@%s" % node.muc, node.focus)
        assert reply["type"] == "result", reply
        assert conference_of(reply).get("ready") == "true"
    finally:
        c.close()
    # the connection went where mod_conference_request_s2sout sent it, not through DNS
    assert "s2s to %s: 127.0.0.1:%d" % (node.focus, node.s2s_port) in plain.main.log() \
        or "s2s to %s: 127.0.0.1:%d" % (node.muc, node.s2s_port) in plain.main.log()


def test_an_unlisted_domain_is_not_steered(plain):
    # a domain of no override: Prosody resolves it as before (here: no such domain, an error answer)
    c = plain.nodes["v1"].client("alice")
    try:
        reply, _ = c.iq(DISCO_INFO, to="conference.v2.meet.jitsi", itype="get")
        assert reply["type"] == "error", reply
    finally:
        c.close()
    assert "s2s to conference.v2.meet.jitsi" not in plain.nodes["v1"].log()


# ---------------------------------------------------------------------- the report protocol, end to end
VNODE_NS = "urn:x-conference-request:vnode:0"
VERSION = [("visitors-version", "1")]
ASKED = [("visitors-version", "1"), ("visitor", "true")]
INTERVAL = 2      # the nodes' conference_request_report_interval in the `fed` federation
NODE_TIMEOUT = 6  # the main server's node_timeout there (3 × the interval, as the defaults)


@pytest.fixture(scope="module")
def fed():
    """Main + v1 + v2, reporting. v1 holds 3 visitors at most (capacity), v2 100; max_participants 1
    (a main room with one occupant sends visitors-version requests to a node); a redirect counts
    in a node's load for 2 s only (pending_window), so the loads are what the nodes report."""
    f = Federation("fed", report_interval=INTERVAL, node_timeout=NODE_TIMEOUT, capacities={"v1": 3, "v2": 100},
                   visitors_extra="pending_window = 2;").start()
    try:
        yield f
    finally:
        f.stop()


def healthy(fed, *ids):
    """Waits until the main server sees these nodes healthy (their first reports); returns its view."""
    got = eventually(lambda: (lambda h: all(h[i]["healthy"] for i in ids) and h)(fed.node_health()), timeout=20)
    assert got, fed.node_health()
    return got


def ask(client, room, properties=(), to=None):
    """XMPP door: (attributes, properties) of the <conference/> answer."""
    el = ET.Element("{%s}conference" % NS, room=room)
    for name, value in properties:
        ET.SubElement(el, "{%s}property" % NS, name=name, value=value)
    reply, _ = client.iq(ET.tostring(el, encoding="unicode"), to=to)
    assert reply["type"] == "result", reply
    conf = conference_of(reply)
    return dict(conf.attrib), props_of(conf)


def redirect(server, room):
    """HTTP door of the main server, a visitor asking (visitors-version, visitor=true): the JSON answer."""
    web = Http(server.http_port)
    try:
        res = web.post({"room": room, "properties": {"visitors-version": 1, "visitor": True}})
        assert res.status == 200, res.body
        return res.json()
    finally:
        web.close()


def visit(node, user, local, nick=None):
    """A client of `node` asks the node's own module for room `local` of the node's MUC and joins it."""
    c = node.client(user)
    attrs, _ = ask(c, "%s@%s" % (local, node.muc))
    assert attrs["ready"] == "true", attrs
    pres = c.join("%s@%s" % (local, node.muc), nick or user)
    assert pres["type"] != "error", pres
    return c


def test_redirect_connect_to_the_node_ask_there_join_and_the_main_load_rises(fed):
    healthy(fed, "v1", "v2")
    local = "e2e-%s" % uuid.uuid4().hex[:8]
    main_room = "%s@%s" % (local, fed.main.muc)
    alice, bob = fed.main.client("alice"), fed.main.client("bob")
    visitor = None
    try:
        attrs, _ = ask(alice, main_room)
        assert attrs["ready"] == "true"
        alice.join(main_room, "alice")  # max_participants = 1: the main room is full
        # a visitor-capable client of the main server is sent to a node
        attrs, props = ask(bob, main_room, VERSION)
        vnode = attrs.get("vnode")
        assert vnode in ("v1", "v2"), attrs
        node = fed.nodes[vnode]
        assert attrs["focusjid"] == "focus@%s" % node.focus
        assert props["vnode-muc"] == node.muc
        # it connects to that node (its own Prosody), asks there and joins the node's room
        before = fed.node_health()[vnode]["visitors"]
        t0 = time.monotonic()
        visitor = visit(node, "alice", local, "visitor")
        # the node's report raises the main server's load for that node
        assert eventually(lambda: fed.node_health()[vnode]["visitors"] == before + 1, timeout=10), fed.node_health()
        elapsed = time.monotonic() - t0
        print("\njoin on %s -> the main server's load for %s rose after %.3f s (report interval %d s)"
              % (vnode, vnode, elapsed, INTERVAL))
        assert elapsed <= INTERVAL, "the load rose after %.3f s, more than one report interval" % elapsed
        shown = fed.main.shell("conference_request:visitor_room(%r)" % main_room).replace("'", '"')
        assert "%s visitors=1" % vnode in shown, shown
        # the visitor leaves: the load falls back
        visitor.leave("%s@%s" % (local, node.muc), "visitor")
        assert eventually(lambda: fed.node_health()[vnode]["visitors"] == before, timeout=10), fed.node_health()
    finally:
        for c in (alice, bob, visitor):
            if c:
                c.close()


def test_reported_loads_steer_new_rooms_to_the_other_node(fed):
    healthy(fed, "v1", "v2")
    v1 = fed.nodes["v1"]
    # three visitors on v1 (its capacity), in rooms of v1's MUC
    visitors = [visit(v1, user, "steer-%s-%s" % (user, uuid.uuid4().hex[:6])) for user in ("alice", "bob", "admin")]
    try:
        assert eventually(lambda: fed.node_health()["v1"]["visitors"] == 3, timeout=10), fed.node_health()
        time.sleep(2.5)  # the pending redirects of earlier tests are over (pending_window = 2)
        chosen = [redirect(fed.main, new_room("steer"))["vnode"] for _ in range(8)]
        assert chosen == ["v2"] * 8, chosen
    finally:
        for c in visitors:
            c.close()
    # v1 is empty again (reported): new rooms go to both nodes again
    assert eventually(lambda: fed.node_health()["v1"]["visitors"] == 0, timeout=10), fed.node_health()
    time.sleep(2.5)
    chosen = [redirect(fed.main, new_room("steer"))["vnode"] for _ in range(16)]
    assert "v1" in chosen and "v2" in chosen, chosen


def forged_report(node_id, room, visitors=50):
    return ("<report xmlns='%s' node='%s' total='%d' full='true'><room name='%s' visitors='%d'/></report>"
            % (VNODE_NS, node_id, visitors, room, visitors))


def send_as(server, from_host, to, payload):
    """Sends an IQ set from one of `server`'s hosts through `prosodyctl shell` (its Lua escape):
    routed like any stanza of that host, over s2s to another server."""
    out = server.shell(
        ">local st = require'util.stanza'; "
        "local iq = st.iq({type='set', from='%s', to='%s', id='forged-%s'})"
        ":add_child(require'util.xml'.parse([[%s]])); "
        "prosody.core_post_stanza(prosody.hosts['%s'], iq); return 'sent'"
        % (from_host, to, uuid.uuid4().hex[:6], payload, from_host))
    assert "sent" in out, out


def test_forged_reports_change_nothing(fed):
    healthy(fed, "v1", "v2")
    before = fed.node_health()
    rooms = []
    # a c2s client of a node (not a configured reporter JID): refused over s2s
    c = fed.nodes["v1"].client("alice")
    try:
        room = "forged-%s" % uuid.uuid4().hex[:6]
        rooms.append(room)
        reply, _ = c.iq(forged_report("v1", room), to=fed.main.focus)
        assert reply["type"] == "error", reply
        assert reply.xml.find("{jabber:client}error/{%s}forbidden" % NS_STANZAS) is not None, reply
    finally:
        c.close()
    # v2's module host naming node v1; v1's own domain (not its module host) naming v1
    for server, from_host in ((fed.nodes["v2"], fed.nodes["v2"].focus), (fed.nodes["v1"], fed.nodes["v1"].domain)):
        room = "forged-%s" % uuid.uuid4().hex[:6]
        rooms.append(room)
        send_as(server, from_host, fed.main.focus, forged_report("v1", room))
    log = lambda: fed.main.log()  # noqa: E731
    assert eventually(lambda: "this JID reports for node v2" in log()
                      and "visitor report from %s for node v1 refused" % fed.nodes["v1"].domain in log(), timeout=10)
    assert "visitor report from alice@%s" % fed.nodes["v1"].domain in log()
    after = fed.node_health()
    for node_id in ("v1", "v2"):
        assert after[node_id]["visitors"] == before[node_id]["visitors"] < 50, after
        assert after[node_id]["healthy"], after
    for room in rooms:
        shown = fed.main.shell("conference_request:visitor_room('%s@%s')" % (room, fed.main.muc))
        assert "visitors=50" not in shown, shown


def measure_redirects(fed, node_id, t0, seconds):
    """Redirects new rooms on the main server for `seconds` after t0; returns (time of the last
    redirect towards node_id, time at which the main server's health first showed it down),
    both in seconds after t0 (None: never)."""
    last, seen_down = None, None
    while time.monotonic() - t0 < seconds:
        vnode = redirect(fed.main, new_room("gone"))["vnode"]
        if vnode == node_id:
            last = time.monotonic() - t0
        if seen_down is None and not fed.node_health()[node_id]["healthy"]:
            seen_down = time.monotonic() - t0
        time.sleep(0.02)
    return last, seen_down


def test_a_hung_node_gets_no_more_redirects_after_node_timeout(fed):
    """SIGSTOP: the s2s link stays open and silent; only the report age can tell."""
    healthy(fed, "v1", "v2")
    v2 = fed.nodes["v2"]
    t_stop = time.monotonic()
    os.kill(v2.pid, signal.SIGSTOP)
    try:
        last_v2, seen_down = measure_redirects(fed, "v2", t_stop, NODE_TIMEOUT + 2)
        view = fed.node_health()["v2"]
        print("\nSIGSTOP of v2 -> v2 down on the main server after %s (%s); last redirect towards v2: %s "
              "(node_timeout %d s)" % ("%.3f s" % seen_down if seen_down is not None else "never",
                                       view["down_reason"], "%.3f s" % last_v2 if last_v2 is not None else "none",
                                       NODE_TIMEOUT))
        assert view["healthy"] is False and view["down_reason"] == "timeout", view
        assert last_v2 is None or last_v2 <= NODE_TIMEOUT + 0.5, last_v2
    finally:
        os.kill(v2.pid, signal.SIGCONT)
    # it resumes: its next report brings it back
    assert eventually(lambda: fed.node_health()["v2"]["healthy"], timeout=3 * INTERVAL), fed.node_health()


def test_a_killed_node_gets_no_more_redirects_and_is_used_again_after_its_first_report(fed):
    healthy(fed, "v1", "v2")
    time.sleep(2.5)  # earlier pending redirects are over: v1 has spare capacity
    v1 = fed.nodes["v1"]
    # before: v1 gets its share of new rooms
    chosen = [redirect(fed.main, new_room("before"))["vnode"] for _ in range(16)]
    assert "v1" in chosen, chosen
    time.sleep(2.5)  # those redirects no longer count in v1's load (pending_window)
    t_kill = time.monotonic()
    v1.kill()
    last_v1, seen_down = measure_redirects(fed, "v1", t_kill, NODE_TIMEOUT + 1)
    view = fed.node_health()["v1"]
    print("\nSIGKILL of v1 -> v1 down on the main server after %.3f s (%s); last redirect towards v1: %s"
          % (seen_down, view["down_reason"], "%.3f s" % last_v1 if last_v1 is not None
             else "none (every answer after the kill went to v2)"))
    assert last_v1 is None or last_v1 < NODE_TIMEOUT, last_v1
    assert view["healthy"] is False and view["down_reason"] in ("link", "timeout"), view
    # restarted (same ports, same config): used again once its first report arrived
    t_restart = time.monotonic()
    v1.start()
    assert eventually(lambda: fed.node_health()["v1"]["healthy"], timeout=20), fed.node_health()
    print("v1 restarted: healthy on the main server %.3f s after its start began" % (time.monotonic() - t_restart))
    assert fed.node_health()["v1"]["reported"] is not None
    chosen = [redirect(fed.main, new_room("back"))["vnode"] for _ in range(16)]
    assert "v1" in chosen, chosen


# ----------------------------------------------------- a slow reporter: the link, and thousands of rooms
SLOW_INTERVAL = 30
SLOW_TIMEOUT = 90
MAIN_MAX_ROOMS = 1000


@pytest.fixture(scope="module")
def solo():
    """Main + v1 with long heartbeats (30 s) and node_timeout (90 s): nothing here can be the
    timeout or a heartbeat. The main server keeps at most 1,000 rooms per node; v1's MUC keeps its
    rooms live (muc_room_cache_size above the default 100, as a node holding thousands of rooms
    needs: mod_muc swaps rooms beyond it out to storage, occupants and all)."""
    f = Federation("fed-solo", nodes=("v1",), report_interval=SLOW_INTERVAL, node_timeout=SLOW_TIMEOUT,
                   main_extra="    conference_request_max_rooms = %d\n" % MAIN_MAX_ROOMS,
                   node_extra='\nComponent "conference.{id}.meet.jitsi" "muc"\n    muc_room_cache_size = 10000\n').start()
    try:
        yield f
    finally:
        f.stop()


@pytest.mark.parametrize("side", ["main", "node"])
def test_a_closed_s2s_link_marks_the_node_down_at_once_and_its_next_report_brings_it_back(solo, side):
    healthy(solo, "v1")
    v1 = solo.nodes["v1"]
    t0 = time.monotonic()
    if side == "main":
        out = solo.main.shell("s2s:closeall(%r)" % v1.focus)
    else:
        out = v1.shell("s2s:closeall(%r)" % solo.main.focus)
    assert "Closed" in out, out
    down = eventually(lambda: (lambda n: n["down_reason"] == "link" and n)(solo.node_health()["v1"]), timeout=5)
    assert down, solo.node_health()
    print("\ns2s link closed by the %s -> v1 down (link) on the main server after %.3f s (node_timeout %d s)"
          % (side, time.monotonic() - t0, SLOW_TIMEOUT))
    assert down["healthy"] is False
    assert redirect(solo.main, new_room("link")).get("vnode") is None
    # a visitor joins on v1: its (coalesced) report opens a new link and brings it back, long
    # before the next heartbeat
    c = visit(v1, "bob", "link-%s" % uuid.uuid4().hex[:6])
    try:
        assert eventually(lambda: solo.node_health()["v1"]["healthy"], timeout=5), solo.node_health()
    finally:
        c.close()
    assert redirect(solo.main, new_room("link"))["vnode"] == "v1"


RECORD_SIZES = (
    ">prosody.cr_report_sizes = {}; "
    "prosody.hosts['%s'].events.add_handler('iq-set/host/urn:x-conference-request:vnode:0:report', "
    "function(e) local t = prosody.cr_report_sizes; t[#t + 1] = #tostring(e.stanza) end, 1000); return 'recording'")
SHOW_SIZES = (">local t = prosody.cr_report_sizes; local m = 0; for _, n in ipairs(t) do if n > m then m = n end end; "
              "return ('reports=%d max_bytes=%d'):format(#t, m)")
# N rooms of v1's MUC, each with one visitor (an occupant from v1's own host, without a session:
# the node's counting only reads occupants), announced as joins to the node's module
MAKE_ROOMS = (
    ">local muc = prosody.hosts['%(muc)s'].modules.muc; local ev = prosody.hosts['%(muc)s'].events; "
    "for i = 1, %(n)d do local jid = ('big%%05d@%(muc)s'):format(i); local r = muc.get_room_from_jid(jid) "
    "or muc.create_room(jid); local nick = jid .. '/v'; "
    "r._occupants[nick] = r:new_occupant(('u%%d@%(domain)s'):format(i), nick); "
    "ev.fire_event('muc-occupant-joined', { room = r, nick = nick }) end; return 'made'")


def sizes(main):
    """(reports received, largest report stanza in bytes) since RECORD_SIZES, on the main server."""
    out = main.shell(SHOW_SIZES)
    m = re.search(r"reports=(\d+) max_bytes=(\d+)", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def rss_kib(pid):
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_thousands_of_rooms_stay_bounded_in_bytes_per_report_and_on_the_main_server(solo):
    healthy(solo, "v1")
    v1 = solo.nodes["v1"]
    n = 3 * MAIN_MAX_ROOMS
    assert "recording" in solo.main.shell(RECORD_SIZES % solo.main.focus)
    rss_before = rss_kib(solo.main.pid)
    assert "made" in v1.shell(MAKE_ROOMS % {"muc": v1.muc, "n": n, "domain": v1.domain})
    # the node reports them all in total; the main server keeps at most MAIN_MAX_ROOMS rooms
    got = eventually(lambda: (lambda x: x["visitors"] >= n and x)(solo.node_health()["v1"]), timeout=30)
    assert got, solo.node_health()
    time.sleep(1)  # the last delta's answer
    delta_reports, delta_max = sizes(solo.main)
    # a module reload on the node: a full snapshot of the 3,000 rooms, in parts
    v1.shell("module:reload('conference_request', '%s')" % v1.focus)
    assert eventually(lambda: sizes(solo.main)[0] >= delta_reports + n // 500, timeout=30), sizes(solo.main)
    assert "full part %d/%d" % (n // 500, n // 500) in v1.log()
    reports, max_bytes = sizes(solo.main)
    view = solo.node_health()["v1"]
    rss_after = rss_kib(solo.main.pid)
    print("\n%d rooms with visitors on v1: %d delta reports (largest stanza %d bytes), then a full snapshot "
          "in %d parts (largest stanza %d bytes); the main server keeps %d rooms for v1 (bound %d), total %d "
          "visitors; main RSS %d -> %d KiB"
          % (n, delta_reports, delta_max, reports - delta_reports, max_bytes, view["rooms"], MAIN_MAX_ROOMS,
             view["visitors"], rss_before, rss_after))
    assert max(max_bytes, delta_max) < 64 * 1024  # every report stanza, delta or snapshot part
    assert view["rooms"] <= MAIN_MAX_ROOMS, view
    assert view["visitors"] >= n  # the node's total still counts every visitor
    assert "more rooms than the main server keeps" in solo.main.log()
    assert rss_after - rss_before < 64 * 1024, (rss_before, rss_after)
