/* jwt.c — JSON Web Token verification (issue 10): HS256, RS256, ES256 with libcrypto, header and
 * claims with jansson, Jitsi's claim conventions (room, sub, context.user / context.group).
 *
 * Order of the checks (the first failure is the answer):
 *   length → three base64url segments (RFC 7515 §2: no padding, only A-Z a-z 0-9 - _, unused
 *   trailing bits zero) → header JSON (object, no duplicate keys, depth ≤ CR_JWT_MAX_JSON_DEPTH)
 *   → alg (none / unknown refused, `crit` refused) → key (HS256: the secret; RS256/ES256: the
 *   public key named by kid, or the only key when there is no kid; the key's kind must match
 *   alg) → signature (HMAC compared with CRYPTO_memcmp; RSA PKCS#1 v1.5 / ECDSA P-256 with
 *   EVP_DigestVerify, the JOSE r||s converted to DER) → claims JSON → exp, nbf, iss, aud, sub,
 *   room, context.
 * The verifier is read-only after configuration; each verification uses its own OpenSSL
 * contexts (freed before returning) and the caller's claims arena as scratch.
 */
#include "cr.h"

#include <jansson.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *s; /* owned, NUL-terminated */
    size_t len;
} jwt_name;

typedef struct {
    jwt_name *v; /* owned */
    size_t n, cap;
} jwt_names;

typedef struct {
    jwt_name kid;
    EVP_PKEY *pkey; /* owned */
    cr_jwt_alg alg; /* the one algorithm this key verifies */
} jwt_key;

struct cr_jwt_verifier {
    EVP_MAC *mac;       /* owned; fetched with the secret */
    EVP_MAC_CTX *hmac;  /* owned; keyed HMAC-SHA256 template, duplicated per verification */
    jwt_key *keys;      /* owned; keys[0..nkeys) */
    size_t nkeys, keys_cap;
    jwt_names issuers, audiences;
    jwt_name domain;    /* s == NULL: none */
    double leeway;
    size_t max_token;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static bool name_copy(jwt_name *n, const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (!p) return false;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    n->s = p;
    n->len = len;
    return true;
}

static bool names_has(const jwt_names *ns, const char *s, size_t len) {
    for (size_t i = 0; i < ns->n; i++)
        if (ns->v[i].len == len && memcmp(ns->v[i].s, s, len) == 0) return true;
    return false;
}

static cr_condition names_add(jwt_names *ns, const char *what, const char *s, size_t len,
                              cr_error *err) {
    if (!s || len == 0) return cr_error_set(err, CR_BAD_REQUEST, "%s must not be empty", what);
    if (names_has(ns, s, len)) return CR_OK;
    if (ns->n >= CR_JWT_MAX_NAMES)
        return cr_error_set(err, CR_BAD_REQUEST, "more than %d %s", CR_JWT_MAX_NAMES, what);
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 4;
        jwt_name *v = realloc(ns->v, cap * sizeof *v);
        if (!v) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        ns->v = v;
        ns->cap = cap;
    }
    if (!name_copy(&ns->v[ns->n], s, len))
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    ns->n++;
    return CR_OK;
}

static void names_free(jwt_names *ns) {
    for (size_t i = 0; i < ns->n; i++) free(ns->v[i].s);
    free(ns->v);
    ns->v = NULL;
    ns->n = ns->cap = 0;
}

static unsigned char ascii_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive equality of two byte strings (other bytes compared as they are). */
static bool ascii_ieq(const char *a, size_t al, const char *b, size_t bl) {
    if (al != bl) return false;
    for (size_t i = 0; i < al; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) return false;
    return true;
}

static bool str_eq(const char *a, size_t al, const char *lit) {
    return al == strlen(lit) && memcmp(a, lit, al) == 0;
}

const char *cr_jwt_alg_name(cr_jwt_alg alg) {
    switch (alg) {
    case CR_JWT_HS256: return "HS256";
    case CR_JWT_RS256: return "RS256";
    case CR_JWT_ES256: return "ES256";
    }
    return NULL;
}

/* ---- configuration ------------------------------------------------------------------------ */

cr_jwt_verifier *cr_jwt_verifier_new(void) {
    cr_jwt_verifier *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->max_token = CR_JWT_MAX_TOKEN_DEFAULT;
    return v;
}

void cr_jwt_verifier_free(cr_jwt_verifier *v) {
    if (!v) return;
    EVP_MAC_CTX_free(v->hmac);
    EVP_MAC_free(v->mac);
    for (size_t i = 0; i < v->nkeys; i++) {
        free(v->keys[i].kid.s);
        EVP_PKEY_free(v->keys[i].pkey);
    }
    free(v->keys);
    names_free(&v->issuers);
    names_free(&v->audiences);
    free(v->domain.s);
    free(v);
}

cr_condition cr_jwt_set_hs256_secret(cr_jwt_verifier *v, const void *secret, size_t len,
                                     cr_error *err) {
    if (!secret || len == 0)
        return cr_error_set(err, CR_BAD_REQUEST, "the HS256 secret must not be empty");
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (!ctx || EVP_MAC_init(ctx, secret, len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
        ERR_clear_error();
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "cannot set up HMAC-SHA256");
    }
    EVP_MAC_CTX_free(v->hmac);
    EVP_MAC_free(v->mac);
    v->mac = mac;
    v->hmac = ctx;
    return CR_OK;
}

/* Decodes a PEM public key (SubjectPublicKeyInfo, PKCS#1 RSA) or a certificate's key. */
static EVP_PKEY *load_pem(const char *pem, size_t len) {
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
                                                           EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    if (dctx) {
        const unsigned char *data = (const unsigned char *)pem;
        size_t left = len;
        if (OSSL_DECODER_from_data(dctx, &data, &left) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        OSSL_DECODER_CTX_free(dctx);
    }
    if (!pkey && len <= INT_MAX) {
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        if (x) pkey = X509_get_pubkey(x);
        X509_free(x);
        BIO_free(bio);
    }
    ERR_clear_error();
    return pkey;
}

static bool is_p256(EVP_PKEY *pkey) {
    char group[64];
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen) != 1) {
        ERR_clear_error();
        return false;
    }
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
           strcmp(group, "secp256r1") == 0;
}

cr_condition cr_jwt_add_public_key(cr_jwt_verifier *v, const char *kid, size_t kid_len,
                                   const char *pem, size_t pem_len, cr_error *err) {
    if (!kid || kid_len == 0) return cr_error_set(err, CR_BAD_REQUEST, "a key id must not be empty");
    for (size_t i = 0; i < v->nkeys; i++)
        if (v->keys[i].kid.len == kid_len && memcmp(v->keys[i].kid.s, kid, kid_len) == 0)
            return cr_error_set(err, CR_BAD_REQUEST, "key id given twice");
    if (v->nkeys >= CR_JWT_MAX_KEYS)
        return cr_error_set(err, CR_BAD_REQUEST, "more than %d public keys", CR_JWT_MAX_KEYS);
    if (!pem || pem_len == 0) return cr_error_set(err, CR_BAD_REQUEST, "empty PEM public key");
    EVP_PKEY *pkey = load_pem(pem, pem_len);
    if (!pkey) return cr_error_set(err, CR_BAD_REQUEST, "unreadable PEM public key");
    cr_jwt_alg alg = 0;
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < 2048) {
            EVP_PKEY_free(pkey);
            return cr_error_set(err, CR_BAD_REQUEST, "RSA public key shorter than 2048 bits");
        }
        alg = CR_JWT_RS256;
    } else if (EVP_PKEY_is_a(pkey, "EC") && is_p256(pkey)) {
        alg = CR_JWT_ES256;
    } else {
        EVP_PKEY_free(pkey);
        return cr_error_set(err, CR_BAD_REQUEST,
                            "unsupported public key (RSA of 2048 bits or more, or EC P-256)");
    }
    if (v->nkeys == v->keys_cap) {
        size_t cap = v->keys_cap ? v->keys_cap * 2 : 4;
        jwt_key *k = realloc(v->keys, cap * sizeof *k);
        if (!k) {
            EVP_PKEY_free(pkey);
            return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        }
        v->keys = k;
        v->keys_cap = cap;
    }
    jwt_key *k = &v->keys[v->nkeys];
    if (!name_copy(&k->kid, kid, kid_len)) {
        EVP_PKEY_free(pkey);
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    }
    k->pkey = pkey;
    k->alg = alg;
    v->nkeys++;
    return CR_OK;
}

size_t cr_jwt_key_count(const cr_jwt_verifier *v) { return v->nkeys; }

cr_condition cr_jwt_add_issuer(cr_jwt_verifier *v, const char *s, size_t len, cr_error *err) {
    return names_add(&v->issuers, "issuers", s, len, err);
}

cr_condition cr_jwt_add_audience(cr_jwt_verifier *v, const char *s, size_t len, cr_error *err) {
    return names_add(&v->audiences, "audiences", s, len, err);
}

cr_condition cr_jwt_set_domain(cr_jwt_verifier *v, const char *s, size_t len, cr_error *err) {
    if (!s || len == 0) return cr_error_set(err, CR_BAD_REQUEST, "the domain must not be empty");
    jwt_name n;
    if (!name_copy(&n, s, len)) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    free(v->domain.s);
    v->domain = n;
    return CR_OK;
}

cr_condition cr_jwt_set_leeway(cr_jwt_verifier *v, double seconds, cr_error *err) {
    if (!isfinite(seconds) || seconds < 0)
        return cr_error_set(err, CR_BAD_REQUEST, "leeway must be a finite number >= 0");
    v->leeway = seconds;
    return CR_OK;
}

cr_condition cr_jwt_set_max_token(cr_jwt_verifier *v, size_t bytes, cr_error *err) {
    if (bytes == 0) return cr_error_set(err, CR_BAD_REQUEST, "max token length must be > 0");
    v->max_token = bytes;
    return CR_OK;
}

/* ---- claims ------------------------------------------------------------------------------- */

static void claims_reset(cr_jwt_claims *c) {
    cr_buf_reset(&c->arena);
    c->alg = 0;
    c->kid = c->iss = c->sub = c->room = c->user_id = c->group = (cr_str){0, 0, false};
    c->has_exp = c->has_nbf = false;
    c->exp = c->nbf = 0;
    c->moderator = -1;
}

void cr_jwt_claims_init(cr_jwt_claims *c) {
    cr_buf_init(&c->arena);
    claims_reset(c);
}

void cr_jwt_claims_free(cr_jwt_claims *c) {
    cr_buf_free(&c->arena);
    claims_reset(c);
}

const char *cr_jwt_claims_str(const cr_jwt_claims *c, cr_str s) {
    return s.set ? c->arena.data + s.off : NULL;
}

/* Copies the string value j (NULL = absent) into the arena. */
static bool claims_put(cr_jwt_claims *c, cr_str *dst, json_t *j) {
    if (!j) return true;
    size_t len = json_string_length(j);
    size_t off = c->arena.len;
    if (!cr_buf_append(&c->arena, json_string_value(j), len) || !cr_buf_putc(&c->arena, '\0'))
        return false;
    *dst = (cr_str){off, len, true};
    return true;
}

/* ---- decoding ----------------------------------------------------------------------------- */

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decodes s[0..n) into out (room for n * 3 / 4 bytes); false on a character outside the
 * base64url alphabet (padding included), an impossible length, or non-zero unused bits. */
static bool b64url_decode(const char *s, size_t n, unsigned char *out, size_t *outlen) {
    if (n % 4 == 1) return false;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int x = b64url_value((unsigned char)s[i]);
        if (x < 0) return false;
        acc = (acc << 6) | (uint32_t)x;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return false; /* the unused low bits of the last character */
    *outlen = o;
    return true;
}

/* Nesting of the JSON text s[0..n) stays within max (checked before jansson, whose recursion it
 * bounds). Unbalanced text passes here and fails in jansson. */
static bool json_depth_ok(const unsigned char *s, size_t n, size_t max) {
    size_t depth = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max) return false;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return true;
}

static json_t *parse_object(const unsigned char *s, size_t n) {
    if (!json_depth_ok(s, n, CR_JWT_MAX_JSON_DEPTH)) return NULL;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)s, n, JSON_REJECT_DUPLICATES, &jerr);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- signatures --------------------------------------------------------------------------- */

/* 1 valid, 0 invalid, -1 internal failure. */
static int verify_hs256(const cr_jwt_verifier *v, const char *tbs, size_t tbs_len,
                        const unsigned char *sig, size_t sig_len) {
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(v->hmac);
    if (!ctx) return -1;
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    int ok = EVP_MAC_update(ctx, (const unsigned char *)tbs, tbs_len) == 1 &&
             EVP_MAC_final(ctx, mac, &mac_len, sizeof mac) == 1;
    EVP_MAC_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        return -1;
    }
    int r = sig_len == mac_len && mac_len == 32 && CRYPTO_memcmp(mac, sig, mac_len) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return r;
}

static int verify_pkey(EVP_PKEY *pkey, const char *tbs, size_t tbs_len,
                       const unsigned char *sig, size_t sig_len) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return -1;
    int r = -1;
    if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1) {
        int x = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)tbs, tbs_len);
        r = x == 1 ? 1 : 0;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return r;
}

/* ES256: the JOSE signature is r||s, 32 bytes each; OpenSSL wants a DER ECDSA-Sig-Value. */
static int verify_es256(EVP_PKEY *pkey, const char *tbs, size_t tbs_len,
                        const unsigned char *sig, size_t sig_len) {
    if (sig_len != 64) return 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    if (!es || !r || !s) {
        ECDSA_SIG_free(es);
        BN_free(r);
        BN_free(s);
        ERR_clear_error();
        return -1;
    }
    ECDSA_SIG_set0(es, r, s); /* es owns r and s now */
    unsigned char der[80];    /* SEQUENCE of two INTEGERs of ≤ 33 bytes: ≤ 72 bytes */
    int der_len = i2d_ECDSA_SIG(es, NULL);
    int res = -1;
    if (der_len > 0 && (size_t)der_len <= sizeof der) {
        unsigned char *p = der;
        der_len = i2d_ECDSA_SIG(es, &p);
        if (der_len > 0) res = verify_pkey(pkey, tbs, tbs_len, der, (size_t)der_len);
    }
    ECDSA_SIG_free(es);
    ERR_clear_error();
    return res;
}

/* ---- verification ------------------------------------------------------------------------- */

static cr_condition refuse(cr_error *err, const char *text) {
    return cr_error_set(err, CR_NOT_AUTHORIZED, "%s", text);
}

/* A string member, or NULL when absent; *bad when present but not a string. */
static json_t *get_string(json_t *obj, const char *key, bool *bad) {
    json_t *j = obj ? json_object_get(obj, key) : NULL;
    if (j && !json_is_string(j)) {
        *bad = true;
        return NULL;
    }
    return j;
}

static bool names_match(const jwt_names *ns, json_t *j) {
    return names_has(ns, json_string_value(j), json_string_length(j));
}

/* The claim checks after the signature. Fills the claim values of out on success. */
static cr_condition check_claims(const cr_jwt_verifier *v, json_t *claims, const char *room,
                                 size_t room_len, const char *tenant, size_t tenant_len,
                                 double now, cr_jwt_claims *out, json_t **strs, cr_error *err) {
    json_t *j = json_object_get(claims, "exp");
    if (j) {
        if (!json_is_number(j)) return refuse(err, "token claim 'exp' is not a number");
        out->has_exp = true;
        out->exp = json_number_value(j);
        if (!(out->exp > now - v->leeway)) return refuse(err, "token expired");
    }
    j = json_object_get(claims, "nbf");
    if (j) {
        if (!json_is_number(j)) return refuse(err, "token claim 'nbf' is not a number");
        out->has_nbf = true;
        out->nbf = json_number_value(j);
        if (!(out->nbf <= now + v->leeway)) return refuse(err, "token not valid yet");
    }

    bool bad = false;
    json_t *iss = get_string(claims, "iss", &bad);
    if (bad) return refuse(err, "token claim 'iss' is not a string");
    if (v->issuers.n && (!iss || !names_match(&v->issuers, iss)))
        return refuse(err, "token issuer not accepted");

    json_t *aud = json_object_get(claims, "aud");
    bool aud_ok = v->audiences.n == 0;
    if (aud && json_is_string(aud)) {
        if (!aud_ok) aud_ok = names_match(&v->audiences, aud);
    } else if (aud && json_is_array(aud)) {
        size_t i;
        json_t *a;
        json_array_foreach(aud, i, a) {
            if (!json_is_string(a)) return refuse(err, "token claim 'aud' is not a string or an array of strings");
            if (!aud_ok) aud_ok = names_match(&v->audiences, a);
        }
    } else if (aud) {
        return refuse(err, "token claim 'aud' is not a string or an array of strings");
    }
    if (!aud_ok) return refuse(err, "token audience not accepted");

    json_t *sub = get_string(claims, "sub", &bad);
    if (bad) return refuse(err, "token claim 'sub' is not a string");
    if (!sub) return refuse(err, "token subject does not match");
    const char *ss = json_string_value(sub);
    size_t sl = json_string_length(sub);
    if (!(str_eq(ss, sl, "*") || (v->domain.s && ascii_ieq(ss, sl, v->domain.s, v->domain.len)) ||
          (tenant && tenant_len && ascii_ieq(ss, sl, tenant, tenant_len))))
        return refuse(err, "token subject does not match");

    json_t *rc = get_string(claims, "room", &bad);
    if (bad) return refuse(err, "token claim 'room' is not a string");
    if (!rc) return refuse(err, "token room does not match");
    const char *rs = json_string_value(rc);
    size_t rl = json_string_length(rc);
    if (!(str_eq(rs, rl, "*") || ascii_ieq(rs, rl, room, room_len)))
        return refuse(err, "token room does not match");

    json_t *ctx = json_object_get(claims, "context"), *user = NULL, *uid = NULL, *group = NULL;
    if (ctx && !json_is_object(ctx)) return refuse(err, "token claim 'context' is not an object");
    if (ctx) {
        user = json_object_get(ctx, "user");
        if (user && !json_is_object(user))
            return refuse(err, "token claim 'context.user' is not an object");
        group = get_string(ctx, "group", &bad);
        if (bad) return refuse(err, "token claim 'context.group' is not a string");
    }
    if (user) {
        uid = get_string(user, "id", &bad);
        if (bad) return refuse(err, "token claim 'context.user.id' is not a string");
        json_t *m = json_object_get(user, "moderator");
        if (json_is_boolean(m)) {
            out->moderator = json_is_true(m) ? 1 : 0;
        } else if (json_is_string(m) &&
                   ascii_ieq(json_string_value(m), json_string_length(m), "true", 4)) {
            out->moderator = 1;
        } else if (json_is_string(m) &&
                   ascii_ieq(json_string_value(m), json_string_length(m), "false", 5)) {
            out->moderator = 0;
        } else if (m && !json_is_null(m)) {
            return refuse(err, "token claim 'context.user.moderator' is not a boolean");
        }
    }
    strs[0] = iss;
    strs[1] = sub;
    strs[2] = rc;
    strs[3] = uid;
    strs[4] = group;
    return CR_OK;
}

/* "token algorithm X not supported", X quoted only when it is short and plain. */
static cr_condition refuse_alg(cr_error *err, const char *alg, size_t len, const char *what) {
    bool plain = len > 0 && len <= 16;
    for (size_t i = 0; plain && i < len; i++) {
        unsigned char c = (unsigned char)alg[i];
        plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_';
    }
    if (!plain) return cr_error_set(err, CR_NOT_AUTHORIZED, "token algorithm %s", what);
    return cr_error_set(err, CR_NOT_AUTHORIZED, "token algorithm %.*s %s", (int)len, alg, what);
}

cr_condition cr_jwt_verify(const cr_jwt_verifier *v, const char *token, size_t len,
                           const char *room, size_t room_len, const char *tenant,
                           size_t tenant_len, double now, cr_jwt_claims *out, cr_error *err) {
    claims_reset(out);
    if (!isfinite(now)) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "clock is not finite");
    if (len > v->max_token) return refuse(err, "token too long");
    const char *d1 = len ? memchr(token, '.', len) : NULL;
    const char *end = token + len;
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return refuse(err, "token malformed (structure)");
    size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1), sl = (size_t)(end - d2 - 1);

    /* Decode the three segments into the claims arena, used as scratch (reset before the claim
     * strings are written). Decoded sizes add up to less than len: no reallocation after this. */
    if (!cr_buf_reserve(&out->arena, len + 3))
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    unsigned char *hbuf = (unsigned char *)out->arena.data;
    size_t hn, pn, sn;
    if (!b64url_decode(token, hl, hbuf, &hn)) return refuse(err, "token malformed (base64url)");
    unsigned char *pbuf = hbuf + hn;
    if (!b64url_decode(d1 + 1, pl, pbuf, &pn)) return refuse(err, "token malformed (base64url)");
    unsigned char *sbuf = pbuf + pn;
    if (!b64url_decode(d2 + 1, sl, sbuf, &sn)) return refuse(err, "token malformed (base64url)");

    json_t *header = parse_object(hbuf, hn), *claims = NULL;
    if (!header) return refuse(err, "token malformed (JSON header)");
    cr_condition c = CR_OK;
    bool bad = false;
    json_t *alg = get_string(header, "alg", &bad);
    json_t *kid = get_string(header, "kid", &bad);
    const char *an = alg ? json_string_value(alg) : NULL;
    size_t al = alg ? json_string_length(alg) : 0;
    cr_jwt_alg a = 0;
    if (bad) {
        c = refuse(err, "token malformed (JSON header)");
    } else if (!alg) {
        c = refuse(err, "token algorithm missing");
    } else if (ascii_ieq(an, al, "none", 4)) {
        c = refuse(err, "token algorithm none refused");
    } else if (str_eq(an, al, "HS256")) {
        a = CR_JWT_HS256;
    } else if (str_eq(an, al, "RS256")) {
        a = CR_JWT_RS256;
    } else if (str_eq(an, al, "ES256")) {
        a = CR_JWT_ES256;
    } else {
        c = refuse_alg(err, an, al, "not supported");
    }
    if (!c && json_object_get(header, "crit")) c = refuse(err, "token header 'crit' not supported");

    const jwt_key *key = NULL;
    if (!c && a == CR_JWT_HS256) {
        if (!v->hmac) c = refuse_alg(err, an, al, "not supported");
    } else if (!c) {
        if (v->nkeys == 0) {
            c = refuse_alg(err, an, al, "not supported");
        } else if (kid) {
            for (size_t i = 0; i < v->nkeys && !key; i++)
                if (v->keys[i].kid.len == json_string_length(kid) &&
                    memcmp(v->keys[i].kid.s, json_string_value(kid), v->keys[i].kid.len) == 0)
                    key = &v->keys[i];
        } else if (v->nkeys == 1) {
            key = &v->keys[0];
        }
        if (!c && !key) c = refuse(err, "token key id unknown");
        if (!c && key->alg != a) c = refuse_alg(err, an, al, "does not match the key");
    }

    if (!c) {
        int ok;
        size_t tbs_len = (size_t)(d2 - token);
        if (a == CR_JWT_HS256) ok = verify_hs256(v, token, tbs_len, sbuf, sn);
        else if (a == CR_JWT_RS256) ok = verify_pkey(key->pkey, token, tbs_len, sbuf, sn);
        else ok = verify_es256(key->pkey, token, tbs_len, sbuf, sn);
        if (ok < 0) c = cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "signature check failed");
        else if (ok == 0) c = refuse(err, "token signature invalid");
    }
    if (!c) {
        claims = parse_object(pbuf, pn);
        if (!claims) c = refuse(err, "token malformed (JSON claims)");
    }
    json_t *strs[5] = {NULL, NULL, NULL, NULL, NULL};
    if (!c) c = check_claims(v, claims, room, room_len, tenant, tenant_len, now, out, strs, err);
    if (!c) {
        cr_buf_reset(&out->arena); /* scratch no longer needed */
        if (!claims_put(out, &out->kid, kid) || !claims_put(out, &out->iss, strs[0]) ||
            !claims_put(out, &out->sub, strs[1]) || !claims_put(out, &out->room, strs[2]) ||
            !claims_put(out, &out->user_id, strs[3]) || !claims_put(out, &out->group, strs[4]))
            c = cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    }
    json_decref(claims);
    json_decref(header);
    if (c) {
        claims_reset(out);
        return c;
    }
    out->alg = a;
    return CR_OK;
}
