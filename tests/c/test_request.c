/* test_request.c — the request model on its own: fields, properties, limits, room rules, reuse. */
#include "cr.h"
#include "ctest.h"

static cr_limits L;
static cr_error E;

static cr_condition room(cr_request *r, const char *s) {
    cr_request_reset(r);
    cr_condition c = cr_request_set(r, CR_FIELD_ROOM, s, strlen(s), &L, &E);
    return c ? c : cr_request_finish(r, &L, &E);
}

int main(void) {
    cr_limits_default(&L);
    CHECK(L.max_room == 3071 && L.max_jid_part == 1023 && L.max_properties == 64 &&
          L.max_property_name == 256 && L.max_property_value == 4096 && L.max_token == 16384 &&
          L.max_id == 256 && L.max_xml_depth == 16 && L.max_json_depth == 8);
    cr_request r;
    cr_request_init(&r);
    CHECK(cr_request_finish(&r, &L, &E) == CR_BAD_REQUEST);
    CHECK_STR(E.text, "missing 'room'");
    CHECK(cr_request_str(&r, r.room) == NULL);

    /* fields; empty = absent; the arena holds NUL-terminated copies */
    CHECK(cr_request_set(&r, CR_FIELD_ROOM, "a@b", 3, &L, &E) == CR_OK);
    CHECK(cr_request_set(&r, CR_FIELD_MACHINE_UID, "m", 1, &L, &E) == CR_OK);
    CHECK(cr_request_set(&r, CR_FIELD_SESSION_ID, "", 0, &L, &E) == CR_OK);
    CHECK(cr_request_set(&r, CR_FIELD_TOKEN, "t", 1, &L, &E) == CR_OK);
    CHECK(cr_request_set(&r, (cr_field)99, "x", 1, &L, &E) == CR_INTERNAL_SERVER_ERROR);
    CHECK(cr_request_finish(&r, &L, &E) == CR_OK);
    CHECK_STR(cr_request_str(&r, r.room), "a@b");
    CHECK_STR(cr_request_str(&r, r.machine_uid), "m");
    CHECK(!r.session_id.set);
    CHECK_STR(cr_request_str(&r, r.token), "t");
    CHECK(cr_request_set(&r, CR_FIELD_TOKEN, "", 0, &L, &E) == CR_OK && !r.token.set);

    /* attributes of <conference>: the four known names set their field, others are ignored;
     * names are compared with their length (a prefix or a longer name is another name) */
    cr_request_reset(&r);
    CHECK(cr_request_set_attribute(&r, "room", 4, "x@y", 3, &L, &E) == CR_OK);
    CHECK(cr_request_set_attribute(&r, "machine-uid", 11, "m1", 2, &L, &E) == CR_OK);
    CHECK(cr_request_set_attribute(&r, "session-id", 10, "s1", 2, &L, &E) == CR_OK);
    CHECK(cr_request_set_attribute(&r, "token", 5, "t1", 2, &L, &E) == CR_OK);
    CHECK(cr_request_set_attribute(&r, "roomx", 5, "bad", 3, &L, &E) == CR_OK);
    CHECK(cr_request_set_attribute(&r, "roo", 3, "bad", 3, &L, &E) == CR_OK);
    CHECK(cr_request_set_attribute(&r, "room\0x", 6, "bad", 3, &L, &E) == CR_OK);
    CHECK(cr_request_set_attribute(&r, "xmlns", 5, "bad", 3, &L, &E) == CR_OK);
    CHECK_STR(cr_request_str(&r, r.room), "x@y");
    CHECK_STR(cr_request_str(&r, r.machine_uid), "m1");
    CHECK_STR(cr_request_str(&r, r.session_id), "s1");
    CHECK_STR(cr_request_str(&r, r.token), "t1");
    {
        cr_limits t = L;
        t.max_token = 1;
        t.max_id = 1;
        CHECK(cr_request_set_attribute(&r, "token", 5, "tt", 2, &t, &E) == CR_POLICY_VIOLATION);
        CHECK(cr_request_set_attribute(&r, "session-id", 10, "ss", 2, &t, &E) ==
              CR_POLICY_VIOLATION);
        CHECK(cr_request_set_attribute(&r, "machine-uid", 11, "mm", 2, &t, &E) ==
              CR_POLICY_VIOLATION);
        CHECK(cr_request_set_attribute(&r, "token", 5, "t", 1, &t, &E) == CR_OK);
    }
    cr_request_reset(&r);
    CHECK(cr_request_set(&r, CR_FIELD_ROOM, "a@b", 3, &L, &E) == CR_OK);
    CHECK(cr_request_set(&r, CR_FIELD_MACHINE_UID, "m", 1, &L, &E) == CR_OK);
    CHECK(cr_request_set(&r, CR_FIELD_TOKEN, "t", 1, &L, &E) == CR_OK);

    /* properties: skip empty names, dedupe keeping the first position */
    CHECK(cr_request_add_property(&r, "", 0, "v", 1, &L, &E) == CR_OK && r.nprops == 0);
    CHECK(cr_request_add_property(&r, "a", 1, "1", 1, &L, &E) == CR_OK);
    CHECK(cr_request_add_property(&r, "b", 1, "", 0, &L, &E) == CR_OK);
    CHECK(cr_request_add_property(&r, "a", 1, "3", 1, &L, &E) == CR_OK);
    CHECK(r.nprops == 2);
    CHECK_STR(cr_request_str(&r, r.props[0].value), "3");
    CHECK_STR(cr_request_str(&r, r.props[1].value), "");
    /* names are byte strings: a prefix is another name */
    CHECK(cr_request_add_property(&r, "ab", 2, "x", 1, &L, &E) == CR_OK && r.nprops == 3);

    /* limits exactly at the bound and one past */
    cr_limits s = L;
    s.max_properties = 3;
    s.max_property_name = 2;
    s.max_property_value = 2;
    s.max_id = 2;
    s.max_token = 2;
    CHECK(cr_request_add_property(&r, "a", 1, "vv", 2, &s, &E) == CR_OK); /* existing name */
    CHECK(cr_request_add_property(&r, "c", 1, "v", 1, &s, &E) == CR_POLICY_VIOLATION);
    CHECK(cr_request_add_property(&r, "ccc", 3, "v", 1, &s, &E) == CR_POLICY_VIOLATION);
    CHECK(cr_request_add_property(&r, "a", 1, "vvv", 3, &s, &E) == CR_POLICY_VIOLATION);
    CHECK(cr_request_set(&r, CR_FIELD_MACHINE_UID, "mm", 2, &s, &E) == CR_OK);
    CHECK(cr_request_set(&r, CR_FIELD_MACHINE_UID, "mmm", 3, &s, &E) == CR_POLICY_VIOLATION);
    CHECK(cr_request_set(&r, CR_FIELD_SESSION_ID, "sss", 3, &s, &E) == CR_POLICY_VIOLATION);
    CHECK(cr_request_set(&r, CR_FIELD_TOKEN, "tt", 2, &s, &E) == CR_OK);
    CHECK(cr_request_set(&r, CR_FIELD_TOKEN, "ttt", 3, &s, &E) == CR_POLICY_VIOLATION);
    CHECK(E.condition == CR_POLICY_VIOLATION && strstr(E.text, "token") != NULL);

    /* room rules */
    CHECK(room(&r, "n@d") == CR_OK);
    CHECK(room(&r, "n@d.example") == CR_OK);
    CHECK(room(&r, "nd") == CR_JID_MALFORMED);
    CHECK(room(&r, "@d") == CR_JID_MALFORMED);
    CHECK(room(&r, "n@") == CR_JID_MALFORMED);
    CHECK(room(&r, "n@d@e") == CR_JID_MALFORMED);
    CHECK(room(&r, "n@d/r") == CR_JID_MALFORMED);
    CHECK(room(&r, "n/x@d") == CR_JID_MALFORMED);
    s = L;
    s.max_room = 5;
    s.max_jid_part = 2;
    L = s;
    CHECK(room(&r, "nn@dd") == CR_OK);
    CHECK(room(&r, "nnn@d") == CR_JID_MALFORMED);
    CHECK(room(&r, "n@ddd") == CR_JID_MALFORMED);
    L.max_jid_part = 10;
    CHECK(room(&r, "nnn@dd") == CR_JID_MALFORMED); /* 6 > max_room */
    CHECK(strstr(E.text, "room exceeds 5") != NULL);
    cr_limits_default(&L);

    /* reuse: reset forgets everything and keeps the storage */
    size_t cap = r.arena.cap, pcap = r.props_cap;
    cr_request_reset(&r);
    CHECK(!r.room.set && !r.machine_uid.set && !r.session_id.set && !r.token.set && r.nprops == 0);
    CHECK(r.arena.cap == cap && r.props_cap == pcap && r.arena.len == 0);
    cr_request_free(&r);
    CHECK(r.arena.data == NULL && r.props == NULL);
    return ctest_done("test_request");
}
