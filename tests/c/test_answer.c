/* test_answer.c — property order, byte-exact XML/JSON rendering with escaping, conditions. */
#include "cr.h"
#include "ctest.h"

#define NS "http://jitsi.org/protocol/focus"
#define S(lit) ((cr_sv){lit, sizeof(lit) - 1})

static cr_buf B;
static cr_error E;

static const char *xml(const cr_answer *a, const cr_answer_config *c) {
    if (cr_answer_render_xml(a, c, &B, &E)) return NULL;
    cr_buf_putc(&B, '\0');
    return B.data;
}
static const char *json(const cr_answer *a, const cr_answer_config *c) {
    if (cr_answer_render_json(a, c, &B, &E)) return NULL;
    cr_buf_putc(&B, '\0');
    return B.data;
}

static void test_minimal(void) {
    cr_answer_config c;
    cr_answer_config_init(&c);
    cr_answer a = {.room = S("room1@conference.localhost"), .ready = false,
                   .focus_jid = S("focus.localhost")};
    CHECK_STR(xml(&a, &c), "<conference xmlns='" NS "' room='room1@conference.localhost' "
                           "ready='false' focusjid='focus.localhost'><property "
                           "name='authentication' value='false'/><property "
                           "name='visitors-supported' value='false'/></conference>");
    CHECK_STR(json(&a, &c), "{\"room\":\"room1@conference.localhost\",\"ready\":false,"
                            "\"focusJid\":\"focus.localhost\",\"properties\":{\"authentication\":"
                            "\"false\",\"visitors-supported\":\"false\"}}");
    cr_answer_config_free(&c);
}

static void test_full(void) {
    cr_answer_config c;
    cr_answer_config_init(&c);
    c.authentication = true;
    c.external_auth = 0;
    c.sip_gateway = true;
    CHECK(cr_answer_config_add_extra(&c, "zeta", 4, "z", 1, &E) == CR_OK);
    CHECK(cr_answer_config_add_extra(&c, "alpha", 5, "old", 3, &E) == CR_OK);
    CHECK(cr_answer_config_add_extra(&c, "mid&", 4, "<'\">", 4, &E) == CR_OK);
    CHECK(cr_answer_config_add_extra(&c, "alpha", 5, "a", 1, &E) == CR_OK); /* replaces */
    CHECK(c.nextras == 3);
    CHECK(cr_answer_max_properties(&c) >= 7);
    cr_answer a = {.room = S("r&<>'\"@d"), .ready = true, .focus_jid = S("focus.example"),
                   .session_id = S("s\"1"), .identity = S("id\\\n"), .vnode = S("v1"),
                   .visitors_supported = true};
    CHECK_STR(xml(&a, &c),
              "<conference xmlns='" NS "' room='r&amp;&lt;&gt;&apos;&quot;@d' ready='true' "
              "focusjid='focus.example' session-id='s&quot;1' identity='id\\&#10;' vnode='v1'>"
              "<property name='authentication' value='true'/>"
              "<property name='externalAuth' value='false'/>"
              "<property name='sipGatewayEnabled' value='true'/>"
              "<property name='visitors-supported' value='true'/>"
              "<property name='alpha' value='a'/>"
              "<property name='mid&amp;' value='&lt;&apos;&quot;&gt;'/>"
              "<property name='zeta' value='z'/></conference>");
    CHECK_STR(json(&a, &c),
              "{\"room\":\"r&<>'\\\"@d\",\"ready\":true,\"focusJid\":\"focus.example\","
              "\"sessionId\":\"s\\\"1\",\"identity\":\"id\\\\\\n\",\"vnode\":\"v1\","
              "\"properties\":{\"authentication\":\"true\",\"externalAuth\":\"false\","
              "\"sipGatewayEnabled\":\"true\",\"visitors-supported\":\"true\",\"alpha\":\"a\","
              "\"mid&\":\"<'\\\">\",\"zeta\":\"z\"}}");
    /* a redirect naming the node's MUC: property vnode-muc (both doors), JSON key vnodeMuc */
    a.vnode_muc = S("conference.v1.meet.jitsi");
    a.session_id = a.identity = (cr_sv){NULL, 0};
    c.external_auth = -1;
    c.sip_gateway = false;
    CHECK_STR(xml(&a, &c),
              "<conference xmlns='" NS "' room='r&amp;&lt;&gt;&apos;&quot;@d' ready='true' "
              "focusjid='focus.example' vnode='v1'>"
              "<property name='authentication' value='true'/>"
              "<property name='visitors-supported' value='true'/>"
              "<property name='vnode-muc' value='conference.v1.meet.jitsi'/>"
              "<property name='alpha' value='a'/>"
              "<property name='mid&amp;' value='&lt;&apos;&quot;&gt;'/>"
              "<property name='zeta' value='z'/></conference>");
    CHECK_STR(json(&a, &c),
              "{\"room\":\"r&<>'\\\"@d\",\"ready\":true,\"focusJid\":\"focus.example\","
              "\"vnode\":\"v1\",\"vnodeMuc\":\"conference.v1.meet.jitsi\","
              "\"properties\":{\"authentication\":\"true\",\"visitors-supported\":\"true\","
              "\"vnode-muc\":\"conference.v1.meet.jitsi\",\"alpha\":\"a\","
              "\"mid&\":\"<'\\\">\",\"zeta\":\"z\"}}");
    a.vnode_muc = (cr_sv){NULL, 0};
    /* live queue: live=false replaces visitors-supported */
    a.live_queue = true;
    a.session_id = a.identity = a.vnode = (cr_sv){NULL, 0};
    c.external_auth = 1;
    c.sip_gateway = false;
    CHECK_STR(json(&a, &c),
              "{\"room\":\"r&<>'\\\"@d\",\"ready\":true,\"focusJid\":\"focus.example\","
              "\"properties\":{\"authentication\":\"true\",\"externalAuth\":\"true\","
              "\"live\":\"false\",\"alpha\":\"a\",\"mid&\":\"<'\\\">\",\"zeta\":\"z\"}}");
    /* the ordered list itself, in chunks */
    cr_prop p[2];
    CHECK(cr_answer_properties(&a, &c, 0, p, 2) == 2);
    CHECK(p[0].name.len == 14 && memcmp(p[0].name.s, "authentication", 14) == 0);
    CHECK(p[1].name.len == 12 && memcmp(p[1].name.s, "externalAuth", 12) == 0);
    CHECK(cr_answer_properties(&a, &c, 2, p, 2) == 2);
    CHECK(memcmp(p[0].name.s, "live", 4) == 0 && memcmp(p[0].value.s, "false", 5) == 0);
    CHECK(memcmp(p[1].name.s, "alpha", 5) == 0);
    CHECK(cr_answer_properties(&a, &c, 5, p, 2) == 1);
    CHECK(cr_answer_properties(&a, &c, 6, p, 2) == 0);
    /* control characters: answers refuse them, the JSON escaper encodes them */
    a.identity = (cr_sv){"\x01\t\x1f", 3};
    CHECK(json(&a, &c) == NULL && E.condition == CR_BAD_REQUEST);
    cr_buf_reset(&B);
    CHECK(cr_json_escape(&B, "\x01\t\x1f\x7f\"\\/", 7) && cr_buf_putc(&B, '\0'));
    CHECK_STR(B.data, "\\u0001\\t\\u001f\\u007f\\\"\\\\/");
    cr_buf_reset(&B);
    CHECK(cr_xml_escape(&B, "a&<>'\"\t\r\nb", 10) && cr_buf_putc(&B, '\0'));
    CHECK_STR(B.data, "a&amp;&lt;&gt;&apos;&quot;&#9;&#13;&#10;b");
    /* empty optional strings are omitted */
    a.identity = S("");
    const char *j = json(&a, &c);
    CHECK(j != NULL && strstr(j, "identity") == NULL);
    cr_answer_config_free(&c);
}

static void test_check(void) {
    cr_answer_config c;
    cr_answer_config_init(&c);
    cr_answer a = {.room = S("r@d"), .focus_jid = S("f")};
    CHECK(cr_answer_check(&a, &E) == CR_OK);
    a.room = (cr_sv){NULL, 0};
    CHECK(cr_answer_render_xml(&a, &c, &B, &E) == CR_BAD_REQUEST);
    a.room = S("r@d");
    a.focus_jid = S("");
    CHECK(cr_answer_render_json(&a, &c, &B, &E) == CR_BAD_REQUEST);
    a.focus_jid = S("f");
    a.vnode = (cr_sv){"a\0b", 3};
    CHECK(cr_answer_render_xml(&a, &c, &B, &E) == CR_BAD_REQUEST);
    a.vnode = S("\xff");
    CHECK(cr_answer_check(&a, &E) == CR_BAD_REQUEST);
    cr_answer_config_free(&c);
}

static void test_xml_safe(void) {
    CHECK(cr_xml_safe("", 0));
    CHECK(cr_xml_safe("a\t\r\n\x7f", 5));
    CHECK(cr_xml_safe("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    CHECK(!cr_xml_safe("\x01", 1));
    CHECK(!cr_xml_safe("\0", 1));
    CHECK(!cr_xml_safe("\xef\xbf\xbe", 3)); /* U+FFFE */
    CHECK(!cr_xml_safe("\xef\xbf\xbf", 3)); /* U+FFFF */
    CHECK(!cr_xml_safe("\xed\xa0\x80", 3)); /* surrogate */
    CHECK(!cr_xml_safe("\xc0\x80", 2));     /* overlong */
    CHECK(!cr_xml_safe("\xe2\x82", 2));     /* truncated */
    CHECK(!cr_xml_safe("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void test_conditions(void) {
    struct { cr_condition c; const char *name, *type; int http; } want[] = {
        {CR_BAD_REQUEST, "bad-request", "modify", 400},
        {CR_JID_MALFORMED, "jid-malformed", "modify", 400},
        {CR_ITEM_NOT_FOUND, "item-not-found", "cancel", 404},
        {CR_NOT_AUTHORIZED, "not-authorized", "auth", 403},
        {CR_NOT_ACCEPTABLE, "not-acceptable", "modify", 400},
        {CR_RESOURCE_CONSTRAINT, "resource-constraint", "wait", 429},
        {CR_INTERNAL_SERVER_ERROR, "internal-server-error", "cancel", 500},
        {CR_NOT_ALLOWED, "not-allowed", "cancel", 405},
        {CR_CONFLICT, "conflict", "cancel", 409},
        {CR_FORBIDDEN, "forbidden", "auth", 403},
        {CR_SERVICE_UNAVAILABLE, "service-unavailable", "cancel", 503},
        {CR_POLICY_VIOLATION, "policy-violation", "modify", 400},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const cr_condition_info *ci = cr_condition_get(want[i].c);
        CHECK(ci != NULL);
        if (!ci) continue;
        CHECK_STR(ci->name, want[i].name);
        CHECK_STR(ci->type, want[i].type);
        CHECK(ci->http == want[i].http);
    }
    CHECK(cr_condition_get(CR_OK) == NULL);
    CHECK(cr_condition_get(CR_CONDITION_COUNT) == NULL);
    cr_error e;
    CHECK(cr_error_set(&e, CR_CONFLICT, "x=%d", 5) == CR_CONFLICT);
    CHECK(e.condition == CR_CONFLICT);
    CHECK_STR(e.text, "x=5");
    char big[400];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_error_set(&e, CR_CONFLICT, "%s", big);
    CHECK(strlen(e.text) == CR_ERROR_TEXT - 1);
}

static void test_buf(void) {
    cr_buf b;
    cr_buf_init(&b);
    CHECK(b.data == NULL && b.len == 0);
    bool ok = true;
    for (int i = 0; i < 10000; i++) ok = ok && cr_buf_putc(&b, (char)('a' + i % 26));
    CHECK(ok);
    CHECK(b.len == 10000 && b.cap >= 10000 && b.data[9999] == 'a' + 9999 % 26);
    size_t cap = b.cap;
    cr_buf_reset(&b);
    CHECK(b.len == 0 && b.cap == cap);
    CHECK(cr_buf_append(&b, "xyz", 3) && cr_buf_puts(&b, "w") && b.len == 4);
    CHECK(!cr_buf_reserve(&b, SIZE_MAX));
    CHECK(b.len == 4 && memcmp(b.data, "xyzw", 4) == 0);
    cr_buf_free(&b);
    CHECK(b.data == NULL);
}

int main(void) {
    cr_buf_init(&B);
    test_minimal();
    test_full();
    test_check();
    test_xml_safe();
    test_conditions();
    test_buf();
    cr_buf_free(&B);
    return ctest_done("test_answer");
}
