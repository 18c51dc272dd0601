"""Options seen from outside: a second server with non-default options, and a server whose bad
option makes the module refuse to load with a clear log line."""
import pytest

from conftest import Http, Xmpp, conference_of, new_room, props_of, start_server, stop_server

V1 = "/conference-request/v1"
ALLOWED = "https://allowed.example"

CONFIG = '''
    conference_request_http_cors = { "%s" }
    conference_request_http_cors_max_age = 600
    conference_request_max_body = 300
    conference_request_focus_jid = "jicofo@auth.localhost"
    conference_request_sip_gateway = true
    conference_request_extra_properties = { region = "eu-1", zeta = "z" }
''' % ALLOWED


@pytest.fixture(scope="module")
def configured():
    srv, _ = start_server("options", CONFIG)
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def cweb(configured):
    h = Http(configured.http_port)
    yield h
    h.close()


def test_answer_options_over_http(cweb):
    room = new_room()
    body = cweb.post({"room": room}).json()
    assert body["focusJid"] == "jicofo@auth.localhost"
    props = body["properties"]
    assert props["sipGatewayEnabled"] == "true"
    assert props["region"] == "eu-1" and props["zeta"] == "z"


def test_answer_options_over_xmpp(configured):
    client = Xmpp(configured, "bob@localhost")
    try:
        conf = conference_of(client.conference(new_room()))
        assert conf.get("focusjid") == "jicofo@auth.localhost"
        names = [p.get("name") for p in conf]
        # docs/protocol.md §2.2 order: authentication, sipGatewayEnabled, visitors-supported, then the extras
        assert names == ["authentication", "sipGatewayEnabled", "visitors-supported", "region", "zeta"]
        assert props_of(conf)["region"] == "eu-1"
    finally:
        client.close()


def test_max_body_option(cweb):
    small = cweb.post({"room": new_room()})
    assert small.status == 200
    big = cweb.post({"room": new_room(), "pad": "x" * 300})
    assert big.status == 413
    assert big.json()["message"]


def test_cors_allowed_origin_is_echoed(cweb):
    r = cweb.request("OPTIONS", V1, headers={"Origin": ALLOWED})
    assert r.status in (200, 204)
    assert r.header("Access-Control-Allow-Origin") == ALLOWED
    assert "Origin" in r.header("Vary")
    assert r.header("Access-Control-Max-Age") == "600"
    ok = cweb.post({"room": new_room()}, headers={"Origin": ALLOWED})
    assert ok.header("Access-Control-Allow-Origin") == ALLOWED


def test_cors_other_origin_gets_no_cors_headers(cweb):
    r = cweb.request("OPTIONS", V1, headers={"Origin": "https://evil.example"})
    assert r.status in (200, 204)
    assert not any(h.startswith("access-control-") for h in r.headers), r.headers
    ok = cweb.post({"room": new_room()}, headers={"Origin": "https://evil.example"})
    assert ok.status == 200
    assert not any(h.startswith("access-control-") for h in ok.headers), ok.headers


# Every answer the module makes, errors included, with the status each gets on this server
# (conference_request_max_body = 300). The module's CORS policy must apply to all of them, not
# Prosody's per-app default (which echoes any Origin and lists GET, POST, PUT, DELETE, OPTIONS).
ERROR_ANSWERS = [
    ("400 malformed", "POST", V1, "{", "application/json", 400),
    ("400 jid", "POST", V1, '{"room": "conference.localhost"}', "application/json", 400),
    ("404 unserved muc", "POST", V1, '{"room": "r1@elsewhere.localhost"}', "application/json", 404),
    ("413 over max_body", "POST", V1, '{"room": "r1@conference.localhost", "pad": "%s"}' % ("x" * 400),
     "application/json", 413),
    ("415 content type", "POST", V1, '{"room": "r1@conference.localhost"}', "text/plain", 415),
    ("405 v1", "PUT", V1, "{}", "application/json", 405),
    ("405 health", "DELETE", V1 + "/health", None, None, 405),
    ("200 health", "GET", V1 + "/health", None, None, 200),
]


def _answer(cweb, method, path, body, ctype, origin):
    headers = {"Origin": origin}
    if ctype:
        headers["Content-Type"] = ctype
    return cweb.request(method, path, body, headers)


@pytest.mark.parametrize("name,method,path,body,ctype,status", ERROR_ANSWERS, ids=[e[0] for e in ERROR_ANSWERS])
def test_cors_on_error_answers_is_the_modules(cweb, name, method, path, body, ctype, status):
    evil = _answer(cweb, method, path, body, ctype, "https://evil.example")
    assert evil.status == status, (name, evil.body)
    cors = {h: v for h, v in evil.headers.items() if h.startswith("access-control-")}
    assert cors == {}, "a disallowed origin gets no CORS headers (not Prosody's): %r" % cors
    good = _answer(cweb, method, path, body, ctype, ALLOWED)
    assert good.status == status, (name, good.body)
    cors = {h: v for h, v in good.headers.items() if h.startswith("access-control-")}
    assert cors == {"access-control-allow-origin": ALLOWED}, "exactly the module's headers: %r" % cors
    assert "Origin" in good.header("Vary")


BAD_OPTIONS = [
    ("conference_request_max_body = -1", "conference_request_max_body"),
    ("conference_request_http_cors = 5", "conference_request_http_cors"),
    ('conference_request_focus_jid = "a@b@c"', "conference_request_focus_jid"),
    ("conference_request_max_rooms = 0", "conference_request_max_rooms"),
    ("conference_request_extra_properties = { x = { } }", "conference_request_extra_properties"),
    ("conference_request_limits = { max_rooms = 5 }", "conference_request_limits"),
]


@pytest.mark.parametrize("line,option", BAD_OPTIONS, ids=[b[1] for b in BAD_OPTIONS])
def test_bad_option_refuses_to_load_with_a_clear_error(line, option):
    srv, failed = start_server("badopt", "    %s\n" % line, env_extra={"CR_START_TIMEOUT": "3"}, check=False)
    try:
        assert failed is not None, "the module must refuse to load"
        log = srv.log()
        assert "invalid option %s" % option in log, log[-2000:]
    finally:
        stop_server(srv)
