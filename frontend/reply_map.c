/* reply_map.c - mapping the next hop's answers to our replies. */
#include "reply_map.h"

#include <stdio.h>
#include <string.h>

const char *
fe_reply_enhanced(const char *line, int code, char *buf, size_t len)
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
    /* A 421 from :10025 closes that connection, not ours (RFC 5321 3.8: it
     * obliges the sender to close the channel): our client gets 451, with
     * the next hop's text quoted. */
    int code = r->code == 421 ? 451 : r->code;

    if (r->from_mta && code >= 200 && code < 300) {
        snprintf(out, len, "%d 2.0.0 from MTA(%s): %s (id=%s)", code, res->mta, text, job_id);
    } else if (r->from_mta && code >= 400 && code < 600) {
        snprintf(out, len, "%d %s id=%s, %s by next-hop MTA on relaying, from MTA(%s) during %s: %s",
                 code, fe_reply_enhanced(text, code, enh, sizeof(enh)), job_id,
                 code >= 500 ? "Rejected" : "Temporarily rejected", res->mta, stage, text);
    } else {
        /* our side failed (connect, timeout, lost connection, garbage): the
         * message was not accepted, so Postfix must keep it */
        snprintf(out, len,
                 "451 4.5.0 id=%s, Temporary MTA failure on relaying, from MTA(%s) during %s (%s)",
                 job_id, res->mta, stage, *text ? text : "failed");
    }
}

void
fe_reply_combined(const char *job_id, const int *codes, const char *const *lines, size_t n,
                  size_t accepted, char *out, size_t len)
{
    size_t ok = 0, temp = 0, perm = 0;

    for (size_t i = 0; i < n; i++) {
        ok += codes[i] < 400;
        temp += codes[i] >= 400 && codes[i] < 500;
        perm += codes[i] >= 500;
    }
    if (n > 0 && ok == n)
        snprintf(out, len, "%s", lines[accepted < n ? accepted : 0]);
    else if (n > 0 && (temp == n || perm == n))
        snprintf(out, len, "%s", lines[0]);
    else
        snprintf(out, len,
                 "451 4.5.0 id=%s, not every recipient could be handled; use LMTP for "
                 "per-recipient replies",
                 job_id);
}
