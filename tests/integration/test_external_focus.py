"""External focus (issue #3, docs/protocol.md §4.3) against a real Prosody.

A second Prosody is started for this file with `conference_request_focus = "focus@auth.localhost"`
(tests/server/genconf.sh with CR_FOCUS) and a short `conference_request_ready_wait`. A test focus
(focus_client.FocusClient, a real slixmpp client logged in as focus@auth.localhost) plays jicofo:
it answers the forwarded conference IQ, records it, and joins the room with nick `focus` when the
test says so. Requesters are real XMPP clients (c2s) and plain HTTP connections.

No timing assertions: ordering is asserted from events (an answer never arrives before the focus
sent its join), durations only bound how long a test may hang.
"""
import asyncio
import json
import os
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET

import pytest
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from conftest import REPO, SERVER, NS, MUC, FOCUS, Server, _free_port_base
from focus_client import FocusClient

FOCUS_JID = "focus@auth.localhost"
FOCUS_PASSWORD = "focus-secret"
READY_WAIT = 4  # conference_request_ready_wait of the server under test, seconds
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture(scope="module")
def ext_server():
    work = os.path.join(REPO, "tests", "integration", ".work")
    os.makedirs(work, exist_ok=True)
    directory = os.path.join(work, "external-%d" % os.getpid())
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    extra = os.path.join(directory, "extra.cfg.lua")
    with open(extra, "w") as f:
        f.write('Component "focus.localhost" "conference_request"\n    conference_request_ready_wait = %d\n' % READY_WAIT)
    base = _free_port_base()
    env = dict(os.environ, CR_FOCUS=FOCUS_JID, CR_FOCUS_PASSWORD=FOCUS_PASSWORD, CR_EXTRA_CONFIG=extra,
               CR_LOG_LEVEL=os.environ.get("CR_LOG_LEVEL", "debug"))
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


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_room(prefix="ext"):
    return "%s-%s@%s" % (prefix, uuid.uuid4().hex[:10], MUC)


# ------------------------------------------------------------------------------------ clients
class Requester(slixmpp.ClientXMPP):
    """A c2s user that sends conference requests (many in flight at once)."""

    def __init__(self, jid, password="secret"):
        super().__init__(jid, password)
        self["feature_mechanisms"].unencrypted_plain = True
        self.register_plugin("xep_0199")
        self.started = asyncio.Event()
        self.add_event_handler("session_start", lambda _e: (self.send_presence(), self.started.set()))

    async def start(self, server):
        self.connect(("127.0.0.1", server.c2s_port), disable_starttls=True, force_starttls=False)
        await asyncio.wait_for(self.started.wait(), 10)
        return self

    async def request(self, room, properties=(), attrs=None, timeout=30):
        """Returns (kind, value, arrival): ("result", <conference attrs + props>) or ("error",
        (type, condition, text)); arrival is the loop time the answer came in."""
        iq = self.make_iq_set(ito=FOCUS)
        el = ET.Element("{%s}conference" % NS, room=room)
        for k, v in (attrs or {}).items():
            el.set(k, v)
        for name, value in properties:
            ET.SubElement(el, "{%s}property" % NS, name=name, value=value)
        iq.append(el)
        try:
            reply = await iq.send(timeout=timeout)
        except IqError as e:
            return "error", error_of(e.iq.xml), asyncio.get_running_loop().time()
        except IqTimeout:
            return "timeout", None, asyncio.get_running_loop().time()
        conf = reply.xml.find("{%s}conference" % NS)
        value = dict(conf.attrib)
        value["properties"] = {p.get("name"): p.get("value") for p in conf.findall("{%s}property" % NS)}
        return "result", value, asyncio.get_running_loop().time()

    async def stop(self):
        if self.is_connected():
            done = asyncio.get_running_loop().create_future()
            self.add_event_handler("disconnected", lambda _e: done.done() or done.set_result(True))
            self.disconnect()
            try:
                await asyncio.wait_for(done, 5)
            except asyncio.TimeoutError:
                pass


def error_of(xml):
    err = xml.find("{jabber:client}error")
    cond = text = None
    for child in err:
        tag = child.tag.split("}")[1]
        if child.tag.startswith("{%s}" % NS_STANZAS):
            if tag == "text":
                text = child.text
            else:
                cond = tag
    return err.get("type"), cond, text


async def http(server, method, path, body=None, hold=None):
    """A raw HTTP/1.1 exchange on its own connection. Returns (status, parsed JSON or text,
    arrival). With `hold` (an asyncio.Event), closes the connection without reading the answer
    once the event is set and returns None."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    data = b"" if body is None else json.dumps(body).encode()
    head = ("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, path))
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()
    if hold is not None:
        await hold.wait()
        writer.close()
        return None
    raw = await reader.read()
    arrival = asyncio.get_running_loop().time()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = payload.decode(errors="replace")
    return status, parsed, arrival


async def http_request(server, room, properties=None, hold=None):
    body = {"room": room}
    if properties is not None:
        body["properties"] = properties
    return await http(server, "POST", "/conference-request/v1", body, hold)


async def health(server):
    status, body, _ = await http(server, "GET", "/conference-request/v1/health")
    assert status == 200
    return body


async def focus_online(server, **kw):
    focus = FocusClient(FOCUS_JID + "/focus-" + uuid.uuid4().hex[:6], FOCUS_PASSWORD, **kw)
    await focus.start("127.0.0.1", server.c2s_port)
    return focus


async def requesters(server, n):
    users = ["alice", "bob", "admin"]
    return [await Requester("%s@localhost/r%d-%s" % (users[i % 3], i, uuid.uuid4().hex[:6])).start(server)
            for i in range(n)]


async def stop_all(*clients):
    for c in clients:
        await c.stop()


def assert_no_faults(server):
    log = server.log()
    assert "Traceback" not in log
    assert "internal fault" not in log


# -------------------------------------------------------------------------------------- tests
def test_200_concurrent_requests_one_notification_all_ready_after_join(ext_server):
    async def scenario():
        loop = asyncio.get_running_loop()
        focus = await focus_online(ext_server, join_delay=1.0)
        joined_at = []
        real_join = focus.join

        async def join(room):
            joined_at.append(loop.time())
            await real_join(room)
        focus.join = join
        users = await requesters(ext_server, 4)
        room = new_room("storm")
        tasks = []
        for i in range(100):
            tasks.append(users[i % 4].request(room, [("n", str(i))]))
            tasks.append(http_request(ext_server, room, {"n": i}))
        answers = await asyncio.gather(*tasks)
        await stop_all(focus, *users)
        return focus, room, answers, joined_at

    focus, room, answers, joined_at = run(scenario())
    assert len(focus.requests) == 1, focus.requests
    assert focus.requests[0].room == room
    assert len(joined_at) == 1
    xmpp = [a for a in answers if len(a) == 3 and a[0] in ("result", "error", "timeout")]
    web = [a for a in answers if isinstance(a[0], int)]
    assert len(xmpp) == 100 and len(web) == 100
    for kind, value, arrival in xmpp:
        assert kind == "result", value
        assert value["ready"] == "true" and value["focusjid"] == FOCUS_JID and value["room"] == room
        assert arrival >= joined_at[0]
    for status, body, arrival in web:
        assert status == 200, body
        assert body["ready"] is True and body["focusJid"] == FOCUS_JID and body["room"] == room
        assert arrival >= joined_at[0]
    assert_no_faults(ext_server)


def test_forwarded_iq_is_natted_and_keeps_the_requesters_properties(ext_server):
    async def scenario():
        focus = await focus_online(ext_server, join_delay=0)
        (user,) = await requesters(ext_server, 1)
        room = new_room("nat")
        props = [("startAudioMuted", "1"), ("visitors-version", "1"), ("rtcstatsEnabled", "false")]
        xmpp_answer = await user.request(room, props, attrs={"machine-uid": "m-1234"})
        room2 = new_room("nat-http")
        http_answer = await http_request(ext_server, room2, {"startVideoMuted": 5, "visitor": True})
        # the operator's view while the focus is in the rooms
        rooms = await asyncio.get_running_loop().run_in_executor(None, ext_server.shell, "conference_request:rooms()")
        await stop_all(focus, user)
        return focus, user, room, room2, xmpp_answer, http_answer, rooms

    focus, user, room, room2, xmpp_answer, http_answer, rooms = run(scenario())
    assert xmpp_answer[0] == "result" and xmpp_answer[1]["ready"] == "true"
    assert http_answer[0] == 200 and http_answer[1]["ready"] is True
    (fwd,) = focus.requests_for(room)
    assert fwd.frm == "%s/%s" % (FOCUS, user.boundjid.full)
    assert fwd.to == focus.boundjid.full
    assert fwd.attrs.get("machine-uid") == "m-1234"
    assert fwd.properties == [("startAudioMuted", "1"), ("visitors-version", "1"), ("rtcstatsEnabled", "false")]
    (fwd2,) = focus.requests_for(room2)
    assert fwd2.frm == FOCUS  # HTTP requesters have no JID: the module's host, bare
    assert dict(fwd2.properties) == {"startVideoMuted": "5", "visitor": "true"}
    # the notifying request's properties are the conference's (room._data.conference_properties)
    lines = [l for l in rooms.splitlines() if room in l]
    assert len(lines) == 1, rooms
    assert "state=ready" in lines[0] and 'startAudioMuted="1"' in lines[0], rooms
    assert 'rtcstatsEnabled="false"' in lines[0], rooms


def test_focus_never_joins_waiters_get_not_ready_and_a_later_request_notifies_again(ext_server):
    async def scenario():
        focus = await focus_online(ext_server, mode="ignore")
        users = await requesters(ext_server, 2)
        room = new_room("never")
        first = await asyncio.gather(*([u.request(room) for u in users for _ in range(3)]
                                       + [http_request(ext_server, room) for _ in range(3)]))
        notified_first = len(focus.requests_for(room))
        later = await users[0].request(room)
        notified_later = len(focus.requests_for(room))
        h = await health(ext_server)
        await stop_all(focus, *users)
        return first, notified_first, later, notified_later, h

    first, notified_first, later, notified_later, h = run(scenario())
    assert notified_first == 1
    for a in first:
        if isinstance(a[0], int):
            assert a[0] == 200 and a[1]["ready"] is False and a[1]["focusJid"] == FOCUS_JID
        else:
            assert a[0] == "result" and a[1]["ready"] == "false"
    assert later[0] == "result" and later[1]["ready"] == "false"
    assert notified_later == 2
    assert h["waiters"] == 0


def test_focus_error_is_relayed_to_every_waiter(ext_server):
    async def scenario():
        focus = await focus_online(ext_server, mode="error", error_condition="not-authorized")
        users = await requesters(ext_server, 2)
        room = new_room("denied")
        answers = await asyncio.gather(*([u.request(room) for u in users for _ in range(4)]
                                         + [http_request(ext_server, room) for _ in range(4)]))
        h = await health(ext_server)
        await stop_all(focus, *users)
        return focus, room, answers, h

    focus, room, answers, h = run(scenario())
    assert 1 <= len(focus.requests_for(room))
    xmpp = [a for a in answers if not isinstance(a[0], int)]
    web = [a for a in answers if isinstance(a[0], int)]
    assert len(xmpp) == 8 and len(web) == 4
    for kind, value, _ in xmpp:
        assert kind == "error"
        assert value[:2] == ("auth", "not-authorized"), value
        assert value[2]
    for status, body, _ in web:
        assert status == 403
        assert body["error"] == "not-authorized" and body["message"]
    assert h["waiters"] == 0


def test_no_focus_online_is_not_ready_at_once_then_works_once_it_comes_online(ext_server):
    async def scenario():
        (user,) = await requesters(ext_server, 1)
        room = new_room("nofocus")
        before = await health(ext_server)
        offline_xmpp = await user.request(room)
        offline_http = await http_request(ext_server, room)
        after = await health(ext_server)
        focus = await focus_online(ext_server, join_delay=0.2)
        online = await user.request(room)
        during = await health(ext_server)
        stats = ext_server.shell("conference_request:stats()")
        await stop_all(focus, user)
        return focus, room, before, offline_xmpp, offline_http, after, online, during, stats

    focus, room, before, offline_xmpp, offline_http, after, online, during, stats = run(scenario())
    # the operator sees which focus and how many of its resources are online
    assert before["focus"] == FOCUS_JID and before["focus_online"] == 0
    assert during["focus"] == FOCUS_JID and during["focus_online"] == 1
    assert ("focus=%s online=1" % FOCUS_JID) in stats, stats
    assert offline_xmpp[0] == "result" and offline_xmpp[1]["ready"] == "false"
    assert offline_http[0] == 200 and offline_http[1]["ready"] is False
    # answered without waiting and without tracking the room
    assert after["waiters"] == 0 and after["rooms_pending"] <= before["rooms_pending"]
    assert len(focus.requests_for(room)) == 1  # only the request made while it was online
    assert online[0] == "result" and online[1]["ready"] == "true"


def test_focus_leaving_the_room_makes_the_next_request_notify_and_wait(ext_server):
    async def scenario():
        loop = asyncio.get_running_loop()
        focus = await focus_online(ext_server, join_delay=0)
        (user,) = await requesters(ext_server, 1)
        room = new_room("leave")
        first = await user.request(room)
        again = await user.request(room)  # ready: no new notification
        count_ready = len(focus.requests_for(room))
        focus.join_delay = 0.5
        await focus.leave(room)
        left_at = loop.time()
        after = await user.request(room)
        await stop_all(focus, user)
        return focus, room, first, again, count_ready, after, left_at

    focus, room, first, again, count_ready, after, left_at = run(scenario())
    assert first[1]["ready"] == "true" and again[1]["ready"] == "true"
    assert count_ready == 1
    assert len(focus.requests_for(room)) == 2
    assert after[0] == "result" and after[1]["ready"] == "true" and after[2] > left_at


def test_a_waiting_client_that_disconnects_does_no_harm(ext_server):
    async def scenario():
        focus = await focus_online(ext_server, mode="ignore")
        users = await requesters(ext_server, 3)
        room = new_room("gone")
        hold = asyncio.Event()
        # two clients that will go away while waiting, one XMPP and one HTTP
        leaving_xmpp = asyncio.ensure_future(users[0].request(room, timeout=30))
        leaving_http = asyncio.ensure_future(http_request(ext_server, room, hold=hold))
        stay = [asyncio.ensure_future(users[1].request(room)), asyncio.ensure_future(http_request(ext_server, room))]
        while not focus.requests_for(room):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        waiting = (await health(ext_server))["waiters"]
        await users[0].stop()
        hold.set()
        await leaving_http
        leaving_xmpp.cancel()
        after_leave = waiting
        for _ in range(50):  # until the server has seen both connections close
            after_leave = (await health(ext_server))["waiters"]
            if after_leave <= waiting - 2:
                break
            await asyncio.sleep(0.1)
        await focus.join(room)
        answers = await asyncio.gather(*stay)
        extra = await users[2].request(room)
        h = await health(ext_server)
        await stop_all(focus, *users)
        return waiting, after_leave, answers, extra, h

    waiting, after_leave, answers, extra, h = run(scenario())
    assert waiting >= 4
    assert after_leave == waiting - 2  # both departed waiters were cancelled
    assert answers[0][0] == "result" and answers[0][1]["ready"] == "true"
    assert answers[1][0] == 200 and answers[1][1]["ready"] is True
    assert extra[1]["ready"] == "true"
    assert h["waiters"] == 0
    assert_no_faults(ext_server)


def test_module_reload_answers_every_waiter_and_rebuilds_state(ext_server):
    async def scenario():
        focus = await focus_online(ext_server, join_delay=0)
        users = await requesters(ext_server, 2)
        ready_room = new_room("kept")
        assert (await users[0].request(ready_room))[1]["ready"] == "true"
        focus.mode = "silent"
        room = new_room("reload")
        waiting = [asyncio.ensure_future(users[i % 2].request(room)) for i in range(4)]
        waiting += [asyncio.ensure_future(http_request(ext_server, room)) for _ in range(4)]
        while not focus.requests_for(room):
            await asyncio.sleep(0.05)
        proc = await asyncio.create_subprocess_exec(
            "prosodyctl", "--config", ext_server.config, "shell",
            'module:reload("conference_request", "focus.localhost")',
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        answers = await asyncio.gather(*waiting)
        h = await health(ext_server)
        # state rebuilt from live rooms: the ready room is still ready without a new notification
        kept = await users[1].request(ready_room)
        # and the focus is known again: a new room is forwarded
        focus.mode = "join"
        fresh_room = new_room("after-reload")
        fresh = await users[0].request(fresh_room)
        await stop_all(focus, *users)
        return focus, ready_room, fresh_room, out, answers, h, kept, fresh

    focus, ready_room, fresh_room, out, answers, h, kept, fresh = run(scenario())
    assert b"Module reloaded" in out or b"reloaded" in out.lower(), out
    for a in answers:
        if isinstance(a[0], int):
            assert a[0] == 200 and a[1]["ready"] is False
        else:
            assert a[0] == "result" and a[1]["ready"] == "false"
    assert h["waiters"] == 0
    assert kept[1]["ready"] == "true"
    assert len(focus.requests_for(ready_room)) == 1
    assert fresh[1]["ready"] == "true" and len(focus.requests_for(fresh_room)) == 1
    assert_no_faults(ext_server)


def test_metrics_count_notifications_waits_and_outcomes(ext_server):
    async def scenario():
        (user,) = await requesters(ext_server, 1)
        no_focus = await user.request(new_room("metrics-nofocus"))
        focus = await focus_online(ext_server, join_delay=0.2)
        waited = await user.request(new_room("metrics"))
        await stop_all(focus, user)
        return no_focus, waited

    no_focus, waited = run(scenario())
    assert no_focus[1]["ready"] == "false" and waited[1]["ready"] == "true"
    shown = ext_server.shell('stats:show("mod_conference_request/focus")')
    for name in ("focus_notifications", "focus_time_to_ready", "focus_answer_ready", "focus_answer_no_focus"):
        assert "mod_conference_request/" + name in shown, shown


def test_a_user_joining_before_the_focus_does_not_make_the_room_ready(ext_server):
    """Readiness is the focus's presence in the room, not anybody's: a user who joins first (here
    admin@localhost, who may create rooms despite restrict_room_creation) releases no waiter and
    makes no later request ready; the focus's join does."""
    async def scenario():
        loop = asyncio.get_running_loop()
        focus = await focus_online(ext_server, mode="ignore")  # answers the IQ, joins when told
        (user,) = await requesters(ext_server, 1)
        early = Requester("admin@localhost/early-" + uuid.uuid4().hex[:6])
        early.register_plugin("xep_0045")
        await early.start(ext_server)
        room = new_room("early")
        waiting = asyncio.ensure_future(user.request(room))
        while not focus.requests_for(room):
            await asyncio.sleep(0.05)
        # the user's join is complete (its own presence came back) before we look
        # (join_muc raises PresenceError if the room refuses the join)
        own_presence = (await asyncio.wait_for(early.plugin["xep_0045"].join_muc(room, "early-bird"), 10))[0]
        assert own_presence["type"] != "error", own_presence
        after_user_join = await health(ext_server)
        released_early = waiting.done()
        joined_at = loop.time()
        await focus.join(room)
        answer = await waiting
        again = await user.request(room)
        await stop_all(focus, user, early)
        return after_user_join, released_early, joined_at, answer, again

    after_user_join, released_early, joined_at, answer, again = run(scenario())
    assert not released_early, "a user's join released the waiter before the focus joined"
    assert after_user_join["waiters"] >= 1 and after_user_join["rooms_pending"] >= 1, after_user_join
    assert answer[0] == "result" and answer[1]["ready"] == "true", answer
    assert answer[2] >= joined_at, "answered before the focus joined"
    assert again[0] == "result" and again[1]["ready"] == "true"
    assert_no_faults(ext_server)
