"""The XMPP door: <conference xmlns='http://jitsi.org/protocol/focus'/> IQs to focus.localhost."""
import pytest

from conftest import FOCUS, MUC, NS, conference_of, error_of, new_room, props_of


def test_new_room_is_created_and_answered_ready(alice):
    room = new_room()
    assert alice.disco_info(room) == "item-not-found"
    reply, iq_id = alice.iq(
        "<conference xmlns='%s' room='%s'><property name='startMuted' value='true'/></conference>" % (NS, room))
    assert reply["type"] == "result"
    assert reply["id"] == iq_id
    assert reply["from"].full == FOCUS
    conf = conference_of(reply)
    assert conf is not None, "the <conference/> element must be a direct child of <iq/>"
    assert conf.get("room") == room
    assert conf.get("ready") == "true"
    assert conf.get("focusjid") == FOCUS
    assert props_of(conf)["authentication"] == "false"
    # the MUC really has the room now
    assert alice.disco_info(room) == "result"


def test_room_is_normalized(alice):
    room = new_room("MiXeD").replace(MUC, "Conference.LocalHost")
    conf = conference_of(alice.conference(room))
    assert conf.get("room") == room.lower()
    assert alice.disco_info(room.lower()) == "result"


def test_second_request_gets_the_same_answer(alice, server):
    room = new_room()
    first = conference_of(alice.conference(room))
    second = conference_of(alice.conference(room, properties=[("startMuted", "false")]))
    assert first.attrib == second.attrib
    assert props_of(first) == props_of(second)
    assert second.get("ready") == "true"


def test_room_on_extra_muc_is_served(alice):
    room = new_room().replace(MUC, "breakout.localhost")
    conf = conference_of(alice.conference(room))
    assert conf.get("ready") == "true"
    assert alice.disco_info(room) == "result"


def test_iq_get_is_bad_request(alice):
    room = new_room()
    reply = alice.conference(room, itype="get")
    assert reply["type"] == "error"
    etype, cond, text = error_of(reply)
    assert (etype, cond) == ("modify", "bad-request")
    assert text
    assert alice.disco_info(room) == "item-not-found", "a refused request creates nothing"


# (name, conference attributes, properties, expected error type, condition)
BAD = [
    ("missing room", {}, [], "modify", "bad-request"),
    ("empty room", {"room": ""}, [], "modify", "bad-request"),
    ("no node", {"room": MUC}, [], "modify", "jid-malformed"),
    ("two @", {"room": "a@b@" + MUC}, [], "modify", "jid-malformed"),
    ("resource", {"room": "r1@%s/nick" % MUC}, [], "modify", "jid-malformed"),
    ("space in node (nodeprep)", {"room": "r x@" + MUC}, [], "modify", "jid-malformed"),
    ("room too long", {"room": "r" * 1100 + "@" + MUC}, [], "modify", "jid-malformed"),
    ("unserved muc", {"room": "r1@elsewhere.localhost"}, [], "cancel", "item-not-found"),
    ("served host but not a muc", {"room": "r1@localhost"}, [], "cancel", "item-not-found"),
    ("too many properties", {"room": "r1@" + MUC}, [("p%d" % i, "v") for i in range(65)], "modify", None),
    ("property value too long", {"room": "r1@" + MUC}, [("p", "v" * 4097)], "modify", None),
]


@pytest.mark.parametrize("name,attrs,props,etype,cond", BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_an_error_with_text_and_next_is_served(alice, name, attrs, props, etype, cond):
    room_attr = attrs.get("room")
    reply = alice.conference(room_attr, properties=props)
    assert reply["type"] == "error", name
    got_type, got_cond, text = error_of(reply)
    assert got_type == etype
    if cond is not None:
        assert got_cond == cond
    else:
        assert got_cond in ("policy-violation", "bad-request")
    assert text, "every error reply carries <text>"
    # the next good request is still served
    good = new_room()
    conf = conference_of(alice.conference(good))
    assert conf.get("ready") == "true"
