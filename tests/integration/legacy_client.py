"""Helpers for the legacy jabber:iq:conference tests: real slixmpp clients (the conftest's Xmpp)
that record every stanza they receive, and send the legacy stanzas by hand."""
import asyncio
import copy
import hashlib
import subprocess
import xml.etree.ElementTree as ET

import pytest

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher.base import MatcherBase

from conftest import NS_STANZAS, Xmpp

NS_CONF = "jabber:iq:conference"
NS_BROWSE = "jabber:iq:browse"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_CLIENT = "jabber:client"


def sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


def register(server, user, password="secret"):
    """Registers an account on the running test server (prosodyctl, the operator's way)."""
    subprocess.run(["prosodyctl", "--config", server.config, "register", user, "localhost", password],
                   check=True, capture_output=True, timeout=30)


class _Any(MatcherBase):
    def __init__(self, names):
        super().__init__(names)

    def match(self, xml):
        return xml.name in self._criteria


def q(tag, ns=NS_CLIENT):
    return "{%s}%s" % (ns, tag)


class Client:
    """A logged-in client with an inbox of every message, presence and pushed IQ set/get it
    receives (as ElementTree elements, in arrival order)."""

    def __init__(self, server, jid):
        self.x = Xmpp(server, jid)
        self.jid = self.x.jid
        self.id = sha1(self.jid)
        self.inbox = []
        self.closed = False
        self.x.client.register_handler(Callback("legacy-inbox", _Any(("message", "presence", "iq")), self._on))
        self.barrier()  # our initial presence has been processed: we can receive messages to our bare JID

    def _on(self, stanza):
        if stanza.name == "iq" and stanza["type"] in ("result", "error") and not str(stanza["id"]).startswith("raw-"):
            return  # replies to our own requests are returned by request(); raw-* ids are ours to wait for
        self.inbox.append(copy.deepcopy(stanza.xml))

    # ------------------------------------------------------------------ sending
    def raw(self, text):
        self.x.client.send_raw(text)

    def request(self, to, payload, itype="set"):
        """An IQ with a raw XML payload; returns the reply element (result or error)."""
        reply, _ = self.x.iq(payload, to=to, itype=itype)
        return copy.deepcopy(reply.xml)

    def legacy_get(self, room, element="query"):
        return self.request(room, "<%s xmlns='%s'/>" % (element, NS_CONF), itype="get")

    def legacy_set(self, room, nicks=(), secret=None, privacy=False, name=None, inner=None):
        if inner is None:
            parts = ["<nick>%s</nick>" % n for n in nicks]
            if secret is not None:
                parts.append("<secret>%s</secret>" % secret)
            if privacy:
                parts.append("<privacy/>")
            if name is not None:
                parts.append("<name>%s</name>" % name)
            inner = "".join(parts)
        return self.request(room, "<query xmlns='%s'>%s</query>" % (NS_CONF, inner))

    def browse(self, to):
        return self.request(to, "<query xmlns='%s'/>" % NS_BROWSE, itype="get")

    def presence(self, to, ptype=None):
        self.raw("<presence to='%s'%s/>" % (to, " type='%s'" % ptype if ptype else ""))

    def message(self, to, body, mtype="groupchat", extra=""):
        self.raw("<message to='%s' type='%s'><body>%s</body>%s</message>" % (to, mtype, body, extra))

    def join_muc(self, room, nick):
        return self.x.join(room, nick)

    # ------------------------------------------------------------------ receiving
    def barrier(self):
        """Returns once everything the server sent us before now has arrived: the server answers
        a ping on this connection only after what it sent before the ping."""
        reply = self.request("localhost", "<ping xmlns='urn:xmpp:ping'/>", itype="get")
        assert reply.get("type") == "result", ET.tostring(reply)

    def wait(self, pred, what):
        """Removes and returns the first inbox stanza matching pred, waiting for it if needed."""
        async def poll():
            while True:
                for i, el in enumerate(self.inbox):
                    if pred(el):
                        return self.inbox.pop(i)
                await asyncio.sleep(0.02)
        try:
            return self.x.run(poll())
        except asyncio.TimeoutError:
            raise AssertionError("%s never received %s; inbox: %s" % (self.jid, what, [ET.tostring(e) for e in self.inbox]))

    def take_all(self):
        """After a barrier: everything received so far, emptied."""
        self.barrier()
        out, self.inbox = self.inbox, []
        return out

    def push(self, room, ident, name=None):
        """Waits for the browse push about room/ident (name None: a removal)."""
        def pred(el):
            if el.tag != q("iq") or el.get("type") != "set" or el.get("from") != room:
                return False
            user = el.find("{%s}user" % NS_BROWSE)
            if user is None or user.get("jid") != "%s/%s" % (room, ident):
                return False
            return user.get("type") == "remove" if name is None else (user.get("name") == name and user.get("type") is None)
        return self.wait(pred, "browse push %s/%s %s" % (room, ident, name or "remove"))

    def presence_from(self, frm, ptype=None):
        return self.wait(lambda el: el.tag == q("presence") and el.get("from") == frm and el.get("type") == ptype,
                         "presence %s from %s" % (ptype or "available", frm))

    def message_from(self, frm, body=None):
        def pred(el):
            if el.tag != q("message") or el.get("from") != frm:
                return False
            return body is None or el.findtext(q("body")) == body
        return self.wait(pred, "message from %s (%s)" % (frm, body))

    def close(self):
        if not self.closed:
            self.closed = True
            self.x.close()


def error_info(reply):
    """(type attr, code attr, condition, text) of an error reply."""
    assert reply.get("type") == "error", ET.tostring(reply)
    err = reply.find(q("error"))
    cond = text = None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZAS):
            local = child.tag.split("}")[1]
            if local == "text":
                text = child.text
            else:
                cond = local
    return err.get("type"), err.get("code"), cond, text


def query_children(reply):
    """[(local name, text)] of the <query xmlns='jabber:iq:conference'> of a result."""
    assert reply.get("type") == "result", ET.tostring(reply)
    query = reply.find("{%s}query" % NS_CONF)
    assert query is not None, ET.tostring(reply)
    return [(c.tag.split("}")[1], c.text) for c in query]


def muc_items(presence):
    """The <item/> attribute dicts of a MUC presence."""
    x = presence.find("{%s}x" % NS_MUC_USER)
    return [] if x is None else [dict(i.attrib) for i in x.findall("{%s}item" % NS_MUC_USER)]


# Fixtures shared by the legacy scenarios (imported by test_legacy.py and test_legacy_discovery.py).
@pytest.fixture(scope="module")
def accounts(server):
    """carol and dave, the non-admin accounts the legacy scenarios add to the server."""
    for user in ("carol", "dave"):
        register(server, user)


@pytest.fixture
def make(server, accounts):
    """A factory of legacy clients, each closed after the test."""
    made = []

    def factory(jid):
        c = Client(server, jid)
        made.append(c)
        return c
    yield factory
    for c in made:
        c.close()


def node(room):
    return room.split("@")[0]
