/* ctest.h — a tiny assertion header: each CHECK counts one assertion; ctest_done() prints
 * "<prog>: N passed, N failed" and gives the exit status. */
#ifndef CTEST_H
#define CTEST_H
#include <stdio.h>
#include <string.h>

static int ctest_passed, ctest_failed;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (cond) ctest_passed++;                                                              \
        else {                                                                                 \
            ctest_failed++;                                                                    \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);           \
        }                                                                                      \
    } while (0)

#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *g_ = (got), *w_ = (want);                                                  \
        if (g_ && w_ && strcmp(g_, w_) == 0) ctest_passed++;                                   \
        else {                                                                                 \
            ctest_failed++;                                                                    \
            fprintf(stderr, "%s:%d: %s\n   got: %s\n  want: %s\n", __FILE__, __LINE__, #got,   \
                    g_ ? g_ : "(null)", w_ ? w_ : "(null)");                                   \
        }                                                                                      \
    } while (0)

static inline int ctest_done(const char *name) {
    printf("%s: %d passed, %d failed\n", name, ctest_passed, ctest_failed);
    return ctest_failed ? 1 : 0;
}
#endif
