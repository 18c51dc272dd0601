"""Visitor servers over Prosody federation (issue 12; README "Visitor servers"): three real Prosody
processes on loopback (tests/integration/federation.py), a main server `localhost` and visitor nodes
`v1.meet.jitsi`, `v2.meet.jitsi`, federated over s2s (dialback, no TLS) with
mod_conference_request_s2sout steering each server's outgoing connections to the others' loopback
ports, real clients (slixmpp) on each.

First the plumbing alone (stanzas from a client of one server to another server's hosts cross s2s
and are answered, both directions), then the report protocol end to end (docs/protocol.md §6.2)."""
import pytest

from conftest import NS, conference_of
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
