/*
 * hash.c — the keyed hash and the key source shared by the registry's and the node set's tables.
 */
#include "cr.h"

#include <fcntl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* SipHash-1-3 (Aumasson and Bernstein): one compression round per 8-byte block, three
 * finalization rounds, enough for hash-flooding resistance in a table keyed per object. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                  \
    } while (0)

uint64_t cr_siphash13(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len) {
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = 0;
        for (int k = 7; k >= 0; k--) m = (m << 8) | in[i + (size_t)k];
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t t = 0;
    for (size_t k = len - i; k > 0; k--) t = (t << 8) | in[i + k - 1];
    b |= t;
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void cr_random_key(uint64_t k[2]) {
    if (getrandom(k, 2 * sizeof *k, GRND_NONBLOCK) == (ssize_t)(2 * sizeof *k)) return;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, k, 2 * sizeof *k);
        close(fd);
        if (n == (ssize_t)(2 * sizeof *k)) return;
    }
    k[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)k;
    k[1] = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL;
}
