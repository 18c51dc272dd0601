"""Legacy jabber:iq:conference on the MUC host (docs/protocol.md §7), against the real Prosody: legacy clients
are real slixmpp clients sending the legacy stanzas by hand; MUC clients use XEP-0045.

Accounts: admin (may create rooms: the test MUC has restrict_room_creation = true), bob, carol and
dave (non-admins; carol and dave are registered here), alice (the MUC client)."""
import xml.etree.ElementTree as ET

import pytest

from conftest import MUC, new_room
from legacy_client import (NS_BROWSE, NS_CONF, NS_MUC_USER, error_info, muc_items, node, q,
                           query_children, sha1)
from legacy_client import accounts, make  # noqa: F401  (fixtures)

HEX40 = "0123456789abcdef0123456789abcdef01234567"


def from_room_only_by_id(stanzas, room):
    """Every stanza the room sent comes from the bare room or room/<40 hex> (never a nick)."""
    for el in stanzas:
        frm = el.get("from") or ""
        if frm.split("/")[0] != room:
            continue
        res = frm.split("/", 1)[1] if "/" in frm else None
        assert res is None or (len(res) == 40 and all(c in "0123456789abcdef" for c in res)), ET.tostring(el)


def status_codes(presence):
    x = presence.find("{%s}x" % NS_MUC_USER)
    return set() if x is None else {s.get("code") for s in x.findall("{%s}status" % NS_MUC_USER)}


@pytest.fixture
def scene(make):
    """A room with two legacy participants (lucy = admin, bobby = bob) and one MUC client
    (alice), every inbox drained."""
    room = new_room("legacy")
    l1 = make("admin@localhost/l1")
    l2 = make("bob@localhost/l2")
    m = make("alice@localhost/muc")
    l1.presence(room)
    assert query_children(l1.legacy_set(room, ["lucy"])) == [("nick", "lucy"), ("id", "%s/%s" % (room, l1.id))]
    l2.presence(room)
    assert query_children(l2.legacy_set(room, ["lucy", "bobby"]))[0] == ("nick", "bobby")
    m.join_muc(room, "alice")
    m.id = sha1(m.jid)
    for c in (l1, l2):
        c.push(room, m.id, "alice")
    for c in (l1, l2, m):
        c.take_all()
    return room, l1, l2, m


def test_get_on_missing_existing_and_password_rooms(make):
    room = new_room("legacy")
    bob = make("bob@localhost/get")
    admin = make("admin@localhost/get")
    for element in ("query", "enter"):  # any payload element name in the namespace
        etype, code, cond, text = error_info(bob.legacy_get(room, element))
        assert (etype, code, cond) == ("cancel", "404", "item-not-found")
        assert "a set will create it" in text
    assert query_children(admin.legacy_set(room, ["lucy"]))[0] == ("nick", "lucy")
    reply = bob.legacy_get(room, "enter")
    assert query_children(reply) == [("nick", None), ("name", node(room))]
    assert reply.get("from") == room

    locked = new_room("legacy")
    assert query_children(admin.legacy_set(locked, ["lucy"], secret="pw-123", name="Demo Room"))[0] == ("nick", "lucy")
    reply = bob.legacy_get(locked)
    assert query_children(reply) == [("nick", None), ("secret", None), ("name", "Demo Room")]
    assert b"pw-123" not in ET.tostring(reply)
    # the participant itself gets its nick and id back
    assert query_children(admin.legacy_get(locked)) == [
        ("nick", "lucy"), ("id", "%s/%s" % (locked, admin.id)), ("secret", None), ("name", "Demo Room")]


def test_create_enter_second_joiner_muc_client_and_all_nicks_taken(make):
    room = new_room("legacy")
    l1 = make("admin@localhost/l1")
    l2 = make("bob@localhost/l2")
    l3 = make("carol@localhost/l3")
    m = make("alice@localhost/muc")

    # presence to the bare room: remembered, no reply, not in the room
    l1.raw("<presence to='%s'><status>here</status></presence>" % room)
    assert [el for el in l1.take_all() if (el.get("from") or "").startswith(room)] == []

    reply = l1.legacy_set(room, ["lucy"])
    assert query_children(reply) == [("nick", "lucy"), ("id", "%s/%s" % (room, l1.id))]
    assert l1.id == sha1(l1.jid) and len(l1.id) == 40
    l1.push(room, l1.id, "lucy")
    own = l1.presence_from("%s/%s" % (room, l1.id))
    assert "110" in status_codes(own) and "201" in status_codes(own)
    assert own.findtext(q("status")) == "here"  # the remembered presence is the occupant's presence
    assert [i.get("jid") for i in muc_items(own)] == [l1.jid]

    # second legacy joiner: first nick taken, second one free
    l2.presence(room)
    assert query_children(l2.legacy_set(room, ["lucy", "bobby"])) == [("nick", "bobby"), ("id", "%s/%s" % (room, l2.id))]
    l2.push(room, l1.id, "lucy")
    l2.push(room, l2.id, "bobby")
    l2.presence_from("%s/%s" % (room, l1.id))
    l2.presence_from("%s/%s" % (room, l2.id))
    l1.push(room, l2.id, "bobby")
    l1.presence_from("%s/%s" % (room, l2.id))

    # a MUC client sees the legacy participants by nick; they see it by id
    joined = m.join_muc(room, "alice")
    assert joined["type"] != "error"
    m_id = sha1(m.jid)
    m.presence_from("%s/lucy" % room)
    m.presence_from("%s/bobby" % room)
    for c in (l1, l2):
        c.push(room, m_id, "alice")
        c.presence_from("%s/%s" % (room, m_id))

    # every offered nick taken
    etype, code, cond, text = error_info(l3.legacy_set(room, ["lucy", "bobby", "alice"]))
    assert (etype, code, cond) == ("cancel", "409", "conflict")
    assert text == "every offered nick is in use"
    # the refused user is not in the room
    users = l1.browse(room).findall("{%s}conference/{%s}user" % (NS_BROWSE, NS_BROWSE))
    assert sorted(u.get("name") for u in users) == ["alice", "bobby", "lucy"]

    for c in (l1, l2):
        from_room_only_by_id(c.take_all(), room)


def test_groupchat_both_directions_with_rewritten_from(scene):
    room, l1, l2, m = scene
    l1.message(room, "hello from lucy")
    m.message_from("%s/lucy" % room, "hello from lucy")
    l2.message_from("%s/%s" % (room, l1.id), "hello from lucy")
    echo = l1.message_from("%s/%s" % (room, l1.id), "hello from lucy")
    assert echo.get("type") == "groupchat"

    m.message(room, "hello from alice")
    for c in (l1, l2):
        got = c.message_from("%s/%s" % (room, m.id), "hello from alice")
        assert got.get("type") == "groupchat"
    m.message_from("%s/alice" % room, "hello from alice")

    # conference-0.4 forced type=groupchat for messages sent to the room
    l2.message(room, "a normal one", mtype="normal")
    assert m.message_from("%s/bobby" % room, "a normal one").get("type") == "groupchat"
    for c in (l1, l2):
        from_room_only_by_id(c.take_all(), room)


def test_private_messages_and_iqs_by_id_and_by_nick(scene):
    room, l1, l2, m = scene
    l2.message("%s/%s" % (room, l1.id), "pm by id", mtype="chat")
    assert l1.message_from("%s/%s" % (room, l2.id), "pm by id").get("type") == "chat"
    l2.message("%s/lucy" % room, "pm by nick", mtype="chat")
    l1.message_from("%s/%s" % (room, l2.id), "pm by nick")
    l2.message("%s/alice" % room, "pm to the MUC client", mtype="chat")
    m.message_from("%s/bobby" % room, "pm to the MUC client")
    m.message("%s/lucy" % room, "pm from the MUC client", mtype="chat")
    l1.message_from("%s/%s" % (room, m.id), "pm from the MUC client")

    # an IQ to room/<id> reaches the occupant, and its answer comes back through the room
    l2.raw("<iq type='get' id='raw-v1' to='%s/%s'><query xmlns='jabber:iq:version'/></iq>" % (room, l1.id))
    got = l1.wait(lambda el: el.tag == q("iq") and el.get("type") == "get", "the relayed iq")
    assert got.get("from") == "%s/%s" % (room, l2.id)
    l1.raw("<iq type='result' id='%s' to='%s'><query xmlns='jabber:iq:version'><name>legacy</name></query></iq>"
           % (got.get("id"), got.get("from")))
    res = l2.wait(lambda el: el.tag == q("iq") and el.get("id") == "raw-v1", "the iq result")
    assert res.get("type") == "result" and res.get("from") == "%s/%s" % (room, l1.id)
    assert res.findtext("{jabber:iq:version}query/{jabber:iq:version}name") == "legacy"

    # unknown ids are MUC's "not in room"
    l2.message("%s/%s" % (room, HEX40), "nobody", mtype="chat")
    err = l2.wait(lambda el: el.tag == q("message") and el.get("type") == "error", "an error for an unknown id")
    assert err.find(q("error")).find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None
    assert err.find(q("error")).get("code") == "404"


def describe(stanzas, room):
    """What a client received, in order, as short tuples: ("push", jid, name or "remove"),
    ("presence", from, type, sorted status codes, item nick), ("message", from, body)."""
    out = []
    for el in stanzas:
        if el.tag == q("iq") and el.get("type") == "set" and el.find("{%s}user" % NS_BROWSE) is not None:
            user = el.find("{%s}user" % NS_BROWSE)
            out.append(("push", user.get("jid"), user.get("name") or user.get("type")))
        elif el.tag == q("presence"):
            nicks = [i.get("nick") for i in muc_items(el) if i.get("nick")]
            out.append(("presence", el.get("from"), el.get("type"), tuple(sorted(status_codes(el))),
                        nicks[0] if nicks else None))
        elif el.tag == q("message"):
            out.append(("message", el.get("from"), el.findtext(q("body"))))
        else:
            out.append((el.tag, el.get("from"), el.get("type")))
    return out


def test_nick_change_by_set_keeps_the_id(scene):
    """A rename by a legacy set: legacy participants get the browse push only (the renamer its
    result, then the push); the MUC client gets XEP-0045's 303 unavailable + available."""
    room, l1, l2, m = scene
    # sent raw (id raw-*: the reply lands in the inbox), to see it arrive before the push
    l2.raw("<iq type='set' id='raw-rename' to='%s'><query xmlns='%s'><nick>lucy</nick><nick>robert</nick>"
           "</query></iq>" % (room, NS_CONF))
    got = l2.take_all()
    assert got and got[0].get("id") == "raw-rename", [ET.tostring(el) for el in got]
    assert query_children(got[0]) == [("nick", "robert"), ("id", "%s/%s" % (room, l2.id))]
    push = ("push", "%s/%s" % (room, l2.id), "robert")
    assert describe(got[1:], room) == [push], "the renamer's push follows its result"
    assert describe(l1.take_all(), room) == [push]
    assert describe(m.take_all(), room) == [
        ("presence", "%s/bobby" % room, "unavailable", ("303",), "robert"),
        ("presence", "%s/robert" % room, None, (), None)]
    # a taken nick only: conflict, the old nick is kept, nobody hears of it
    etype, code, cond, _ = error_info(l2.legacy_set(room, ["lucy"]))
    assert (code, cond) == ("409", "conflict")
    assert query_children(l2.legacy_get(room))[:2] == [("nick", "robert"), ("id", "%s/%s" % (room, l2.id))]
    for c in (l1, l2, m):
        assert c.take_all() == []
    m.message(room, "still there?")
    l2.message_from("%s/%s" % (room, m.id), "still there?")


def test_nick_change_by_presence_legacy_and_muc_renamers(scene):
    room, l1, l2, m = scene
    # a legacy participant renames by presence to room/newnick (RuneBlade's ChangeNick)
    l2.presence("%s/roberto" % room)
    push = ("push", "%s/%s" % (room, l2.id), "roberto")
    assert describe(l2.take_all(), room) == [push]
    assert describe(l1.take_all(), room) == [push]
    assert describe(m.take_all(), room) == [
        ("presence", "%s/bobby" % room, "unavailable", ("303",), "roberto"),
        ("presence", "%s/roberto" % room, None, (), None)]
    assert query_children(l2.legacy_get(room))[0] == ("nick", "roberto")

    # a MUC client renames: the legacy participants get the push, the MUC client its own 303 + 110
    m.raw("<presence to='%s/alicia'/>" % room)
    got = describe(m.take_all(), room)  # first: its barrier is behind the rename on m's connection
    assert got == [("presence", "%s/alice" % room, "unavailable", ("110", "303"), "alicia"),
                   ("presence", "%s/alicia" % room, None, ("110",), None)], got
    push = ("push", "%s/%s" % (room, m.id), "alicia")
    for c in (l1, l2):
        assert describe(c.take_all(), room) == [push]

    # a later presence update of a renamed participant reaches legacy participants as usual
    l2.raw("<presence to='%s/roberto'><status>back</status></presence>" % room)
    got = l1.presence_from("%s/%s" % (room, l2.id))
    assert got.findtext(q("status")) == "back"
    m.presence_from("%s/roberto" % room)

    # a rename by presence to a nick someone holds: mod_muc's conflict, with the legacy code
    l2.presence("%s/lucy" % room)
    err = l2.wait(lambda el: el.tag == q("presence") and el.get("type") == "error", "the conflict")
    assert err.find(q("error")).get("code") == "409"
    assert err.find(q("error")).find("{urn:ietf:params:xml:ns:xmpp-stanzas}conflict") is not None


def test_wrong_and_right_secret(make):
    room = new_room("legacy")
    l1 = make("admin@localhost/l1")
    l2 = make("bob@localhost/l2")
    m = make("alice@localhost/muc")
    assert query_children(l1.legacy_set(room, ["lucy"], secret="pw-1"))[0] == ("nick", "lucy")
    etype, code, cond, text = error_info(l2.legacy_set(room, ["bobby"]))
    assert (etype, code, cond) == ("auth", "401", "not-authorized")
    assert text == "this room requires a <secret>"
    etype, code, cond, text = error_info(l2.legacy_set(room, ["bobby"], secret="wrong"))
    assert (etype, code, cond, text) == ("auth", "401", "not-authorized", "wrong secret")
    # the secret is the MUC room password
    assert m.join_muc(room, "alice")["error"]["condition"] == "not-authorized"
    assert query_children(l2.legacy_set(room, ["bobby"], secret="pw-1"))[0] == ("nick", "bobby")
    l1.push(room, l2.id, "bobby")


def test_privacy_mode(make):
    room = new_room("legacy")
    owner = make("admin@localhost/l1")
    priv = make("bob@localhost/private")
    open_ = make("carol@localhost/open")
    m = make("alice@localhost/muc")
    # created with <privacy/>: the room allows privacy mode, the creator is private
    created = owner.legacy_set(room, ["lucy"], privacy=True)
    assert query_children(created) == [("nick", "lucy"), ("id", "%s/%s" % (room, owner.id)), ("privacy", None)]
    assert ("privacy", None) in query_children(priv.legacy_get(room))
    assert query_children(priv.legacy_set(room, ["bobby"], privacy=True))[2] == ("privacy", None)
    assert query_children(open_.legacy_set(room, ["carla"])) == [("nick", "carla"), ("id", "%s/%s" % (room, open_.id))]

    # carol, not private, sees the owner (private) and bob (private) without real JIDs
    for ident in (owner.id, priv.id):
        pres = open_.presence_from("%s/%s" % (room, ident))
        assert all("jid" not in i for i in muc_items(pres)), ET.tostring(pres)
    # the owner is a moderator and sees real JIDs: carol's, not bob's
    assert [i.get("jid") for i in muc_items(owner.presence_from("%s/%s" % (room, open_.id)))] == [open_.jid]
    assert all("jid" not in i for i in muc_items(owner.presence_from("%s/%s" % (room, priv.id))))

    m.join_muc(room, "alice")
    m_id = sha1(m.jid)
    # IQs to a private participant are refused (by id and by nick), messages are relayed
    for sender, to in ((m, "%s/bobby" % room), (open_, "%s/%s" % (room, priv.id))):
        reply = sender.request(to, "<query xmlns='jabber:iq:version'/>", itype="get")
        assert reply.get("from") == to
        etype, code, cond, _ = error_info(reply)
        assert (etype, code, cond) == ("auth", "403", "forbidden")
    m.message("%s/bobby" % room, "for your eyes only", mtype="chat")
    priv.message_from("%s/%s" % (room, m_id), "for your eyes only")

    # browse of a participant: the real JID only for non-private ones
    b = open_.browse("%s/%s" % (room, priv.id))
    user = b.find("{%s}user" % NS_BROWSE)
    assert user.get("jid") == "%s/%s" % (room, priv.id) and user.get("name") == "bobby"
    assert list(user) == []
    b = priv.browse("%s/carla" % room)
    inner = b.find("{%s}user/{%s}user" % (NS_BROWSE, NS_BROWSE))
    assert inner is not None and inner.get("jid") == open_.jid
    everything = b"".join(ET.tostring(el) for c in (open_, m) for el in c.take_all())
    assert priv.jid.encode() not in everything and owner.jid.encode() not in everything

    # a room created without <privacy/> does not allow it: the flag is ignored
    plain = new_room("legacy")
    assert query_children(owner.legacy_set(plain, ["lucy"])) == [("nick", "lucy"), ("id", "%s/%s" % (plain, owner.id))]
    assert all(name != "privacy" for name, _ in query_children(priv.legacy_get(plain)))
    assert query_children(priv.legacy_set(plain, ["bobby"], privacy=True)) == [("nick", "bobby"), ("id", "%s/%s" % (plain, priv.id))]
    assert [i.get("jid") for i in muc_items(owner.presence_from("%s/%s" % (plain, priv.id)))] == [priv.jid]


def test_leave_by_unavailable_presence_and_by_disconnect(scene, make):
    room, l1, l2, m = scene
    l2.presence(room, "unavailable")
    l1.push(room, l2.id)
    l1.presence_from("%s/%s" % (room, l2.id), "unavailable")
    m.presence_from("%s/bobby" % room, "unavailable")
    l2.presence_from("%s/%s" % (room, l2.id), "unavailable")
    assert query_children(l2.legacy_get(room))[0] == ("nick", None)

    # a participant whose connection goes away leaves too (its presence to the room was directed)
    l3 = make("carol@localhost/gone")
    l3.presence(room)
    assert query_children(l3.legacy_set(room, ["carla"]))[0] == ("nick", "carla")
    l1.push(room, l3.id, "carla")
    l3.close()
    l1.push(room, l3.id)
    m.presence_from("%s/carla" % room, "unavailable")


def test_browse_from_outside_public_and_private_rooms(scene, make):
    room, l1, l2, m = scene
    outsider = make("dave@localhost/out")

    def publicroom(value):
        # the owner (a legacy participant, a real occupant) configures the room through MUC
        form = ("<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
                "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
                "<field var='muc#roomconfig_publicroom'><value>%s</value></field></x></query>" % value)
        assert l1.request(room, form).get("type") == "result"
    publicroom(1)
    reply = outsider.browse(room)
    assert reply.get("type") == "result"
    conf = reply.find("{%s}conference" % NS_BROWSE)
    assert (conf.get("type"), conf.get("name")) == ("public", node(room))
    users = {u.get("jid"): u.get("name") for u in conf.findall("{%s}user" % NS_BROWSE)}
    assert users == {"%s/%s" % (room, l1.id): "lucy", "%s/%s" % (room, l2.id): "bobby", "%s/%s" % (room, m.id): "alice"}

    publicroom(0)
    conf = outsider.browse(room).find("{%s}conference" % NS_BROWSE)
    assert conf.get("type") == "private"
    assert conf.findall("{%s}user" % NS_BROWSE) == []
    # participants still see everyone
    assert len(l2.browse(room).find("{%s}conference" % NS_BROWSE).findall("{%s}user" % NS_BROWSE)) == 3

    etype, code, cond, _ = error_info(outsider.browse(new_room("legacy")))
    assert (code, cond) == ("404", "item-not-found")


def test_invite_relay_and_direct_invitations(scene, make):
    room, l1, l2, m = scene
    carol = make("carol@localhost/invited")
    x = "<x xmlns='jabber:x:conference' jid='%s'/>" % room
    l1.raw("<message to='%s' type='groupchat'><subject>invite:carol@localhost</subject><body>come over</body>%s</message>"
           % (room, x))
    got = carol.message_from("%s/lucy" % room, "come over")
    assert got.find("{jabber:x:conference}x").get("jid") == room
    # not broadcast to the room
    for c in (l2, m):
        assert not [el for el in c.take_all() if el.findtext(q("body")) == "come over"]

    l1.raw("<message to='%s'><subject>invite:</subject><body>nobody</body></message>" % room)
    err = l1.wait(lambda el: el.tag == q("message") and el.get("type") == "error", "the invite error")
    assert (err.find(q("error")).get("code"), err.find(q("error")).get("type")) == ("400", "modify")

    # a direct invitation (user to user) passes untouched
    l1.raw("<message to='carol@localhost'><body>direct</body>%s</message>" % x)
    got = carol.message_from(l1.jid, "direct")
    assert got.find("{jabber:x:conference}x").get("jid") == room


def test_room_creation_refused_when_dynamic_rooms_are_off(make):
    room = new_room("legacy")
    bob = make("bob@localhost/nocreate")
    etype, code, cond, text = error_info(bob.legacy_set(room, ["bobby"]))
    assert (etype, code, cond) == ("cancel", "405", "not-allowed")
    assert text == "this service does not create rooms on request"
    assert error_info(bob.legacy_get(room))[2] == "item-not-found"


def test_hostile_input(make):
    room = new_room("legacy")
    l1 = make("admin@localhost/l1")
    bob = make("bob@localhost/hostile")
    assert query_children(l1.legacy_set(room, ["lucy"]))[0] == ("nick", "lucy")

    etype, code, cond, text = error_info(bob.legacy_set(room, ["n%d" % i for i in range(1000)]))
    assert (etype, code, cond, text) == ("modify", "406", "policy-violation", "more than 16 <nick> elements")
    etype, code, cond, text = error_info(bob.legacy_set(room, ["x" * 1024]))
    assert (code, cond, text) == ("406", "policy-violation", "<nick> longer than 1023 bytes")
    assert error_info(bob.legacy_set(room, inner="<secret>%s</secret><nick>b</nick>" % ("s" * 1024)))[3] == \
        "<secret> longer than 1023 bytes"
    etype, code, cond, text = error_info(bob.legacy_set(room, inner=""))
    assert (code, cond, text) == ("409", "conflict", "no <nick> offered")
    etype, code, cond, text = error_info(bob.legacy_set(room, ["", "   "]))
    assert (code, cond) == ("409", "conflict") and text.startswith("no usable <nick>")
    # a 40-hex nick could shadow an id (here: lucy's own id)
    assert error_info(bob.legacy_set(room, [l1.id, HEX40.upper()]))[2] == "conflict"
    etype, code, cond, text = error_info(bob.legacy_set(room, inner="<nick>a<b/>c</nick>"))
    assert (etype, code, cond, text) == ("modify", "400", "bad-request", "<nick> must contain text only")
    deep = "<d>" * 20 + "</d>" * 20
    assert error_info(bob.legacy_set(room, inner=deep))[1:3] == ("400", "bad-request")
    # still serving, and the 40-hex nick is skipped for the next usable one
    assert query_children(bob.legacy_set(room, [l1.id, "bobby"]))[0] == ("nick", "bobby")
    l1.push(room, bob.id, "bobby")


def test_replies_to_pushes_are_ignored(scene, make):
    room, l1, l2, m = scene
    l3 = make("carol@localhost/l3")
    assert query_children(l3.legacy_set(room, ["carla"]))[0] == ("nick", "carla")
    push = l1.push(room, l3.id, "carla")
    l1.raw("<iq type='result' id='%s' to='%s'/>" % (push.get("id"), room))
    l1.raw("<iq type='error' id='%s' to='%s'><error type='cancel'><feature-not-implemented "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % (push.get("id"), room))
    l1.barrier()
    m.message(room, "after the replies")
    l1.message_from("%s/%s" % (room, m.id), "after the replies")
    assert query_children(l1.legacy_get(room))[0] == ("nick", "lucy")
    assert not [el for el in m.take_all() if el.get("type") == "unavailable" and el.get("from") == "%s/lucy" % room]


def test_service_host_and_unknown_namespace_left_to_muc(make):
    bob = make("bob@localhost/misc")
    # the legacy namespace to the MUC service itself is not ours: MUC answers as usual
    reply = bob.request(MUC, "<query xmlns='%s'/>" % NS_CONF, itype="get")
    assert reply.get("type") == "error"


def legacy_stamp(stamp):
    """XEP-0082 2026-12-02T07:04:02Z as XEP-0091's 20261202T07:04:02."""
    return stamp[:19].replace("-", "")


def test_history_replay_to_a_legacy_joiner_is_rewritten(scene, make, server):
    """A late legacy joiner's history: every line from its sender's id (a renamed sender, a
    departed one, one whose old nick someone else holds now), with jabber:x:delay; a line from a
    sender the room does not know comes from the room. A MUC joiner sees the nicks of the time."""
    room, l1, l2, m = scene
    m.message(room, "said before carol came")
    l1.message_from("%s/%s" % (room, m.id), "said before carol came")  # in this order in the history
    l2.message(room, "bobby was here")
    l1.message_from("%s/%s" % (room, l2.id), "bobby was here")
    assert query_children(l2.legacy_set(room, ["robert"]))[0] == ("nick", "robert")
    l2.message(room, "robert now")
    l2.message_from("%s/%s" % (room, l2.id), "robert now")
    l2.presence(room, "unavailable")  # the renamed sender has left too
    l1.push(room, l2.id)
    squatter = make("dave@localhost/squat")  # bobby's old nick now belongs to somebody else
    assert query_children(squatter.legacy_set(room, ["bobby"]))[0] == ("nick", "bobby")
    squatter.message(room, "i am the new bobby")
    squatter.message_from("%s/%s" % (room, squatter.id), "i am the new bobby")
    # a line the room sends itself: no sender known to it
    out = server.shell("> local st = require 'util.stanza'; prosody.hosts['%s'].modules.muc.get_room_from_jid('%s')"
                       ":broadcast_message(st.message({ from = '%s', type = 'groupchat' }):text_tag('body', 'from the room'))"
                       % (MUC, room, room))
    assert "error" not in out.lower(), out
    l1.message_from(room, "from the room")

    late = make("carol@localhost/late")
    assert query_children(late.legacy_set(room, ["carla"]))[0] == ("nick", "carla")
    got = [el for el in late.take_all() if el.tag == q("message") and el.findtext(q("body"))]
    assert [(el.get("from"), el.findtext(q("body"))) for el in got] == [
        ("%s/%s" % (room, m.id), "said before carol came"),
        ("%s/%s" % (room, l2.id), "bobby was here"),
        ("%s/%s" % (room, l2.id), "robert now"),
        ("%s/%s" % (room, squatter.id), "i am the new bobby"),
        (room, "from the room"),
    ]
    for el in got:
        delay = el.find("{urn:xmpp:delay}delay")
        old = el.find("{jabber:x:delay}x")
        assert delay is not None and old is not None, ET.tostring(el)
        assert old.get("stamp") == legacy_stamp(delay.get("stamp")), ET.tostring(el)
        assert len(old.get("stamp")) == 17 and old.get("stamp")[8] == "T"

    # a MUC client joining late sees the history as mod_muc keeps it: nicks of the time, no jabber:x:delay
    muc_late = make("carol@localhost/muc-late")
    muc_late.raw("<presence to='%s/carola'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % room)
    muc_late.presence_from("%s/carola" % room)
    got = [el for el in muc_late.take_all() if el.tag == q("message") and el.findtext(q("body"))]
    assert [(el.get("from"), el.findtext(q("body"))) for el in got] == [
        ("%s/alice" % room, "said before carol came"), ("%s/bobby" % room, "bobby was here"),
        ("%s/robert" % room, "robert now"), ("%s/bobby" % room, "i am the new bobby"),
        (room, "from the room")]
    assert all(el.find("{jabber:x:delay}x") is None for el in got)


def test_mod_muc_errors_to_legacy_clients_carry_the_legacy_code(scene, make):
    room, l1, l2, m = scene
    stanza_ns = "{urn:ietf:params:xml:ns:xmpp-stanzas}"

    def error_of(client, what):
        err = client.wait(lambda el: el.get("type") == "error" and el.tag in (q("message"), q("presence")), what)
        e = err.find(q("error"))
        cond = [c.tag[len(stanza_ns):] for c in e if c.tag.startswith(stanza_ns) and not c.tag.endswith("}text")]
        return e.get("code"), cond[0]

    # message to an unknown occupant (by nick and by id): 404
    l2.message("%s/nobody" % room, "hello?", mtype="chat")
    assert error_of(l2, "unknown nick") == ("404", "item-not-found")
    l2.message("%s/%s" % (room, HEX40), "hello?", mtype="chat")
    assert error_of(l2, "unknown id") == ("404", "item-not-found")
    # groupchat to an occupant: 400
    l2.message("%s/lucy" % room, "not like this", mtype="groupchat")
    assert error_of(l2, "groupchat pm") == ("400", "bad-request")

    # groupchat from outside the room, by a legacy client (presence to the bare room first, as
    # the old join does): mod_muc's not-acceptable, with the 403 the old servers sent
    outsider = make("dave@localhost/outside")
    outsider.presence(room)
    outsider.message(room, "let me in")
    assert error_of(outsider, "groupchat from outside") == ("403", "not-acceptable")
    # so is a client that has spoken the legacy protocol elsewhere on this service
    other = new_room("legacy")
    assert query_children(l1.legacy_set(other, ["lucy"]))[0] == ("nick", "lucy")
    carol = make("carol@localhost/legacy-elsewhere")
    assert query_children(carol.legacy_get(other))[0] == ("nick", None)
    carol.message(room, "me neither")
    assert error_of(carol, "groupchat from outside") == ("403", "not-acceptable")

    # refused join: a banned user's legacy set (mod_muc's forbidden)
    ban = ("<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='dave@localhost'/></query>")
    assert l1.request(room, ban).get("type") == "result"
    etype, code, cond, _ = error_info(outsider.legacy_set(room, ["davy"]))
    assert (etype, code, cond) == ("auth", "403", "forbidden")

    # a MUC client that never spoke the legacy protocol gets mod_muc's errors as they are
    plain = make("carol@localhost/plain-muc")
    plain.message(room, "not in the room", mtype="groupchat")
    assert error_of(plain, "groupchat from outside (MUC client)") == (None, "not-acceptable")
    m.message("%s/nobody" % room, "hello?", mtype="chat")
    assert error_of(m, "unknown nick (MUC client)") == (None, "item-not-found")


def test_module_reload_keeps_legacy_participants(scene, server):
    room, l1, l2, m = scene
    out = server.shell('module:reload("conference_request", "focus.localhost")')
    assert "OK" in out, out
    m.message(room, "after the reload")
    l1.message_from("%s/%s" % (room, m.id), "after the reload")
    assert query_children(l2.legacy_set(room, ["roberto"])) == [("nick", "roberto"), ("id", "%s/%s" % (room, l2.id))]
    l1.push(room, l2.id, "roberto")
    l2.message("%s/%s" % (room, l1.id), "pm after the reload", mtype="chat")
    l1.message_from("%s/%s" % (room, l2.id), "pm after the reload")
