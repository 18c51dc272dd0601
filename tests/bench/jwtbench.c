/* jwtbench — the cost of one JWT verification in the C core, per algorithm (`make bench-jwt`).
 *
 * For HS256, RS256 (2048-bit key) and ES256 (P-256): one token with Jitsi-style claims (≈ 420
 * bytes of claims), verified over and over by cr_jwt_verify with a verifier holding the secret
 * and both public keys, as the module would. Each rep runs for at least --secs seconds; the
 * figure is the median rep. The keys are the test-only keys of tests/c/jwt_keys.h.
 *
 * Usage: jwtbench [--reps R] [--secs S] [--json]
 *   prints a table; with --json, one JSON object instead:
 *   {"jwt_hs256_ns":…, "jwt_rs256_ns":…, "jwt_es256_ns":…, "…_per_s":…, "reps":R}
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cr.h"
#include "../c/jwt_keys.h"
#include "../c/jwt_sign.h"

#define SECRET "bench-secret-0123456789abcdef0123456789abcdef"
#define NOW 1700000000.0

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *msg) {
    fprintf(stderr, "jwtbench: %s\n", msg);
    exit(2);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ns per verification: median of reps, each at least secs long. */
static double measure(const cr_jwt_verifier *v, const char *tok, int reps, double secs,
                      cr_jwt_claims *claims) {
    size_t len = strlen(tok);
    double *r = calloc((size_t)reps, sizeof *r);
    if (!r) die("out of memory");
    for (int i = 0; i < reps; i++) {
        long n = 0;
        double t0 = now_s(), t;
        do {
            for (int k = 0; k < 16; k++, n++) {
                cr_error err;
                if (cr_jwt_verify(v, tok, len, "room17", 6, NULL, 0, NOW, claims, &err))
                    die(err.text);
            }
            t = now_s();
        } while (t - t0 < secs);
        r[i] = (t - t0) * 1e9 / (double)n;
    }
    qsort(r, (size_t)reps, sizeof *r, cmp_double);
    double med = r[reps / 2];
    free(r);
    return med;
}

int main(int argc, char **argv) {
    int reps = 5;
    double secs = 0.5;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--secs") == 0 && i + 1 < argc) secs = atof(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0) as_json = 1;
        else die("usage: jwtbench [--reps R] [--secs S] [--json]");
    }
    if (reps < 1 || !(secs > 0)) die("--reps and --secs must be positive");

    cr_error err;
    cr_jwt_verifier *v = cr_jwt_verifier_new();
    if (!v || cr_jwt_set_hs256_secret(v, SECRET, strlen(SECRET), &err) ||
        cr_jwt_add_public_key(v, "rsa", 3, RSA_PUB, strlen(RSA_PUB), &err) ||
        cr_jwt_add_public_key(v, "ec", 2, EC_PUB, strlen(EC_PUB), &err) ||
        cr_jwt_add_issuer(v, "my_app_id", 9, &err) || cr_jwt_add_audience(v, "jitsi", 5, &err) ||
        cr_jwt_set_domain(v, "meet.example.com", 16, &err))
        die("verifier setup failed");
    EVP_PKEY *rsa = jwt_private_key(RSA_PRIV), *ec = jwt_private_key(EC_PRIV);
    if (!rsa || !ec) die("cannot read the test keys");
    const char *claims_json =
        "{\"aud\":\"jitsi\",\"iss\":\"my_app_id\",\"sub\":\"meet.example.com\",\"room\":\"room17\","
        "\"exp\":1700003600,\"nbf\":1699999940,\"iat\":1699999940,\"context\":{\"user\":{"
        "\"id\":\"4f5e6d7c-1a2b-3c4d-5e6f-708192a3b4c5\",\"name\":\"Jane Doe\",\"email\":"
        "\"jane@example.com\",\"avatar\":\"https://example.com/avatar/jane.png\",\"moderator\":"
        "true},\"group\":\"a123-123-456-789\",\"features\":{\"livestreaming\":true,\"recording\":"
        "true,\"transcription\":false,\"outbound-call\":false}}}";
    struct {
        const char *name, *header;
        EVP_PKEY *key;
        char *tok;
        double ns;
    } algs[] = {
        {"HS256", "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", NULL, NULL, 0},
        {"RS256", "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"rsa\"}", rsa, NULL, 0},
        {"ES256", "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"ec\"}", ec, NULL, 0},
    };
    cr_jwt_claims claims;
    cr_jwt_claims_init(&claims);
    for (size_t i = 0; i < 3; i++) {
        algs[i].tok = jwt_make(algs[i].header, claims_json, algs[i].name, SECRET, strlen(SECRET),
                               algs[i].key);
        if (!algs[i].tok) die("signing failed");
        algs[i].ns = measure(v, algs[i].tok, reps, secs, &claims);
    }
    if (as_json) {
        printf("{\"jwt_hs256_ns\":%.0f,\"jwt_rs256_ns\":%.0f,\"jwt_es256_ns\":%.0f,"
               "\"jwt_hs256_per_s\":%.0f,\"jwt_rs256_per_s\":%.0f,\"jwt_es256_per_s\":%.0f,"
               "\"jwt_token_bytes\":%zu,\"reps\":%d}\n",
               algs[0].ns, algs[1].ns, algs[2].ns, 1e9 / algs[0].ns, 1e9 / algs[1].ns,
               1e9 / algs[2].ns, strlen(algs[0].tok), reps);
    } else {
        printf("JWT verification in the C core (cr_jwt_verify: decode, parse, signature, claims),\n"
               "median of %d reps of >= %.2f s, one thread\n", reps, secs);
        printf("%-6s %10s %14s %12s\n", "alg", "ns/verify", "verifies/s", "token bytes");
        for (size_t i = 0; i < 3; i++)
            printf("%-6s %10.0f %14.0f %12zu\n", algs[i].name, algs[i].ns, 1e9 / algs[i].ns,
                   strlen(algs[i].tok));
    }
    for (size_t i = 0; i < 3; i++) free(algs[i].tok);
    cr_jwt_claims_free(&claims);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    cr_jwt_verifier_free(v);
    return 0;
}
