"""The report protocol (issue 12, docs/protocol.md §6.2) inside one real Prosody: the main server's
module on focus.localhost and a visitor node's module on focusv1.localhost (role visitor_node, its own
MUC conferencev1.localhost), reports routed locally instead of over s2s. The three-server version over
real federation is tests/integration/test_federation.py; this file checks the protocol's rules with
real clients: a node's visitors reach the main server's load, forged reports change nothing, the
redirect names the node's MUC, the operator's node_down wins, a node that never reports stays down,
and bad role options refuse to load.
"""
import time

import pytest

from conftest import Http, Xmpp, conference_of, error_of, eventually, new_room, props_of, start_server, stop_server
from legacy_client import register

NS = "urn:x-conference-request:vnode:0"
NODE_MUC = "conferencev1.localhost"
CONFIG = """
    conference_request_visitors = {
        enabled = true;
        max_participants = 1;
        node_timeout = 3;
        nodes = {
            { id = "v1", focus_jid = "focus@focusv1.localhost", muc = "conferencev1.localhost", capacity = 100 };
            { id = "v9", focus_jid = "focus@focusv9.localhost", capacity = 100 };
            { id = "vx", focus_jid = "focus@vx.meet.jitsi", capacity = 100, reports = false, weight = 0.001 };
        };
    }

Component "conferencev1.localhost" "muc"
    storage = "memory"
    muc_room_locking = false

Component "focusv1.localhost" "conference_request"
    conference_request_muc = "conferencev1.localhost"
    conference_request_http = false
    conference_request_role = "visitor_node"
    conference_request_main = "focus.localhost"
    conference_request_node_id = "v1"
    conference_request_report_interval = 1
"""
VERSION = [("visitors-version", "1")]


@pytest.fixture(scope="module")
def srv():
    s, _ = start_server("reports", CONFIG)
    try:
        for user in ("carol", "dave"):
            register(s, user)
        yield s
    finally:
        stop_server(s)


def nodes(s):
    h = Http(s.http_port)
    try:
        return {n["id"]: n for n in h.request("GET", "/conference-request/v1/health").json()["visitors"]["nodes"]}
    finally:
        h.close()


def test_node_reports_its_visitors_and_a_silent_node_stays_down(srv):
    # v1 reports (heartbeat every second): healthy, reported recently; v9 never reports; vx does not report at all
    got = eventually(lambda: nodes(srv)["v1"]["healthy"] and nodes(srv), timeout=15)
    assert got, nodes(srv)
    assert got["v1"]["down_reason"] is None and got["v1"]["reported"] is not None and got["v1"]["reported"] < 3
    assert got["v9"]["healthy"] is False and got["v9"]["down_reason"] == "no-report" and got["v9"]["reported"] is None
    assert got["vx"]["healthy"] is True and got["vx"]["down_reason"] is None and got["vx"]["reported"] is None
    # two visitors join a room of the node's MUC: the main server's load for v1 follows
    room = "vis-%d" % int(time.time() * 1000)
    carol, dave = Xmpp(srv, "carol@localhost"), Xmpp(srv, "dave@localhost")
    try:
        carol.join("%s@%s" % (room, NODE_MUC), "carol")
        dave.join("%s@%s" % (room, NODE_MUC), "dave")
        assert eventually(lambda: nodes(srv)["v1"]["visitors"] == 2, timeout=10), nodes(srv)
        assert nodes(srv)["v1"]["rooms"] == 1
        out = srv.shell("conference_request:visitor_room('%s@conference.localhost')" % room)
        assert "v1 visitors=2" in out, out
        dave.leave("%s@%s" % (room, NODE_MUC), "dave")
        assert eventually(lambda: nodes(srv)["v1"]["visitors"] == 1, timeout=10), nodes(srv)
    finally:
        carol.close()
        dave.close()
    assert eventually(lambda: nodes(srv)["v1"]["visitors"] == 0, timeout=10), nodes(srv)
    out = srv.shell("conference_request:nodes()")
    assert "v1 up" in out and "down_reason=-" in out and "v9 DOWN" in out and "down_reason=no-report" in out, out


def report(room="forged", visitors="50", node="v1", total="50", full="true"):
    return ("<report xmlns='%s' node='%s' total='%s' full='%s'><room name='%s' visitors='%s'/></report>"
            % (NS, node, total, full, room, visitors))


def test_forged_and_malformed_reports_change_nothing(srv):
    assert eventually(lambda: nodes(srv)["v1"]["healthy"], timeout=15)
    before = nodes(srv)
    alice = Xmpp(srv, "alice@localhost")
    try:
        # a client JID is no configured reporter
        reply, _ = alice.iq(report())
        assert reply["type"] == "error" and error_of(reply)[1] == "forbidden", reply
        # v1's reporter naming another node: sent as focusv1.localhost through the shell's Lua escape
        for forged in (report(node="v9"), report(node="nope")):
            out = srv.shell(
                ">local st = require'util.stanza'; "
                "local iq = st.iq({type='set', from='focusv1.localhost', to='focus.localhost', id='forged'})"
                ":add_child(require'util.xml'.parse([[%s]])); "
                "prosody.core_post_stanza(prosody.hosts['focusv1.localhost'], iq); return 'sent'" % forged)
            assert "sent" in out, out
        time.sleep(1)
        # a malformed one from the client: still refused for the JID before anything else
        reply, _ = alice.iq("<report xmlns='%s' node='v1'/>" % NS)
        assert error_of(reply)[1] == "forbidden"
    finally:
        alice.close()
    after = nodes(srv)
    assert after["v9"]["healthy"] is False and after["v9"]["visitors"] == 0, after
    assert after["v1"]["visitors"] == before["v1"]["visitors"], after
    log = srv.log()
    assert "visitor report from alice@localhost" in log and "refused" in log
    assert "this JID reports for node v1" in log


def test_redirect_names_the_node_muc_on_both_doors(srv):
    assert eventually(lambda: nodes(srv)["v1"]["healthy"], timeout=15)
    room = new_room("redir")
    alice = Xmpp(srv, "alice@localhost")
    bob = Xmpp(srv, "bob@localhost")
    try:
        assert conference_of(alice.conference(room)).get("ready") == "true"
        alice.join(room, "alice")  # max_participants = 1: the room is full
        conf = conference_of(bob.conference(room, VERSION))
        assert conf.get("vnode") == "v1", conf.attrib  # v9 is down (no report), vx weighs nothing
        assert conf.get("focusjid") == "focus@focusv1.localhost"
        assert props_of(conf).get("vnode-muc") == NODE_MUC
        h = Http(srv.http_port)
        try:
            answer = h.post({"room": room, "properties": {"visitors-version": "1"}}).json()
        finally:
            h.close()
        assert answer["vnode"] == "v1" and answer["vnodeMuc"] == NODE_MUC, answer
        assert answer["properties"]["vnode-muc"] == NODE_MUC
    finally:
        alice.close()
        bob.close()


def test_operator_down_wins_until_up(srv):
    assert eventually(lambda: nodes(srv)["v1"]["healthy"], timeout=15)
    out = srv.shell("conference_request:node_down('v1')")
    assert "marked down" in out, out
    time.sleep(2.5)  # reports keep coming (every second) and do not lift it
    n = nodes(srv)["v1"]
    assert n["healthy"] is False and n["down_reason"] == "operator" and n["reported"] < 2, n
    srv.shell("conference_request:node_up('v1')")
    assert nodes(srv)["v1"]["healthy"] is True


def test_silent_node_times_out_and_comes_back_with_its_next_report(srv):
    assert eventually(lambda: nodes(srv)["v1"]["healthy"], timeout=15)
    out = srv.shell('module:unload("conference_request", "focusv1.localhost")')
    assert "nload" in out, out
    try:
        # node_timeout = 3: the main server's timer marks it down without any request
        got = eventually(lambda: nodes(srv)["v1"]["down_reason"] == "timeout" and nodes(srv)["v1"], timeout=10)
        assert got and got["healthy"] is False and got["reported"] > 3, nodes(srv)
    finally:
        out = srv.shell('module:load("conference_request", "focusv1.localhost")')
    assert eventually(lambda: nodes(srv)["v1"]["healthy"], timeout=10), nodes(srv)
    assert nodes(srv)["v1"]["down_reason"] is None


def test_reload_keeps_report_state_on_both_sides(srv):
    assert eventually(lambda: nodes(srv)["v1"]["healthy"], timeout=15)
    srv.shell('module:unload("conference_request", "focusv1.localhost")')  # no report during the reload
    try:
        out = srv.shell('module:reload("conference_request", "focus.localhost")')
        assert "eload" in out, out
        n = nodes(srv)
        # restored: v1 reported before the reload (not "no-report"), v9 still never did
        assert n["v1"]["reported"] is not None and n["v1"]["down_reason"] in (None, "timeout"), n
        assert n["v9"]["down_reason"] == "no-report", n
    finally:
        srv.shell('module:load("conference_request", "focusv1.localhost")')
    assert eventually(lambda: nodes(srv)["v1"]["healthy"], timeout=10), nodes(srv)
    # a node reloaded: it counts its rooms again and starts with a full report, accepted
    srv.shell('module:reload("conference_request", "focusv1.localhost")')
    assert eventually(lambda: nodes(srv)["v1"]["healthy"] and nodes(srv)["v1"]["reported"] < 1.5, timeout=10)


BAD_ROLE = [
    ('conference_request_role = "visitor"', "conference_request_role"),
    ('conference_request_role = "visitor_node"\n    conference_request_node_id = "v1"', "conference_request_main"),
    ('conference_request_role = "visitor_node"\n    conference_request_main = "focus.meet.example.com"',
     "conference_request_node_id"),
    ('conference_request_role = "visitor_node"\n    conference_request_main = "focus.meet.example.com"\n'
     '    conference_request_node_id = "v 1"', "conference_request_node_id"),
    ("conference_request_report_interval = 0", "conference_request_report_interval"),
    ('conference_request_visitors = { enabled = true, node_timeout = 0, nodes = { { id = "v1", focus_jid = "f@v1.x" } } }',
     "node_timeout must be"),
    ('conference_request_visitors = { enabled = true, nodes = { { id = "v1", focus_jid = "f@v1.x", reports = "yes" } } }',
     "reports must be"),
    ('conference_request_visitors = { enabled = true, nodes = { { id = "v1", focus_jid = "f@v1.x", muc = "a@b" } } }',
     "nodes[1].muc"),
    ('conference_request_visitors = { enabled = true, nodes = { { id = "v1", focus_jid = "f@v.x" },'
     ' { id = "v2", focus_jid = "g@v.x" } } }', "reports for node v1 already"),
]


@pytest.mark.parametrize("line,option", BAD_ROLE, ids=[b[1] for b in BAD_ROLE])
def test_bad_report_options_refuse_to_load(line, option):
    s, failed = start_server("badrole", "    %s\n" % line, env_extra={"CR_START_TIMEOUT": "3"}, check=False)
    try:
        assert failed is not None, "the module must refuse to load"
        log = s.log()
        assert "invalid option" in log and option in log, log[-2000:]
    finally:
        stop_server(s)
