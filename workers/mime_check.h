/* mime_check.h - the worker's MIME pass: parse a message with GMime 3 and
 * report its structure (parts, Message-ID, parser warnings).
 *
 * Hostile input is the normal case here: GMime caps nesting (1024 levels,
 * GMIME_CRIT_NESTING_OVERFLOW) and so does our walk; a message GMime cannot
 * make sense of is reported, never fatal. The policy decisions (BAD-HEADER,
 * banned parts) come in a later issue and will read struct mime_info.
 *
 * Thread-safe once mime_check_init() ran: each call uses its own GMime
 * objects. */
#ifndef SLUICE_MIME_CHECK_H
#define SLUICE_MIME_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_CHECK_MAX_DEPTH 256    /* walk depth (GMime's own parser stops at 1024) */
#define MIME_CHECK_MAX_PARTS 100000 /* parts counted; the walk stops there */

struct mime_info {
    bool parsed;            /* GMime built a message */
    unsigned parts;         /* MIME entities, containers and embedded messages' parts included */
    unsigned warnings;      /* GMIME_WARN_* reported by the parser */
    unsigned criticals;     /* GMIME_CRIT_*: parts may be read differently by other software */
    unsigned long long issue_mask;  /* bit (1 << GMimeParserWarning) for each kind seen */
    bool truncated_walk;    /* MIME_CHECK_MAX_DEPTH or _PARTS reached */
    char *message_id;       /* without <>, printable ASCII only, NULL if none; owned */
};

/* g_mime_init() once per process (pthread_once); call before starting
 * threads that use mime_check(). GMime is never shut down: pools may be
 * started again (tests, reloads). */
void mime_check_init(void);

/* Parses len bytes (not copied, not modified, must stay valid during the
 * call) and fills *info_r. Returns 0, or -1 if no message could be built
 * (*info_r still initialised, parsed = false). */
int mime_check(const char *data, size_t len, struct mime_info *info_r);

/* Frees what *info owns; info may then be reused. */
void mime_info_free(struct mime_info *info);

#endif
