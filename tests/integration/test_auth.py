"""Authentication (issue 10, docs/protocol.md §5) against a real Prosody: `conference_request_auth = "xmpp"`.

A server of its own for this file, with `conference_request_auth = "xmpp"`, the auth domain
`localhost` (alice, bob, admin) and a short idle lifetime, so that expiry is tested for real.
Guests are SASL ANONYMOUS users of guest.localhost, and every HTTP request.

The jicofo sequence: a guest cannot create; an auth-domain user gets a session; a guest on the same
machine reuses it to create; unknown session, machine mismatch, missing machine-uid are the session
error on both doors; a second machine gets a new session; an idle session expires; logout ends a
session; login-url is answered. At the end the server log is searched for every session id seen.
"""
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import (FOCUS, NS, Http, Xmpp, conference_of, error_of, new_room, props_of,
                      start_server, stop_server)

LIFETIME = 3  # conference_request_auth_lifetime of this server, seconds
CONFIG = """    conference_request_auth = "xmpp"
    conference_request_auth_domain = "localhost"
    conference_request_auth_lifetime = %d
""" % LIFETIME

SEEN_SECRETS = []  # session ids handed out during this file; none may reach the log


@pytest.fixture(scope="module")
def auth_server():
    srv, _ = start_server("auth-xmpp", CONFIG)
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def user(auth_server):
    c = Xmpp(auth_server, "alice@localhost")
    yield c
    c.close()


@pytest.fixture
def guest(auth_server):
    c = Xmpp(auth_server, "guest.localhost", password="")
    yield c
    c.close()


@pytest.fixture
def aweb(auth_server):
    h = Http(auth_server.http_port)
    yield h
    h.close()


def session_of(reply):
    assert reply["type"] == "result", ET.tostring(reply.xml)
    conf = conference_of(reply)
    sid = conf.get("session-id")
    if sid:
        SEEN_SECRETS.append(sid)
    return conf, sid


def assert_session_error(reply):
    etype, cond, text = error_of(reply)
    assert (etype, cond) == ("modify", "not-acceptable"), (etype, cond, text)
    assert text
    err = reply.xml.find("{jabber:client}error")
    assert err.find("{%s}session-invalid" % NS) is not None, ET.tostring(reply.xml)


def assert_http_session_error(res):
    assert res.status == 400, (res.status, res.body)
    body = res.json()
    assert body["error"] == "not-acceptable"
    assert body["message"].startswith("HTTP 400 invalid-session"), body
    assert json_body_text(res).find("400 invalid-session") > 0


def json_body_text(res):
    return res.body.decode()


def test_guest_login_is_anonymous(guest):
    assert guest.jid.split("/")[0].endswith("@guest.localhost")


def test_a_guest_cannot_create_a_room_on_either_door(guest, aweb):
    room = new_room("guest")
    reply = guest.conference(room, attrs={"machine-uid": "m-guest"})
    assert error_of(reply)[:2] == ("auth", "not-authorized"), error_of(reply)
    res = aweb.post({"room": room, "machineUid": "m-guest"})
    assert res.status == 403 and res.json()["error"] == "not-authorized", res.body
    assert guest.disco_info(room) == "item-not-found"


def test_an_auth_domain_user_gets_a_session_and_creates(user, guest, aweb):
    room = new_room("auth")
    conf, sid = session_of(user.conference(room, attrs={"machine-uid": "machine-1"}))
    assert conf.get("ready") == "true"
    assert sid and len(sid) >= 32
    assert conf.get("identity") == "alice@localhost"
    props = props_of(conf)
    assert props["authentication"] == "true" and props["externalAuth"] == "false"
    assert list(props)[:2] == ["authentication", "externalAuth"]
    # guests join the room that exists now, on both doors, and get no session
    g = guest.conference(room)
    assert g["type"] == "result" and conference_of(g).get("ready") == "true"
    assert conference_of(g).get("session-id") is None
    res = aweb.post({"room": room})
    assert res.status == 200 and res.json()["ready"] is True and "sessionId" not in res.json()
    assert res.json()["properties"]["authentication"] == "true"


def test_a_guest_on_the_same_machine_reuses_the_session_to_create(user, guest):
    conf, sid = session_of(user.conference(new_room("first"), attrs={"machine-uid": "machine-2"}))
    room = new_room("reuse")
    reply = guest.conference(room, attrs={"machine-uid": "machine-2", "session-id": sid})
    conf, sid2 = session_of(reply)
    assert conf.get("ready") == "true"
    assert sid2 == sid and conf.get("identity") == "alice@localhost"
    assert guest.disco_info(room) == "result"


def test_session_errors_on_both_doors_and_the_next_request_is_served(user, guest, aweb):
    _, sid = session_of(user.conference(new_room("s"), attrs={"machine-uid": "machine-3"}))
    cases = [
        {"machine-uid": "machine-3", "session-id": "no-such-session"},     # unknown session
        {"machine-uid": "other-machine", "session-id": sid},               # machine mismatch
        {"session-id": sid},                                               # missing machine-uid
    ]
    for attrs in cases:
        for client in (guest, user):
            assert_session_error(client.conference(new_room("bad"), attrs=attrs))
        body = {"room": new_room("bad"), "sessionId": attrs["session-id"]}
        if "machine-uid" in attrs:
            body["machineUid"] = attrs["machine-uid"]
        assert_http_session_error(aweb.post(body))
    # an auth-domain user without machine-uid and without session cannot get a session
    assert_session_error(user.conference(new_room("nomachine")))
    # the session itself is still good
    conf, sid2 = session_of(guest.conference(new_room("after"), attrs={"machine-uid": "machine-3", "session-id": sid}))
    assert sid2 == sid and conf.get("ready") == "true"


def test_a_valid_session_over_http_joins_but_does_not_create(user, aweb):
    room = new_room("httpsess")
    _, sid = session_of(user.conference(room, attrs={"machine-uid": "machine-4"}))
    res = aweb.post({"room": room, "sessionId": sid, "machineUid": "machine-4"})
    assert res.status == 200 and "sessionId" not in res.json(), res.body
    res = aweb.post({"room": new_room("httpnew"), "sessionId": sid, "machineUid": "machine-4"})
    assert res.status == 403, res.body


def test_a_second_machine_gets_a_new_session(user):
    _, a = session_of(user.conference(new_room("m"), attrs={"machine-uid": "machine-A"}))
    _, b = session_of(user.conference(new_room("m"), attrs={"machine-uid": "machine-B"}))
    assert a and b and a != b
    _, a2 = session_of(user.conference(new_room("m"), attrs={"machine-uid": "machine-A"}))
    assert a2 == a  # same user, same machine: the live session


def test_an_idle_session_expires(user, guest):
    _, sid = session_of(user.conference(new_room("exp"), attrs={"machine-uid": "machine-exp"}))
    time.sleep(LIFETIME + 1.5)
    assert_session_error(guest.conference(new_room("exp"), attrs={"machine-uid": "machine-exp", "session-id": sid}))
    # the user logs in again: a new session
    _, fresh = session_of(user.conference(new_room("exp"), attrs={"machine-uid": "machine-exp"}))
    assert fresh and fresh != sid


def logout(client, sid):
    attrs = ' session-id="%s"' % sid if sid is not None else ""
    reply, _ = client.iq('<logout xmlns="%s"%s/>' % (NS, attrs), itype="set")
    return reply


def test_logout_ends_a_session(user, guest):
    _, sid = session_of(user.conference(new_room("lo"), attrs={"machine-uid": "machine-lo"}))
    reply = logout(user, sid)
    assert reply["type"] == "result", ET.tostring(reply.xml)
    assert reply.xml.find("{%s}logout" % NS) is not None
    assert_session_error(guest.conference(new_room("lo"), attrs={"machine-uid": "machine-lo", "session-id": sid}))
    # a second logout, or an unknown session: the session error
    assert_session_error(logout(user, sid))
    assert_session_error(logout(user, None))


def test_login_url_is_answered_as_jicofo_does(user):
    reply, _ = user.iq('<login-url xmlns="%s" room="Room1@conference.localhost" machine-uid="m"/>' % NS, itype="get")
    assert reply["type"] == "result", ET.tostring(reply.xml)
    el = reply.xml.find("{%s}login-url" % NS)
    assert el is not None
    from urllib.parse import unquote
    assert unquote(el.get("url")) == "./Room1?login=true"
    reply, _ = user.iq('<login-url xmlns="%s" room="r@conference.localhost"/>' % NS, itype="get")
    assert error_of(reply)[1] == "bad-request"
    reply, _ = user.iq('<login-url xmlns="%s" machine-uid="m"/>' % NS, itype="get")
    assert error_of(reply)[1] == "not-acceptable"


def test_the_log_holds_no_session_id(auth_server):
    assert SEEN_SECRETS, "the tests above handed out sessions"
    log = auth_server.log()
    assert "conference_request" in log or "focus.localhost" in log
    for secret in SEEN_SECRETS:
        assert secret not in log
    assert "Traceback" not in log and "internal fault" not in log


@pytest.mark.parametrize("line,option", [
    ('conference_request_auth = "ldap"', "conference_request_auth"),
    ('conference_request_auth = "xmpp"', "conference_request_auth_domain"),
    ('conference_request_auth = "xmpp"\n    conference_request_auth_domain = "localhost"\n'
     '    conference_request_auth_lifetime = 0', "conference_request_auth_lifetime"),
    ('conference_request_auth = "jwt"', "conference_request_auth"),
    ('conference_request_auth = "jwt"\n    conference_request_jwt_secret_file = "/nonexistent/secret"',
     "conference_request_jwt_secret_file"),
    ('conference_request_auth = "jwt"\n    conference_request_jwt_public_keys = { k1 = "/nonexistent/k1.pem" }',
     "conference_request_jwt_public_keys"),
], ids=["mode", "domain", "lifetime", "jwt-no-key", "secret-file", "pem-file"])
def test_bad_auth_options_refuse_to_load(line, option):
    srv, failed = start_server("badauth", "    %s\n" % line, env_extra={"CR_START_TIMEOUT": "3"}, check=False)
    try:
        assert failed is not None, "the module must refuse to load"
        log = srv.log()
        assert "invalid option %s" % option in log, log[-2000:]
    finally:
        stop_server(srv)


# ----------------------------------------------------------------- owner rights (moderation.lib + auth.occupant_role)
def _moderation_helpers():
    import legacy_client
    from test_moderation import item_of, join, owner_presence

    def client(server, jid):
        if jid != "guest.localhost":
            return legacy_client.Client(server, jid)
        orig = legacy_client.Xmpp
        legacy_client.Xmpp = lambda srv, j: orig(srv, j, password="")
        try:
            return legacy_client.Client(server, jid)
        finally:
            legacy_client.Xmpp = orig
    return client, item_of, join, owner_presence


def test_authenticated_occupants_become_owners_and_guests_stay_participants(auth_server):
    client, item_of, join, owner_presence = _moderation_helpers()
    alice = client(auth_server, "alice@localhost")
    guest = client(auth_server, "guest.localhost")
    reuser = client(auth_server, "guest.localhost")
    late = client(auth_server, "guest.localhost")
    try:
        room = new_room("owners")
        _, sid = session_of(alice.x.conference(room, attrs={"machine-uid": "machine-own"}))
        mine = item_of(join(alice, room, "alice"))
        assert (mine["affiliation"], mine["role"]) == ("owner", "moderator")
        # a guest stays a participant
        g = item_of(join(guest, room, "guest"))
        assert (g["affiliation"], g["role"]) == ("none", "participant")
        # a guest on alice's machine presents her session: owner as it joins
        session_of(reuser.x.conference(room, attrs={"machine-uid": "machine-own", "session-id": sid}))
        r = item_of(join(reuser, room, "reuser"))
        assert (r["affiliation"], r["role"]) == ("owner", "moderator")
        # a guest already in the room that authenticates afterwards is made owner then (jicofo)
        assert item_of(join(late, room, "late"))["affiliation"] == "none"
        session_of(late.x.conference(room, attrs={"machine-uid": "machine-own", "session-id": sid}))
        late.wait(owner_presence(room + "/late"), "the owner grant after authenticating")
    finally:
        for c in (alice, guest, reuser, late):
            c.close()
