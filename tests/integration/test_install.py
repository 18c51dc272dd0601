"""Installed copies of the module (issue 14): `make install DESTDIR=…` and `luarocks make --tree …`,
each then loaded by a real Prosody whose plugin_paths is only the installed directory (genconf.sh's
CR_PLUGIN_PATHS), and `prosodyctl install` of the packed rock into a temporary
installer_plugin_path, each serving both doors; and the metrics of README "Operating it" as a scrape of
Prosody's own `/metrics` (mod_http_openmetrics) shows them, with the values the test caused."""
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO, Http, Xmpp, conference_of, eventually, new_room, start_server, stop_server
from focus_client import FocusClient
from legacy_client import Client as LegacyClient
from test_external_focus import Requester, http, http_request, stop_all

FOCUS_JID = "focus@auth.localhost"
FOCUS_PASSWORD = "focus-secret"
READY_WAIT = 3


def serves_both_doors(srv):
    """A new room over HTTP, then over XMPP: both ready, answered by the focus component."""
    web = Http(srv.http_port)
    try:
        answer = web.post({"room": new_room("inst")})
        assert answer.status == 200, answer.body
        assert answer.json()["ready"] is True
    finally:
        web.close()
    alice = Xmpp(srv, "alice@localhost")
    try:
        reply = alice.conference(new_room("inst"))
        assert reply["type"] == "result"
        assert conference_of(reply).get("ready") == "true"
    finally:
        alice.close()


def test_make_install_destdir_is_a_plugin_directory_prosody_serves_from():
    tmp = tempfile.mkdtemp(prefix="cr-install-")
    try:
        subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=" + tmp], check=True)
        plugin_dir = os.path.join(tmp, "usr", "local", "lib", "prosody", "modules")
        installed = os.path.join(plugin_dir, "mod_conference_request")
        names = sorted(os.listdir(installed))
        assert "mod_conference_request.lua" in names and "conference_request_native.so" in names
        assert sorted(n for n in os.listdir(os.path.join(REPO, "mod_conference_request"))
                      if n.endswith(".lua") or n.endswith(".so")) == names
        srv, _ = start_server("install", env_extra={"CR_PLUGIN_PATHS": plugin_dir})
        try:
            cfg = open(srv.config, encoding="utf-8").read()
            assert 'plugin_paths = { "%s" }' % plugin_dir in cfg
            assert REPO + '"' not in cfg.split("plugin_paths", 1)[1].split("\n", 1)[0]
            serves_both_doors(srv)
            # the loaded module is the installed copy
            shown = srv.shell('module:info("conference_request", "focus.localhost")')
            assert installed in shown, shown
            # the s2s plugin (README "Visitor servers") is installed beside it and loads from there
            s2sout = os.path.join(plugin_dir, "mod_conference_request_s2sout", "mod_conference_request_s2sout.lua")
            assert os.path.exists(s2sout)
            srv.shell('module:load("conference_request_s2sout")')
            shown = srv.shell('module:info("conference_request_s2sout")')
            assert s2sout in shown, shown
        finally:
            stop_server(srv)
        subprocess.run(["make", "-s", "-C", REPO, "uninstall", "DESTDIR=" + tmp], check=True)
        assert not os.path.exists(installed)
        assert not os.path.exists(os.path.join(plugin_dir, "mod_conference_request_s2sout"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_luarocks_make_into_a_tree_and_prosodyctl_install_prosody_serves_from():
    """The rockspec builds from a clean copy of the sources (native/*.c with LuaRocks' flags)
    and installs into a tree; Prosody with plugin_paths = { tree } finds
    share/lua/5.4/mod_conference_request/ there (as with prosodyctl install's tree)."""
    if shutil.which("luarocks") is None:
        pytest.fail("luarocks is not installed (make deps installs it)")
    tmp = tempfile.mkdtemp(prefix="cr-rock-")
    try:
        src = os.path.join(tmp, "src")
        tree = os.path.join(tmp, "tree")
        files = subprocess.run(["git", "-C", REPO, "ls-files", "-co", "--exclude-standard",
                                "Makefile", "*.rockspec", "native", "mod_conference_request",
                                "mod_conference_request_s2sout", "README.md"],
                               check=True, capture_output=True, text=True).stdout.split()
        for f in files:
            if f.endswith(".so"):
                continue
            os.makedirs(os.path.join(src, os.path.dirname(f)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, f), os.path.join(src, f))
        out = subprocess.run(["luarocks", "--lua-version", "5.4", "make", "--tree", tree],
                             cwd=src, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        installed = os.path.join(tree, "share", "lua", "5.4", "mod_conference_request")
        assert os.path.exists(os.path.join(installed, "conference_request_native.so"))
        assert os.path.exists(os.path.join(tree, "share", "lua", "5.4", "mod_conference_request_s2sout",
                                           "mod_conference_request_s2sout.lua"))
        srv, _ = start_server("rock", env_extra={"CR_PLUGIN_PATHS": tree})
        try:
            serves_both_doors(srv)
            shown = srv.shell('module:info("conference_request", "focus.localhost")')
            assert installed in shown, shown
        finally:
            stop_server(srv)

        # prosodyctl install: the rock packed from that tree, installed by prosodyctl (luarocks
        # --tree <installer_plugin_path>) into a Prosody whose plugin_paths has no copy of it.
        # installer_plugin_path is set (genconf.sh always sets one under the server's dir): its
        # default is under Prosody's compiled-in data dir (/var/lib/prosody/custom_plugins), which
        # every Prosody on the machine searches first.
        out = subprocess.run(["luarocks", "--lua-version", "5.4", "pack", "mod_conference_request",
                              "--tree", tree], cwd=tmp, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        (rock,) = [f for f in os.listdir(tmp) if f.endswith(".rock")]
        custom = os.path.join(tmp, "custom_plugins")
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)

        def install(config):
            done = subprocess.run(["prosodyctl", "--config", config, "install", os.path.join(tmp, rock)],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0 and "is now installed in %s" % custom in done.stdout, \
                done.stdout + done.stderr
        srv, _ = start_server("prosodyctl-install", before_start=install,
                              env_extra={"CR_PLUGIN_PATHS": empty, "CR_INSTALLER_PLUGIN_PATH": custom})
        try:
            serves_both_doors(srv)
            shown = srv.shell('module:info("conference_request", "focus.localhost")')
            assert os.path.join(custom, "share", "lua", "5.4", "mod_conference_request") in shown, shown
        finally:
            stop_server(srv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------ metrics
def scrape(srv):
    """{metric name: value} of mod_conference_request's samples on focus.localhost."""
    web = Http(srv.http_port)
    try:
        r = web.request("GET", "/metrics")
    finally:
        web.close()
    assert r.status == 200, r.body
    values = {}
    for line in r.body.decode().splitlines():
        m = re.match(r'prosody_mod_conference_request__(\w+)\{host="focus\.localhost"\} (\S+)$', line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


def openmetrics_server(name, env_extra):
    tmp = tempfile.mkdtemp(prefix="cr-metrics-")
    glob = os.path.join(tmp, "global.cfg.lua")
    with open(glob, "w") as f:
        # gauges are sampled on each scrape (mod_http_openmetrics calls collect() in manual mode)
        f.write('statistics_interval = "manual"\n')
    extra = ('Component "focus.localhost" "conference_request"\n'
             '    modules_enabled = { "http_openmetrics" }\n'
             '    conference_request_ready_wait = %d\n' % READY_WAIT)
    env = dict(CR_GLOBAL_CONFIG=glob)
    env.update(env_extra)
    try:
        return start_server(name, extra, env_extra=env)[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def readme_metrics():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = text.split("- **Metrics**", 1)[1].split("Counters and gauges are", 1)[0]
    return set(re.findall(r"`([a-z0-9_<>]+)`", block))


def test_openmetrics_scrape_external_focus():
    """Requests by door and outcome, errors by condition, rooms tracked, waiters, rate-limit
    refusals, focus notifications, answers and time to ready, as /metrics shows them."""
    limits = "{ requests = 0.001; requests_burst = 4; creations = 0.001; creations_burst = 1 }"
    srv = openmetrics_server("metrics-ext", {"CR_FOCUS": FOCUS_JID, "CR_FOCUS_PASSWORD": FOCUS_PASSWORD,
                                             "CR_RATE_LIMITS": limits})
    try:
        # created at load (the per-door and per-condition ones appear with their first use)
        before = scrape(srv)
        for name in ("rooms_tracked", "waiters", "rate_limited_requests_total", "rate_limited_creations_total",
                     "focus_notifications_total", "focus_time_to_ready_seconds_count"):
            assert before.get(name) == 0, (name, before)

        async def scenario():
            loop = asyncio.get_running_loop()
            focus = FocusClient(FOCUS_JID + "/metrics", FOCUS_PASSWORD, join_delay=0.2)
            await focus.start("127.0.0.1", srv.c2s_port)
            alice = await Requester("alice@localhost/metrics").start(srv)
            bob = await Requester("bob@localhost/metrics").start(srv)
            try:
                room_a = new_room("m")
                # alice: a new room (ready once the focus joins), a second new room (no creation
                # token left), a malformed room, the existing room, one over the request burst
                kind, value, _ = await alice.request(room_a)
                assert kind == "result" and value["ready"] == "true"
                kind, value, _ = await alice.request(new_room("m"))
                assert (kind, value[1]) == ("error", "resource-constraint")
                kind, value, _ = await alice.request("a@b@conference.localhost")
                assert (kind, value[1]) == ("error", "jid-malformed")
                kind, value, _ = await alice.request(room_a)
                assert kind == "result" and value["ready"] == "true"
                kind, value, _ = await alice.request(room_a)
                assert (kind, value[1]) == ("error", "resource-constraint")
                status, body, _ = await http_request(srv, room_a)
                assert status == 200 and body["ready"] is True
                status, body, _ = await http(srv, "POST", "/conference-request/v1", "{bad")
                assert status == 400
                # two requests parked on a new room the focus never joins
                focus.mode = "silent"
                room_b = new_room("m")
                parked = [loop.create_task(http_request(srv, room_b)), loop.create_task(bob.request(room_b))]
                during = None
                for _ in range(100):
                    during = await loop.run_in_executor(None, scrape, srv)
                    if during.get("waiters") == 2:
                        break
                    await asyncio.sleep(0.05)
                (status, body, _), (kind, value, _) = await asyncio.gather(*parked)
                assert status == 200 and body["ready"] is False
                assert kind == "result" and value["ready"] == "false"
                return during
            finally:
                await stop_all(focus, alice, bob)

        during = asyncio.run(asyncio.wait_for(scenario(), 60))
        assert during["waiters"] == 2, during
        assert during["rooms_tracked"] == 2, during  # room_a and room_b

        after = scrape(srv)
        expected = {
            "request_xmpp_ready_total": 2, "request_xmpp_not_ready_total": 1, "request_xmpp_error_total": 3,
            "request_http_ready_total": 1, "request_http_not_ready_total": 1, "request_http_error_total": 1,
            "error_resource_constraint_total": 2, "error_jid_malformed_total": 1, "error_bad_request_total": 1,
            "rate_limited_requests_total": 1, "rate_limited_creations_total": 1,
            "waiters": 0,
            "focus_notifications_total": 2, "focus_answer_ready_total": 1, "focus_answer_timeout_total": 2,
            "focus_answer_ready_now_total": 2, "focus_time_to_ready_seconds_count": 1,
        }
        got = {k: after.get(k) for k in expected}
        assert got == expected, after
        assert after["focus_time_to_ready_seconds_sum"] > 0
        # the README's list and the exported families agree, both ways
        patterns = {n: re.compile("^" + re.sub(r"<\w+>", r"[a-z_]+", n) + "(_total|_seconds_\\w+)?$")
                    for n in readme_metrics() if n not in ("xmpp", "http", "ready", "not_ready", "error",
                                                           "ready_now", "timeout", "no_focus",
                                                           "not_authorized", "focus_error", "rate_limited",
                                                           "bounded", "cancelled", "_", "-")
                    # visitors_* exist only with conference_request_visitors (test_visitors.py)
                    and not n.startswith("visitors") and not n.startswith("_")}
        exported = {k for k in after if not k.endswith("_created")}
        for name, pattern in patterns.items():
            assert any(pattern.match(k) for k in exported), (name, sorted(exported))
        for k in exported:
            assert any(p.match(k) for p in patterns.values()), (k, sorted(patterns))
    finally:
        stop_server(srv)


def test_openmetrics_scrape_builtin_focus_rooms_and_legacy():
    """rooms_created / rooms_expired (built-in focus, empty-room timer) and legacy_get / _set /
    _error, as /metrics shows them; and the README's list is what the scrapes show."""
    srv = openmetrics_server("metrics-builtin", {})
    try:
        web = Http(srv.http_port)
        try:
            answer = web.post({"room": new_room("m")})
            assert answer.status == 200 and answer.json()["ready"] is True
        finally:
            web.close()
        legacy = LegacyClient(srv, "admin@localhost/metrics")  # may create rooms
        try:
            missing = new_room("legacy")
            legacy.legacy_get(missing)           # item-not-found: a get and an error
            legacy.presence(missing)
            created = legacy.legacy_set(missing, ["lucy"])  # creates the room through mod_muc
            assert created.get("type") == "result", ET.tostring(created)
        finally:
            legacy.close()
        # the empty-room timer (2 s in tests) destroys the room nobody joined
        after = eventually(lambda: (lambda v: v if v.get("rooms_expired_total") == 1 else None)(scrape(srv)))
        assert after, scrape(srv)
        expected = {"rooms_created_total": 1, "rooms_expired_total": 1, "rooms_tracked": 0,
                    "request_http_ready_total": 1,
                    "legacy_get_total": 1, "legacy_set_total": 1, "legacy_error_total": 1}
        assert {k: after.get(k) for k in expected} == expected, after
    finally:
        stop_server(srv)
