/* test_json.c — HTTP body parsing: coercions, types, limits, hostile input. */
#include "cr.h"
#include "ctest.h"

#include <stdlib.h>

static cr_request R;
static cr_limits L;
static cr_error E;

static cr_condition parsen(const char *s, size_t n) {
    E.condition = CR_OK;
    E.text[0] = '\0';
    return cr_json_parse(s, n, &L, &R, &E);
}
static cr_condition parse(const char *s) { return parsen(s, strlen(s)); }
static const char *str(cr_str s) { return cr_request_str(&R, s); }
static const char *pname(size_t i) { return cr_request_str(&R, R.props[i].name); }
static const char *pval(size_t i) { return cr_request_str(&R, R.props[i].value); }

static void expect(const char *s, cr_condition want) {
    cr_condition c = parse(s);
    if (c != want) fprintf(stderr, "  input: %.200s\n  got %d (%s) want %d\n", s, c, E.text, want);
    CHECK(c == want);
    if (want) CHECK(E.condition == want && E.text[0] != '\0');
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_basic(void) {
    expect("{\"room\":\"room1@conference.localhost\",\"machineUid\":\"m\",\"sessionId\":\"s\","
           "\"token\":\"ignored\",\"ready\":true,\"focusJid\":\"x\",\"unknown\":{\"a\":[1,2]},"
           "\"properties\":{\"b\":\"2\",\"a\":\"1\"}}",
           CR_OK);
    CHECK_STR(str(R.room), "room1@conference.localhost");
    CHECK_STR(str(R.machine_uid), "m");
    CHECK_STR(str(R.session_id), "s");
    CHECK(!R.token.set);
    CHECK(R.nprops == 2);
    CHECK_STR(pname(0), "b"); /* body order kept */
    CHECK_STR(pname(1), "a");
    expect("{\"room\":\"r@d\",\"machineUid\":\"\",\"sessionId\":null}", CR_OK);
    CHECK(!R.machine_uid.set && !R.session_id.set && R.nprops == 0);
    expect("{\"room\":\"r\\u00e9@d\"}", CR_OK);
    CHECK_STR(str(R.room), "r\xc3\xa9@d");
}

static void test_coercions(void) {
    expect("{\"room\":\"r@d\",\"properties\":{\"s\":\"x\",\"t\":true,\"f\":false,\"i\":1,"
           "\"n\":-42,\"big\":9007199254740993,\"r\":1.5,\"r2\":0.1,\"r3\":1e300,\"r4\":2.0,"
           "\"z\":null,\"e\":\"\",\"\":\"skipped\"}}",
           CR_OK);
    const char *want[][2] = {{"s", "x"},   {"t", "true"},  {"f", "false"},
                             {"i", "1"},   {"n", "-42"},   {"big", "9007199254740993"},
                             {"r", "1.5"}, {"r2", "0.1"},  {"r3", "1e+300"},
                             {"r4", "2"},  {"e", ""}};
    size_t n = sizeof want / sizeof want[0];
    CHECK(R.nprops == n);
    for (size_t i = 0; i < n && i < R.nprops; i++) {
        CHECK_STR(pname(i), want[i][0]);
        CHECK_STR(pval(i), want[i][1]);
    }
    expect("{\"room\":\"r@d\",\"properties\":{\"o\":{}}}", CR_BAD_REQUEST);
    expect("{\"room\":\"r@d\",\"properties\":{\"a\":[]}}", CR_BAD_REQUEST);
}

static void test_types(void) {
    const char *bad[] = {
        "", "   ", "{", "{\"room\":", "{\"room\":\"r@d\"", "{\"room\":\"r@d\"}x", "[]",
        "[{\"room\":\"r@d\"}]", "\"r@d\"", "42", "null", "true",
        "{\"room\":1}", "{\"room\":true}", "{\"room\":{}}", "{\"room\":[\"r@d\"]}",
        "{\"room\":\"r@d\",\"machineUid\":1}", "{\"room\":\"r@d\",\"sessionId\":[]}",
        "{\"room\":\"r@d\",\"properties\":[]}", "{\"room\":\"r@d\",\"properties\":\"x\"}",
        "{\"room\":\"r@d\",\"properties\":1}",
        "{\"room\":\"r@d\",\"room\":\"x@y\"}",
        "{\"room\":\"r@d\",\"properties\":{\"a\":\"1\",\"a\":\"2\"}}",
        "{\"room\":\"r@d\",\"x\":1,\"x\":2}",
        "{\"room\":\"r\\u0000@d\"}",
        "{\"room\":\"r\\u0001@d\"}",
        "{\"room\":\"r@d\",\"properties\":{\"a\":\"\\u001f\"}}",
        "{\"room\":\"r@d\",\"properties\":{\"\\u0002\":\"x\"}}",
        "{\"room\":\"r@d\",\"properties\":{\"a\":\"\\uffff\"}}",
        "{\"room\":\"r@d\",\"properties\":{\"a\":\"\\ufffe\"}}",
        "{\"room\":\"r@d\",\"machineUid\":\"\\u007f\\u0008\"}",
        "{\"room\":\"\\ud800@d\"}",
        "{\"room\":\"\xff@d\"}",
        "{\"room\":\"\xc0\xaf@d\"}",
        "{\"room\":\"r@d\",\"properties\":{\"a\":1e999}}",
        "{\"room\":\"r@d\",\"properties\":{\"a\":123456789012345678901234567890}}",
        "{'room':'r@d'}", "{room:\"r@d\"}", "{\"room\":\"r@d\",}",
        "{}", "{\"room\":null}", "{\"room\":\"\"}",
        NULL};
    for (size_t i = 0; bad[i]; i++) {
        cr_condition c = parse(bad[i]);
        if (c != CR_BAD_REQUEST) fprintf(stderr, "  bad #%zu (%s) got %d\n", i, bad[i], c);
        CHECK(c == CR_BAD_REQUEST);
        CHECK(E.text[0] != '\0');
    }
    /* tab / CR / LF are allowed; DEL is XML-legal */
    expect("{\"room\":\"r@d\",\"properties\":{\"a\":\"x\\ty\\r\\n\\u007f\"}}", CR_OK);
    const char nul[] = "{\"room\":\"r@d\"}\0";
    CHECK(parsen(nul, sizeof nul - 1) == CR_BAD_REQUEST);
    expect("{}", CR_BAD_REQUEST);
    CHECK_STR(E.text, "missing 'room'");
}

static void test_depth(void) {
    /* the top object is depth 1; default max 8 */
    expect("{\"room\":\"r@d\",\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":[1]}}}}}}}", CR_OK);
    expect("{\"room\":\"r@d\",\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":[[1]]}}}}}}}",
           CR_BAD_REQUEST);
    CHECK(strstr(E.text, "deeper") != NULL);
    size_t d = 100000;
    char *deep = malloc(2 * d + 64);
    char *p = deep + sprintf(deep, "{\"room\":\"r@d\",\"x\":");
    for (size_t i = 0; i < d; i++) *p++ = '[';
    for (size_t i = 0; i < d; i++) *p++ = ']';
    strcpy(p, "}");
    CHECK(parse(deep) == CR_BAD_REQUEST);
    free(deep);
}

static void test_limits(void) {
    char *buf = malloc(20000);
    char *v = repeat('v', 4097), *n = repeat('n', 257), *id = repeat('i', 257);
    snprintf(buf, 20000, "{\"room\":\"r@d\",\"properties\":{\"%.256s\":\"%.4096s\"}}", n, v);
    expect(buf, CR_OK);
    snprintf(buf, 20000, "{\"room\":\"r@d\",\"properties\":{\"%s\":\"x\"}}", n);
    expect(buf, CR_POLICY_VIOLATION);
    snprintf(buf, 20000, "{\"room\":\"r@d\",\"properties\":{\"a\":\"%s\"}}", v);
    expect(buf, CR_POLICY_VIOLATION);
    snprintf(buf, 20000, "{\"room\":\"r@d\",\"machineUid\":\"%.256s\",\"sessionId\":\"%.256s\"}", id, id);
    expect(buf, CR_OK);
    snprintf(buf, 20000, "{\"room\":\"r@d\",\"machineUid\":\"%s\"}", id);
    expect(buf, CR_POLICY_VIOLATION);
    snprintf(buf, 20000, "{\"room\":\"r@d\",\"sessionId\":\"%s\"}", id);
    expect(buf, CR_POLICY_VIOLATION);
    char *part = repeat('p', 1024);
    snprintf(buf, 20000, "{\"room\":\"%.1023s@%.1023s\"}", part, part);
    expect(buf, CR_OK);
    snprintf(buf, 20000, "{\"room\":\"%s@d\"}", part);
    expect(buf, CR_JID_MALFORMED);
    expect("{\"room\":\"a/b@d\"}", CR_JID_MALFORMED);
    expect("{\"room\":\"nodomain\"}", CR_JID_MALFORMED);
    /* 64 / 65 properties */
    char *p = buf + sprintf(buf, "{\"room\":\"r@d\",\"properties\":{");
    for (int i = 0; i < 64; i++) p += sprintf(p, "%s\"p%d\":%d", i ? "," : "", i, i);
    strcpy(p, "}}");
    expect(buf, CR_OK);
    CHECK(R.nprops == 64);
    sprintf(p, ",\"p64\":1}}");
    expect(buf, CR_POLICY_VIOLATION);
    /* lowered limits from a config */
    cr_limits saved = L;
    L.max_json_depth = 1;
    expect("{\"room\":\"r@d\"}", CR_OK);
    expect("{\"room\":\"r@d\",\"properties\":{}}", CR_BAD_REQUEST);
    L = saved;
    free(buf); free(v); free(n); free(id); free(part);
}

int main(void) {
    cr_limits_default(&L);
    cr_request_init(&R);
    test_basic();
    test_coercions();
    test_types();
    test_depth();
    test_limits();
    cr_request_free(&R);
    return ctest_done("test_json");
}
