/* jwt_sign.h — TEST-ONLY token signing with libcrypto, shared by tests/c/test_jwt.c,
 * tests/bench/jwtbench.c and tests/fuzz/fuzz_jwt.c. The core only verifies; this is the other
 * half, written independently of native/jwt.c (base64url encoder, HMAC(), EVP_DigestSign, the
 * DER → JOSE r||s conversion). */
#ifndef JWT_SIGN_H
#define JWT_SIGN_H

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

/* Appends the base64url (no padding) form of s[0..n) to out (room for 4 * n / 3 + 4 more). */
static inline size_t jwt_b64url(const unsigned char *s, size_t n, char *out) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63];
        out[o++] = A[v >> 6 & 63], out[o++] = A[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)s[i] << 16;
        out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
        out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63], out[o++] = A[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

static inline EVP_PKEY *jwt_private_key(const char *pem) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

/* Signs signing input tbs with alg ("HS256": key = secret bytes; "RS256"/"ES256": pkey), writes
 * the raw JOSE signature into sig (≥ 512 bytes); returns its length, 0 on failure. */
static inline size_t jwt_raw_sign(const char *alg, const void *secret, size_t secret_len, EVP_PKEY *pkey,
                           const char *tbs, size_t tbs_len, unsigned char *sig) {
    if (strcmp(alg, "HS256") == 0) {
        unsigned int n = 0;
        if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)tbs, tbs_len, sig, &n))
            return 0;
        return n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[512];
    size_t n = sizeof der;
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestSign(ctx, der, &n, (const unsigned char *)tbs, tbs_len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return 0;
    if (strcmp(alg, "ES256") != 0) {
        memcpy(sig, der, n);
        return n;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    if (!es) return 0;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
    ECDSA_SIG_free(es);
    return ok ? 64 : 0;
}

/* A token b64url(header).b64url(claims).b64url(signature of alg_sign); caller frees.
 * alg_sign is the algorithm actually used to sign (may differ from the header's on purpose). */
static inline char *jwt_make(const char *header, const char *claims, const char *alg_sign,
                      const void *secret, size_t secret_len, EVP_PKEY *pkey) {
    size_t hl = strlen(header), cl = strlen(claims);
    char *t = malloc(2 * (hl + cl) + 1024);
    if (!t) return NULL;
    size_t o = jwt_b64url((const unsigned char *)header, hl, t);
    t[o++] = '.';
    o += jwt_b64url((const unsigned char *)claims, cl, t + o);
    unsigned char sig[512];
    size_t sl = alg_sign ? jwt_raw_sign(alg_sign, secret, secret_len, pkey, t, o, sig) : 0;
    if (alg_sign && sl == 0) {
        free(t);
        return NULL;
    }
    t[o++] = '.';
    o += jwt_b64url(sig, sl, t + o);
    return t;
}

#endif
