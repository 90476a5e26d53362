/*
 * framing: see framing.h.
 */
#include "http/framing.h"

#include <strings.h>

/* Whether the header line [p, end) is named `name` (case-insensitive), i.e. "name" then optional blanks then ':'. */
static bool named(const char *p, const char *end, const char *name, size_t n)
{
    if ((size_t)(end - p) <= n || strncasecmp(p, name, n) != 0)
        return false;
    for (p += n; p < end && (*p == ' ' || *p == '\t'); p++)
        ;
    return p < end && *p == ':';
}

bool framing_ok(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    unsigned cl = 0, te = 0;
    bool first = true;

    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\n')
            eol++;
        const char *line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (line_end == p && !first)
            break; /* the empty line: end of the headers */
        if (!first) {
            if (named(p, line_end, "content-length", 14))
                cl++;
            else if (named(p, line_end, "transfer-encoding", 17))
                te++;
        }
        first = false;
        p = eol + 1;
    }
    return cl <= 1 && !(cl != 0 && te != 0);
}
