#!/usr/bin/python3
"""A test focus that plays jicofo against mod_conference_request in external mode.

A real XMPP client (slixmpp) logged in as the focus account (e.g. focus@auth.localhost):
- it approves the module host's presence subscription (Jitsi's installer pre-approves it with
  `mod_roster_command subscribe focus.<domain> focus@auth.<domain>`), so its presence reaches the
  module's host the way jicofo's reaches client_proxy;
- it answers each forwarded `<conference xmlns='http://jitsi.org/protocol/focus'/>` IQ and records it
  (from, to, attributes, properties), as jicofo does with `client-proxy` set;
- depending on its mode it joins the MUC room with nick `focus` after a delay the test chooses, does
  nothing, or answers with an error (e.g. `not-authorized`);
- it can leave a room or go offline.

Used as a library by tests/integration/test_external_focus*.py (asyncio), and as a command so that
anyone can attach a focus to `make run CONFERENCE_REQUEST_FOCUS=focus@auth.localhost`:

    /usr/bin/python3 tests/integration/focus_client.py --jid focus@auth.localhost \\
        --password <printed by make run> --port 15222 --join-delay 1
"""

import argparse
import asyncio
import logging
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS = "http://jitsi.org/protocol/focus"
ERROR_TYPES = {
    "not-authorized": "auth", "forbidden": "auth", "bad-request": "modify", "not-acceptable": "modify",
    "internal-server-error": "cancel", "service-unavailable": "cancel", "item-not-found": "cancel",
    "resource-constraint": "wait", "conflict": "cancel", "not-allowed": "cancel",
}


class ForwardedRequest:
    """One conference IQ the focus received."""

    def __init__(self, iq):
        self.id = iq["id"]
        self.frm = str(iq["from"])
        self.to = str(iq["to"])
        conf = iq.xml.find("{%s}conference" % NS)
        self.attrs = dict(conf.attrib) if conf is not None else {}
        self.properties = []
        if conf is not None:
            for prop in conf.findall("{%s}property" % NS):
                self.properties.append((prop.get("name"), prop.get("value")))
        self.room = self.attrs.get("room")

    def __repr__(self):
        return "ForwardedRequest(from=%r, room=%r, properties=%r)" % (self.frm, self.room, self.properties)


class FocusClient(slixmpp.ClientXMPP):
    """The test focus.

    mode: "join"   answer result ready=true, join the room with nick `focus` after join_delay seconds;
          "ignore" answer result ready=false and never join;
          "error"  answer with an error of condition `error_condition`;
          "silent" never answer (the module's own deadlines must still hold).
    """

    def __init__(self, jid, password, muc_nick="focus", mode="join", join_delay=0.0,
                 error_condition="not-authorized", error_text="not authorized user domain", error_extra=None):
        super().__init__(jid, password)
        self.muc_nick = muc_nick
        self.mode = mode
        self.join_delay = join_delay
        self.error_condition = error_condition
        self.error_text = error_text
        self.error_extra = error_extra  # XML text of an application child of <error> (e.g. reservation-error)
        self.answer_attrs = {}        # extra attributes of the answers (e.g. vnode, focusjid: visitors tests)
        self.answer_properties = []   # (name, value) properties of the answers (e.g. visitors-supported)
        self.requests = []            # ForwardedRequest, in arrival order
        self.joined = set()           # room JIDs the focus is in
        self.ready = asyncio.Event()  # set once online and the module host is subscribed
        self.subscribers = set()      # bare JIDs that asked for our presence (and got it)
        self._tasks = set()
        self["feature_mechanisms"].unencrypted_plain = True
        self.auto_authorize = True
        self.auto_subscribe = False
        self.register_plugin("xep_0045")
        self.register_plugin("xep_0199")
        self.register_handler(Callback(
            "focus conference", MatchXPath("{jabber:client}iq/{%s}conference" % NS), self._on_conference))
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("presence_subscribe", self._on_subscribe)

    # --- connection ---------------------------------------------------------------------------
    async def start(self, host, port, timeout=10.0):
        """Connects, sends presence and waits until the server has processed it."""
        self.ready.clear()
        self.connect((host, port), disable_starttls=True, force_starttls=False)
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def _on_session_start(self, _event):
        await self.get_roster()
        self.send_presence()
        # A round trip on the same stream: once answered, the server has routed our presence.
        await self.plugin["xep_0199"].ping(jid=self.boundjid.host, timeout=10)
        self.ready.set()

    def _on_subscribe(self, presence):
        # auto_authorize already sent `subscribed`; remember who, for tests that wait on it.
        self.subscribers.add(presence["from"].bare)

    async def stop(self):
        """Goes offline (the server sends unavailable presence to the module's host)."""
        for task in list(self._tasks):
            task.cancel()
        if self.is_connected():
            done = asyncio.get_running_loop().create_future()
            self.add_event_handler("disconnected", lambda _e: done.done() or done.set_result(True))
            self.disconnect()
            try:
                await asyncio.wait_for(done, 5)
            except asyncio.TimeoutError:
                pass
        self.joined.clear()

    # --- conference requests ------------------------------------------------------------------
    def _on_conference(self, iq):
        if iq["type"] != "set":
            return
        request = ForwardedRequest(iq)
        self.requests.append(request)
        logging.info("focus: conference request %r", request)
        if self.mode == "silent":
            return
        if self.mode == "error":
            reply = iq.reply()
            reply["type"] = "error"
            reply["error"]["type"] = ERROR_TYPES.get(self.error_condition, "cancel")
            reply["error"]["condition"] = self.error_condition
            reply["error"]["text"] = self.error_text
            if self.error_extra:
                reply["error"].xml.append(ET.fromstring(self.error_extra))
            if self.join_delay > 0:  # in error mode: how long the answer is held
                self._spawn(self._send_later(reply, self.join_delay))
            else:
                reply.send()
            return
        reply = iq.reply()
        conf = ET.Element("{%s}conference" % NS, room=request.room or "",
                          focusjid=self.boundjid.bare, ready="true" if self.mode == "join" else "false")
        for k, v in self.answer_attrs.items():
            conf.set(k, v)
        for name, value in self.answer_properties:
            ET.SubElement(conf, "{%s}property" % NS, name=name, value=value)
        reply.append(conf)
        reply.send()
        if self.mode == "join" and request.room:
            self._spawn(self.join_later(request.room, self.join_delay))

    async def _send_later(self, stanza, delay):
        await asyncio.sleep(delay)
        stanza.send()

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def join_later(self, room, delay):
        if delay > 0:
            await asyncio.sleep(delay)
        await self.join(room)

    async def join(self, room):
        """Joins `room` with the focus nick; returns once the server confirmed the join."""
        if room in self.joined:
            return
        self.joined.add(room)
        await asyncio.wait_for(self.plugin["xep_0045"].join_muc(room, self.muc_nick), 10)

    async def leave(self, room):
        """Leaves `room`; returns after a round trip, so the server has processed the leave."""
        self.plugin["xep_0045"].leave_muc(room, self.muc_nick)
        self.joined.discard(room)
        await self.plugin["xep_0199"].ping(jid=self.boundjid.host, timeout=10)

    def requests_for(self, room):
        return [r for r in self.requests if r.room == room]


async def _main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jid", default="focus@auth.localhost/focus")
    parser.add_argument("--password", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=15222)
    parser.add_argument("--mode", choices=["join", "ignore", "error", "silent"], default="join")
    parser.add_argument("--join-delay", type=float, default=0.5)
    parser.add_argument("--error", default="not-authorized", help="condition for --mode error")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    focus = FocusClient(args.jid, args.password, mode=args.mode, join_delay=args.join_delay,
                        error_condition=args.error)
    await focus.start(args.host, args.port)
    print("focus %s online (mode %s, join delay %gs); Ctrl-C to stop" % (focus.boundjid, args.mode, args.join_delay),
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await focus.stop()


if __name__ == "__main__":
    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        pass
