"""Moderation by the built-in focus (issue 10 item 4, docs/protocol.md §4.2), auth `none`, against a
real Prosody with real MUC clients (slixmpp): what each occupant sees in the presences the room
sends. The xmpp/jwt rules are specified with a fake auth in spec/moderation_spec.lua.

- the first occupant of a room the module created becomes owner (role moderator) as it joins;
- later joiners stay participants;
- when the owner leaves, the longest-present occupant becomes owner (jicofo's auto-owner), and so on;
- rooms the module did not create keep mod_muc's rules (nothing granted);
- with an external focus the module grants nothing (jicofo decides).
"""
import asyncio
import xml.etree.ElementTree as ET
import uuid

import pytest

from conftest import MUC, conference_of, new_room
from legacy_client import NS_MUC_USER, Client, muc_items, q, register
from test_external_focus import FOCUS_JID, FOCUS_PASSWORD, Requester, ext_server  # noqa: F401  (fixture)
from focus_client import FocusClient


def item_of(presence):
    items = muc_items(presence)
    assert len(items) == 1, items
    return items[0]


def is_self(presence):
    x = presence.find("{%s}x" % NS_MUC_USER)
    return x is not None and any(s.get("code") == "110" for s in x.findall("{%s}status" % NS_MUC_USER))


def owner_presence(frm):
    def pred(el):
        if el.tag != q("presence") or el.get("from") != frm or el.get("type") is not None:
            return False
        items = muc_items(el)
        return bool(items) and items[0].get("affiliation") == "owner"
    return pred


def join(client, room, nick):
    """A MUC join sent by hand; returns the first presence the room sends about our nick.
    (Not slixmpp's join_muc: while its join task waits for the subject it takes any second
    self-presence, e.g. an owner grant, for an error and answers the room with an error presence,
    which makes mod_muc kick the client.)"""
    client.raw("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % (room, nick))
    return client.presence_from("%s/%s" % (room, nick))


def leave(client, room, nick):
    client.presence("%s/%s" % (room, nick), "unavailable")
    return client.presence_from("%s/%s" % (room, nick), "unavailable")


def presences_from(inbox, frm):
    return [el for el in inbox if el.tag == q("presence") and el.get("from") == frm]


@pytest.fixture
def users(server):
    """Real c2s clients by name (accounts registered on first use); all closed afterwards."""
    made = []

    def make(name):
        if name not in ("alice", "bob", "admin"):
            register(server, name)
        c = Client(server, "%s@localhost" % name)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def create(client, room):
    reply = client.x.conference(room)
    assert reply["type"] == "result"
    assert conference_of(reply).get("ready") == "true"


def test_first_joiner_is_owner_and_the_second_a_participant(users):
    alice, bob = users("alice"), users("bob")
    room = new_room("mod")
    create(alice, room)

    # granted as it joins: the join presence itself says owner
    first = join(alice, room, "alice")
    assert is_self(first)
    assert (item_of(first)["affiliation"], item_of(first)["role"]) == ("owner", "moderator")

    joined = join(bob, room, "bob")
    assert (item_of(joined)["affiliation"], item_of(joined)["role"]) == ("none", "participant")
    alice.presence_from(room + "/bob")
    # nothing more comes for bob: every presence either of them got about bob says participant
    for c in (alice, bob):
        for pres in presences_from(c.take_all(), room + "/bob"):
            assert (item_of(pres)["affiliation"], item_of(pres)["role"]) == ("none", "participant"), ET.tostring(pres)


def test_ownership_passes_to_the_longest_present_occupant(users):
    alice, bob, carol = users("alice"), users("bob"), users("carol-mod")
    room = new_room("mod")
    create(alice, room)
    assert item_of(join(alice, room, "alice"))["affiliation"] == "owner"
    # bob joins before carol; their nicks sort the other way round (the order is by presence)
    join(bob, room, "zed")
    join(carol, room, "amy")
    carol.take_all()

    leave(alice, room, "alice")
    granted = carol.wait(owner_presence(room + "/zed"), "the owner grant for bob (nick zed)")
    assert item_of(granted)["role"] == "moderator"
    mine = bob.wait(owner_presence(room + "/zed"), "bob's own owner grant")
    assert is_self(mine)
    for pres in presences_from(carol.take_all(), room + "/amy"):
        assert item_of(pres)["affiliation"] == "none"

    # and on again when that owner leaves too
    leave(bob, room, "zed")
    carol.wait(owner_presence(room + "/amy"), "the owner grant for carol (nick amy)")


def test_nick_changes_and_a_second_resource_keep_the_owner(users):
    """Owner rights are the bare JID's: a nick change keeps them (mod_muc reports it as the old nick
    leaving), and a second resource of the owner is owner too; the room passes on only when the
    last of the owner's occupants has left."""
    laptop, phone, bob = users("alice"), users("alice"), users("bob")
    room = new_room("mod")
    create(laptop, room)
    assert item_of(join(laptop, room, "alice"))["affiliation"] == "owner"
    join(bob, room, "bob")

    laptop.presence("%s/alice-renamed" % room)  # nick change: an available presence to a new nick
    bob.presence_from(room + "/alice", "unavailable")
    renamed = bob.presence_from(room + "/alice-renamed")
    assert item_of(renamed)["affiliation"] == "owner"

    again = join(phone, room, "alice-phone")
    assert (item_of(again)["affiliation"], item_of(again)["role"]) == ("owner", "moderator")
    leave(laptop, room, "alice-renamed")
    bob.presence_from(room + "/alice-renamed", "unavailable")
    for pres in presences_from(bob.take_all(), room + "/bob"):
        assert item_of(pres)["affiliation"] == "none", ET.tostring(pres)

    leave(phone, room, "alice-phone")
    bob.wait(owner_presence(room + "/bob"), "the owner grant for bob")


def test_rooms_the_module_did_not_create_keep_mod_muc_rules(users):
    """A room created by a user's presence (here a MUC admin: restrict_room_creation is on) is a
    plain MUC room: its creator is owner by mod_muc, and nobody is made owner when it leaves."""
    admin, alice, bob = users("admin"), users("alice"), users("bob")
    room = new_room("plain")
    created = join(admin, room, "admin")
    assert item_of(created)["affiliation"] == "owner"
    join(alice, room, "alice")
    # the room exists: a conference request for it is answered ready, and changes nothing
    create(bob, room)
    join(bob, room, "bob")
    leave(admin, room, "admin")
    alice.presence_from(room + "/admin", "unavailable")
    bob.presence_from(room + "/admin", "unavailable")
    for c in (alice, bob):
        inbox = c.take_all()
        for pres in presences_from(inbox, room + "/alice") + presences_from(inbox, room + "/bob"):
            assert item_of(pres)["affiliation"] == "none", pres


# ------------------------------------------------------------------------------ external focus
class Occupant(Requester):
    """A requester that also joins rooms and records every presence it gets."""

    def __init__(self, jid, password="secret"):
        super().__init__(jid, password)
        self.register_plugin("xep_0045")
        self.presences = []
        self.add_event_handler("groupchat_presence", lambda p: self.presences.append(p))

    async def barrier(self):
        await self.plugin["xep_0199"].ping(jid=self.boundjid.host, timeout=10)


def test_external_focus_mode_grants_nothing(ext_server):  # noqa: F811
    """The focus (a test jicofo) creates the room and is its owner; when it leaves, the occupant
    that joined after it is not made owner by the module: in external mode jicofo decides."""
    async def scenario():
        focus = FocusClient(FOCUS_JID + "/focus-" + uuid.uuid4().hex[:6], FOCUS_PASSWORD)
        await focus.start("127.0.0.1", ext_server.c2s_port)
        alice = await Occupant("alice@localhost").start(ext_server)
        try:
            room = "ext-mod-%s@%s" % (uuid.uuid4().hex[:10], MUC)
            kind, value, _ = await alice.request(room)
            assert kind == "result" and value["ready"] == "true", value
            await asyncio.wait_for(alice.plugin["xep_0045"].join_muc(room, "alice"), 10)
            await focus.leave(room)
            await alice.barrier()
            unavailable = [p for p in alice.presences if str(p["from"]) == room + "/focus" and p["type"] == "unavailable"]
            assert unavailable, "the focus's leave never reached alice"
            mine = [p for p in alice.presences if str(p["from"]) == room + "/alice"]
            assert mine
            for p in mine:
                assert p["muc"]["affiliation"] in ("none", ""), p
                assert p["muc"]["role"] == "participant", p
        finally:
            await alice.stop()
            await focus.stop()
    asyncio.run(asyncio.wait_for(scenario(), 60))
