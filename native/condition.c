/* condition.c — the one table: condition → XMPP name, XMPP error type, HTTP status (docs/protocol.md §2.3). */
#include "cr.h"

#include <stdarg.h>
#include <stdio.h>

static const cr_condition_info conditions[CR_CONDITION_COUNT] = {
    [CR_OK] = {NULL, NULL, 200},
    [CR_BAD_REQUEST] = {"bad-request", "modify", 400},
    [CR_JID_MALFORMED] = {"jid-malformed", "modify", 400},
    [CR_ITEM_NOT_FOUND] = {"item-not-found", "cancel", 404},
    [CR_NOT_AUTHORIZED] = {"not-authorized", "auth", 403},
    [CR_NOT_ACCEPTABLE] = {"not-acceptable", "modify", 400},
    [CR_RESOURCE_CONSTRAINT] = {"resource-constraint", "wait", 429},
    [CR_INTERNAL_SERVER_ERROR] = {"internal-server-error", "cancel", 500},
    [CR_NOT_ALLOWED] = {"not-allowed", "cancel", 405},
    [CR_CONFLICT] = {"conflict", "cancel", 409},
    [CR_FORBIDDEN] = {"forbidden", "auth", 403},
    [CR_SERVICE_UNAVAILABLE] = {"service-unavailable", "cancel", 503},
    [CR_POLICY_VIOLATION] = {"policy-violation", "modify", 400},
};

const cr_condition_info *cr_condition_get(cr_condition c) {
    if ((int)c <= (int)CR_OK || (int)c >= (int)CR_CONDITION_COUNT) return NULL;
    return &conditions[c];
}

cr_condition cr_error_set(cr_error *err, cr_condition c, const char *fmt, ...) {
    if (err) {
        err->condition = c;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
        if (n < 0) err->text[0] = '\0';
    }
    return c;
}
