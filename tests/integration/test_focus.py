"""The built-in focus: rooms created through mod_muc, conference properties, the empty-room
timeout, and the registry mirroring the MUC (seen through the operator's shell command)."""
import json
import re
import time
import uuid

from conftest import EMPTY_ROOM_TIMEOUT, FOCUS, NS, conference_of, error_of, eventually, new_room

V1 = "/conference-request/v1"


def shell_rooms(server):
    """room -> (state, properties text) from `prosodyctl shell 'conference_request:rooms()'`."""
    out = server.shell("conference_request:rooms()")
    assert "room(s) tracked" in out, out
    rooms = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+@\S+) state=(\w+) waiters=(\d+)( unjoined)? properties: (.*)$", line)
        if m:
            rooms[m.group(1)] = {"state": m.group(2), "waiters": int(m.group(3)),
                                 "unjoined": bool(m.group(4)), "properties": m.group(5)}
    return rooms


def parse_props(text):
    return dict(re.findall(r'(\S+?)="((?:[^"\\]|\\.)*)"', text))


def test_first_request_properties_are_stored_and_cannot_change(alice, server):
    room = new_room()
    alice.conference(room, properties=[("startMuted", "true"), ("rtcstatsEnabled", "false")])
    alice.conference(room, properties=[("startMuted", "false"), ("injected", "yes")])
    entry = shell_rooms(server)[room]
    assert entry["state"] == "ready"
    assert parse_props(entry["properties"]) == {"startMuted": "true", "rtcstatsEnabled": "false"}


def test_payload_read_from_the_parsed_stanza_follows_the_xml_rules(alice, server):
    """The XMPP door reads the element Prosody's stream parser built (codec:parse_stanza): a
    prefixed property in the focus namespace counts, one in another namespace does not, a nested
    one does not, escapes arrive decoded, and nesting past
    max_xml_depth (16) is refused with bad-request while 16 levels are accepted."""
    room = new_room()
    payload = ("<conference xmlns='%s' room='%s' xmlns:f='%s'>"
               "<property name='plain' value='a&amp;b&lt;c'/>"
               "<f:property name='prefixed' value='1'/>"
               "<property xmlns='urn:other' name='foreign' value='1'/>"
               "<x><property name='nested' value='1'/></x>"
               "</conference>") % (NS, room, NS)
    reply, _ = alice.iq(payload)
    assert reply["type"] == "result"
    assert parse_props(shell_rooms(server)[room]["properties"]) == {"plain": "a&b<c", "prefixed": "1"}

    def nested(levels):
        return "<conference xmlns='%s' room='%s'>%s%s</conference>" % (
            NS, new_room(), "<x>" * (levels - 1), "</x>" * (levels - 1))
    reply, _ = alice.iq(nested(16))
    assert reply["type"] == "result"
    reply, _ = alice.iq(nested(17))
    assert reply["type"] == "error"
    assert error_of(reply)[:2] == ("modify", "bad-request")
    assert "deeper than 16" in error_of(reply)[2]


def test_shell_stats_show_the_counters_and_the_built_in_focus(alice, server):
    alice.conference(new_room())
    out = server.shell("conference_request:stats()")
    line = [l for l in out.splitlines() if l.startswith("focus.localhost: ")]
    assert len(line) == 1, out
    assert re.search(r"rooms=[1-9]\d* ready=\d+ pending=\d+ waiters=\d+ requests=[1-9]\d* ", line[0]), line[0]
    assert line[0].endswith(" focus=built-in"), line[0]


def test_http_properties_are_coerced_and_stored(web, server):
    room = new_room()
    r = web.post({"room": room, "properties": {"n": 1, "b": True, "f": 1.5, "s": "x", "z": None}})
    assert r.status == 200
    web.post({"room": room, "properties": {"n": 2}})
    assert parse_props(shell_rooms(server)[room]["properties"]) == {"n": "1", "b": "true", "f": "1.5", "s": "x"}


def test_room_created_by_a_user_is_ready_and_not_created_again(admin, alice, web, server):
    room = new_room("userroom")
    admin.join(room, "admin")  # admins may create rooms despite restrict_room_creation
    created_before = web.request("GET", V1 + "/health").json()["rooms_created"]
    conf = conference_of(alice.conference(room, properties=[("startMuted", "true")]))
    assert conf.get("ready") == "true" and conf.get("focusjid") == FOCUS
    assert web.request("GET", V1 + "/health").json()["rooms_created"] == created_before
    entry = shell_rooms(server)[room]
    assert entry["state"] == "ready"
    assert entry["properties"] == "-", "properties are stored only for rooms the module creates"


def test_users_cannot_create_rooms_but_can_join_module_created_ones(alice):
    # restrict_room_creation is on: a plain join of a missing room is refused …
    missing = new_room("nocreate")
    pres = alice.join(missing, "alice")
    assert pres["type"] == "error"
    assert pres["error"]["condition"] == "not-allowed"
    assert alice.disco_info(missing) == "item-not-found"
    # … while a room the module created can be joined
    room = new_room()
    alice.conference(room)
    pres = alice.join(room, "alice")
    assert pres["type"] != "error"


def test_unjoined_room_is_destroyed_after_the_timeout(alice, server, web):
    room = new_room("empty")
    expired_before = web.request("GET", V1 + "/health").json()["rooms_expired"]
    alice.conference(room)
    assert alice.disco_info(room) == "result"
    assert shell_rooms(server)[room]["unjoined"]
    gone = eventually(lambda: alice.disco_info(room) == "item-not-found", timeout=EMPTY_ROOM_TIMEOUT * 15)
    assert gone, "an unjoined room must eventually be destroyed"
    assert room not in shell_rooms(server), "the registry forgets destroyed rooms"
    assert web.request("GET", V1 + "/health").json()["rooms_expired"] >= expired_before + 1, "expiry is counted"
    # asking again creates it again
    conf = conference_of(alice.conference(room))
    assert conf.get("ready") == "true"
    assert alice.disco_info(room) == "result"


def test_joined_room_is_not_destroyed(alice, server):
    room = new_room("joined")
    alice.conference(room)
    alice.join(room, "alice")
    assert not shell_rooms(server)[room]["unjoined"], "a join cancels the empty-room timeout"
    time.sleep(EMPTY_ROOM_TIMEOUT * 2)
    assert alice.disco_info(room) == "result"
    # and when the last occupant leaves, mod_muc destroys it and the registry forgets it
    alice.leave(room, "alice")
    assert eventually(lambda: room not in shell_rooms(server), timeout=10)


def test_requests_do_not_extend_the_empty_room_timer(alice, web, server):
    room = new_room("kept")
    web.post({"room": room})
    # requests every quarter of the timeout: the room still goes once the timeout has passed
    # since its creation (the old rule restarted the wait on each request: it never went)
    expired = "room %s was not joined within" % room
    end = time.monotonic() + EMPTY_ROOM_TIMEOUT * 5
    while time.monotonic() < end and expired not in server.log():
        assert web.post({"room": room}).json()["ready"] is True
        time.sleep(EMPTY_ROOM_TIMEOUT / 4)
    assert expired in server.log(), "requests alone kept an unjoined room alive"


def test_shell_lists_rooms_from_both_doors(alice, web, server):
    a = new_room()
    b = new_room()
    alice.conference(a)
    web.post(json.dumps({"room": b}))
    rooms = shell_rooms(server)
    assert rooms[a]["state"] == "ready" and rooms[b]["state"] == "ready"


def test_module_reload_rebuilds_state_and_keeps_serving(alice, web, server):
    kept = new_room("reload")
    alice.conference(kept, properties=[("startMuted", "true")])
    alice.join(kept, "alice")
    empty = new_room("reload-empty")
    assert web.post({"room": empty}).status == 200
    out = server.shell('module:reload("conference_request", "focus.localhost")')
    assert "OK" in out, out
    rooms = shell_rooms(server)
    assert rooms[kept]["state"] == "ready", "tracked state is rebuilt from the live MUC rooms"
    assert parse_props(rooms[kept]["properties"]) == {"startMuted": "true"}
    assert web.post({"room": kept}).json()["ready"] is True
    assert conference_of(alice.conference(kept)).get("ready") == "true"
    # a room created before the reload and never joined still expires
    assert eventually(lambda: alice.disco_info(empty) == "item-not-found", timeout=EMPTY_ROOM_TIMEOUT * 15)
    assert alice.disco_info(kept) == "result"


def test_empty_room_timer_spares_an_occupied_room_whose_join_was_missed(alice, server):
    """The timer destroys a room only if it is empty when it fires. A join the module did not see
    (here a handler installed through the operator shell consumes muc-occupant-joined for one nick
    before the module's handler runs, as a third-party module could) leaves the room marked
    unjoined; when the timer fires the room has an occupant and must stay."""
    nick = "missed-%s" % uuid.uuid4().hex[:8]
    install = ('> local function h(e) if e.occupant and e.occupant.nick:sub(-%d) == "/%s" then return true end end; '
               'prosody.cr_test_missed_join = h; '
               'prosody.hosts["conference.localhost"].events.add_handler("muc-occupant-joined", h, 1000)'
               % (len(nick) + 1, nick))
    out = server.shell(install)
    assert "error" not in out.lower(), out
    try:
        room = new_room("missed")
        alice.conference(room)
        pres = alice.join(room, nick)
        assert pres["type"] != "error"
        assert shell_rooms(server)[room]["unjoined"], "the join was missed: the room still waits for one"
        fired = eventually(lambda: not shell_rooms(server).get(room, {}).get("unjoined", False),
                           timeout=EMPTY_ROOM_TIMEOUT * 15)
        assert fired, "the empty-room timer must have run"
        assert alice.disco_info(room) == "result", "an occupied room must not be destroyed by the timer"
        assert shell_rooms(server)[room]["state"] == "ready"
        alice.leave(room, nick)
    finally:
        server.shell('> prosody.hosts["conference.localhost"].events.remove_handler("muc-occupant-joined", '
                     'prosody.cr_test_missed_join); prosody.cr_test_missed_join = nil')
