/* test_xml.c — XML payload parsing: rules, every limit at the bound and one past, hostile input. */
#include "cr.h"
#include "ctest.h"

#include <stdlib.h>

#define NS "http://jitsi.org/protocol/focus"
static cr_xml_parser *P;
static cr_request R;
static cr_limits L;
static cr_error E;

static cr_condition parse(const char *s) {
    E.condition = CR_OK;
    E.text[0] = '\0';
    return cr_xml_parse(P, s, strlen(s), &L, &R, &E);
}
static cr_condition parsen(const char *s, size_t n) { return cr_xml_parse(P, s, n, &L, &R, &E); }

static const char *str(cr_str s) { return cr_request_str(&R, s); }
static const char *pname(size_t i) { return cr_request_str(&R, R.props[i].name); }
static const char *pval(size_t i) { return cr_request_str(&R, R.props[i].value); }

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* A conference element with the given attributes and children. Caller frees. */
static char *conf(const char *attrs, const char *children) {
    size_t n = strlen(attrs) + strlen(children) + 128;
    char *s = malloc(n);
    snprintf(s, n, "<conference xmlns='" NS "' %s>%s</conference>", attrs, children);
    return s;
}

static void expect(const char *attrs, const char *children, cr_condition want) {
    char *s = conf(attrs, children);
    cr_condition c = parse(s);
    if (c != want) fprintf(stderr, "  input: %.200s\n  got %d (%s) want %d\n", s, c, E.text, want);
    CHECK(c == want);
    if (want) CHECK(E.condition == want && E.text[0] != '\0');
    free(s);
}

static void test_basic(void) {
    CHECK(parse("<conference xmlns='" NS "' room='room1@conference.localhost' "
                "machine-uid='m1' session-id='s1' token='t1' other='x'>"
                "<property name='a' value='1'/><unknown/><property name='b' value='2'/>"
                "text<!-- c --><?pi x?></conference>") == CR_OK);
    CHECK_STR(str(R.room), "room1@conference.localhost");
    CHECK_STR(str(R.machine_uid), "m1");
    CHECK_STR(str(R.session_id), "s1");
    CHECK_STR(str(R.token), "t1");
    CHECK(R.nprops == 2);
    CHECK_STR(pname(0), "a");
    CHECK_STR(pval(0), "1");
    CHECK_STR(pname(1), "b");
    CHECK_STR(pval(1), "2");
    /* prefixed form: namespace processing is on */
    CHECK(parse("<f:conference xmlns:f='" NS "' room='r@d'><f:property name='p' value='v'/>"
                "</f:conference>") == CR_OK);
    CHECK(R.nprops == 1);
    /* escaped attribute values come back decoded */
    CHECK(parse("<conference xmlns='" NS "' room='a&amp;b@d'><property name='&lt;' value='&apos;&quot;'/></conference>") == CR_OK);
    CHECK_STR(str(R.room), "a&b@d");
    CHECK_STR(pname(0), "<");
    CHECK_STR(pval(0), "'\"");
}

static void test_rules(void) {
    /* empty attribute = absent */
    expect("room='r@d' machine-uid='' session-id='' token=''", "", CR_OK);
    CHECK(!R.machine_uid.set && !R.session_id.set && !R.token.set);
    expect("room=''", "", CR_BAD_REQUEST);
    CHECK_STR(E.text, "missing 'room'");
    expect("", "", CR_BAD_REQUEST);
    CHECK_STR(E.text, "missing 'room'");
    /* property rules */
    expect("room='r@d'",
           "<property value='x'/><property name='' value='y'/><property name='a'/>"
           "<property name='b' value='1'/><property name='a' value='2'/>",
           CR_OK);
    CHECK(R.nprops == 2);
    CHECK_STR(pname(0), "a");
    CHECK_STR(pval(0), "2");
    CHECK_STR(pname(1), "b");
    /* only direct children in the focus namespace */
    expect("room='r@d'",
           "<x><property name='deep' value='1'/></x><property xmlns='urn:other' name='o' value='1'/>"
           "<property name='ok' value='1'/>",
           CR_OK);
    CHECK(R.nprops == 1);
    CHECK_STR(pname(0), "ok");
    /* a prefixed attribute is not the room */
    expect("xmlns:o='urn:o' o:room='r@d'", "", CR_BAD_REQUEST);
}

static void test_room(void) {
    expect("room='r'", "", CR_JID_MALFORMED);
    expect("room='@d'", "", CR_JID_MALFORMED);
    expect("room='r@'", "", CR_JID_MALFORMED);
    expect("room='a@b@c'", "", CR_JID_MALFORMED);
    expect("room='r@d/res'", "", CR_JID_MALFORMED);
    char attrs[4000];
    char *p1023 = repeat('n', 1023), *p1024 = repeat('n', 1024);
    snprintf(attrs, sizeof attrs, "room='%s@%s'", p1023, p1023);
    expect(attrs, "", CR_OK);
    snprintf(attrs, sizeof attrs, "room='%s@d'", p1024);
    expect(attrs, "", CR_JID_MALFORMED);
    snprintf(attrs, sizeof attrs, "room='n@%s'", p1024);
    expect(attrs, "", CR_JID_MALFORMED);
    free(p1023);
    free(p1024);
    /* max_room: exactly at the bound and one past */
    cr_limits saved = L;
    L.max_room = 10;
    expect("room='abcd@fghij'", "", CR_OK);  /* 10 bytes */
    expect("room='abcd@fghijk'", "", CR_JID_MALFORMED);
    L = saved;
    /* huge room attribute */
    char *huge = repeat('x', 200000);
    char *a = malloc(200100);
    snprintf(a, 200100, "room='%s@d'", huge);
    expect(a, "", CR_JID_MALFORMED);
    snprintf(a, 200100, "room='r@d' junk='%s'", huge); /* huge unknown attribute: ignored */
    expect(a, "", CR_OK);
    free(a);
    free(huge);
}

/* attr: e.g. "token"; checks bound bytes pass and bound + 1 fail */
static void at_and_past(const char *attr, size_t bound, cr_condition past) {
    char *v1 = repeat('v', bound), *v2 = repeat('v', bound + 1);
    size_t n = bound + 200;
    char *a = malloc(n);
    snprintf(a, n, "room='r@d' %s='%s'", attr, v1);
    expect(a, "", CR_OK);
    snprintf(a, n, "room='r@d' %s='%s'", attr, v2);
    expect(a, "", past);
    free(a);
    free(v1);
    free(v2);
}

static void test_limits(void) {
    at_and_past("token", 16384, CR_POLICY_VIOLATION);
    CHECK(strstr(E.text, "token") != NULL);
    at_and_past("machine-uid", 256, CR_POLICY_VIOLATION);
    CHECK(strstr(E.text, "machine-uid") != NULL);
    at_and_past("session-id", 256, CR_POLICY_VIOLATION);
    CHECK(strstr(E.text, "session-id") != NULL);
    /* property name / value */
    char *v = repeat('v', 4097), *n = repeat('n', 257);
    char *ch = malloc(10000);
    snprintf(ch, 10000, "<property name='%.256s' value='%.4096s'/>", n, v);
    expect("room='r@d'", ch, CR_OK);
    CHECK(R.props[0].name.len == 256 && R.props[0].value.len == 4096);
    snprintf(ch, 10000, "<property name='%s' value='x'/>", n);
    expect("room='r@d'", ch, CR_POLICY_VIOLATION);
    CHECK(strstr(E.text, "name") != NULL);
    snprintf(ch, 10000, "<property name='a' value='%s'/>", v);
    expect("room='r@d'", ch, CR_POLICY_VIOLATION);
    CHECK(strstr(E.text, "value") != NULL);
    free(ch);
    free(v);
    free(n);
    /* 64 distinct properties, duplicates not counted; 65 → policy-violation */
    char *many = malloc(65 * 64 + 1);
    many[0] = '\0';
    for (int i = 0; i < 64; i++) {
        char one[64];
        snprintf(one, sizeof one, "<property name='p%d' value='%d'/>", i, i);
        strcat(many, one);
    }
    strcat(many, "<property name='p0' value='again'/>");
    expect("room='r@d'", many, CR_OK);
    CHECK(R.nprops == 64);
    CHECK_STR(pval(0), "again");
    strcat(many, "<property name='p64' value='x'/>");
    expect("room='r@d'", many, CR_POLICY_VIOLATION);
    CHECK(strstr(E.text, "properties") != NULL);
    free(many);
}

static void test_depth(void) {
    /* <conference> is depth 1: 15 nested children reach depth 16 */
    char open[512] = "", close[512] = "";
    for (int i = 0; i < 15; i++) {
        strcat(open, "<x>");
        strcat(close, "</x>");
    }
    char *ch = malloc(1100);
    snprintf(ch, 1100, "%s%s", open, close);
    expect("room='r@d'", ch, CR_OK);
    snprintf(ch, 1100, "%s<y/>%s", open, close);
    expect("room='r@d'", ch, CR_BAD_REQUEST);
    CHECK(strstr(E.text, "deeper") != NULL);
    free(ch);
    /* a very deep document stops early */
    size_t depth = 100000;
    char *deep = malloc(depth * 7 + 200);
    char *p = deep + sprintf(deep, "<conference xmlns='" NS "' room='r@d'>");
    for (size_t i = 0; i < depth; i++) p += sprintf(p, "<a>");
    for (size_t i = 0; i < depth; i++) p += sprintf(p, "</a>");
    sprintf(p, "</conference>");
    CHECK(parse(deep) == CR_BAD_REQUEST);
    free(deep);
}

static void test_hostile(void) {
    const char *bad[] = {
        "",
        "<",
        "<conference xmlns='" NS "' room='r@d'>",
        "<conference xmlns='" NS "' room='r@d'/><conference xmlns='" NS "' room='r@d'/>",
        "<conference xmlns='" NS "' room='r@d'/>junk",
        "<conference room='r@d'/>",
        "<conference xmlns='urn:wrong' room='r@d'/>",
        "<iq xmlns='" NS "' room='r@d'/>",
        "<conference xmlns='" NS "' room='r@d' room='x@y'/>",
        "<conference xmlns='" NS "' room='r&#1;@d'/>",
        "<conference xmlns='" NS "' room='&undefined;@d'/>",
        "<conference xmlns='" NS "' room='r@d' a='\xff\xfe'/>",
        "<conference xmlns='" NS "' room='\xc0\xaf@d'/>",
        "<!DOCTYPE conference><conference xmlns='" NS "' room='r@d'/>",
        "<!DOCTYPE conference [<!ENTITY a 'r@d'>]><conference xmlns='" NS "' room='&a;'/>",
        "<!DOCTYPE c [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><conference xmlns='" NS "' room='&x;'/>",
        "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
        "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
        "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
        "<conference xmlns='" NS "' room='r@d'><property name='p' value='&lol3;'/></conference>",
        "<?xml version='1.0'?><!DOCTYPE c SYSTEM 'http://example.com/x.dtd'><conference xmlns='" NS "' room='r@d'/>",
        "<conference xmlns='" NS "' room='r@d'><property name='a' value='1'></conference>",
        "<conference xmlns='" NS "' room='r@d'><p:property name='a'/></conference>",
        NULL};
    for (size_t i = 0; bad[i]; i++) {
        cr_condition c = parse(bad[i]);
        if (c != CR_BAD_REQUEST) fprintf(stderr, "  hostile #%zu got %d\n", i, c);
        CHECK(c == CR_BAD_REQUEST);
        CHECK(E.text[0] != '\0');
    }
    /* DTD refused by name */
    parse("<!DOCTYPE conference><conference xmlns='" NS "' room='r@d'/>");
    CHECK(strstr(E.text, "DTD") != NULL);
    /* NUL byte inside the input */
    const char nul[] = "<conference xmlns='" NS "' room='r\0@d'/>";
    CHECK(parsen(nul, sizeof nul - 1) == CR_BAD_REQUEST);
    /* valid non-ASCII is fine */
    CHECK(parse("<conference xmlns='" NS "' room='r\xc3\xa9@d'/>") == CR_OK);
    CHECK_STR(str(R.room), "r\xc3\xa9@d");
}

static void test_reuse(void) {
    /* after errors (including a stopped parser) the parser keeps working, namespaces included */
    for (int i = 0; i < 3; i++) {
        CHECK(parse("<!DOCTYPE x><conference xmlns='" NS "' room='r@d'/>") == CR_BAD_REQUEST);
        CHECK(parse("<conference xmlns='urn:wrong' room='r@d'/>") == CR_BAD_REQUEST);
        CHECK(parse("<f:conference xmlns:f='" NS "' room='a@b'/>") == CR_OK);
        CHECK_STR(str(R.room), "a@b");
        CHECK(parse("<conference xmlns='" NS "' room='x@y'><property name='k' value='v'/></conference>") == CR_OK);
        CHECK(R.nprops == 1 && !R.token.set);
    }
    /* steady state: the arena does not grow once warmed up */
    size_t cap = R.arena.cap;
    for (int i = 0; i < 100; i++)
        parse("<conference xmlns='" NS "' room='x@y'><property name='k' value='v'/></conference>");
    CHECK(R.arena.cap == cap);
}

int main(void) {
    cr_limits_default(&L);
    cr_request_init(&R);
    P = cr_xml_parser_new();
    CHECK(P != NULL);
    test_basic();
    test_rules();
    test_room();
    test_limits();
    test_depth();
    test_hostile();
    test_reuse();
    cr_xml_parser_free(P);
    cr_request_free(&R);
    return ctest_done("test_xml");
}
