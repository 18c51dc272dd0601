"""Jitsi tenants (issue 14 item 2, docs/protocol.md §2.1 "Tenants") against a real Prosody, on both doors.

With `conference_request_tenant_base` (or Jitsi's `muc_mapper_domain_base`) = "localhost", a client's
`name@conference.<tenant>.localhost` is served as `[tenant]name@conference.localhost`, as Jitsi's
muc_domain_mapper maps it: the MUC room has the mapped JID (checked by disco and a real MUC join),
the answer's `room` is the client's form. With an external focus (focus_client.FocusClient) the
forwarded IQ carries the client's form and the focus joining the mapped room makes it ready. With
JWT auth, a token whose `sub` is the tenant is accepted.
"""
import asyncio
import os
import threading
import uuid
import xml.etree.ElementTree as ET

import pytest

from conftest import (Http, Xmpp, conference_of, error_of, eventually, props_of, start_server,
                      stop_server)
from focus_client import FocusClient
from test_auth_jwt import Keys, claims, make_token  # noqa: F401 (token helpers)
from test_external_focus import Requester

TENANT_CONFIG = '    conference_request_tenant_base = "localhost"\n'
MAPPER_CONFIG = '    muc_mapper_domain_base = "localhost"\n'
FOCUS_JID = "focus@auth.localhost"
FOCUS_PASSWORD = "focus-secret"


def names(tenant="acme", prefix="t", muc="conference"):
    """(client form, mapped form) of a new tenant room."""
    name = "%s-%s" % (prefix, uuid.uuid4().hex[:10])
    return "%s@%s.%s.localhost" % (name, muc, tenant), "[%s]%s@%s.localhost" % (tenant, name, muc)


def start(name, config, env_extra=None):
    srv, _ = start_server(name, config, env_extra=env_extra)
    return srv


@pytest.fixture(scope="module")
def tsrv():
    srv = start("tenants", TENANT_CONFIG)
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def tclient(tsrv):
    c = Xmpp(tsrv, "alice@localhost")
    yield c
    c.close()


@pytest.fixture
def tweb(tsrv):
    h = Http(tsrv.http_port)
    yield h
    h.close()


def assert_joinable(client, mapped):
    """A real MUC join of the mapped JID finds the room (no error presence), then leaves."""
    pres = client.join(mapped, "probe")
    assert pres["type"] != "error", ET.tostring(pres.xml)
    client.leave(mapped, "probe")


# ------------------------------------------------------------------------------- built-in focus
def test_new_tenant_room_over_xmpp_is_created_under_the_mapped_name(tclient):
    client_form, mapped = names()
    assert tclient.disco_info(mapped) == "item-not-found"
    reply = tclient.conference(client_form)
    assert reply["type"] == "result", ET.tostring(reply.xml)
    conf = conference_of(reply)
    assert conf.get("room") == client_form and conf.get("ready") == "true"
    assert tclient.disco_info(mapped) == "result"
    assert_joinable(tclient, mapped)


def test_new_tenant_room_over_http_is_created_under_the_mapped_name(tclient, tweb):
    client_form, mapped = names(muc="breakout")  # every served MUC under the base has tenants
    res = tweb.post({"room": client_form})
    assert res.status == 200, res.body
    body = res.json()
    assert body["room"] == client_form and body["ready"] is True
    assert tclient.disco_info(mapped) == "result"


def test_client_form_is_normalized_in_the_answer(tclient, tweb):
    client_form, mapped = names()
    upper = client_form.replace("conference.acme", "Conference.ACME")
    assert conference_of(tclient.conference(upper)).get("room") == client_form
    assert tweb.post({"room": upper}).json()["room"] == client_form
    assert tclient.disco_info(mapped) == "result"


def test_existing_and_ready_tenant_rooms_on_both_doors(tsrv, tclient, tweb):
    client_form, mapped = names(tenant="beta")
    admin = Xmpp(tsrv, "admin@localhost")
    try:
        # created by somebody else, in the MUC under its mapped name: existing, then ready
        assert_joinable(admin, mapped)
        pres = admin.join(mapped, "owner")
        assert pres["type"] != "error"
        for _ in range(2):
            conf = conference_of(tclient.conference(client_form))
            assert conf.get("room") == client_form and conf.get("ready") == "true"
            body = tweb.post({"room": client_form}).json()
            assert body["room"] == client_form and body["ready"] is True
        # the mapped form itself is served as it is, answered in that form
        assert tweb.post({"room": mapped}).json()["room"] == mapped
        rooms = tsrv.shell("conference_request:rooms()")
        assert mapped in rooms and client_form not in rooms, rooms
        # nothing was created under an unmapped name
        assert tclient.disco_info(client_form.replace(".beta.", ".")) == "item-not-found"
    finally:
        admin.close()


@pytest.mark.parametrize("room", [
    "r@conference..localhost",                        # empty tenant
    "r@conference.a.b.localhost",                     # two labels: the mapper takes one
    "r@conference.a]b.localhost",                     # breaks [tenant] parsing
    "r@conference.a[b.localhost",
    "r@conference.%s.localhost" % ("a" * 64),         # longer than a DNS label
])
def test_malformed_tenants_are_jid_malformed(tclient, tweb, room):
    reply = tclient.conference(room)
    assert error_of(reply)[:2] == ("modify", "jid-malformed"), ET.tostring(reply.xml)
    res = tweb.post({"room": room})
    assert res.status == 400, res.body


def test_other_hosts_under_the_base_are_not_served(tclient, tweb):
    reply = tclient.conference("r@lobby.acme.localhost")
    assert error_of(reply)[1] == "item-not-found"
    assert tweb.post({"room": "r@lobby.acme.localhost"}).status == 404


def test_without_a_tenant_base_tenant_rooms_are_not_served(client_default):
    client_form, _ = names()
    assert error_of(client_default.conference(client_form))[1] == "item-not-found"


@pytest.fixture
def client_default(server):
    c = Xmpp(server, "bob@localhost")
    yield c
    c.close()


def test_jitsi_option_name_works_on_both_doors():
    srv = start("tenants-mapper", MAPPER_CONFIG)
    client = Xmpp(srv, "alice@localhost")
    web = Http(srv.http_port)
    try:
        client_form, mapped = names()
        assert conference_of(client.conference(client_form)).get("room") == client_form
        assert client.disco_info(mapped) == "result"
        client_form, mapped = names()
        assert web.post({"room": client_form}).json()["room"] == client_form
        assert client.disco_info(mapped) == "result"
    finally:
        web.close()
        client.close()
        stop_server(srv)


@pytest.mark.parametrize("line", [
    'conference_request_tenant_base = "example.org"',   # no served MUC under it
    'conference_request_tenant_base = 42',
    'conference_request_tenant_base = "a@b"',
])
def test_bad_tenant_base_refuses_to_load(line):
    srv, failed = start_server("badtenant", "    %s\n" % line, env_extra={"CR_START_TIMEOUT": "3"}, check=False)
    try:
        assert failed is not None, "the module must refuse to load"
        assert "invalid option conference_request_tenant_base" in srv.log()
    finally:
        stop_server(srv)


# ------------------------------------------------------------------------------- external focus
@pytest.fixture(scope="module")
def ext_tenants():
    srv = start("tenants-ext", MAPPER_CONFIG + "    conference_request_ready_wait = 8\n",
                env_extra={"CR_FOCUS": FOCUS_JID, "CR_FOCUS_PASSWORD": FOCUS_PASSWORD})
    try:
        yield srv
    finally:
        stop_server(srv)


def test_external_focus_gets_the_client_form_and_its_join_of_the_mapped_room_makes_it_ready(ext_tenants):
    client_form, mapped = names()

    async def scenario():
        focus = FocusClient(FOCUS_JID + "/focus", FOCUS_PASSWORD, mode="ignore")
        await focus.start("127.0.0.1", ext_tenants.c2s_port)
        await asyncio.wait_for(_until(lambda: "focus resource" in ext_tenants.log()), 10)
        requester = await Requester("alice@localhost").start(ext_tenants)
        try:
            pending = asyncio.ensure_future(requester.request(client_form))
            await asyncio.wait_for(_until(lambda: focus.requests), 10)
            forwarded = focus.requests[0]
            assert forwarded.room == client_form, forwarded
            assert not pending.done()
            await focus.join(mapped)
            kind, value, _ = await asyncio.wait_for(pending, 10)
            assert kind == "result", value
            assert value["room"] == client_form and value["ready"] == "true"
            # ready now, on both doors, in the client's form
            kind, value, _ = await requester.request(client_form)
            assert value["room"] == client_form and value["ready"] == "true"
            body = await asyncio.get_running_loop().run_in_executor(None, _http_post, ext_tenants, client_form)
            assert body["room"] == client_form and body["ready"] is True
            assert len(focus.requests) == 1
        finally:
            await requester.stop()
            await focus.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


async def _until(check):
    while not check():
        await asyncio.sleep(0.05)


def _http_post(srv, room):
    web = Http(srv.http_port)
    try:
        return web.post({"room": room}).json()
    finally:
        web.close()


# ------------------------------------------------------------------------------------- JWT auth
@pytest.fixture(scope="module")
def jwt_tenants(tmp_path_factory):
    keys = Keys(str(tmp_path_factory.mktemp("tenant-jwt")))
    config = TENANT_CONFIG + ('    conference_request_auth = "jwt"\n'
                              '    conference_request_jwt_secret_file = "%s"\n' % keys.secret_file)
    srv = start("tenants-jwt", config)
    try:
        yield srv, keys
    finally:
        stop_server(srv)


def test_jwt_token_whose_sub_is_the_tenant_is_accepted(jwt_tenants):
    srv, keys = jwt_tenants
    client = Xmpp(srv, "alice@localhost")
    web = Http(srv.http_port)
    try:
        client_form, mapped = names()
        conf = conference_of(client.conference(client_form, attrs={"token": make_token(keys, body=claims(sub="acme"))}))
        assert conf is not None and conf.get("room") == client_form and conf.get("ready") == "true"
        assert client.disco_info(mapped) == "result"
        client_form, mapped = names()
        res = web.post({"room": client_form}, headers={"Authorization": "Bearer " + make_token(keys, body=claims(sub="acme"))})
        assert res.status == 200, res.body
        assert client.disco_info(mapped) == "result"
        # another tenant's token is refused
        client_form, _ = names()
        reply = client.conference(client_form, attrs={"token": make_token(keys, body=claims(sub="other"))})
        assert error_of(reply)[1] == "not-authorized"
    finally:
        web.close()
        client.close()
