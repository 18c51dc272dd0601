"""Legacy options seen from outside: conference_request_legacy = false, the privacy and bound
options on a second server, and a bad legacy option refusing to load with a clear log line."""
import pytest

from conftest import new_room, start_server, stop_server
from legacy_client import Client, error_info, query_children


@pytest.fixture(scope="module")
def legacy_off():
    srv, _ = start_server("legacy-off", "    conference_request_legacy = false\n")
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def legacy_tuned():
    srv, _ = start_server("legacy-tuned", "    conference_request_legacy_privacy = true\n"
                                          "    conference_request_legacy_max_nicks = 2\n")
    try:
        yield srv
    finally:
        stop_server(srv)


def test_switched_off_the_room_does_not_speak_jabber_iq_conference(legacy_off):
    owner = Client(legacy_off, "admin@localhost/muc")
    bob = Client(legacy_off, "bob@localhost/legacy")
    try:
        room = new_room("legacy")
        assert owner.join_muc(room, "owner")["type"] != "error"
        reply = bob.legacy_get(room)
        assert reply.get("type") == "error"
        assert error_info(reply)[2] == "service-unavailable"  # MUC's answer for a namespace it lacks
        assert error_info(bob.legacy_set(room, ["bobby"]))[2] == "service-unavailable"
    finally:
        owner.close()
        bob.close()


def test_privacy_everywhere_and_nick_bound_options(legacy_tuned):
    owner = Client(legacy_tuned, "admin@localhost/muc")
    bob = Client(legacy_tuned, "bob@localhost/legacy")
    try:
        room = new_room("legacy")
        assert owner.join_muc(room, "owner")["type"] != "error"  # a MUC-created room
        assert ("privacy", None) in query_children(bob.legacy_get(room))
        etype, code, cond, text = error_info(bob.legacy_set(room, ["a", "b", "c"]))
        assert (code, cond, text) == ("406", "policy-violation", "more than 2 <nick> elements")
        assert query_children(bob.legacy_set(room, ["owner", "bobby"], privacy=True)) == [
            ("nick", "bobby"), ("id", "%s/%s" % (room, bob.id)), ("privacy", None)]
    finally:
        owner.close()
        bob.close()


@pytest.mark.parametrize("line, option", [
    ("conference_request_legacy_max_nicks = 0", "conference_request_legacy_max_nicks"),
    ("conference_request_legacy_privacy = \"sometimes\"", "conference_request_legacy_privacy"),
])
def test_bad_legacy_option_refuses_to_load(line, option):
    srv, failed = start_server("legacy-badopt", "    %s\n" % line, env_extra={"CR_START_TIMEOUT": "3"}, check=False)
    try:
        assert failed is not None, "the module must refuse to load"
        assert "invalid option %s" % option in srv.log()
    finally:
        stop_server(srv)
