"""Visitors (issue 11 items 2-5, docs/protocol.md §6) against a real Prosody, with real clients on both doors.

Three servers are started for this file (conftest.start_server):
- `vis`: built-in focus, `conference_request_visitors` with max_participants = 2 and two nodes of
  capacity 2; main rooms are filled to the limit with real MUC occupants (slixmpp);
- `live`: built-in focus with enable_live_room and require_room_flag;
- `ext`: external focus (focus_client.FocusClient plays jicofo) with visitors enabled.
Room facts Jitsi's modules keep (room.jitsiMetadata, the lobby's room._data.lobbyroom, affiliations)
are set through `prosodyctl shell`, as an operator (or those modules) would.
"""
import asyncio
import json

import pytest

from conftest import FOCUS, MUC, Http, Xmpp, conference_of, new_room, props_of, start_server, stop_server
from legacy_client import register

NODES = """
    conference_request_visitors = {
        enabled = true;
        max_participants = 2;
        nodes = {
            { id = "v1", focus_jid = "focus@v1.meet.jitsi", capacity = 2, reports = false };
            { id = "v2", focus_jid = "focus@v2.meet.jitsi", weight = 1, capacity = 2, reports = false };
        };
        %s
    }
"""
VERSION = [("visitors-version", "1")]
ASKED = [("visitors-version", "1"), ("visitor", "true")]


@pytest.fixture(scope="module")
def vis():
    srv, _ = start_server("visitors", NODES % "")
    try:
        for user in ("carol", "dave"):
            register(srv, user)
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def live():
    srv, _ = start_server("visitors-live", NODES % "enable_live_room = true; require_room_flag = true;")
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def clients(request):
    made = []

    def make(server, name):
        c = Xmpp(server, "%s@localhost" % name)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def ask(client, room, properties=()):
    """XMPP door: (attributes, properties) of the <conference/> answer."""
    reply = client.conference(room, list(properties))
    assert reply["type"] == "result", reply
    conf = conference_of(reply)
    return dict(conf.attrib), props_of(conf)


def post(server, room, properties=None):
    """HTTP door: the JSON answer."""
    web = Http(server.http_port)
    try:
        body = {"room": room}
        if properties is not None:
            body["properties"] = properties
        res = web.post(body)
        assert res.status == 200, res.body
        return res.json()
    finally:
        web.close()


def room_lua(room, code):
    """A Lua statement on the MUC room object `r` (prosodyctl shell's global environment)."""
    return (">local r = prosody.hosts[%r].modules.muc.get_room_from_jid(%r); %s"
            % (room.split("@")[1], room, code)).replace("'", '"')


def fill(server, clients, room, names=("alice", "bob")):
    """Creates `room` (a request without visitors-version) and joins it with real occupants."""
    first = clients(server, names[0])
    attrs, _ = ask(first, room)
    assert attrs["ready"] == "true"
    for name in names:
        c = first if name == names[0] else clients(server, name)
        pres = c.join(room, name)
        assert pres["type"] != "error", pres
    return first


# ------------------------------------------------------------------------------ built-in focus
def test_below_the_limit_no_redirect_on_both_doors(vis, clients):
    room = new_room("vis")
    fill(vis, clients, room, ("alice",))
    carol = clients(vis, "carol")
    attrs, props = ask(carol, room, VERSION)
    assert "vnode" not in attrs
    assert attrs["focusjid"] == FOCUS
    assert props["visitors-supported"] == "true"
    answer = post(vis, room, {"visitors-version": 1})
    assert "vnode" not in answer
    assert answer["focusJid"] == FOCUS
    assert answer["properties"]["visitors-supported"] == "true"


def test_at_the_limit_visitors_version_is_redirected_and_others_are_not(vis, clients):
    room = new_room("vis")
    fill(vis, clients, room)
    carol = clients(vis, "carol")
    attrs, _ = ask(carol, room, [("startAudioMuted", "1")])
    assert "vnode" not in attrs and attrs["focusjid"] == FOCUS
    attrs, props = ask(carol, room, VERSION)
    assert attrs["ready"] == "true"
    assert attrs["vnode"] in ("v1", "v2")
    assert attrs["focusjid"] == "focus@%s.meet.jitsi" % attrs["vnode"]
    assert props["visitors-supported"] == "true"
    # HTTP: no visitors-version, no redirect (jibri, jigasi); with it (a JSON number), redirected
    answer = post(vis, room, {"startAudioMuted": 1})
    assert "vnode" not in answer and answer["focusJid"] == FOCUS
    answer = post(vis, room, {"visitors-version": 1})
    assert answer["ready"] is True
    assert answer["vnode"] in ("v1", "v2")
    assert answer["focusJid"] == "focus@%s.meet.jitsi" % answer["vnode"]


def test_visitor_true_is_redirected_at_once(vis, clients):
    room = new_room("vis")
    carol = clients(vis, "carol")
    attrs, _ = ask(carol, room, ASKED)  # a room that does not exist yet
    assert attrs["ready"] == "true" and attrs["vnode"] in ("v1", "v2")
    answer = post(vis, new_room("vis"), {"visitors-version": 1, "visitor": True})
    assert answer["vnode"] in ("v1", "v2")


def test_owner_and_member_stay_unless_they_ask(vis, clients):
    room = new_room("vis")
    alice = fill(vis, clients, room)  # alice, first occupant of a room the module created, is owner
    attrs, _ = ask(alice, room, VERSION)
    assert "vnode" not in attrs
    vis.shell(room_lua(room, "r:set_affiliation(true, 'carol@localhost', 'member')"))
    carol = clients(vis, "carol")
    attrs, _ = ask(carol, room, VERSION)
    assert "vnode" not in attrs
    dave = clients(vis, "dave")
    attrs, _ = ask(dave, room, VERSION)
    assert attrs["vnode"] in ("v1", "v2")
    attrs, _ = ask(carol, room, ASKED)  # asked: redirected even so
    assert attrs["vnode"] in ("v1", "v2")


def test_a_room_keeps_its_node_until_capacity():
    # its own server: the loads of the other tests (pending redirects) must not fill the nodes
    srv, _ = start_server("visitors-capacity", NODES % "")
    try:
        room = new_room("cap")
        first = post(srv, room, {"visitors-version": 1, "visitor": True})["vnode"]
        # the room now sends visitors to a node: redirected without asking, to the same node (load 1 < 2)
        second = post(srv, room, {"visitors-version": 1})["vnode"]
        assert second == first
        third = post(srv, room, {"visitors-version": 1})["vnode"]  # full (2 pending): the other node
        assert third in ("v1", "v2") and third != first
        health = json.loads(Http(srv.http_port).request("GET", "/conference-request/v1/health").body)
        choice = health["visitors"]["choice"]
        assert (choice["hash"], choice["reuse"]) == (2, 1), choice
        out = srv.shell("conference_request:visitor_room(%r)" % room).replace("'", '"')
        assert "%s %s visitors=0 pending=2" % (room, first) in out, out
        assert "%s %s visitors=0 pending=1" % (room, third) in out, out
    finally:
        stop_server(srv)


def test_a_node_marked_down_receives_no_one(vis):
    out = vis.shell("conference_request:node_down('v1')")
    assert "marked down" in out, out
    try:
        for _ in range(6):
            assert post(vis, new_room("down"), {"visitors-version": 1, "visitor": True})["vnode"] == "v2"
        listing = vis.shell("conference_request:nodes()")
        assert "v1 DOWN" in listing and "v2 up" in listing, listing
        health = json.loads(Http(vis.http_port).request("GET", "/conference-request/v1/health").body)
        nodes = {n["id"]: n for n in health["visitors"]["nodes"]}
        assert nodes["v1"]["healthy"] is False and nodes["v2"]["healthy"] is True
        assert nodes["v2"]["pending"] >= 6
        assert health["visitors"]["redirects"] >= 6
    finally:
        vis.shell("conference_request:node_up('v1')")
    assert "v1 up" in vis.shell("conference_request:nodes()")


def test_node_state_survives_a_module_reload(vis):
    vis.shell("conference_request:node_down('v1')")
    try:
        out = vis.shell('module:reload("conference_request", "focus.localhost")')
        assert "Module reloaded" in out or "OK" in out, out
        assert "v1 DOWN" in vis.shell("conference_request:nodes()")
        assert post(vis, new_room("reload"), {"visitors-version": 1, "visitor": True})["vnode"] == "v2"
    finally:
        vis.shell("conference_request:node_up('v1')")


def test_node_load_set_from_the_shell(vis):
    out = vis.shell("conference_request:node_load('v2', 7, 'trial@conference.localhost')")
    assert "7 visitor(s)" in out, out
    listing = vis.shell("conference_request:nodes()")
    line = [l for l in listing.splitlines() if l.strip().startswith("v2 ")][0]
    assert "visitors=7" in line, listing
    vis.shell("conference_request:node_load('v2', 0, 'trial@conference.localhost')")


def test_no_redirect_with_lobby_visitors_disabled_or_in_a_breakout_room(vis, clients):
    room = new_room("vis")
    fill(vis, clients, room)
    vis.shell(room_lua(room, "r._data.lobbyroom = 'lobby@lobby.localhost'"))
    answer = post(vis, room, {"visitors-version": 1, "visitor": True})
    assert "vnode" not in answer and answer["focusJid"] == FOCUS
    vis.shell(room_lua(room, "r._data.lobbyroom = nil; r.jitsiMetadata = { visitorsEnabled = false }"))
    answer = post(vis, room, {"visitors-version": 1, "visitor": True})
    assert "vnode" not in answer
    assert answer["properties"]["visitors-supported"] == "false"
    vis.shell(room_lua(room, "r.jitsiMetadata = nil"))
    assert post(vis, room, {"visitors-version": 1, "visitor": True})["vnode"] in ("v1", "v2")

    breakout = "br-%s@breakout.localhost" % room.split("@")[0]
    answer = post(vis, breakout, {"visitors-version": 1, "visitor": True})
    assert answer["ready"] is True and "vnode" not in answer
    assert answer["properties"]["visitors-supported"] == "false"


def test_soft_limit_from_room_metadata(vis, clients):
    room = new_room("vis")
    fill(vis, clients, room, ("alice",))
    assert "vnode" not in post(vis, room, {"visitors-version": 1})
    vis.shell(room_lua(room, "r.jitsiMetadata = { participantsSoftLimit = 1 }"))
    assert post(vis, room, {"visitors-version": 1})["vnode"] in ("v1", "v2")


def _hs256(secret, user, group):
    import base64
    import hashlib
    import hmac
    import time

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    body = {"sub": "localhost", "room": "*", "exp": now + 3600, "nbf": now - 60,
            "context": {"user": {"id": user}, "group": group}}
    signing = "%s.%s" % (b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()), b64(json.dumps(body).encode()))
    return signing + "." + b64(hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest())


def test_jwt_users_listed_in_the_room_metadata_stay(clients):
    secret = "visitors-jwt-secret"
    srv, _ = start_server("visitors-jwt", NODES % "", env_extra={"CR_AUTH": "jwt", "CR_JWT_SECRET": secret})
    try:
        room = new_room("jwt")

        def post_as(user, group, properties):
            web = Http(srv.http_port)
            try:
                res = web.post({"room": room, "properties": properties},
                               headers={"Authorization": "Bearer " + _hs256(secret, user, group)})
                assert res.status == 200, res.body
                return res.json()
            finally:
                web.close()
        assert post_as("creator", "g0", {})["ready"] is True  # a token may create
        for name in ("alice", "bob"):
            assert clients(srv, name).join(room, name)["type"] != "error"
        srv.shell(room_lua(room, "r.jitsiMetadata = { participants = { 'vip' }, moderators = { 'g-mods' } }"))
        assert "vnode" not in post_as("vip", "g1", {"visitors-version": 1})
        assert "vnode" not in post_as("someone", "g-mods", {"visitors-version": 1})
        assert post_as("someone", "g1", {"visitors-version": 1})["vnode"] in ("v1", "v2")
        assert post_as("vip", "g1", {"visitors-version": 1, "visitor": True})["vnode"] in ("v1", "v2")
    finally:
        stop_server(srv)


# ------------------------------------------------------------------------------ live queue, room flag
def test_live_queue_answers_live_false_and_creates_nothing(live, clients):
    room = new_room("live")
    carol = clients(live, "alice")
    attrs, props = ask(carol, room, ASKED)
    assert attrs["ready"] == "false" and "vnode" not in attrs
    assert props["live"] == "false"
    answer = post(live, room, {"visitors-version": 1, "visitor": True})
    assert answer["ready"] is False and answer["properties"]["live"] == "false"
    assert carol.disco_info(room) == "item-not-found"  # nothing created
    # without visitors-version: never queued (and the room is created)
    attrs, props = ask(carol, room, [("visitor", "true")])
    assert attrs["ready"] == "true" and "live" not in props
    assert carol.disco_info(room) == "result"


def test_require_room_flag(live, clients):
    room = new_room("flag")
    fill(live, clients, room)
    live.shell(room_lua(room, "r.jitsiMetadata = { visitors = { live = true } }"))
    answer = post(live, room, {"visitors-version": 1, "visitor": True})
    assert answer["ready"] is True and "vnode" not in answer and "live" not in answer["properties"]
    assert answer["properties"]["visitors-supported"] == "false"
    live.shell(room_lua(room, "r.jitsiMetadata = { visitors = { live = true }, visitorsEnabled = true }"))
    answer = post(live, room, {"visitors-version": 1, "visitor": True})
    assert answer["vnode"] in ("v1", "v2")
    assert answer["properties"]["visitors-supported"] == "true"


# ------------------------------------------------------------------------------ external focus
FOCUS_JID = "focus@auth.localhost"


@pytest.fixture(scope="module")
def ext():
    srv, _ = start_server("visitors-ext", NODES % "" + "    conference_request_ready_wait = 4\n",
                          env_extra={"CR_FOCUS": FOCUS_JID, "CR_FOCUS_PASSWORD": "focus-secret"})
    try:
        for user in ("carol", "dave"):
            register(srv, user)
        yield srv
    finally:
        stop_server(srv)


def test_external_focus_answers_below_the_limit_and_forwards_at_it(ext):
    from focus_client import FocusClient
    from test_external_focus import Requester

    async def scenario():
        focus = FocusClient(FOCUS_JID + "/focus", "focus-secret", mode="join")
        await focus.start("127.0.0.1", ext.c2s_port)
        alice, bob = Requester("alice@localhost"), Requester("bob@localhost")
        for c in (alice, bob):
            c.register_plugin("xep_0045")
            await c.start(ext)
        room = new_room("ext")
        try:
            # a new room: notified once as today, the focus joins, ready
            kind, value, _ = await alice.request(room)
            assert kind == "result" and value["ready"] == "true", value
            assert len(focus.requests_for(room)) == 1
            await asyncio.wait_for(alice.plugin["xep_0045"].join_muc(room, "alice"), 10)
            # one occupant besides the focus: below the limit, answered by the module alone
            kind, value, _ = await bob.request(room, VERSION)
            assert kind == "result" and "vnode" not in value and value["focusjid"] == FOCUS_JID, value
            assert len(focus.requests_for(room)) == 1
            await asyncio.wait_for(bob.plugin["xep_0045"].join_muc(room, "bob"), 10)
            # at the limit: forwarded, the focus's vnode/focusjid relayed to that requester only
            focus.answer_attrs = {"vnode": "v7", "focusjid": "focus@v7.meet.jitsi"}
            focus.answer_properties = [("visitors-supported", "true")]
            carol = await Requester("carol@localhost").start(ext)
            dave = await Requester("dave@localhost").start(ext)
            (k1, v1, _), (k2, v2, _) = await asyncio.gather(carol.request(room, VERSION), dave.request(room))
            assert k1 == "result" and v1["vnode"] == "v7" and v1["focusjid"] == "focus@v7.meet.jitsi", v1
            assert v1["properties"]["visitors-supported"] == "true"
            assert k2 == "result" and "vnode" not in v2 and v2["focusjid"] == FOCUS_JID, v2
            forwarded = focus.requests_for(room)
            assert len(forwarded) == 2
            assert forwarded[1].frm == "%s/%s" % (FOCUS, carol.boundjid.full)
            assert ("visitors-version", "1") in forwarded[1].properties
            # the room now uses visitor nodes: forwarded below the limit too
            bob.plugin["xep_0045"].leave_muc(room, "bob")
            await bob.plugin["xep_0199"].ping(jid="localhost", timeout=10)
            kind, value, _ = await dave.request(room, VERSION)
            assert value.get("vnode") == "v7", value
            assert len(focus.requests_for(room)) == 3
            await carol.stop()
            await dave.stop()
        finally:
            await alice.stop()
            await bob.stop()
            await focus.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))



BAD_VISITORS = [
    ("conference_request_visitors = { enabled = true, nodez = {} }", "unknown key nodez"),
    ('conference_request_visitors = { enabled = true, nodes = { { id = "v1", focus_jid = "f@v1.meet.jitsi" },'
     ' { id = "v1", focus_jid = "f@v2.meet.jitsi" } } }', "is used twice"),
    ('conference_request_visitors = { enabled = true, nodes = { { id = "v1", focus_jid = "f@v1.meet.jitsi",'
     ' capacity = 0 } } }', "capacity must be"),
    ('conference_request_visitors = { enabled = true, nodes = { { id = "v1", focus_jid = "v1.meet.jitsi" } } }',
     "focus_jid must be a bare JID"),
    ("conference_request_visitors = { enabled = true, max_participants = 0, nodes = {"
     ' { id = "v1", focus_jid = "f@v1.meet.jitsi" } } }', "max_participants must be"),
    ("conference_request_visitors = { enabled = true }", "needs at least one node"),
]


@pytest.mark.parametrize("line,text", BAD_VISITORS, ids=[b[1] for b in BAD_VISITORS])
def test_bad_visitors_option_refuses_to_load(line, text):
    srv, failed = start_server("badvis", "    %s\n" % line, env_extra={"CR_START_TIMEOUT": "3"}, check=False)
    try:
        assert failed is not None, "the module must refuse to load"
        log = srv.log()
        assert "invalid option conference_request_visitors" in log and text in log, log[-2000:]
    finally:
        stop_server(srv)
