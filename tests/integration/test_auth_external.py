"""Authentication in external-focus mode (issue 10 item 5, docs/protocol.md §5) against a real Prosody.

A server with `conference_request_focus = "focus@auth.localhost"` and `conference_request_auth =
"xmpp"` (auth domain localhost). The module's decision comes first: a guest's request for a room
that is not ready is refused before anything reaches the focus. Errors the focus answers with
`<reservation-error/>` or `<session-invalid/>` reach every waiter with that child intact.
"""
import asyncio
import os
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from conftest import REPO, SERVER, NS, MUC, FOCUS, Server, _free_port_base
from test_external_focus import FOCUS_PASSWORD, Requester, focus_online, http_request, run, stop_all

READY_WAIT = 4


@pytest.fixture(scope="module")
def ext_auth_server():
    work = os.path.join(REPO, "tests", "integration", ".work")
    directory = os.path.join(work, "external-auth-%d" % os.getpid())
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    extra = os.path.join(directory, "extra.cfg.lua")
    with open(extra, "w") as f:
        f.write('Component "focus.localhost" "conference_request"\n    conference_request_ready_wait = %d\n' % READY_WAIT)
    base = _free_port_base()
    env = dict(os.environ, CR_FOCUS="focus@auth.localhost", CR_FOCUS_PASSWORD=FOCUS_PASSWORD, CR_EXTRA_CONFIG=extra,
               CR_AUTH="xmpp", CR_RATE_LIMITS="false", CR_LOG_LEVEL=os.environ.get("CR_LOG_LEVEL", "debug"))
    subprocess.run([os.path.join(SERVER, "genconf.sh"), directory, str(base)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(SERVER, "start.sh"), directory], check=True, env=env)
    srv = Server(directory, base)
    try:
        yield srv
    finally:
        subprocess.run([os.path.join(SERVER, "stop.sh"), directory], check=False)
        if os.environ.get("CR_KEEP_WORK") != "1":
            shutil.rmtree(directory, ignore_errors=True)


def new_room(prefix="exta"):
    return "%s-%s@%s" % (prefix, uuid.uuid4().hex[:10], MUC)


class Guest(Requester):
    def __init__(self):
        super().__init__("guest.localhost", "")


async def raw_request(client, room, attrs=None):
    """(kind, reply Element) of one conference IQ."""
    iq = client.make_iq_set(ito=FOCUS)
    el = ET.Element("{%s}conference" % NS, room=room)
    for k, v in (attrs or {}).items():
        el.set(k, v)
    iq.append(el)
    try:
        reply = await iq.send(timeout=30)
        return "result", reply.xml
    except IqError as e:
        return "error", e.iq.xml


def condition_of(xml):
    err = xml.find("{jabber:client}error")
    for child in err:
        if child.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and not child.tag.endswith("}text"):
            return err.get("type"), child.tag.split("}")[1]
    return err.get("type"), None


def test_a_guest_is_refused_before_anything_is_forwarded(ext_auth_server):
    async def scenario():
        focus = await focus_online(ext_auth_server, mode="join")
        guest = await Guest().start(ext_auth_server)
        room = new_room("guest")
        xmpp = await raw_request(guest, room, {"machine-uid": "g1"})
        web = await http_request(ext_auth_server, room)
        await asyncio.sleep(0.5)
        forwarded = focus.requests_for(room)
        # with the focus offline the guest is still refused (not told ready=false)
        await focus.stop()
        room2 = new_room("guest-nofocus")
        offline = await raw_request(guest, room2)
        await stop_all(guest)
        return xmpp, web, forwarded, offline

    xmpp, web, forwarded, offline = run(scenario())
    assert xmpp[0] == "error" and condition_of(xmpp[1]) == ("auth", "not-authorized")
    assert web[0] == 403
    assert forwarded == []
    assert offline[0] == "error" and condition_of(offline[1]) == ("auth", "not-authorized")


def test_an_authenticated_user_is_forwarded_and_answered_with_a_session(ext_auth_server):
    async def scenario():
        focus = await focus_online(ext_auth_server, mode="join", join_delay=0.3)
        alice = await Requester("alice@localhost/x-" + uuid.uuid4().hex[:6]).start(ext_auth_server)
        room = new_room("alice")
        answer = await raw_request(alice, room, {"machine-uid": "a1"})
        forwarded = focus.requests_for(room)
        await stop_all(focus, alice)
        return answer, forwarded

    (kind, xml), forwarded = run(scenario())
    assert kind == "result", ET.tostring(xml)
    conf = xml.find("{%s}conference" % NS)
    assert conf.get("ready") == "true" and conf.get("session-id") and conf.get("identity") == "alice@localhost"
    assert len(forwarded) == 1


RESERVATION = '<reservation-error xmlns="%s" error-code="409"><text>room reserved elsewhere</text></reservation-error>' % NS


@pytest.mark.parametrize("condition,extra,child", [
    ("forbidden", RESERVATION, "reservation-error"),
    ("not-acceptable", '<session-invalid xmlns="%s"/>' % NS, "session-invalid"),
], ids=["reservation-error", "session-invalid"])
def test_focus_error_children_reach_every_waiter_intact(ext_auth_server, condition, extra, child):
    async def scenario():
        focus = await focus_online(ext_auth_server, mode="error", error_condition=condition,
                                   error_text="the focus says no", error_extra=extra, join_delay=1.0)
        alice = await Requester("alice@localhost/y-" + uuid.uuid4().hex[:6]).start(ext_auth_server)
        room = new_room("err")
        first = asyncio.ensure_future(raw_request(alice, room, {"machine-uid": "a2"}))
        while not focus.requests_for(room):  # the room is pending once the focus has the notification
            await asyncio.sleep(0.05)
        answers = await asyncio.gather(first, *([raw_request(alice, room, {"machine-uid": "a2"}) for _ in range(2)]
                                                + [http_request(ext_auth_server, room) for _ in range(2)]))
        await stop_all(focus, alice)
        return answers

    answers = run(scenario())
    xmpp = [a for a in answers if a[0] in ("result", "error")]
    web = [a for a in answers if isinstance(a[0], int)]
    assert len(xmpp) == 3 and len(web) == 2
    for kind, xml in xmpp:
        assert kind == "error", ET.tostring(xml)
        assert condition_of(xml)[1] == condition
        el = xml.find("{jabber:client}error").find("{%s}%s" % (NS, child))
        assert el is not None, ET.tostring(xml)
        if child == "reservation-error":
            assert el.get("error-code") == "409"
            assert el.find("{%s}text" % NS).text == "room reserved elsewhere"
    for status, body, _ in web:
        if child == "session-invalid":
            assert status == 400 and body["message"].startswith("HTTP 400 invalid-session"), body
        else:
            assert status == 403 and body["error"] == condition, body
