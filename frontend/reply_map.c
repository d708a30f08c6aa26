/* reply_map.c - mapping the next hop's answers to our replies. */
#include "reply_map.h"

#include <stdio.h>
#include <string.h>

/* Enhanced status code (RFC 3463) of a reply line "550 5.1.1 text" when its
 * class matches the code, else "<class>.0.0". */
static const char *
reply_enhanced(const char *line, int code, char *buf, size_t len)
{
    const char *p = line ? strchr(line, ' ') : NULL;
    if (p && p[1] - '0' == code / 100 && p[2] == '.') {
        size_t n = strcspn(p + 1, " ");
        if (n < len) {
            memcpy(buf, p + 1, n);
            buf[n] = '\0';
            return buf;
        }
    }
    snprintf(buf, len, "%d.0.0", code / 100);
    return buf;
}

void
fe_reply_for_rcpt(const char *job_id, const struct fe_reinject_result *res,
                  const struct fe_reinject_rcpt_result *r, char *out, size_t len)
{
    char enh[16];
    const char *stage = res->stage ? res->stage : "fwd";
    const char *text = r->reply ? r->reply : "";

    if (r->from_mta && r->code >= 200 && r->code < 300) {
        snprintf(out, len, "%d 2.0.0 from MTA(%s): %s (id=%s)", r->code, res->mta, text, job_id);
    } else if (r->from_mta && r->code >= 400 && r->code < 600) {
        snprintf(out, len, "%d %s id=%s, %s by next-hop MTA on relaying, from MTA(%s) during %s: %s",
                 r->code, reply_enhanced(text, r->code, enh, sizeof(enh)), job_id,
                 r->code >= 500 ? "Rejected" : "Temporarily rejected", res->mta, stage, text);
    } else {
        /* our side failed (connect, timeout, lost connection, garbage): the
         * message was not accepted, so Postfix must keep it */
        snprintf(out, len,
                 "451 4.5.0 id=%s, Temporary MTA failure on relaying, from MTA(%s) during %s (%s)",
                 job_id, res->mta, stage, *text ? text : "failed");
    }
}

void
fe_reply_combined(const char *job_id, const struct fe_reinject_result *res, char *out,
                  size_t len)
{
    size_t ok = 0, first_bad = res->n_rcpts;
    for (size_t i = 0; i < res->n_rcpts; i++) {
        const struct fe_reinject_rcpt_result *r = &res->rcpts[i];
        if (r->from_mta && r->code >= 200 && r->code < 300)
            ok++;
        else if (first_bad == res->n_rcpts)
            first_bad = i;
    }
    if (first_bad == res->n_rcpts)
        fe_reply_for_rcpt(job_id, res, &res->rcpts[0], out, len);
    else if (ok)
        snprintf(out, len,
                 "451 4.5.0 id=%s, next-hop MTA accepted only some recipients; "
                 "use LMTP for per-recipient replies", job_id);
    else
        fe_reply_for_rcpt(job_id, res, &res->rcpts[first_bad], out, len);
}
