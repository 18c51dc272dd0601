"""JWT authentication (issue 10 item 3, docs/protocol.md §5) against a real Prosody, on both doors.

A server of its own with `conference_request_auth = "jwt"`: an HS256 secret (from a file), an RSA and
a P-256 public key (generated here with `openssl`, chosen by `kid`), accepted issuers and audiences.
Tokens are built here (HMAC in Python, RSA/ECDSA signatures with `openssl dgst`). The token goes in
the `token` attribute over XMPP and in `Authorization: Bearer` over HTTP.

Every refusal is answered (not-authorized / 403 with a text naming what failed, never the token)
and the next good request is served. At the end the server log is searched for every token and
the secret.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import Http, Xmpp, conference_of, error_of, new_room, props_of, start_server, stop_server

SECRET = "hs256-test-secret-Zq8v"
ISSUER = "test-app"
AUDIENCE = "jitsi"
USED_TOKENS = []
# conference_request_limits.max_token of the server under test. Lower than the default 16384 because
# Prosody 0.12.3's HTTP parser never answers a request whose header block exceeds 10 KiB (it waits
# for more data), so a 16 KiB bearer token cannot reach the module over HTTP at all.
MAX_TOKEN = 4096


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_to_raw(der):
    """ECDSA DER signature (SEQUENCE of two INTEGERs) -> JOSE r||s, 32 bytes each."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n]
        out += v.lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


class Keys:
    def __init__(self, directory):
        self.dir = directory
        self.secret_file = os.path.join(directory, "secret")
        with open(self.secret_file, "w") as f:
            f.write(SECRET + "\n")
        self.rsa_key = os.path.join(directory, "rsa.key")
        self.rsa_pem = os.path.join(directory, "rsa.pem")
        self.ec_key = os.path.join(directory, "ec.key")
        self.ec_pem = os.path.join(directory, "ec.pem")
        ssl = ["openssl"]
        subprocess.run(ssl + ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.rsa_key],
                       check=True, capture_output=True)
        subprocess.run(ssl + ["pkey", "-in", self.rsa_key, "-pubout", "-out", self.rsa_pem], check=True, capture_output=True)
        subprocess.run(ssl + ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.ec_key],
                       check=True, capture_output=True)
        subprocess.run(ssl + ["pkey", "-in", self.ec_key, "-pubout", "-out", self.ec_pem], check=True, capture_output=True)

    def sign(self, alg, signing_input):
        if alg == "HS256":
            return hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest()
        key = self.rsa_key if alg == "RS256" else self.ec_key
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                             check=True, capture_output=True).stdout
        return sig if alg == "RS256" else der_to_raw(sig)


def claims(room="*", **over):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "localhost", "room": room, "exp": now + 3600, "nbf": now - 60,
         "context": {"user": {"id": "user-1", "name": "Test", "moderator": True}, "group": "group-1"}}
    c.update(over)
    return c


def make_token(keys, alg="HS256", kid=None, body=None, header=None, sign_as=None, signature=None):
    h = {"alg": alg, "typ": "JWT"}
    if kid:
        h["kid"] = kid
    h.update(header or {})
    signing_input = ("%s.%s" % (b64url(json.dumps(h)), b64url(json.dumps(body if body is not None else claims())))).encode()
    if signature is None:
        signature = keys.sign(sign_as or alg, signing_input) if alg != "none" else b""
    token = signing_input.decode() + "." + b64url(signature)
    USED_TOKENS.append(token)
    return token


@pytest.fixture(scope="module")
def keys():
    d = tempfile.mkdtemp(prefix="cr-jwt-")
    try:
        yield Keys(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def jwt_server(keys):
    config = """    conference_request_auth = "jwt"
    conference_request_jwt_secret_file = "%s"
    conference_request_jwt_public_keys = { rsa1 = "%s", ec1 = "%s" }
    conference_request_jwt_issuers = { "%s" }
    conference_request_jwt_audiences = { "%s", "other-audience" }
    conference_request_limits = { max_token = %d }
""" % (keys.secret_file, keys.rsa_pem, keys.ec_pem, ISSUER, AUDIENCE, MAX_TOKEN)
    srv, _ = start_server("auth-jwt", config)
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def client(jwt_server):
    c = Xmpp(jwt_server, "alice@localhost")
    yield c
    c.close()


@pytest.fixture
def jweb(jwt_server):
    h = Http(jwt_server.http_port)
    yield h
    h.close()


def xmpp_request(client, room, token):
    attrs = {"machine-uid": "m1"}
    if token is not None:
        attrs["token"] = token
    return client.conference(room, attrs=attrs)


def http_request(web, room, token):
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    return web.post({"room": room}, headers=headers)


def assert_created_xmpp(client, token, room=None):
    room = room or new_room("jwt")
    reply = xmpp_request(client, room, token)
    assert reply["type"] == "result", ET.tostring(reply.xml)
    conf = conference_of(reply)
    assert conf.get("ready") == "true"
    props = props_of(conf)
    assert props["authentication"] == "true" and props["externalAuth"] == "true"
    assert conf.get("session-id") is None
    assert client.disco_info(room) == "result"


def assert_created_http(web, client, token, room=None):
    room = room or new_room("jwt")
    res = http_request(web, room, token)
    assert res.status == 200, res.body
    body = res.json()
    assert body["ready"] is True and body["properties"]["externalAuth"] == "true"
    assert client.disco_info(room) == "result"


def good(keys):
    return make_token(keys)


def test_valid_tokens_create_on_both_doors(keys, client, jweb):
    for alg, kid in (("HS256", None), ("RS256", "rsa1"), ("ES256", "ec1")):
        token = make_token(keys, alg, kid)
        assert_created_xmpp(client, token)
        assert_created_http(jweb, client, token)


def test_room_claim_names_the_room_case_insensitively_and_star_matches_all(keys, client, jweb):
    room = new_room("named")
    name = room.split("@")[0]
    token = make_token(keys, body=claims(room=name.upper()))
    assert_created_xmpp(client, token, room)
    room2 = new_room("named")
    assert_created_http(jweb, client, make_token(keys, body=claims(room=room2.split("@")[0])), room2)
    assert_created_xmpp(client, make_token(keys, body=claims(room="*")))


def test_sub_star_and_tenant(keys, client, jweb):
    assert_created_xmpp(client, make_token(keys, body=claims(sub="*")))
    tenant_room = "[acme]" + new_room("t")
    assert_created_http(jweb, client, make_token(keys, body=claims(sub="acme")), tenant_room)


def test_no_token_is_a_guest(keys, client, jweb):
    room = new_room("guest")
    reply = xmpp_request(client, room, None)
    assert error_of(reply)[:2] == ("auth", "not-authorized")
    assert http_request(jweb, room, None).status == 403
    assert_created_xmpp(client, good(keys), room)
    # the room exists now: a guest joins on both doors
    reply = xmpp_request(client, room, None)
    assert reply["type"] == "result" and conference_of(reply).get("ready") == "true"
    assert http_request(jweb, room, None).status == 200


def refusals(keys):
    now = int(time.time())
    hs_input = "%s.%s" % (b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "rsa1"})), b64url(json.dumps(claims())))
    confusion = hs_input + "." + b64url(hmac.new(SECRET.encode(), hs_input.encode(), hashlib.sha256).digest())
    USED_TOKENS.append(confusion)
    good_token = make_token(keys)
    head, payload, sig = good_token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    USED_TOKENS.append(head + "." + payload + "." + flipped)
    return [
        ("expired", make_token(keys, body=claims(exp=now - 3600, nbf=now - 7200)), "expired"),
        ("not-yet-valid", make_token(keys, body=claims(nbf=now + 3600)), "not valid yet"),
        ("wrong-room", make_token(keys, body=claims(room="some-other-room")), "room"),
        ("wrong-sub", make_token(keys, body=claims(sub="evil.example")), "subject"),
        ("wrong-aud", make_token(keys, body=claims(aud="not-jitsi")), "audience"),
        ("wrong-iss", make_token(keys, body=claims(iss="intruder")), "issuer"),
        ("bad-signature", head + "." + payload + "." + flipped, "signature"),
        ("alg-none", make_token(keys, alg="none"), "none"),
        ("key-confusion", confusion, None),
        ("unknown-kid", make_token(keys, alg="RS256", kid="nobody"), "key id"),
        ("es256-with-rsa-kid", make_token(keys, alg="ES256", kid="rsa1"), None),
        ("malformed-base64", "!!!." + payload + "." + sig, "malformed"),
        ("malformed-json", b64url("{not json") + "." + payload + "." + sig, "malformed"),
        ("two-parts", head + "." + payload, "malformed"),
    ]


def test_every_refusal_is_answered_and_the_next_good_request_is_served(keys, client, jweb):
    existing = new_room("existing")
    assert_created_xmpp(client, good(keys), existing)
    for name, token, words in refusals(keys):
        for room in (new_room("bad"), existing):  # an invalid token is refused even for an existing room
            reply = xmpp_request(client, room, token)
            etype, cond, text = error_of(reply)
            assert (etype, cond) == ("auth", "not-authorized"), (name, etype, cond, text)
            assert text and token not in text, (name, text)
            if words:
                assert words in text.lower(), (name, text)
            res = http_request(jweb, room, token)
            assert res.status == 403, (name, res.status, res.body)
            body = res.json()
            assert body["error"] == "not-authorized" and token not in body["message"], (name, body)
        assert_created_xmpp(client, good(keys))
        assert_created_http(jweb, client, good(keys))


def test_an_oversized_token_is_refused_and_the_next_request_served(keys, client, jweb):
    big = make_token(keys, body=claims(pad="x" * (MAX_TOKEN + 1000)))
    assert len(big) > MAX_TOKEN
    # XMPP: the codec's max_token limit refuses the request before any verification
    reply = xmpp_request(client, new_room("big"), big)
    assert error_of(reply)[:2] == ("modify", "policy-violation"), error_of(reply)
    # HTTP: the bearer token is not part of the body; the verifier refuses it
    res = http_request(jweb, new_room("big"), big)
    assert res.status == 403 and "too long" in res.json()["message"], res.body
    assert_created_xmpp(client, good(keys))
    assert_created_http(jweb, client, good(keys))


def test_login_url_has_no_url_and_logout_knows_no_session(client):
    from conftest import NS
    reply, _ = client.iq('<login-url xmlns="%s" room="r@conference.localhost" machine-uid="m"/>' % NS, itype="get")
    assert reply["type"] == "result", ET.tostring(reply.xml)
    el = reply.xml.find("{%s}login-url" % NS)
    assert el is not None and el.get("url") is None
    reply, _ = client.iq('<logout xmlns="%s" session-id="x"/>' % NS, itype="set")
    assert error_of(reply)[1] == "not-acceptable"
    assert reply.xml.find("{jabber:client}error").find("{%s}session-invalid" % NS) is not None


def test_the_log_holds_no_token_and_no_secret(jwt_server):
    assert USED_TOKENS
    log = jwt_server.log()
    assert "Traceback" not in log and "internal fault" not in log
    assert SECRET not in log
    for token in USED_TOKENS:
        assert token not in log
        sig = token.rsplit(".", 1)[-1]
        if len(sig) > 16:
            assert sig not in log


def test_token_holders_become_owners_unless_moderator_is_false(keys, jwt_server):
    import legacy_client
    from test_moderation import item_of, join
    mod = legacy_client.Client(jwt_server, "bob@localhost")
    legacy_client.register(jwt_server, "carol")  # not admin@localhost: Prosody makes server admins room owners
    nomod = legacy_client.Client(jwt_server, "carol@localhost")
    notoken = legacy_client.Client(jwt_server, "alice@localhost")
    try:
        room = new_room("owners")
        reply = xmpp_request(mod.x, room, good(keys))
        assert reply["type"] == "result"
        body = claims()
        body["context"]["user"]["moderator"] = False
        assert xmpp_request(nomod.x, room, make_token(keys, body=body))["type"] == "result"
        assert xmpp_request(notoken.x, room, None)["type"] == "result"
        m = item_of(join(mod, room, "mod"))
        assert (m["affiliation"], m["role"]) == ("owner", "moderator")
        n = item_of(join(nomod, room, "nomod"))
        assert (n["affiliation"], n["role"]) == ("none", "participant")
        t = item_of(join(notoken, room, "guest"))
        assert (t["affiliation"], t["role"]) == ("none", "participant")
    finally:
        for c in (mod, nomod, notoken):
            c.close()
