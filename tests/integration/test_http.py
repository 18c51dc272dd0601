"""The HTTP door: POST /conference-request/v1, OPTIONS (CORS), GET /v1/health, 405/413/415."""
import json

import pytest

from conftest import FOCUS, MUC, new_room

V1 = "/conference-request/v1"
HEALTH = V1 + "/health"


def test_new_room_is_created_and_answered_ready(web, alice):
    room = new_room()
    assert alice.disco_info(room) == "item-not-found"
    r = web.post({"room": room, "properties": {"startMuted": "true"}})
    assert r.status == 200
    assert r.header("Content-Type").startswith("application/json")
    body = r.json()
    assert body["room"] == room
    assert body["ready"] is True
    assert body["focusJid"] == FOCUS
    assert body["properties"]["authentication"] == "false"
    assert "sessionId" not in body, "HTTP requests never receive a session-id"
    assert alice.disco_info(room) == "result"


def test_second_request_gets_the_same_answer(web):
    room = new_room()
    first = web.post({"room": room})
    second = web.post({"room": room, "properties": {"x": "y"}})
    assert first.status == second.status == 200
    assert first.json() == second.json()


def test_json_with_charset_parameter_is_accepted(web):
    r = web.post({"room": new_room()}, content_type="Application/JSON; charset=utf-8")
    assert r.status == 200
    assert r.json()["ready"] is True


def test_unknown_and_answer_keys_in_request_are_ignored(web):
    room = new_room()
    r = web.post({"room": room, "ready": False, "focusJid": "evil@x", "whatever": [1, {"a": 2}]})
    assert r.status == 200
    assert r.json()["focusJid"] == FOCUS
    assert r.json()["ready"] is True


# (name, body, content type, status, error condition or None for "any")
BAD = [
    ("malformed json", "{\"room\": ", "application/json", 400, "bad-request"),
    ("not an object", "[1,2]", "application/json", 400, "bad-request"),
    ("empty body", "", "application/json", 400, "bad-request"),
    ("room not a string", json.dumps({"room": 5}), "application/json", 400, "bad-request"),
    ("properties not an object", json.dumps({"room": "r1@" + MUC, "properties": ["a"]}), "application/json", 400,
     "bad-request"),
    ("object property value", json.dumps({"room": "r1@" + MUC, "properties": {"a": {"b": 1}}}), "application/json",
     400, "bad-request"),
    ("duplicate keys", '{"room":"r1@%s","room":"r2@%s"}' % (MUC, MUC), "application/json", 400, "bad-request"),
    ("too deep", json.dumps({"room": "r1@" + MUC, "x": [[[[[[[[[1]]]]]]]]]}), "application/json", 400,
     "bad-request"),
    ("missing room", json.dumps({"properties": {}}), "application/json", 400, "bad-request"),
    ("no node", json.dumps({"room": MUC}), "application/json", 400, "jid-malformed"),
    ("resource", json.dumps({"room": "r1@%s/x" % MUC}), "application/json", 400, "jid-malformed"),
    ("room too long", json.dumps({"room": "r" * 1100 + "@" + MUC}), "application/json", 400, "jid-malformed"),
    ("unserved muc", json.dumps({"room": "r1@elsewhere.localhost"}), "application/json", 404, "item-not-found"),
    ("too many properties", json.dumps({"room": "r1@" + MUC, "properties": {"p%d" % i: "v" for i in range(65)}}),
     "application/json", 400, None),
    ("property value too long", json.dumps({"room": "r1@" + MUC, "properties": {"p": "v" * 4097}}),
     "application/json", 400, None),
    ("body over max_body", json.dumps({"room": "r1@" + MUC, "pad": "x" * 17000}), "application/json", 413, None),
    ("no content type", json.dumps({"room": "r1@" + MUC}), None, 415, None),
    ("text/plain", json.dumps({"room": "r1@" + MUC}), "text/plain", 415, None),
    ("json lookalike", json.dumps({"room": "r1@" + MUC}), "application/jsonx", 415, None),
]


@pytest.mark.parametrize("name,body,ctype,status,cond", BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_json_error_and_next_is_served(web, name, body, ctype, status, cond):
    r = web.post(body, content_type=ctype)
    assert r.status == status, (name, r.body)
    assert r.header("Content-Type").startswith("application/json")
    err = r.json()
    assert set(err) == {"error", "message"}
    assert err["message"]
    if cond is not None:
        assert err["error"] == cond
    # next good request on the same connection
    good = web.post({"room": new_room()})
    assert good.status == 200 and good.json()["ready"] is True


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_v1_are_405_with_allow(web, method):
    r = web.request(method, V1, body="{}" if method != "GET" else None)
    assert r.status == 405
    allow = {m.strip() for m in r.header("Allow").split(",")}
    assert allow == {"POST", "OPTIONS"}
    assert r.json()["error"] == "not-allowed"
    assert web.post({"room": new_room()}).status == 200


def test_post_to_health_is_405_with_allow(web):
    r = web.request("POST", HEALTH, body="{}", headers={"Content-Type": "application/json"})
    assert r.status == 405
    assert "GET" in r.header("Allow")


def test_cors_preflight(web):
    r = web.request("OPTIONS", V1, headers={"Origin": "https://meet.example.com",
                                            "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "content-type"})
    assert r.status in (200, 204)
    assert r.header("Access-Control-Allow-Origin") in ("*", "https://meet.example.com")
    methods = {m.strip() for m in r.header("Access-Control-Allow-Methods").split(",")}
    assert methods == {"POST", "OPTIONS"}
    headers = {h.strip().lower() for h in r.header("Access-Control-Allow-Headers").split(",")}
    assert headers == {"content-type", "authorization"}
    assert int(r.header("Access-Control-Max-Age")) > 0


def test_cors_headers_on_post_answers_and_errors(web):
    ok = web.post({"room": new_room()}, headers={"Origin": "https://meet.example.com"})
    assert ok.status == 200
    assert ok.header("Access-Control-Allow-Origin") in ("*", "https://meet.example.com")
    assert ok.header("Access-Control-Allow-Methods") is None, "only our CORS headers, not Prosody's"
    bad = web.post("{", headers={"Origin": "https://meet.example.com"})
    assert bad.status == 400
    assert bad.header("Access-Control-Allow-Origin") in ("*", "https://meet.example.com")


@pytest.mark.parametrize("method,path,body,ctype,status", [
    ("POST", V1, "{", "application/json", 400),
    ("POST", V1, json.dumps({"room": "r1@elsewhere.localhost"}), "application/json", 404),
    ("POST", V1, json.dumps({"room": "r1@" + MUC}), "text/plain", 415),
    ("POST", V1, json.dumps({"room": "r1@" + MUC, "pad": "x" * 17000}), "application/json", 413),
    ("PATCH", V1, "{}", "application/json", 405),
], ids=["400", "404", "415", "413", "405"])
def test_error_answers_carry_the_modules_cors_headers_not_prosodys(web, method, path, body, ctype, status):
    """With the default policy ("*") the module answers Access-Control-Allow-Origin: * and nothing
    else; Prosody's per-app default would echo the Origin and list PUT, DELETE among the methods."""
    r = web.request(method, path, body, {"Origin": "https://meet.example.com", "Content-Type": ctype})
    assert r.status == status, r.body
    cors = {h: v for h, v in r.headers.items() if h.startswith("access-control-")}
    assert cors == {"access-control-allow-origin": "*"}, cors


def test_health(web):
    before = web.request("GET", HEALTH)
    assert before.status == 200
    assert before.header("Content-Type").startswith("application/json")
    b = before.json()
    assert b["status"] == "ok"
    assert b["focus"] == "built-in" and "focus_online" not in b
    web.post({"room": new_room()})
    web.post("{")
    after = web.request("GET", HEALTH).json()
    assert after["requests"] >= b["requests"] + 2
    assert after["errors"] >= b["errors"] + 1
    assert after["rooms_created"] >= b["rooms_created"] + 1
    assert after["rooms"] >= 1


def test_health_head(web):
    r = web.request("HEAD", HEALTH)
    assert r.status == 200
