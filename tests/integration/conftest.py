"""Session fixtures: a real Prosody (tests/server/) on free loopback ports, real XMPP clients
(slixmpp) and plain HTTP (http.client). Run through tests/integration/run.sh."""
import asyncio
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher.base import MatcherBase

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.path.join(REPO, "tests", "server")
NS = "http://jitsi.org/protocol/focus"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
MUC = "conference.localhost"
FOCUS = "focus.localhost"
EMPTY_ROOM_TIMEOUT = 2  # seconds, the server under test is configured with it


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_base():
    """A base B such that B+222 and B+280 are free on loopback. Bases stay in 10000-31499, below
    Linux's ephemeral range (32768-60999): a port there can be taken by any outgoing connection
    between this check and Prosody's bind, and the tests make thousands of those."""
    seed = int(os.environ.get("CR_PORT_BASE") or (10000 + (os.getpid() * 7) % 21500))
    for i in range(200):
        base = 10000 + (seed - 10000 + i * 331) % 21500
        if _port_free(base + 222) and _port_free(base + 280):
            return base
    raise RuntimeError("no free port pair found")


class Server:
    def __init__(self, directory, port_base):
        self.dir = directory
        self.http_port = port_base + 280
        self.c2s_port = port_base + 222
        self.config = os.path.join(directory, "prosody.cfg.lua")

    def shell(self, command):
        """Runs a `prosodyctl shell` command and returns its output (the operator's view)."""
        out = subprocess.run(["prosodyctl", "--config", self.config, "shell", command],
                             capture_output=True, text=True, timeout=30)
        return out.stdout + out.stderr

    def log(self):
        with open(os.path.join(self.dir, "prosody.log"), encoding="utf-8", errors="replace") as f:
            return f.read()


def start_server(name, extra_config=None, env_extra=None, check=True, before_start=None):
    """Generates a config (tests/server/genconf.sh) under .work/NAME-PID and starts Prosody.
    `extra_config` is appended to the config (it lands in the focus.localhost section).
    `before_start(config_path)` runs between the two (e.g. `prosodyctl install`).
    Returns the Server, or (with check=False) the completed start.sh process when it failed."""
    work = os.path.join(REPO, "tests", "integration", ".work")
    directory = os.path.join(work, "%s-%d" % (name, os.getpid()))
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    base = _free_port_base()
    # Rate limits off unless a test asks (env_extra CR_RATE_LIMITS): tests send many requests
    # from one client (test_ratelimit.py starts its own servers with limits on).
    env = dict(os.environ, CR_EMPTY_ROOM_TIMEOUT=str(EMPTY_ROOM_TIMEOUT),
               CR_LOG_LEVEL=os.environ.get("CR_LOG_LEVEL", "debug"), CR_RATE_LIMITS="false")
    env.update(env_extra or {})
    if extra_config:
        path = os.path.join(directory, "extra.cfg.lua")
        with open(path, "w", encoding="utf-8") as f:
            f.write(extra_config)
        env["CR_EXTRA_CONFIG"] = path
    gen = subprocess.run([os.path.join(SERVER, "genconf.sh"), directory, str(base)], env=env,
                         capture_output=True, text=True)
    if gen.returncode != 0:
        raise RuntimeError("genconf.sh failed: %s%s" % (gen.stdout, gen.stderr))
    if before_start:
        before_start(os.path.join(directory, "prosody.cfg.lua"))
    started = subprocess.run([os.path.join(SERVER, "start.sh"), directory], env=env,
                             capture_output=not check, text=True)
    srv = Server(directory, base)
    if started.returncode != 0:
        if check:
            raise RuntimeError("server %s did not start" % name)
        return srv, started
    return srv, None


def stop_server(srv):
    subprocess.run([os.path.join(SERVER, "stop.sh"), srv.dir], check=False)
    if os.environ.get("CR_KEEP_WORK") != "1":
        shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    srv, _ = start_server("server")
    try:
        yield srv
    finally:
        stop_server(srv)


# ---------------------------------------------------------------------------------------- HTTP
class HttpResult:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)


class Http:
    """One keep-alive connection to the server's HTTP port (Host: localhost)."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(self, method, path, body=None, headers=None):
        hdrs = {"Host": "localhost"}
        hdrs.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        return HttpResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def post(self, body, content_type="application/json", headers=None, path="/conference-request/v1"):
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        hdrs = {}
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        return self.request("POST", path, body, hdrs)

    def close(self):
        self.conn.close()


@pytest.fixture
def web(server):
    h = Http(server.http_port)
    yield h
    h.close()


# ---------------------------------------------------------------------------------------- XMPP
class PresenceFrom(MatcherBase):
    """Matches presence stanzas from one full JID."""

    def match(self, xml):
        return xml.name == "presence" and str(xml["from"]) == self._criteria


class Xmpp:
    """A logged-in slixmpp client driven synchronously: each call runs the client's own loop
    until the awaited reply arrives."""

    def __init__(self, server, jid, password="secret", timeout=10):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.timeout = timeout
        self.client = slixmpp.ClientXMPP(jid, password)
        self.client["feature_mechanisms"].unencrypted_plain = True
        self.client.register_plugin("xep_0030")
        self.client.register_plugin("xep_0045")
        self.client.register_plugin("xep_0199")
        started = self.loop.create_future()
        failed = self.loop.create_future()

        def on_start(_):
            self.client.send_presence()
            if not started.done():
                started.set_result(True)

        def on_fail(_):
            if not failed.done():
                failed.set_result(False)

        self.client.add_event_handler("session_start", on_start)
        self.client.add_event_handler("failed_auth", on_fail)
        self.client.connect(("127.0.0.1", server.c2s_port), disable_starttls=True, force_starttls=False)
        done, _ = self.run(asyncio.wait([started, failed], return_when=asyncio.FIRST_COMPLETED))
        if failed in done:
            raise RuntimeError("login failed for %s" % jid)
        self.jid = str(self.client.boundjid)

    def run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, self.timeout + 5))

    def iq(self, payload, to=FOCUS, itype="set"):
        """Sends an IQ with `payload` (XML text or None) and returns the reply as an Element,
        whether it is a result or an error."""
        iq = self.client.make_iq(ito=to, itype=itype)
        if payload is not None:
            iq.append(ET.fromstring(payload))

        async def send():
            try:
                return await iq.send(timeout=self.timeout)
            except IqError as e:
                return e.iq
        reply = self.run(send())
        return reply, iq["id"]

    def conference(self, room=None, properties=None, attrs=None, itype="set"):
        el = ET.Element("{%s}conference" % NS)
        if room is not None:
            el.set("room", room)
        for k, v in (attrs or {}).items():
            el.set(k, v)
        for name, value in (properties or []):
            ET.SubElement(el, "{%s}property" % NS, name=name, value=value)
        reply, _ = self.iq(ET.tostring(el, encoding="unicode"), itype=itype)
        return reply

    def disco_info(self, room):
        """'result' when the MUC has the room, else the error condition."""
        reply, _ = self.iq('<query xmlns="http://jabber.org/protocol/disco#info"/>', to=room, itype="get")
        if reply["type"] == "result":
            return "result"
        return reply["error"]["condition"]

    def join(self, room, nick):
        """A real MUC join; returns the presence the room sends back for our nick (maybe an error)."""
        fut = self.loop.create_future()
        name = "join-%s-%s" % (room, nick)

        def on_presence(pres):
            if not fut.done():
                fut.set_result(pres)
        self.client.register_handler(Callback(name, PresenceFrom("%s/%s" % (room, nick)), on_presence))
        self.client.plugin["xep_0045"].join_muc(room, nick)
        try:
            return self.run(fut)
        finally:
            self.client.remove_handler(name)

    def leave(self, room, nick):
        self.client.plugin["xep_0045"].leave_muc(room, nick)
        self.run(asyncio.sleep(0.2))

    def close(self):
        self.client.disconnect()
        try:
            self.run(asyncio.sleep(0.2))
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self.loop.close()


@pytest.fixture
def alice(server):
    c = Xmpp(server, "alice@localhost")
    yield c
    c.close()


@pytest.fixture
def admin(server):
    c = Xmpp(server, "admin@localhost")
    yield c
    c.close()


def new_room(prefix="room"):
    return "%s-%s@%s" % (prefix, uuid.uuid4().hex[:10], MUC)


def conference_of(reply):
    """The <conference/> child of a result IQ as an Element (None if absent)."""
    return reply.xml.find("{%s}conference" % NS)


def props_of(conf):
    return {p.get("name"): p.get("value") for p in conf.findall("{%s}property" % NS)}


def error_of(reply):
    """(type, condition, text) of an error IQ."""
    err = reply.xml.find("{jabber:client}error")
    assert err is not None, ET.tostring(reply.xml)
    cond = None
    text = None
    for child in err:
        tag = child.tag.split("}")[1]
        if child.tag.startswith("{%s}" % NS_STANZAS):
            if tag == "text":
                text = child.text
            else:
                cond = tag
    return err.get("type"), cond, text


def eventually(check, timeout=30, interval=0.25):
    """Polls `check` until it returns a true value (no timing assertion: only 'eventually')."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)
