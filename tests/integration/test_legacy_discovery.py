"""Legacy discovery and groupchat 1.0 joins (docs/protocol.md §7, issue 13 items 3 and 4) against the real
Prosody: disco#info of the MUC host, jabber:iq:browse of the service with public and hidden rooms,
public rooms made by a legacy set, groupchat 1.0 clients (slixmpp sending raw presence without the
MUC <x/>) next to legacy and MUC clients, and conference_request_legacy_gc1 = false.

The test MUC has restrict_room_creation = true: only admin creates rooms."""
import xml.etree.ElementTree as ET

import pytest

from conftest import MUC, new_room, start_server, stop_server
from legacy_client import NS_BROWSE, Client, error_info, node, q, query_children
from legacy_client import accounts, make  # noqa: F401  (fixtures)

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def listed(client):
    """{room jid: (type, name)} of a jabber:iq:browse get to the MUC host."""
    reply = client.browse(MUC)
    assert reply.get("type") == "result", ET.tostring(reply)
    top = reply.find("{%s}conference" % NS_BROWSE)
    assert top is not None and top.get("type") == "public", ET.tostring(reply)
    return {c.get("jid"): (c.get("type"), c.get("name")) for c in top.findall("{%s}conference" % NS_BROWSE)}


def gc1_join(client, room, nick):
    """A groupchat 1.0 join: presence to room/nick with no MUC <x/>."""
    client.raw("<presence to='%s/%s'/>" % (room, nick))


def presence_error(client, frm):
    return client.wait(lambda el: el.tag == q("presence") and el.get("type") == "error" and el.get("from") == frm,
                       "error presence from %s" % frm)


def test_disco_info_of_the_muc_host_lists_the_legacy_features(make):
    bob = make("bob@localhost/disco")
    reply = bob.request(MUC, "<query xmlns='%s'/>" % NS_DISCO_INFO, itype="get")
    features = {f.get("var") for f in reply.find("{%s}query" % NS_DISCO_INFO).findall("{%s}feature" % NS_DISCO_INFO)}
    assert {"jabber:iq:conference", "jabber:iq:browse", "http://jabber.org/protocol/muc"} <= features


def test_service_browse_public_and_hidden_rooms(make):
    owner = make("admin@localhost/l1")
    m = make("alice@localhost/muc")
    outsider = make("dave@localhost/out")
    public = new_room("legacy")
    hidden = new_room("legacy")
    # a room created by a legacy set is public (muc_room_default_public is not set on the test MUC)
    assert query_children(owner.legacy_set(public, ["lucy"]))[0] == ("nick", "lucy")
    assert m.join_muc(public, "alice")["type"] != "error"
    # a room created by a MUC client keeps Prosody's default: hidden
    assert owner.join_muc(hidden, "owner")["type"] != "error"

    seen = listed(outsider)
    assert seen[public] == ("public", "%s (2)" % node(public))
    assert hidden not in seen
    # an occupant of the hidden room sees it too, as private
    seen = listed(owner)
    assert seen[public] == ("public", "%s (2)" % node(public))
    assert seen[hidden] == ("private", "%s (1)" % node(hidden))
    # the count follows the occupants
    m.x.leave(public, "alice")
    assert listed(outsider)[public] == ("public", "%s (1)" % node(public))


def test_gc1_join_talk_conflict_and_leave(make):
    room = new_room("legacy")
    l1 = make("admin@localhost/l1")  # a legacy participant
    m = make("alice@localhost/muc")  # a MUC client
    g = make("bob@localhost/gc1")  # a groupchat 1.0 client
    other = make("carol@localhost/gc1")
    assert query_children(l1.legacy_set(room, ["lucy"]))[0] == ("nick", "lucy")
    assert m.join_muc(room, "alice")["type"] != "error"
    for c in (l1, m):
        c.take_all()

    gc1_join(g, room, "bobgc")
    g.presence_from("%s/lucy" % room)  # the others' presence
    g.presence_from("%s/alice" % room)
    g.presence_from("%s/bobgc" % room)  # its own
    m.presence_from("%s/bobgc" % room)
    l1.push(room, g.id, "bobgc")

    g.message(room, "hello from 1999")
    m.message_from("%s/bobgc" % room, "hello from 1999")
    l1.message_from("%s/%s" % (room, g.id), "hello from 1999")
    m.message(room, "hello back")
    g.message_from("%s/alice" % room, "hello back")

    # nick conflict: a 409 error presence with the legacy code
    gc1_join(other, room, "bobgc")
    err = presence_error(other, "%s/bobgc" % room)
    etype, code, cond, _ = error_info(err)
    assert (code, cond) == ("409", "conflict")
    # a legacy nick taken through groupchat 1.0 is a conflict too
    gc1_join(other, room, "lucy")
    assert error_info(presence_error(other, "%s/lucy" % room))[1:3] == ("409", "conflict")

    # an occupant's presence without the <x/> stays a presence update (no second join)
    g.raw("<presence to='%s/bobgc'><show>away</show></presence>" % room)
    pres = m.presence_from("%s/bobgc" % room)
    assert pres.findtext(q("show")) == "away"

    g.presence("%s/bobgc" % room, "unavailable")
    m.presence_from("%s/bobgc" % room, "unavailable")
    l1.push(room, g.id)
    g.presence_from("%s/bobgc" % room, "unavailable")


def test_gc1_join_follows_muc_rules(make):
    admin = make("admin@localhost/gc1")
    bob = make("bob@localhost/gc1")
    # creation: allowed for admin (the room is public, like a legacy-made room), refused for others
    room = new_room("legacy")
    gc1_join(admin, room, "boss")
    admin.presence_from("%s/boss" % room)
    assert listed(bob)[room] == ("public", "%s (1)" % node(room))
    fresh = new_room("legacy")
    gc1_join(bob, fresh, "bob")
    etype, code, cond, _ = error_info(presence_error(bob, "%s/bob" % fresh))
    assert cond == "not-allowed" and code == "405"

    # a password-protected room: groupchat 1.0 cannot carry the password
    form = ("<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
            "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
            "<field var='muc#roomconfig_roomsecret'><value>pw</value></field></x></query>")
    assert admin.request(room, form).get("type") == "result"
    gc1_join(bob, room, "bob")
    assert error_info(presence_error(bob, "%s/bob" % room))[1:3] == ("401", "not-authorized")


@pytest.fixture(scope="module")
def gc1_off():
    # groupchat 1.0 joins off, and the MUC host's own default for public rooms set explicitly
    srv, _ = start_server("legacy-gc1-off", "    conference_request_legacy_gc1 = false\n"
                                            "Component \"conference.localhost\" \"muc\"\n"
                                            "    muc_room_default_public = false\n")
    try:
        yield srv
    finally:
        stop_server(srv)


def test_gc1_off_restores_prosodys_refusal(gc1_off):
    owner = Client(gc1_off, "admin@localhost/muc")
    bob = Client(gc1_off, "bob@localhost/gc1")
    try:
        room = new_room("legacy")
        assert owner.join_muc(room, "owner")["type"] != "error"
        gc1_join(bob, room, "bob")
        etype, code, cond, text = error_info(presence_error(bob, "%s/bob" % room))
        assert (cond, text) == ("item-not-found", "You are not currently connected to this chat")
        # the legacy door itself is still served
        assert query_children(bob.legacy_set(room, ["bobby"]))[0] == ("nick", "bobby")
    finally:
        owner.close()
        bob.close()


def test_explicit_muc_default_keeps_legacy_made_rooms_hidden(gc1_off):
    owner = Client(gc1_off, "admin@localhost/legacy")
    bob = Client(gc1_off, "bob@localhost/out")
    try:
        room = new_room("legacy")
        assert query_children(owner.legacy_set(room, ["lucy"]))[0] == ("nick", "lucy")
        assert room not in listed(bob)
        assert listed(owner)[room] == ("private", "%s (1)" % node(room))
    finally:
        owner.close()
        bob.close()


def test_bad_gc1_option_refuses_to_load():
    srv, failed = start_server("legacy-badgc1", "    conference_request_legacy_gc1 = \"maybe\"\n",
                               env_extra={"CR_START_TIMEOUT": "3"}, check=False)
    try:
        assert failed is not None, "the module must refuse to load"
        assert "invalid option conference_request_legacy_gc1" in srv.log()
    finally:
        stop_server(srv)
