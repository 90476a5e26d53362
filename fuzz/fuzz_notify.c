/*
 * fuzz_notify: a change-channel payload through notify_parse.
 *
 * On success: the kind is the payload's first byte, 1..NOTIFY_IDS_MAX ids,
 * strictly ascending and positive, each one written in the payload as a
 * whole decimal token; and the ids, written back in the canonical form,
 * parse to the same set. Any input is otherwise refused with AK_ERR_ARG.
 */
#include <inttypes.h>
#include <stdbool.h>

#include "core/error.h"
#include "fuzz.h"
#include "store/notify.h"

static struct notify_msg msg, again;

/* Whether `id` appears in s[0..len) as a whole token after the kind: between a separator and a separator, ':' or the end. */
static bool has_token(const char *s, size_t len, int64_t id)
{
    char t[24];
    int tl = snprintf(t, sizeof(t), "%" PRId64, id);

    for (size_t i = 2; i + (size_t)tl <= len; i++) {
        if ((s[i - 1] != ' ' && s[i - 1] != ',') || memcmp(s + i, t, (size_t)tl) != 0)
            continue;
        size_t end = i + (size_t)tl;
        if (end == len || s[end] == ' ' || s[end] == ',' || s[end] == ':')
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = fuzz_dup(data, size), *canon;
    size_t cl = 0, cap = 2 + NOTIFY_IDS_MAX * 21;
    int r = notify_parse(p, size, &msg);

    FUZZ_CHECK(r == 0 || r == AK_ERR_ARG);
    if (r == 0) {
        FUZZ_CHECK(size >= 3 && size <= NOTIFY_PAYLOAD_MAX);
        FUZZ_CHECK((p[0] == 'k' && msg.kind == NOTIFY_KEYS) || (p[0] == 'u' && msg.kind == NOTIFY_USES) ||
                   (p[0] == 'a' && msg.kind == NOTIFY_ACCOUNTS) || (p[0] == 't' && msg.kind == NOTIFY_TOKENS));
        FUZZ_CHECK(msg.n >= 1 && msg.n <= NOTIFY_IDS_MAX);
        for (size_t i = 0; i < msg.n; i++) {
            FUZZ_CHECK(msg.ids[i] > 0);
            FUZZ_CHECK(i == 0 || msg.ids[i - 1] < msg.ids[i]);
            FUZZ_CHECK(has_token(p, size, msg.ids[i]));
        }
        if ((canon = malloc(cap)) == NULL)
            fuzz_fail("malloc", __FILE__, __LINE__);
        cl = (size_t)snprintf(canon, cap, "%c ", p[0]);
        for (size_t i = 0; i < msg.n; i++)
            cl += (size_t)snprintf(canon + cl, cap - cl, "%s%" PRId64, i == 0 ? "" : (p[0] == 'u' ? "," : " "), msg.ids[i]);
        if (cl <= NOTIFY_PAYLOAD_MAX) {
            FUZZ_CHECK(notify_parse(canon, cl, &again) == 0);
            FUZZ_CHECK(again.kind == msg.kind && again.n == msg.n);
            FUZZ_CHECK(memcmp(again.ids, msg.ids, msg.n * sizeof(msg.ids[0])) == 0);
        }
        free(canon);
    }
    free(p);
    return 0;
}
