"""A federation of real Prosody processes on loopback (issue 12, README "Visitor servers"): a main
server (domain `localhost`, the module on focus.localhost with the built-in focus and
conference_request_visitors) and N visitor nodes (domain `<id>.meet.jitsi`, the module on
focus.<id>.meet.jitsi with conference_request_role = "visitor_node"), each its own process with its
own ports, federated over s2s on 127.0.0.1 (tests/server/genconf.sh CR_S2S=1; outgoing connections
steered by mod_conference_request_s2sout, no DNS and no system file).

    fed = Federation("fed", nodes=("v1", "v2"), report_interval=1, node_timeout=3)
    fed.start()
    fed.main.shell("conference_request:nodes()")
    fed.nodes["v1"].kill()        # SIGKILL
    fed.nodes["v1"].restart()     # same ports, same config
    fed.stop()

Each FedServer is a conftest.Server (shell, log, c2s_port, http_port) that also knows its domain,
its s2s port, its module host (`focus`) and its MUC (`muc`)."""
import os
import shutil
import signal
import subprocess
import time

from conftest import REPO, SERVER, EMPTY_ROOM_TIMEOUT, Http, Server, Xmpp, _port_free

WORK = os.path.join(REPO, "tests", "integration", ".work")


def free_port_bases(count, taken=()):
    """`count` port bases B (B+222 c2s, B+269 s2s, B+280 HTTP all free on loopback), distinct and
    not overlapping, in 10000-31499 (below Linux's ephemeral range; see conftest._free_port_base)."""
    seed = int(os.environ.get("CR_PORT_BASE") or (10000 + (os.getpid() * 7) % 21500))
    bases = []
    for i in range(400):
        base = 10000 + (seed - 10000 + i * 331) % 21500
        if any(abs(base - b) < 100 for b in list(bases) + list(taken)):
            continue
        if all(_port_free(base + off) for off in (222, 269, 280)):
            bases.append(base)
            if len(bases) == count:
                return bases
    raise RuntimeError("no %d free port bases found" % count)


def alive(pid):
    """The process runs (not gone, not a zombie: start.sh's children are reaped by whoever
    inherits them, maybe late)."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class FedServer(Server):
    """One Prosody of the federation: its config is generated once; start/kill/restart keep it."""

    def __init__(self, name, directory, port_base, domain):
        super().__init__(directory, port_base)
        self.name = name
        self.domain = domain
        self.s2s_port = port_base + 269
        self.focus = "focus.%s" % domain
        self.muc = "conference.%s" % domain
        self.env = None

    @property
    def pid(self):
        try:
            with open(os.path.join(self.dir, "server.pid"), encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def running(self):
        pid = self.pid
        return pid is not None and alive(pid)

    def generate(self, env):
        self.env = env
        gen = subprocess.run([os.path.join(SERVER, "genconf.sh"), self.dir, str(self.http_port - 280)],
                             env=env, capture_output=True, text=True)
        if gen.returncode != 0:
            raise RuntimeError("genconf.sh failed for %s: %s%s" % (self.name, gen.stdout, gen.stderr))

    def start_async(self):
        """Starts start.sh (which waits until the server is ready); returns the Popen."""
        try:
            os.unlink(os.path.join(self.dir, "data", "prosody.pid"))
        except FileNotFoundError:
            pass
        return subprocess.Popen([os.path.join(SERVER, "start.sh"), self.dir], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def start(self):
        p = self.start_async()
        out, _ = p.communicate(timeout=60)
        if p.returncode != 0:
            raise RuntimeError("server %s did not start:\n%s" % (self.name, out))

    def kill(self):
        """SIGKILL: no stream close, no unload; the kernel closes its sockets."""
        pid = self.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(500):  # dead: gone, or a zombie its new parent has not reaped yet
                if not alive(pid):
                    break
                time.sleep(0.01)
        try:
            os.unlink(os.path.join(self.dir, "server.pid"))
        except FileNotFoundError:
            pass

    def restart(self):
        self.kill()
        self.start()

    def stop(self):
        subprocess.run([os.path.join(SERVER, "stop.sh"), self.dir], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def health(self):
        h = Http(self.http_port)
        try:
            res = h.request("GET", "/conference-request/v1/health")
            assert res.status == 200, res.body
            return res.json()
        finally:
            h.close()

    def client(self, user="alice"):
        """A logged-in client of this server whose requests go to this server's module host."""
        return FedXmpp(self, "%s@%s" % (user, self.domain))


class FedXmpp(Xmpp):
    """conftest.Xmpp whose IQs go to its own server's module host unless told otherwise."""

    def __init__(self, server, jid, password="secret", timeout=10):
        self.focus = server.focus
        super().__init__(server, jid, password, timeout)

    def iq(self, payload, to=None, itype="set"):
        return super().iq(payload, to or self.focus, itype)


def lua_table(mapping):
    return "{ %s }" % "; ".join('["%s"] = "%s"' % (k, v) for k, v in sorted(mapping.items()))


class Federation:
    """A main server and visitor nodes; see the module docstring.

    main_extra / node_extra: config text appended in the module's Component section of the main
    server / of each node (node_extra may contain {id}); they must not repeat an option set here.
    capacity / node_weights / capacities ({id: n}): the nodes' entries; visitors_extra: more keys of
    conference_request_visitors (e.g. "pending_window = 2;").
    reports=False leaves out the report protocol's keys of conference_request_visitors (node_timeout,
    a node's muc): the federation alone, for a module without them."""

    def __init__(self, name, nodes=("v1", "v2"), report_interval=1, node_timeout=3, capacity=100,
                 max_participants=1, main_extra="", node_extra="", node_weights=None, log_level=None,
                 reports=True, capacities=None, visitors_extra=""):
        self.name = name
        self.ids = list(nodes)
        self.report_interval = report_interval
        self.node_timeout = node_timeout
        bases = free_port_bases(1 + len(self.ids))
        tag = "%s-%d" % (name, os.getpid())
        self.main = FedServer("main", os.path.join(WORK, "%s-main" % tag), bases[0], "localhost")
        self.nodes = {}
        for node_id, base in zip(self.ids, bases[1:]):
            self.nodes[node_id] = FedServer(node_id, os.path.join(WORK, "%s-%s" % (tag, node_id)), base,
                                            "%s.meet.jitsi" % node_id)
        entries = []
        for node_id in self.ids:
            node = self.nodes[node_id]
            weight = (node_weights or {}).get(node_id, 1)
            # focus_jid's host is the node's module host: the reporter JID (`jid`) defaults to it
            muc = ' muc = "%s",' % node.muc if reports else ""
            entries.append('{ id = "%s", focus_jid = "focus@%s",%s capacity = %d, weight = %s }'
                           % (node_id, node.focus, muc, (capacities or {}).get(node_id, capacity), weight))
        self.main_config = """
    conference_request_visitors = {
        enabled = true;
        max_participants = %d;
        %s
        %s
        nodes = {
            %s;
        };
    }
%s""" % (max_participants, "node_timeout = %s;" % node_timeout if reports else "", visitors_extra,
         ";\n            ".join(entries), main_extra)
        self.node_config = """
    conference_request_role = "visitor_node"
    conference_request_main = "%s"
    conference_request_node_id = "{id}"
    conference_request_report_interval = %s
%s""" % (self.main.focus, report_interval, node_extra)
        self.log_level = log_level or os.environ.get("CR_LOG_LEVEL", "debug")

    def servers(self):
        return [self.main] + [self.nodes[i] for i in self.ids]

    def _env(self, server, extra_config, s2sout):
        os.makedirs(server.dir, exist_ok=True)
        path = os.path.join(server.dir, "extra.cfg.lua")
        with open(path, "w", encoding="utf-8") as f:
            f.write(extra_config)
        return dict(os.environ, CR_EMPTY_ROOM_TIMEOUT=str(EMPTY_ROOM_TIMEOUT), CR_LOG_LEVEL=self.log_level,
                    CR_RATE_LIMITS="false", CR_DOMAIN=server.domain, CR_S2S="1", CR_S2SOUT=lua_table(s2sout),
                    CR_EXTRA_CONFIG=path)

    def generate(self):
        for s in self.servers():
            shutil.rmtree(s.dir, ignore_errors=True)
        # the main server reaches each node's domain (and its subdomains) at the node's s2s port;
        # each node reaches the main server's domain
        self.main.generate(self._env(self.main, self.main_config,
                                     {n.domain: "127.0.0.1:%d" % n.s2s_port for n in self.nodes.values()}))
        for node_id, node in self.nodes.items():
            node.generate(self._env(node, self.node_config.replace("{id}", node_id),
                                    {self.main.domain: "127.0.0.1:%d" % self.main.s2s_port}))

    def start(self):
        self.generate()
        started = [(s, s.start_async()) for s in self.servers()]
        failed = []
        for s, p in started:
            out, _ = p.communicate(timeout=60)
            if p.returncode != 0:
                failed.append("%s:\n%s" % (s.name, out))
        if failed:
            self.stop()
            raise RuntimeError("federation did not start:\n" + "\n".join(failed))
        return self

    def stop(self):
        stopping = [subprocess.Popen([os.path.join(SERVER, "stop.sh"), s.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL) for s in self.servers()]
        for p in stopping:
            p.wait(timeout=30)
        if os.environ.get("CR_KEEP_WORK") != "1":
            for s in self.servers():
                shutil.rmtree(s.dir, ignore_errors=True)

    def node_health(self):
        """The main server's view: {id: visitors.nodes[] entry} of its health route."""
        return {n["id"]: n for n in self.main.health()["visitors"]["nodes"]}
