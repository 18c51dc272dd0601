/* test_jwt.c — cr_jwt_* (native/jwt.c): one test per verification rule. Tokens are signed here
 * with libcrypto (jwt_sign.h) using the test-only keys of jwt_keys.h. */
#include "cr.h"
#include "ctest.h"
#include "jwt_keys.h"
#include "jwt_sign.h"

#include <math.h>
#include <stdio.h>

#define NOW 1700000000.0
#define SECRET "s3cret-for-tests"

static EVP_PKEY *rsa_priv, *ec_priv;

/* The verifier most tests use: the HS256 secret, an RSA key "rsa1", an EC key "ec1", issuer
 * my_app, audience jitsi, domain meet.example.com, leeway 0. */
static cr_jwt_verifier *std_verifier(void) {
    cr_jwt_verifier *v = cr_jwt_verifier_new();
    cr_error err;
    CHECK(v != NULL);
    CHECK(cr_jwt_set_hs256_secret(v, SECRET, strlen(SECRET), &err) == CR_OK);
    CHECK(cr_jwt_add_public_key(v, "rsa1", 4, RSA_PUB, strlen(RSA_PUB), &err) == CR_OK);
    CHECK(cr_jwt_add_public_key(v, "ec1", 3, EC_PUB, strlen(EC_PUB), &err) == CR_OK);
    CHECK(cr_jwt_add_issuer(v, "my_app", 6, &err) == CR_OK);
    CHECK(cr_jwt_add_audience(v, "jitsi", 5, &err) == CR_OK);
    CHECK(cr_jwt_set_domain(v, "meet.example.com", 16, &err) == CR_OK);
    return v;
}

/* Claims with every standard field; extra (may be "") is inserted before the closing brace. */
static char claims_buf[32768];
static const char *claims_with(const char *room, const char *sub, double exp, double nbf,
                               const char *extra) {
    snprintf(claims_buf, sizeof claims_buf,
             "{\"iss\":\"my_app\",\"aud\":\"jitsi\",\"sub\":\"%s\",\"room\":\"%s\",\"exp\":%.0f,"
             "\"nbf\":%.0f%s}",
             sub, room, exp, nbf, extra);
    return claims_buf;
}
static const char *std_claims(void) {
    return claims_with("room1", "meet.example.com", NOW + 3600, NOW - 60,
                       ",\"context\":{\"user\":{\"id\":\"u1\",\"moderator\":true},\"group\":\"g1\"}");
}

static char *sign(const char *alg_header, const char *kid, const char *claims, const char *alg_sign) {
    char header[256];
    if (kid) snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg_header, kid);
    else snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg_header);
    EVP_PKEY *k = alg_sign && strcmp(alg_sign, "ES256") == 0 ? ec_priv : rsa_priv;
    char *t = jwt_make(header, claims, alg_sign, SECRET, strlen(SECRET), k);
    CHECK(t != NULL);
    return t;
}

static cr_jwt_claims claims;

static cr_condition verify_t(const cr_jwt_verifier *v, const char *tok, const char *room,
                             const char *tenant, double now, cr_error *err) {
    return cr_jwt_verify(v, tok, strlen(tok), room, strlen(room), tenant,
                         tenant ? strlen(tenant) : 0, now, &claims, err);
}

#define EXPECT_OK(v, tok, room, tenant, now)                                                   \
    do {                                                                                       \
        cr_error e_ = {CR_OK, ""};                                                             \
        cr_condition c_ = verify_t(v, tok, room, tenant, now, &e_);                            \
        if (c_) fprintf(stderr, "%s:%d: refused: %s\n", __FILE__, __LINE__, e_.text);          \
        CHECK(c_ == CR_OK);                                                                    \
    } while (0)

#define EXPECT_REFUSED(v, tok, room, tenant, now, want)                                        \
    do {                                                                                       \
        cr_error e_ = {CR_OK, ""};                                                             \
        CHECK(verify_t(v, tok, room, tenant, now, &e_) == CR_NOT_AUTHORIZED);                   \
        CHECK_STR(e_.text, want);                                                              \
        CHECK(claims.alg == 0 && !claims.sub.set);                                             \
    } while (0)

static void test_valid_hs256(void) {
    cr_jwt_verifier *v = std_verifier();
    char *t = sign("HS256", NULL, std_claims(), "HS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    CHECK(claims.alg == CR_JWT_HS256);
    CHECK_STR(cr_jwt_alg_name(claims.alg), "HS256");
    CHECK_STR(cr_jwt_claims_str(&claims, claims.iss), "my_app");
    CHECK_STR(cr_jwt_claims_str(&claims, claims.sub), "meet.example.com");
    CHECK_STR(cr_jwt_claims_str(&claims, claims.room), "room1");
    CHECK_STR(cr_jwt_claims_str(&claims, claims.user_id), "u1");
    CHECK_STR(cr_jwt_claims_str(&claims, claims.group), "g1");
    CHECK(!claims.kid.set);
    CHECK(claims.has_exp && claims.exp == NOW + 3600);
    CHECK(claims.has_nbf && claims.nbf == NOW - 60);
    CHECK(claims.moderator == 1);
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_valid_rs256_es256(void) {
    cr_jwt_verifier *v = std_verifier();
    char *t = sign("RS256", "rsa1", std_claims(), "RS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    CHECK(claims.alg == CR_JWT_RS256);
    CHECK_STR(cr_jwt_claims_str(&claims, claims.kid), "rsa1");
    free(t);
    t = sign("ES256", "ec1", std_claims(), "ES256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    CHECK(claims.alg == CR_JWT_ES256);
    CHECK_STR(cr_jwt_claims_str(&claims, claims.kid), "ec1");
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_key_forms(void) {
    /* PKCS#1 RSA public key, an EC key inside a certificate; a single key needs no kid. */
    cr_error err;
    cr_jwt_verifier *v = cr_jwt_verifier_new();
    CHECK(cr_jwt_set_domain(v, "meet.example.com", 16, &err) == CR_OK);
    CHECK(cr_jwt_add_public_key(v, "pkcs1", 5, RSA_PUB_PKCS1, strlen(RSA_PUB_PKCS1), &err) == CR_OK);
    char *t = sign("RS256", NULL, std_claims(), "RS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    free(t);
    CHECK(cr_jwt_add_public_key(v, "cert", 4, EC_CERT, strlen(EC_CERT), &err) == CR_OK);
    t = sign("ES256", "cert", std_claims(), "ES256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    free(t);
    /* two keys now: no kid is ambiguous */
    t = sign("RS256", NULL, std_claims(), "RS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token key id unknown");
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_config_errors(void) {
    cr_error err;
    cr_jwt_verifier *v = cr_jwt_verifier_new();
    CHECK(cr_jwt_set_hs256_secret(v, "", 0, &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_add_public_key(v, "k", 1, "not a pem", 9, &err) == CR_BAD_REQUEST);
    CHECK_STR(err.text, "unreadable PEM public key");
    CHECK(cr_jwt_add_public_key(v, "k", 1, RSA1024_PUB, strlen(RSA1024_PUB), &err) == CR_BAD_REQUEST);
    CHECK_STR(err.text, "RSA public key shorter than 2048 bits");
    CHECK(cr_jwt_add_public_key(v, "k", 1, EC384_PUB, strlen(EC384_PUB), &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_add_public_key(v, "k", 1, ED25519_PUB, strlen(ED25519_PUB), &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_add_public_key(v, "", 0, RSA_PUB, strlen(RSA_PUB), &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_add_public_key(v, "k", 1, RSA_PUB, strlen(RSA_PUB), &err) == CR_OK);
    CHECK(cr_jwt_add_public_key(v, "k", 1, EC_PUB, strlen(EC_PUB), &err) == CR_BAD_REQUEST);
    CHECK_STR(err.text, "key id given twice");
    CHECK(cr_jwt_key_count(v) == 1);
    CHECK(cr_jwt_set_leeway(v, -1, &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_set_leeway(v, NAN, &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_set_leeway(v, INFINITY, &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_set_max_token(v, 0, &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_set_domain(v, "", 0, &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_add_issuer(v, "", 0, &err) == CR_BAD_REQUEST);
    CHECK(cr_jwt_add_audience(v, "", 0, &err) == CR_BAD_REQUEST);
    cr_jwt_verifier_free(v);
    cr_jwt_verifier_free(NULL);
}

static void test_exp_nbf_leeway(void) {
    cr_jwt_verifier *v = std_verifier();
    cr_error err;
    char *t = sign("HS256", NULL, claims_with("room1", "*", NOW - 10, NOW - 100, ""), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token expired");
    free(t);
    t = sign("HS256", NULL, claims_with("room1", "*", NOW, NOW - 100, ""), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token expired"); /* exp == now is expired */
    free(t);
    t = sign("HS256", NULL, claims_with("room1", "*", NOW + 100, NOW + 10, ""), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token not valid yet");
    EXPECT_OK(v, t, "room1", NULL, NOW + 10); /* nbf == now is valid */
    free(t);
    /* leeway 30 s: 10 s past exp and 10 s before nbf both pass, 31 s do not */
    CHECK(cr_jwt_set_leeway(v, 30, &err) == CR_OK);
    t = sign("HS256", NULL, claims_with("room1", "*", NOW - 10, NOW - 100, ""), "HS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW + 21, "token expired");
    free(t);
    t = sign("HS256", NULL, claims_with("room1", "*", NOW + 100, NOW + 10, ""), "HS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW - 21, "token not valid yet");
    free(t);
    /* exp/nbf absent: no time limit; non-numeric: refused */
    t = sign("HS256", NULL, "{\"sub\":\"*\",\"room\":\"*\",\"iss\":\"my_app\",\"aud\":\"jitsi\"}", "HS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    CHECK(!claims.has_exp && !claims.has_nbf && claims.moderator == -1 && !claims.user_id.set);
    free(t);
    t = sign("HS256", NULL, "{\"sub\":\"*\",\"room\":\"*\",\"iss\":\"my_app\",\"aud\":\"jitsi\",\"exp\":\"9999999999\"}", "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token claim 'exp' is not a number");
    free(t);
    t = sign("HS256", NULL, "{\"sub\":\"*\",\"room\":\"*\",\"iss\":\"my_app\",\"aud\":\"jitsi\",\"nbf\":null}", "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token claim 'nbf' is not a number");
    free(t);
    /* a non-finite clock is the caller's error, never a pass */
    t = sign("HS256", NULL, std_claims(), "HS256");
    CHECK(verify_t(v, t, "room1", NULL, NAN, &err) == CR_INTERNAL_SERVER_ERROR);
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_room(void) {
    cr_jwt_verifier *v = std_verifier();
    char *t = sign("HS256", NULL, std_claims(), "HS256");
    EXPECT_REFUSED(v, t, "room2", NULL, NOW, "token room does not match");
    EXPECT_REFUSED(v, t, "room", NULL, NOW, "token room does not match");
    EXPECT_OK(v, t, "ROOM1", NULL, NOW); /* ASCII case-insensitive */
    free(t);
    t = sign("HS256", NULL, claims_with("RoOm1", "*", NOW + 60, NOW, ""), "HS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    free(t);
    t = sign("HS256", NULL, claims_with("*", "*", NOW + 60, NOW, ""), "HS256");
    EXPECT_OK(v, t, "anything", NULL, NOW);
    free(t);
    t = sign("HS256", NULL, "{\"sub\":\"*\",\"iss\":\"my_app\",\"aud\":\"jitsi\"}", "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token room does not match"); /* missing room */
    free(t);
    t = sign("HS256", NULL, "{\"sub\":\"*\",\"room\":1,\"iss\":\"my_app\",\"aud\":\"jitsi\"}", "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token claim 'room' is not a string");
    free(t);
    /* case folding is ASCII only: é and É differ */
    t = sign("HS256", NULL, claims_with("caf\xc3\xa9", "*", NOW + 60, NOW, ""), "HS256");
    EXPECT_OK(v, t, "CAF\xc3\xa9", NULL, NOW);
    EXPECT_REFUSED(v, t, "CAF\xc3\x89", NULL, NOW, "token room does not match");
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_sub(void) {
    cr_jwt_verifier *v = std_verifier();
    char *t = sign("HS256", NULL, claims_with("room1", "other.example.com", NOW + 60, NOW, ""), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token subject does not match");
    EXPECT_REFUSED(v, t, "room1", "tenant1", NOW, "token subject does not match");
    free(t);
    t = sign("HS256", NULL, claims_with("room1", "MEET.example.COM", NOW + 60, NOW, ""), "HS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    free(t);
    t = sign("HS256", NULL, claims_with("room1", "Tenant1", NOW + 60, NOW, ""), "HS256");
    EXPECT_OK(v, t, "room1", "tenant1", NOW);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token subject does not match");
    EXPECT_REFUSED(v, t, "room1", "tenant2", NOW, "token subject does not match");
    free(t);
    t = sign("HS256", NULL, claims_with("room1", "*", NOW + 60, NOW, ""), "HS256");
    EXPECT_OK(v, t, "room1", "tenant2", NOW);
    free(t);
    /* an empty tenant is no tenant: an empty sub never matches */
    t = sign("HS256", NULL, claims_with("room1", "", NOW + 60, NOW, ""), "HS256");
    EXPECT_REFUSED(v, t, "room1", "", NOW, "token subject does not match");
    free(t);
    t = sign("HS256", NULL, "{\"room\":\"*\",\"iss\":\"my_app\",\"aud\":\"jitsi\"}", "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token subject does not match"); /* missing sub */
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_iss_aud(void) {
    cr_jwt_verifier *v = std_verifier();
    cr_error err;
    char *t = sign("HS256", NULL, "{\"iss\":\"other\",\"aud\":\"jitsi\",\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_REFUSED(v, t, "r", NULL, NOW, "token issuer not accepted");
    free(t);
    t = sign("HS256", NULL, "{\"aud\":\"jitsi\",\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_REFUSED(v, t, "r", NULL, NOW, "token issuer not accepted");
    free(t);
    t = sign("HS256", NULL, "{\"iss\":\"my_app\",\"aud\":\"other\",\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_REFUSED(v, t, "r", NULL, NOW, "token audience not accepted");
    free(t);
    t = sign("HS256", NULL, "{\"iss\":\"my_app\",\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_REFUSED(v, t, "r", NULL, NOW, "token audience not accepted");
    free(t);
    t = sign("HS256", NULL, "{\"iss\":\"my_app\",\"aud\":[\"x\",\"jitsi\"],\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_OK(v, t, "r", NULL, NOW);
    free(t);
    t = sign("HS256", NULL, "{\"iss\":\"my_app\",\"aud\":[\"x\",\"y\"],\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_REFUSED(v, t, "r", NULL, NOW, "token audience not accepted");
    free(t);
    t = sign("HS256", NULL, "{\"iss\":\"my_app\",\"aud\":[\"jitsi\",3],\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_REFUSED(v, t, "r", NULL, NOW, "token claim 'aud' is not a string or an array of strings");
    free(t);
    t = sign("HS256", NULL, "{\"iss\":7,\"aud\":\"jitsi\",\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_REFUSED(v, t, "r", NULL, NOW, "token claim 'iss' is not a string");
    free(t);
    /* a second accepted issuer; a verifier without lists accepts any iss/aud */
    CHECK(cr_jwt_add_issuer(v, "other", 5, &err) == CR_OK);
    t = sign("HS256", NULL, "{\"iss\":\"other\",\"aud\":\"jitsi\",\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_OK(v, t, "r", NULL, NOW);
    free(t);
    cr_jwt_verifier *open = cr_jwt_verifier_new();
    CHECK(cr_jwt_set_hs256_secret(open, SECRET, strlen(SECRET), &err) == CR_OK);
    t = sign("HS256", NULL, "{\"iss\":\"x\",\"aud\":\"y\",\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_OK(open, t, "r", NULL, NOW);
    free(t);
    t = sign("HS256", NULL, "{\"sub\":\"*\",\"room\":\"*\"}", "HS256");
    EXPECT_OK(open, t, "r", NULL, NOW);
    free(t);
    /* no domain configured: sub must be * or the tenant */
    t = sign("HS256", NULL, "{\"sub\":\"meet.example.com\",\"room\":\"*\"}", "HS256");
    EXPECT_REFUSED(open, t, "r", NULL, NOW, "token subject does not match");
    free(t);
    cr_jwt_verifier_free(open);
    cr_jwt_verifier_free(v);
}

static void test_signature(void) {
    cr_jwt_verifier *v = std_verifier();
    const char *algs[] = {"HS256", "RS256", "ES256"};
    const char *kids[] = {NULL, "rsa1", "ec1"};
    for (int i = 0; i < 3; i++) {
        char *t = sign(algs[i], kids[i], std_claims(), algs[i]);
        EXPECT_OK(v, t, "room1", NULL, NOW);
        size_t n = strlen(t);
        /* flip one character of the signature (keeping it valid base64url) */
        char *s = strrchr(t, '.') + 5;
        *s = *s == 'A' ? 'B' : 'A';
        EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token signature invalid");
        *s = *s == 'A' ? 'B' : 'A';
        /* change the claims: the signature no longer covers them */
        char *p = strchr(t, '.') + 3;
        *p = *p == 'A' ? 'B' : 'A';
        cr_error e = {CR_OK, ""};
        CHECK(verify_t(v, t, "room1", NULL, NOW, &e) == CR_NOT_AUTHORIZED);
        *p = *p == 'A' ? 'B' : 'A';
        /* truncated signature, empty signature */
        char *d = strrchr(t, '.');
        d[9] = '\0';
        EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token signature invalid");
        d[1] = '\0';
        EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token signature invalid");
        (void)n;
        free(t);
    }
    /* bytes appended to a valid signature (ES256 reads exactly 64, HS256 32, RS256 the modulus) */
    for (int i = 0; i < 3; i++) {
        char *t = sign(algs[i], kids[i], std_claims(), algs[i]);
        char buf[4096];
        snprintf(buf, sizeof buf, "%sAAAA", t);
        EXPECT_REFUSED(v, buf, "room1", NULL, NOW, "token signature invalid");
        free(t);
    }
    /* signed with another HMAC secret */
    char header[] = "{\"alg\":\"HS256\"}";
    char *t = jwt_make(header, std_claims(), "HS256", "other", 5, NULL);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token signature invalid");
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_alg(void) {
    cr_jwt_verifier *v = std_verifier();
    char *t = sign("none", NULL, std_claims(), NULL);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token algorithm none refused");
    free(t);
    t = sign("NoNe", NULL, std_claims(), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token algorithm none refused");
    free(t);
    t = sign("HS512", NULL, std_claims(), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token algorithm HS512 not supported");
    free(t);
    t = sign("hs256", NULL, std_claims(), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token algorithm hs256 not supported");
    free(t);
    t = sign("<script>", NULL, std_claims(), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token algorithm not supported");
    free(t);
    t = jwt_make("{\"typ\":\"JWT\"}", std_claims(), "HS256", SECRET, strlen(SECRET), NULL);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token algorithm missing");
    free(t);
    t = jwt_make("{\"alg\":256}", std_claims(), "HS256", SECRET, strlen(SECRET), NULL);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token malformed (JSON header)");
    free(t);
    t = jwt_make("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", std_claims(), "HS256", SECRET, strlen(SECRET), NULL);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token header 'crit' not supported");
    free(t);
    /* an algorithm with nothing configured for it */
    cr_error err;
    cr_jwt_verifier *hs_only = cr_jwt_verifier_new(), *pk_only = cr_jwt_verifier_new();
    CHECK(cr_jwt_set_hs256_secret(hs_only, SECRET, strlen(SECRET), &err) == CR_OK);
    CHECK(cr_jwt_add_public_key(pk_only, "rsa1", 4, RSA_PUB, strlen(RSA_PUB), &err) == CR_OK);
    t = sign("RS256", "rsa1", std_claims(), "RS256");
    EXPECT_REFUSED(hs_only, t, "room1", NULL, NOW, "token algorithm RS256 not supported");
    free(t);
    t = sign("HS256", NULL, std_claims(), "HS256");
    EXPECT_REFUSED(pk_only, t, "room1", NULL, NOW, "token algorithm HS256 not supported");
    free(t);
    cr_jwt_verifier_free(hs_only);
    cr_jwt_verifier_free(pk_only);
    cr_jwt_verifier_free(v);
}

static void test_key_confusion(void) {
    cr_jwt_verifier *v = std_verifier();
    /* HMAC-signed with the secret, labelled RS256 with the RSA key's kid */
    char *t = sign("RS256", "rsa1", std_claims(), "HS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token signature invalid");
    free(t);
    /* labelled RS256 without kid on a verifier whose only key is RSA and which has the secret */
    cr_error err;
    cr_jwt_verifier *one = cr_jwt_verifier_new();
    CHECK(cr_jwt_set_hs256_secret(one, SECRET, strlen(SECRET), &err) == CR_OK);
    CHECK(cr_jwt_add_public_key(one, "rsa1", 4, RSA_PUB, strlen(RSA_PUB), &err) == CR_OK);
    t = sign("RS256", NULL, std_claims(), "HS256");
    EXPECT_REFUSED(one, t, "room1", NULL, NOW, "token signature invalid");
    free(t);
    /* the classic attack: HS256 with the RSA public key (PEM text) as the HMAC secret */
    char header[] = "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}";
    t = jwt_make(header, std_claims(), "HS256", RSA_PUB, strlen(RSA_PUB), NULL);
    EXPECT_REFUSED(one, t, "room1", NULL, NOW, "token signature invalid");
    free(t);
    cr_jwt_verifier_free(one);
    /* the public key is never an HMAC key: without a secret, HS256 is not accepted at all */
    cr_jwt_verifier *pk = cr_jwt_verifier_new();
    CHECK(cr_jwt_add_public_key(pk, "rsa1", 4, RSA_PUB, strlen(RSA_PUB), &err) == CR_OK);
    t = jwt_make(header, std_claims(), "HS256", RSA_PUB, strlen(RSA_PUB), NULL);
    EXPECT_REFUSED(pk, t, "room1", NULL, NOW, "token algorithm HS256 not supported");
    free(t);
    cr_jwt_verifier_free(pk);
    /* the key's kind must match alg: ES256 on the RSA key, RS256 on the EC key */
    t = sign("ES256", "rsa1", std_claims(), "ES256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token algorithm ES256 does not match the key");
    free(t);
    t = sign("RS256", "ec1", std_claims(), "RS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token algorithm RS256 does not match the key");
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_kid(void) {
    cr_jwt_verifier *v = std_verifier();
    char *t = sign("RS256", "nope", std_claims(), "RS256");
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token key id unknown");
    free(t);
    t = sign("RS256", NULL, std_claims(), "RS256"); /* two keys, no kid */
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token key id unknown");
    free(t);
    t = sign("RS256", "RSA1", std_claims(), "RS256"); /* kid is exact */
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token key id unknown");
    free(t);
    t = jwt_make("{\"alg\":\"RS256\",\"kid\":1}", std_claims(), "RS256", NULL, 0, rsa_priv);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token malformed (JSON header)");
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_malformed(void) {
    cr_jwt_verifier *v = std_verifier();
    char *good = sign("HS256", NULL, std_claims(), "HS256");
    EXPECT_REFUSED(v, "", "room1", NULL, NOW, "token malformed (structure)");
    EXPECT_REFUSED(v, "abc", "room1", NULL, NOW, "token malformed (structure)");
    EXPECT_REFUSED(v, "a.b", "room1", NULL, NOW, "token malformed (structure)");
    EXPECT_REFUSED(v, "a.b.c.d", "room1", NULL, NOW, "token malformed (structure)");
    char buf[8192];
    snprintf(buf, sizeof buf, "%s.x", good);
    EXPECT_REFUSED(v, buf, "room1", NULL, NOW, "token malformed (structure)");
    /* base64url: padding, standard-alphabet characters, spaces, bad length, non-zero tail bits */
    const char *bad_b64[] = {"eyJhbGciOiJIUzI1NiJ9=", "eyJhbGci+iJIUzI1NiJ9", "eyJhbGci/iJIUzI1NiJ9",
                             "eyJhbGci iJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9a", "eyJhbGciOiJIUzI1NiJ9A",
                             "e31"};
    for (size_t i = 0; i < sizeof bad_b64 / sizeof bad_b64[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", bad_b64[i], strchr(good, '.'));
        EXPECT_REFUSED(v, buf, "room1", NULL, NOW, "token malformed (base64url)");
    }
    snprintf(buf, sizeof buf, "%.*s.e30=.%s", (int)(strchr(good, '.') - good), good, strrchr(good, '.') + 1);
    EXPECT_REFUSED(v, buf, "room1", NULL, NOW, "token malformed (base64url)");
    snprintf(buf, sizeof buf, "%s=", good);
    EXPECT_REFUSED(v, buf, "room1", NULL, NOW, "token malformed (base64url)");
    /* a NUL inside the token */
    cr_error e = {CR_OK, ""};
    CHECK(cr_jwt_verify(v, good, strlen(good) + 1, "room1", 5, NULL, 0, NOW, &claims, &e) ==
          CR_NOT_AUTHORIZED);
    CHECK_STR(e.text, "token malformed (base64url)");
    /* header JSON: not JSON, not an object, trailing garbage, duplicate keys */
    const char *bad_headers[] = {"{\"alg\":\"HS256\"", "[\"HS256\"]", "\"HS256\"",
                                 "{\"alg\":\"HS256\"} x", "{\"alg\":\"HS256\",\"alg\":\"none\"}",
                                 "{\"alg\":\"none\",\"alg\":\"HS256\"}", ""};
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        char *t = jwt_make(bad_headers[i], std_claims(), "HS256", SECRET, strlen(SECRET), NULL);
        EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token malformed (JSON header)");
        free(t);
    }
    /* claims JSON (signed correctly): not JSON, array, duplicate keys, deep nesting */
    char deep[256] = "{\"sub\":\"*\",\"room\":\"*\",\"iss\":\"my_app\",\"aud\":\"jitsi\",\"x\":";
    for (int i = 0; i < 16; i++) strcat(deep, "[");
    for (int i = 0; i < 16; i++) strcat(deep, "]");
    strcat(deep, "}");
    const char *bad_claims[] = {"{\"sub\":\"*\"", "[1,2]", "",
                                "{\"sub\":\"*\",\"room\":\"*\",\"iss\":\"my_app\",\"aud\":\"jitsi\","
                                "\"room\":\"other\"}",
                                "{\"sub\":\"*\",\"room\":\"*\",\"s\":\"a\\u0000b\"}", deep};
    for (size_t i = 0; i < sizeof bad_claims / sizeof bad_claims[0]; i++) {
        char *t = jwt_make("{\"alg\":\"HS256\"}", bad_claims[i], "HS256", SECRET, strlen(SECRET), NULL);
        EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token malformed (JSON claims)");
        free(t);
    }
    /* depth 16 is accepted (the top object is depth 1) */
    strcpy(deep, "{\"sub\":\"*\",\"room\":\"*\",\"iss\":\"my_app\",\"aud\":\"jitsi\",\"x\":");
    for (int i = 0; i < 15; i++) strcat(deep, "[");
    for (int i = 0; i < 15; i++) strcat(deep, "]");
    strcat(deep, "}");
    char *t = jwt_make("{\"alg\":\"HS256\"}", deep, "HS256", SECRET, strlen(SECRET), NULL);
    EXPECT_OK(v, t, "room1", NULL, NOW);
    free(t);
    free(good);
    cr_jwt_verifier_free(v);
}

static void test_too_long(void) {
    cr_jwt_verifier *v = std_verifier();
    cr_error err;
    char extra[20000];
    snprintf(extra, sizeof extra, ",\"pad\":\"%0*d\"", 13000, 0);
    char *t = sign("HS256", NULL, claims_with("room1", "*", NOW + 60, NOW, extra), "HS256");
    CHECK(strlen(t) > 16384);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token too long");
    CHECK(cr_jwt_set_max_token(v, strlen(t), &err) == CR_OK);
    EXPECT_OK(v, t, "room1", NULL, NOW);
    CHECK(cr_jwt_set_max_token(v, strlen(t) - 1, &err) == CR_OK);
    EXPECT_REFUSED(v, t, "room1", NULL, NOW, "token too long");
    free(t);
    cr_jwt_verifier_free(v);
}

static void test_context(void) {
    cr_jwt_verifier *v = std_verifier();
    struct { const char *ctx; int moderator; const char *refusal; } cases[] = {
        {",\"context\":{\"user\":{\"moderator\":true}}", 1, NULL},
        {",\"context\":{\"user\":{\"moderator\":false}}", 0, NULL},
        {",\"context\":{\"user\":{\"moderator\":\"true\"}}", 1, NULL},
        {",\"context\":{\"user\":{\"moderator\":\"false\"}}", 0, NULL},
        {",\"context\":{\"user\":{\"moderator\":\"TRUE\"}}", 1, NULL},
        {",\"context\":{\"user\":{\"moderator\":null}}", -1, NULL},
        {",\"context\":{\"user\":{}}", -1, NULL},
        {",\"context\":{}", -1, NULL},
        {"", -1, NULL},
        {",\"context\":{\"user\":{\"moderator\":1}}", 0, "token claim 'context.user.moderator' is not a boolean"},
        {",\"context\":{\"user\":{\"moderator\":\"yes\"}}", 0, "token claim 'context.user.moderator' is not a boolean"},
        {",\"context\":{\"user\":{\"id\":5}}", 0, "token claim 'context.user.id' is not a string"},
        {",\"context\":{\"user\":[]}", 0, "token claim 'context.user' is not an object"},
        {",\"context\":{\"group\":[]}", 0, "token claim 'context.group' is not a string"},
        {",\"context\":\"x\"", 0, "token claim 'context' is not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = sign("HS256", NULL, claims_with("room1", "*", NOW + 60, NOW, cases[i].ctx), "HS256");
        if (cases[i].refusal) {
            EXPECT_REFUSED(v, t, "room1", NULL, NOW, cases[i].refusal);
        } else {
            EXPECT_OK(v, t, "room1", NULL, NOW);
            CHECK(claims.moderator == cases[i].moderator);
            CHECK(!claims.user_id.set && !claims.group.set);
        }
        free(t);
    }
    char *t = sign("HS256", NULL, claims_with("room1", "*", NOW + 60, NOW,
                   ",\"context\":{\"user\":{\"id\":\"abc\",\"name\":\"A\"},\"group\":\"grp\"}"), "HS256");
    EXPECT_OK(v, t, "room1", NULL, NOW);
    CHECK_STR(cr_jwt_claims_str(&claims, claims.user_id), "abc");
    CHECK_STR(cr_jwt_claims_str(&claims, claims.group), "grp");
    CHECK(claims.moderator == -1);
    free(t);
    cr_jwt_verifier_free(v);
}

/* The claims object is reused: a refusal after a success leaves nothing of the success. */
static void test_reuse(void) {
    cr_jwt_verifier *v = std_verifier();
    char *t = sign("HS256", NULL, std_claims(), "HS256");
    for (int i = 0; i < 3; i++) {
        EXPECT_OK(v, t, "room1", NULL, NOW);
        CHECK_STR(cr_jwt_claims_str(&claims, claims.user_id), "u1");
        EXPECT_REFUSED(v, t, "room2", NULL, NOW, "token room does not match");
        CHECK(!claims.user_id.set && !claims.has_exp && claims.moderator == -1);
    }
    free(t);
    cr_jwt_verifier_free(v);
}

/* Deterministic mutations of valid tokens (the libFuzzer harness is not part of make test): no
 * crash, a refusal is not-authorized with a text, and a mutant accepted is one whose bytes are
 * those of the original token (a change that decodes to the same bytes is impossible: the
 * base64url decoding is canonical). */
static void test_mutations(void) {
    cr_jwt_verifier *v = std_verifier();
    const char *algs[] = {"HS256", "RS256", "ES256"};
    const char *kids[] = {NULL, "rsa1", "ec1"};
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \0";
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    int bad = 0, accepted_changed = 0;
    for (int a = 0; a < 3; a++) {
        char *t = sign(algs[a], kids[a], std_claims(), algs[a]);
        size_t n = strlen(t);
        char *m = malloc(n + 1);
        for (int i = 0; i < (a == 0 ? 3000 : 300); i++) {
            memcpy(m, t, n + 1);
            size_t len = n;
            int edits = 1 + (int)(rng % 3);
            for (int e = 0; e < edits; e++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                size_t pos = (size_t)(rng >> 8) % len;
                if (rng % 5 == 0) len = pos ? pos : 1; /* truncate */
                else m[pos] = alphabet[(rng >> 40) % (sizeof alphabet - 1)];
            }
            cr_error e = {CR_OK, ""};
            cr_condition c = cr_jwt_verify(v, m, len, "room1", 5, NULL, 0, NOW, &claims, &e);
            if (c == CR_OK) {
                if (len != n || memcmp(m, t, n) != 0) accepted_changed++;
            } else if (c != CR_NOT_AUTHORIZED || e.text[0] == '\0' || claims.alg != 0) {
                bad++;
            }
        }
        free(m);
        free(t);
    }
    CHECK(bad == 0);
    CHECK(accepted_changed == 0);
    cr_jwt_verifier_free(v);
}

int main(void) {
    rsa_priv = jwt_private_key(RSA_PRIV);
    ec_priv = jwt_private_key(EC_PRIV);
    CHECK(rsa_priv && ec_priv);
    cr_jwt_claims_init(&claims);
    test_valid_hs256();
    test_valid_rs256_es256();
    test_key_forms();
    test_config_errors();
    test_exp_nbf_leeway();
    test_room();
    test_sub();
    test_iss_aud();
    test_signature();
    test_alg();
    test_key_confusion();
    test_kid();
    test_malformed();
    test_too_long();
    test_context();
    test_reuse();
    test_mutations();
    cr_jwt_claims_free(&claims);
    EVP_PKEY_free(rsa_priv);
    EVP_PKEY_free(ec_priv);
    return ctest_done("test_jwt");
}
