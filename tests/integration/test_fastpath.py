"""The doors' fast paths (issue 15) against a real Prosody: a ready room asked for by its registry key
(the fast path: one native call) and by another spelling of the same room (the general path:
stringprep first) gets the same answer, byte for byte on HTTP (status, headers but Date, body) and
element for element on XMPP. spec/native_fastpath_spec.lua compares the two paths over many more
shapes; this checks the wiring inside Prosody."""
import xml.etree.ElementTree as ET

from conftest import NS, conference_of, new_room


def other_spelling(room):
    node, host = room.split("@")
    return node.upper() + "@" + host.upper()


def test_http_answers_a_ready_room_the_same_on_both_paths(web):
    room = new_room()
    assert web.post({"room": room}).status == 200  # created: the room is now a ready key
    for headers in ({}, {"Origin": "https://meet.example"}):
        body = {"room": room, "machineUid": "m1", "properties": {"rtcstatsEnabled": False, "v": 1}}
        fast = web.post(body, headers=headers)
        body["room"] = other_spelling(room)
        general = web.post(body, headers=headers)
        assert fast.status == general.status == 200
        assert fast.body == general.body
        strip = lambda h: {k: v for k, v in h.items() if k != "date"}  # noqa: E731
        assert strip(fast.headers) == strip(general.headers)
        assert fast.json()["room"] == room
        assert "access-control-allow-origin" in fast.headers


def test_xmpp_answers_a_ready_room_the_same_on_both_paths(alice):
    room = new_room()
    assert conference_of(alice.conference(room)).get("ready") == "true"
    props = [("rtcstatsEnabled", "false"), ("visitors-version", "1")]
    fast = conference_of(alice.conference(room, props, {"machine-uid": "m1"}))
    general = conference_of(alice.conference(other_spelling(room), props, {"machine-uid": "m1"}))
    assert fast is not None and general is not None
    assert fast.attrib == general.attrib
    assert fast.get("room") == room

    def children(el):
        return [(c.tag, dict(c.attrib)) for c in el]
    assert children(fast) == children(general)
    assert children(fast)[0][0] == "{%s}property" % NS
    assert ET.tostring(fast) == ET.tostring(general)
