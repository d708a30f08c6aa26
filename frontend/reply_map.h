/* reply_map.h - what the frontend tells Postfix about one recipient, given
 * what the reinjection MTA answered (or how reaching it failed). The words
 * follow amavisd-new so that Postfix logs, and the
 * operators' log parsers, read the same:
 *
 *   250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as X (id=JOB)
 *   550 5.1.1 id=JOB, Rejected by next-hop MTA on relaying, from MTA(...) during fwd-rcpt-to: 550 5.1.1 ...
 *   451 4.5.0 id=JOB, Temporary MTA failure on relaying, from MTA(...) during fwd-connect (Connection refused)
 *
 * Never a 2xx that the next hop did not give: a local failure is always 4xx. */
#ifndef SLUICE_FRONTEND_REPLY_MAP_H
#define SLUICE_FRONTEND_REPLY_MAP_H

#include <stddef.h>
#include "reinject.h"

/* The enhanced status code (RFC 3463) of a reply line "550 5.1.1 text" when
 * its class matches code, else "<class>.0.0"; written to buf (len bytes,
 * 16 are enough), which is returned. */
const char *fe_reply_enhanced(const char *line, int code, char *buf, size_t len);

/* Writes the reply line (without CRLF) for one recipient into out. */
void fe_reply_for_rcpt(const char *job_id, const struct fe_reinject_result *res,
                       const struct fe_reinject_rcpt_result *r, char *out, size_t len);

/* The one reply of an SMTP (EHLO) transaction, from its recipients' final
 * codes and reply lines: all accepted -> lines[accepted] (the first
 * recipient reinjected: its line quotes the next hop's queue id); all
 * refused temporarily, or all permanently -> lines[0]; a mix cannot be told
 * in one reply and becomes a 4xx: Postfix retries, nothing is lost (and the
 * record keeps the accepted ones from a second copy). outcome.c has turned
 * permanent refusals next to acceptances into reported bounces before. */
void fe_reply_combined(const char *job_id, const int *codes, const char *const *lines, size_t n,
                       size_t accepted, char *out, size_t len);

#endif
