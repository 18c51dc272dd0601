#!/usr/bin/python3
"""Measures how long N waiters on one room take to be answered once the external focus joins.

Not a test (no assertions on time; pytest does not collect it). Starts its own Prosody in external
mode (tests/server/genconf.sh with CR_FOCUS), a test focus that does not join by itself, and slixmpp
clients that park N conference requests (plus H HTTP requests) for one new room. When the
module reports N+H waiters (health route), the focus joins the room; the script prints the time
from the join being sent to the first and to the last answer, and checks every answer is
ready=true.

    /usr/bin/python3 tests/integration/measure_external_focus.py --waiters 10000 --clients 20 --http 200
"""
import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import REPO, SERVER, Server, _free_port_base  # noqa: E402
from focus_client import FocusClient  # noqa: E402
from test_external_focus import FOCUS_JID, FOCUS_PASSWORD, Requester, health, http_request, new_room  # noqa: E402


async def measure(server, waiters, clients, n_http):
    loop = asyncio.get_running_loop()
    focus = FocusClient(FOCUS_JID + "/measure", FOCUS_PASSWORD, mode="ignore")
    await focus.start("127.0.0.1", server.c2s_port)
    users = []
    for i in range(clients):
        users.append(await Requester("%s@localhost/m%d" % (("alice", "bob", "admin")[i % 3], i)).start(server))
    room = new_room("measure")
    t_start = loop.time()
    tasks = [asyncio.ensure_future(users[i % clients].request(room, timeout=600)) for i in range(waiters)]
    tasks += [asyncio.ensure_future(http_request(server, room)) for _ in range(n_http)]
    while True:
        h = await health(server)
        if h["waiters"] >= waiters + n_http or all(t.done() for t in tasks):
            break
        await asyncio.sleep(0.1)
    t_parked = loop.time()
    t_join = loop.time()
    focus.joined.add(room)
    focus.plugin["xep_0045"].join_muc(room, focus.muc_nick)  # confirmation not awaited: the loop is busy
    answers = await asyncio.gather(*tasks)
    arrivals = sorted(a[2] for a in answers)
    ready = sum(1 for a in answers if (a[0] == "result" and a[1].get("ready") == "true")
                or (a[0] == 200 and a[1].get("ready") is True))
    for c in users:
        await c.stop()
    await focus.stop()
    return {
        "waiters": waiters, "http": n_http, "clients": clients, "parked_in_s": round(t_parked - t_start, 3),
        "peak_waiters": h["waiters"], "notifications": len(focus.requests_for(room)),
        "first_answer_after_join_s": round(arrivals[0] - t_join, 4),
        "last_answer_after_join_s": round(arrivals[-1] - t_join, 4),
        "ready_true": ready, "answers": len(answers),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--waiters", type=int, default=10000, help="XMPP requests parked on one room")
    ap.add_argument("--clients", type=int, default=20, help="XMPP connections they are spread over")
    ap.add_argument("--http", type=int, default=0, help="HTTP requests parked as well (one connection each)")
    args = ap.parse_args()
    work = os.path.join(REPO, "tests", "integration", ".work")
    directory = os.path.join(work, "measure-%d" % os.getpid())
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    extra = os.path.join(directory, "extra.cfg.lua")
    with open(extra, "w") as f:
        f.write('Component "focus.localhost" "conference_request"\n'
                '    conference_request_ready_wait = 600\n'
                '    conference_request_max_waiters_per_room = %d\n' % (args.waiters + args.http + 10))
    base = _free_port_base()
    env = dict(os.environ, CR_FOCUS=FOCUS_JID, CR_FOCUS_PASSWORD=FOCUS_PASSWORD, CR_EXTRA_CONFIG=extra,
               CR_LOG_LEVEL="info", CR_RATE_LIMITS="false")  # a measurement: limits off
    subprocess.run([os.path.join(SERVER, "genconf.sh"), directory, str(base)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(SERVER, "start.sh"), directory], check=True, env=env)
    try:
        t0 = time.monotonic()
        result = asyncio.run(measure(Server(directory, base), args.waiters, args.clients, args.http))
        result["total_s"] = round(time.monotonic() - t0, 2)
        with open(os.path.join(directory, "prosody.log"), encoding="utf-8", errors="replace") as log:
            for line in log:
                if "is ready: focus" in line and "measure-" in line:
                    result["server_side"] = line.split("joined; ", 1)[1].strip()
        for k, v in result.items():
            print("%-28s %s" % (k, v))
    finally:
        subprocess.run([os.path.join(SERVER, "stop.sh"), directory], check=False)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
