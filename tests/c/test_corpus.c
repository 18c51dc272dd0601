/* test_corpus.c — the fuzz corpora replayed deterministically in the normal C test run: every file
 * of tests/fuzz/corpus/<target>/ (xml, json, legacy) goes through its parser with the invariants of
 * the libFuzzer harnesses (tests/fuzz/fuzz_check.h; here a broken invariant counts as a failed
 * CHECK instead of aborting). Inputs a fuzzer found (crashes, broken invariants) are added to the
 * corpus, so they stay fixed. Corpus root: $CR_FUZZ_CORPUS, default tests/fuzz/corpus (run from
 * the repository root, as tests/run-all.sh does). Directories of other targets are skipped. */
#include "ctest.h"

#define FUZZ_ASSERT(cond) CHECK(cond)
#include "../fuzz/fuzz_check.h"

#include <dirent.h>
#include <stdlib.h>

/* Reads the whole file; caller frees. NULL on failure. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    cr_buf b;
    cr_buf_init(&b);
    char chunk[4096];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(chunk, 1, sizeof chunk, f)) > 0) ok = cr_buf_append(&b, chunk, n);
    fclose(f);
    if (!ok || !cr_buf_putc(&b, '\0')) {
        cr_buf_free(&b);
        return NULL;
    }
    *len = b.len - 1;
    return b.data;
}

typedef struct {
    size_t files, ok, valid_named_ok, bad_named_bad;
} tally;

/* Replays one target's directory; file names starting with "valid-" must parse, "bad-" must not. */
static void replay(fuzz_ctx *f, const char *root, const char *target, tally *t) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", root, target);
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        char *data = slurp(path, &len);
        CHECK(data != NULL);
        if (!data) continue;
        int failed_before = ctest_failed;
        cr_condition c;
        if (strcmp(target, "xml") == 0) c = fuzz_check_request_input(f, fuzz_parse_xml, data, len);
        else if (strcmp(target, "json") == 0) c = fuzz_check_request_input(f, fuzz_parse_json, data, len);
        else c = fuzz_check_legacy_input(f, data, len);
        if (strncmp(e->d_name, "valid-", 6) == 0) {
            CHECK(c == CR_OK);
            t->valid_named_ok += c == CR_OK;
        } else if (strncmp(e->d_name, "bad-", 4) == 0) {
            CHECK(c != CR_OK);
            t->bad_named_bad += c != CR_OK;
        }
        if (ctest_failed != failed_before) fprintf(stderr, "  ^ input %s\n", path);
        t->files++;
        t->ok += c == CR_OK;
        free(data);
    }
    closedir(d);
}

int main(void) {
    const char *root = getenv("CR_FUZZ_CORPUS");
    if (!root || !*root) root = "tests/fuzz/corpus";
    fuzz_ctx f;
    CHECK(fuzz_ctx_init(&f));
    static const char *const targets[] = {"xml", "json", "legacy"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        tally t = {0};
        replay(&f, root, targets[i], &t);
        printf("corpus %s: %zu inputs, %zu parse (%zu valid-*, %zu bad-* as named)\n", targets[i],
               t.files, t.ok, t.valid_named_ok, t.bad_named_bad);
        CHECK(t.files >= 5);
        CHECK(t.ok > 0 && t.ok < t.files); /* both outcomes are covered */
    }
    fuzz_ctx_free(&f);
    return ctest_done("test_corpus");
}
