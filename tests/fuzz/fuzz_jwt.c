/* fuzz_jwt.c — libFuzzer harness for cr_jwt_verify (native/jwt.c).
 *
 * The first input byte picks what the rest is:
 *   0 mod 3  a token, verified as is (structure, base64url, header JSON, alg/kid choice, the three
 *            signature checks against a fixed HS256 secret, an RSA and an EC public key);
 *   1 mod 3  the claims JSON: signed with the fixed HS256 secret under a fixed header, so the
 *            fuzzer reaches the claim checks (exp/nbf, iss, aud, sub, room, context) directly;
 *   2 mod 3  the header JSON: signed with the secret over fixed valid claims (alg, kid, crit).
 * Invariants checked (abort on violation): a success has an algorithm and a subject and room
 * claim; a failure is not-authorized with a non-empty text (or internal-server-error for an
 * allocation failure).
 *
 * Build (the `make fuzz` target builds every tests/fuzz/fuzz_*.c the same way):
 *   clang -fsanitize=fuzzer,address,undefined -std=c11 -D_POSIX_C_SOURCE=200809L -Inative \
 *     tests/fuzz/fuzz_jwt.c <every native/ .c file but lua_native.c> \
 *     -lexpat -ljansson -lcrypto -o build/fuzz_jwt
 *   build/fuzz_jwt tests/fuzz/corpus/jwt
 */
#include "cr.h"
#include "../c/jwt_keys.h"
#include "../c/jwt_sign.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "fuzz-secret"
#define NOW 1700000000.0

static cr_jwt_verifier *verifier; /* harness state, built once */
static cr_jwt_claims claims;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    cr_error err;
    verifier = cr_jwt_verifier_new();
    if (!verifier || cr_jwt_set_hs256_secret(verifier, SECRET, strlen(SECRET), &err) ||
        cr_jwt_add_public_key(verifier, "rsa1", 4, RSA_PUB, strlen(RSA_PUB), &err) ||
        cr_jwt_add_public_key(verifier, "ec1", 3, EC_PUB, strlen(EC_PUB), &err) ||
        cr_jwt_add_issuer(verifier, "my_app", 6, &err) ||
        cr_jwt_add_audience(verifier, "jitsi", 5, &err) ||
        cr_jwt_set_domain(verifier, "meet.example.com", 16, &err) ||
        cr_jwt_set_leeway(verifier, 5, &err))
        abort();
    cr_jwt_claims_init(&claims);
    return 0;
}

static void check(const char *tok, size_t len, const char *tenant) {
    cr_error err = {CR_OK, ""};
    cr_condition c = cr_jwt_verify(verifier, tok, len, "room1", 5, tenant,
                                   tenant ? strlen(tenant) : 0, NOW, &claims, &err);
    if (c == CR_OK) {
        if (!claims.alg || !claims.sub.set || !claims.room.set) abort();
        if (strlen(cr_jwt_claims_str(&claims, claims.room)) != claims.room.len) abort();
    } else {
        if ((c != CR_NOT_AUTHORIZED && c != CR_INTERNAL_SERVER_ERROR) || err.text[0] == '\0')
            abort();
        if (claims.alg || claims.sub.set) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    const char *tenant = (data[0] & 0x80) ? "acme" : NULL;
    if (data[0] % 3 == 0) {
        check(rest, n, tenant);
        return 0;
    }
    if (n > 8192) return 0;
    char *json = malloc(n + 1); /* jwt_make takes NUL-terminated text */
    if (!json) return 0;
    memcpy(json, rest, n);
    json[n] = '\0';
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const char good[] = "{\"iss\":\"my_app\",\"aud\":\"jitsi\",\"sub\":\"*\",\"room\":\"room1\"}";
    char *tok = data[0] % 3 == 1 ? jwt_make(header, json, "HS256", SECRET, strlen(SECRET), NULL)
                                 : jwt_make(json, good, "HS256", SECRET, strlen(SECRET), NULL);
    if (tok) check(tok, strlen(tok), tenant);
    free(tok);
    free(json);
    return 0;
}
