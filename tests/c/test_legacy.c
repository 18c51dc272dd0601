/* test_legacy.c — unit tests of the legacy jabber:iq:conference payload parser (legacy.c). */
#include "cr.h"
#include "ctest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integer / size equality, printing both values when they differ (one assertion each). */
#define CHECK_INT(got, want) check_long(__FILE__, __LINE__, #got, (long)(got), (long)(want))
#define CHECK_SIZE(got, want) check_long(__FILE__, __LINE__, #got, (long)(got), (long)(want))
static void check_long(const char *file, int line, const char *what, long got, long want) {
    if (got == want) {
        ctest_passed++;
        return;
    }
    ctest_failed++;
    fprintf(stderr, "%s:%d: %s\n   got: %ld\n  want: %ld\n", file, line, what, got, want);
}

typedef struct {
    cr_legacy_parser *p;
    cr_legacy_request req;
    cr_error err;
} fixture;

static void setup(fixture *f, const cr_legacy_limits *lim) {
    cr_legacy_limits d;
    if (!lim) {
        cr_legacy_limits_default(&d);
        lim = &d;
    }
    f->p = cr_legacy_parser_new(lim);
    cr_legacy_request_init(&f->req);
    memset(&f->err, 0, sizeof f->err);
}

static void teardown(fixture *f) {
    cr_legacy_parser_free(f->p);
    cr_legacy_request_free(&f->req);
}

static cr_condition parse(fixture *f, const char *s) {
    return cr_legacy_parse(f->p, s, strlen(s), &f->req, &f->err);
}

static const char *nick(fixture *f, size_t i) {
    return cr_legacy_str(&f->req, f->req.nicks[i]);
}

static void test_legacy_full_set(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><secret>foo</secret><nick>dude</nick>"
                        "<nick>dude_</nick><privacy/><name>Demo &amp; Room</name></query>"),
              CR_OK);
    CHECK_SIZE(f.req.nnicks, 2);
    CHECK_STR(nick(&f, 0), "dude");
    CHECK_STR(nick(&f, 1), "dude_");
    CHECK_STR(cr_legacy_str(&f.req, f.req.secret), "foo");
    CHECK_STR(cr_legacy_str(&f.req, f.req.name), "Demo & Room");
    CHECK(f.req.privacy);
    teardown(&f);
}

static void test_legacy_empty_query_and_any_element_name(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'/>"), CR_OK);
    CHECK_SIZE(f.req.nnicks, 0);
    CHECK(!f.req.secret.set);
    CHECK(cr_legacy_str(&f.req, f.req.secret) == NULL);
    CHECK(!f.req.name.set);
    CHECK(!f.req.privacy);
    /* Coccinella sends <enter/>: the element name does not matter */
    CHECK_INT(parse(&f, "<enter xmlns='jabber:iq:conference'><nick>x</nick></enter>"), CR_OK);
    CHECK_SIZE(f.req.nnicks, 1);
    CHECK_STR(nick(&f, 0), "x");
    /* a prefixed form is the same namespace */
    CHECK_INT(parse(&f, "<c:q xmlns:c='jabber:iq:conference'><c:nick>y</c:nick><nick>ignored</nick></c:q>"),
              CR_OK);
    CHECK_SIZE(f.req.nnicks, 1);
    CHECK_STR(nick(&f, 0), "y");
    teardown(&f);
}

static void test_legacy_reuse_resets_previous_result(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>a</nick><secret>s</secret><privacy/></query>"),
              CR_OK);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><name>n</name></query>"), CR_OK);
    CHECK_SIZE(f.req.nnicks, 0);
    CHECK(!f.req.secret.set);
    CHECK(!f.req.privacy);
    CHECK_STR(cr_legacy_str(&f.req, f.req.name), "n");
    teardown(&f);
}

static void test_legacy_empty_fields_are_reported_as_given(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick/><nick></nick><nick>  </nick><secret/></query>"),
              CR_OK);
    CHECK_SIZE(f.req.nnicks, 3);
    CHECK_STR(nick(&f, 0), "");
    CHECK_STR(nick(&f, 1), "");
    CHECK_STR(nick(&f, 2), "  ");
    CHECK(f.req.secret.set);
    CHECK_STR(cr_legacy_str(&f.req, f.req.secret), "");
    teardown(&f);
}

static void test_legacy_unknown_children_ignored_known_ones_last_wins(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><id>room@x/abc</id>"
                        "<x xmlns='other'><nick>not-ours</nick></x><nick xmlns='other'>no</nick>"
                        "<secret>one</secret><secret>two</secret><nick>ok</nick></query>"),
              CR_OK);
    CHECK_SIZE(f.req.nnicks, 1);
    CHECK_STR(nick(&f, 0), "ok");
    CHECK_STR(cr_legacy_str(&f.req, f.req.secret), "two");
    teardown(&f);
}

static void test_legacy_text_is_unescaped_and_utf8_kept(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>&lt;b&gt; caf\xc3\xa9</nick>"
                        "<nick><![CDATA[x&y]]></nick></query>"),
              CR_OK);
    CHECK_STR(nick(&f, 0), "<b> caf\xc3\xa9");
    CHECK_STR(nick(&f, 1), "x&y");
    teardown(&f);
}

static void test_legacy_wrong_namespace_or_not_xml(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:browse'><nick>a</nick></query>"), CR_BAD_REQUEST);
    CHECK(strstr(f.err.text, "jabber:iq:conference") != NULL);
    CHECK_SIZE(f.req.nnicks, 0);
    CHECK_INT(parse(&f, "<query><nick>a</nick></query>"), CR_BAD_REQUEST);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>a</query>"), CR_BAD_REQUEST);
    CHECK(strstr(f.err.text, "well-formed") != NULL);
    CHECK_INT(parse(&f, ""), CR_BAD_REQUEST);
    CHECK_INT(parse(&f, "not xml at all"), CR_BAD_REQUEST);
    teardown(&f);
}

static void test_legacy_dtd_and_entities_refused(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<!DOCTYPE q [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]>"
                        "<query xmlns='jabber:iq:conference'><nick>&b;</nick></query>"),
              CR_BAD_REQUEST);
    CHECK(strstr(f.err.text, "DTD") != NULL);
    teardown(&f);
}

static void test_legacy_element_inside_a_text_field(void) {
    fixture f;
    setup(&f, NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>a<b/>c</nick></query>"), CR_BAD_REQUEST);
    CHECK(strstr(f.err.text, "<nick> must contain text only") != NULL);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><secret><x xmlns='y'/></secret></query>"),
              CR_BAD_REQUEST);
    CHECK(strstr(f.err.text, "<secret>") != NULL);
    teardown(&f);
}

static void test_legacy_depth_bound(void) {
    fixture f;
    cr_legacy_limits lim;
    cr_legacy_limits_default(&lim);
    lim.max_depth = 3;
    setup(&f, &lim);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><a><b/></a></query>"), CR_OK);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><a><b><c/></b></a></query>"), CR_BAD_REQUEST);
    CHECK(strstr(f.err.text, "deeper than 3") != NULL);
    teardown(&f);
    /* default depth (8) against a deep hostile document */
    setup(&f, NULL);
    char doc[4096];
    size_t n = 0;
    n += (size_t)snprintf(doc + n, sizeof doc - n, "<query xmlns='jabber:iq:conference'>");
    for (int i = 0; i < 200; i++) n += (size_t)snprintf(doc + n, sizeof doc - n, "<d>");
    CHECK_INT(cr_legacy_parse(f.p, doc, n, &f.req, &f.err), CR_BAD_REQUEST);
    teardown(&f);
}

static void test_legacy_nick_count_bound(void) {
    fixture f;
    cr_legacy_limits lim;
    cr_legacy_limits_default(&lim);
    lim.max_nicks = 3;
    setup(&f, &lim);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>a</nick><nick>b</nick><nick>c</nick></query>"),
              CR_OK);
    CHECK_SIZE(f.req.nnicks, 3);
    CHECK_STR(nick(&f, 2), "c");
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>a</nick><nick>b</nick><nick>c</nick>"
                        "<nick>d</nick></query>"),
              CR_POLICY_VIOLATION);
    CHECK_STR(f.err.text, "more than 3 <nick> elements");
    CHECK_SIZE(f.req.nnicks, 0);
    teardown(&f);
    /* a huge list under default limits */
    setup(&f, NULL);
    cr_buf b;
    cr_buf_init(&b);
    CHECK(cr_buf_puts(&b, "<query xmlns='jabber:iq:conference'>"));
    bool built = true;
    for (int i = 0; i < 10000; i++) built = built && cr_buf_puts(&b, "<nick>n</nick>");
    CHECK(built);
    CHECK(cr_buf_puts(&b, "</query>"));
    CHECK_INT(cr_legacy_parse(f.p, b.data, b.len, &f.req, &f.err), CR_POLICY_VIOLATION);
    CHECK_STR(f.err.text, "more than 16 <nick> elements");
    cr_buf_free(&b);
    teardown(&f);
}

static void test_legacy_byte_bounds(void) {
    fixture f;
    cr_legacy_limits lim;
    cr_legacy_limits_default(&lim);
    lim.max_nick = 4;
    lim.max_secret = 3;
    lim.max_name = 2;
    setup(&f, &lim);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>abcd</nick><secret>abc</secret><name>ab</name></query>"),
              CR_OK);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>abcde</nick></query>"), CR_POLICY_VIOLATION);
    CHECK_STR(f.err.text, "<nick> longer than 4 bytes");
    /* the limit counts the decoded text, whatever the chunking (entities split character data) */
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>a&amp;b&amp;c</nick></query>"),
              CR_POLICY_VIOLATION);
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><nick>a&amp;b</nick></query>"), CR_OK);
    CHECK_STR(nick(&f, 0), "a&b");
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><secret>abcd</secret></query>"), CR_POLICY_VIOLATION);
    CHECK_STR(f.err.text, "<secret> longer than 3 bytes");
    CHECK_INT(parse(&f, "<query xmlns='jabber:iq:conference'><name>abc</name></query>"), CR_POLICY_VIOLATION);
    CHECK_STR(f.err.text, "<name> longer than 2 bytes");
    teardown(&f);
}

static void test_legacy_nick_is_id(void) {
    CHECK(cr_legacy_nick_is_id("d0760fe8273bc7d6448e713a05c292418e18af6f", 40));
    CHECK(cr_legacy_nick_is_id("D0760FE8273BC7D6448E713A05C292418E18AF6F", 40));
    CHECK(!cr_legacy_nick_is_id("d0760fe8273bc7d6448e713a05c292418e18af6", 39));
    CHECK(!cr_legacy_nick_is_id("g0760fe8273bc7d6448e713a05c292418e18af6f", 40));
    CHECK(!cr_legacy_nick_is_id("alice", 5));
}

static void test_legacy_defaults(void) {
    cr_legacy_limits l;
    cr_legacy_limits_default(&l);
    CHECK_SIZE(l.max_nicks, 16);
    CHECK_SIZE(l.max_nick, 1023);
    CHECK_SIZE(l.max_secret, 1023);
    CHECK_SIZE(l.max_name, 1023);
    CHECK_SIZE(l.max_depth, 8);
}

int main(void) {
    test_legacy_full_set();
    test_legacy_empty_query_and_any_element_name();
    test_legacy_reuse_resets_previous_result();
    test_legacy_empty_fields_are_reported_as_given();
    test_legacy_unknown_children_ignored_known_ones_last_wins();
    test_legacy_text_is_unescaped_and_utf8_kept();
    test_legacy_wrong_namespace_or_not_xml();
    test_legacy_dtd_and_entities_refused();
    test_legacy_element_inside_a_text_field();
    test_legacy_depth_bound();
    test_legacy_nick_count_bound();
    test_legacy_byte_bounds();
    test_legacy_nick_is_id();
    test_legacy_defaults();
    return ctest_done("test_legacy");
}
