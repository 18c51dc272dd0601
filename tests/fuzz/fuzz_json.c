/* fuzz_json.c — libFuzzer harness for the JSON request parser (cr_json_parse)
 * — the HTTP door's body.
 * Parse with the default and with tiny limits, render what parsed and parse it again; the
 * invariants are in fuzz_check.h. Built and run by `make fuzz` (tests/fuzz/README.md). */
#include "fuzz_check.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fuzzer process runs one target: its parsers live for the whole run and are reused across
 * inputs, as the module reuses its codec (released at exit by the OS). */
static fuzz_ctx ctx;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ready) {
        if (!fuzz_ctx_init(&ctx)) abort();
        ready = 1;
    }
    (void)fuzz_check_request_input(&ctx, fuzz_parse_json, (const char *)data, size);
    return 0;
}
