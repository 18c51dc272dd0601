/* buf.c — cr_buf, the growable output buffer. */
#include "cr.h"

#include <stdlib.h>
#include <string.h>

void cr_buf_init(cr_buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cr_buf_free(cr_buf *b) {
    free(b->data);
    cr_buf_init(b);
}

void cr_buf_reset(cr_buf *b) { b->len = 0; }

bool cr_buf_reserve(cr_buf *b, size_t extra) {
    if (extra <= b->cap - b->len) return true;
    if (extra > SIZE_MAX / 2 - b->len) return false;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return false;
    b->data = d;
    b->cap = cap;
    return true;
}

bool cr_buf_append(cr_buf *b, const void *s, size_t n) {
    if (n == 0) return true;
    if (!cr_buf_reserve(b, n)) return false;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return true;
}

bool cr_buf_puts(cr_buf *b, const char *s) { return cr_buf_append(b, s, strlen(s)); }

bool cr_buf_putc(cr_buf *b, char c) {
    if (!cr_buf_reserve(b, 1)) return false;
    b->data[b->len++] = c;
    return true;
}
