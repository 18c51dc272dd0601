/* test_fuzz.c — a deterministic fuzz-style smoke: a few thousand random and mutated inputs to both
 * parsers; nothing may crash, every failure must carry a known condition and a text, and every
 * success must satisfy the request invariants. */
#include "cr.h"
#include "ctest.h"

#include <stdlib.h>

#define NS "http://jitsi.org/protocol/focus"

static uint64_t rng = 0x2545F4914F6CDD1DULL; /* fixed seed */
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *xml_seeds[] = {
    "<conference xmlns='" NS "' room='room1@conference.localhost' machine-uid='0123456789abcdef'>"
    "<property name='rtcstatsEnabled' value='false'/><property name='startAudioMuted' value='10'/>"
    "</conference>",
    "<!DOCTYPE a [<!ENTITY b 'c'>]><conference xmlns='" NS "' room='&b;@d'/>",
    "<f:conference xmlns:f='" NS "' room='a@b' token='t'><f:property name='x'/></f:conference>",
};
static const char *json_seeds[] = {
    "{\"room\":\"room1@conference.localhost\",\"machineUid\":\"m\",\"properties\":"
    "{\"a\":\"1\",\"b\":true,\"c\":1.5,\"d\":null,\"e\":2}}",
    "{\"room\":\"r@d\",\"x\":[{\"y\":[1,2,{\"z\":\"\\u00e9\"}]}]}",
};
static const char alphabet[] = "<>/='\"&;!?[]{}:,@ \\\x00\x01\x7f\x80\xc3\xa9\xff" "abcdeproomty0123456789";

static size_t mutate(const char *seed, char *out, size_t cap) {
    size_t len = strlen(seed);
    if (len > cap) len = cap;
    memcpy(out, seed, len);
    int edits = 1 + (int)(next() % 8);
    for (int e = 0; e < edits && len > 0; e++) {
        size_t pos = (size_t)(next() % len);
        switch (next() % 4) {
        case 0: out[pos] = alphabet[next() % (sizeof alphabet - 1)]; break; /* replace */
        case 1: len = pos; break;                                            /* truncate */
        case 2:                                                              /* delete */
            memmove(out + pos, out + pos + 1, len - pos - 1);
            len--;
            break;
        default: /* duplicate a slice */
            if (len + 16 < cap) {
                size_t n = (size_t)(next() % 16);
                if (pos + n > len) n = len - pos;
                memmove(out + pos + n, out + pos, len - pos);
                len += n;
            }
        }
    }
    return len;
}

static bool valid(cr_condition c, const cr_error *e, const cr_request *r) {
    if (c == CR_OK) {
        if (!r->room.set || r->room.len == 0) return false;
        for (size_t i = 0; i < r->nprops; i++)
            if (r->props[i].name.len == 0) return false;
        return true;
    }
    return cr_condition_get(c) != NULL && e->condition == c && e->text[0] != '\0';
}

int main(void) {
    cr_limits lim;
    cr_limits_default(&lim);
    cr_request req;
    cr_request_init(&req);
    cr_xml_parser *p = cr_xml_parser_new();
    char buf[4096];
    size_t ok_x = 0, ok_j = 0, bad = 0, total = 0;
    for (int i = 0; i < 3000; i++) {
        size_t n;
        if (i % 10 == 0) { /* pure random bytes */
            n = (size_t)(next() % 300);
            for (size_t k = 0; k < n; k++) buf[k] = (char)next();
        } else {
            n = mutate(xml_seeds[next() % 3], buf, sizeof buf);
        }
        cr_error e = {0};
        cr_condition c = cr_xml_parse(p, buf, n, &lim, &req, &e);
        if (!valid(c, &e, &req)) bad++;
        if (!c) ok_x++;
        total++;
    }
    for (int i = 0; i < 3000; i++) {
        size_t n;
        if (i % 10 == 0) {
            n = (size_t)(next() % 300);
            for (size_t k = 0; k < n; k++) buf[k] = (char)next();
        } else {
            n = mutate(json_seeds[next() % 2], buf, sizeof buf);
        }
        cr_error e = {0};
        cr_condition c = cr_json_parse(buf, n, &lim, &req, &e);
        if (!valid(c, &e, &req)) bad++;
        if (!c) ok_j++;
        total++;
    }
    /* the parsers still work on the seeds afterwards */
    cr_error e;
    CHECK(cr_xml_parse(p, xml_seeds[0], strlen(xml_seeds[0]), &lim, &req, &e) == CR_OK);
    CHECK(req.nprops == 2);
    CHECK(cr_json_parse(json_seeds[0], strlen(json_seeds[0]), &lim, &req, &e) == CR_OK);
    CHECK(req.nprops == 4);
    CHECK(bad == 0);
    CHECK(total == 6000);
    CHECK(ok_x > 0 && ok_x < 3000); /* the mutations reach both outcomes */
    CHECK(ok_j > 0 && ok_j < 3000);
    printf("fuzz: %zu inputs, %zu xml ok, %zu json ok, %zu invalid outcomes\n", total, ok_x, ok_j, bad);
    cr_xml_parser_free(p);
    cr_request_free(&req);
    return ctest_done("test_fuzz");
}
