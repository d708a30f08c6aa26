/* dsn.h - the non-delivery report sluice sends for the D_BOUNCE destiny,
 * and in SMTP mode for the recipients :10025 refused while it accepted
 * others (outcome.h): a delivery status notification (RFC 3464,
 * multipart/report with message/delivery-status, RFC 6522) to the envelope
 * sender, through the notify path (the origin's reinjection listener), as
 * amavisd-new does.
 *
 * Only the original header section is returned (text/rfc822-headers),
 * whatever RET= asked for: the content was blocked and must not travel
 * back (a virus would). No I/O: builds the message, the reinjector sends
 * it with the null sender. */
#ifndef SLUICE_FRONTEND_DSN_H
#define SLUICE_FRONTEND_DSN_H

#include <stddef.h>

struct fe_dsn_rcpt {
    const char *address;    /* final recipient, without <> */
    const char *orcpt;      /* DSN ORCPT= as received ("rfc822;a@b"), or NULL */
    const char *diagnostic; /* "554 5.7.0 Reject, id=... - INFECTED: ..." */
    const char *status;     /* RFC 3463 code of Status:, or NULL for 5.7.0 */
};

struct fe_dsn_info {
    const char *job_id;
    const char *reporting_host;    /* our hostname */
    const char *sender;            /* envelope sender (the DSN's recipient) */
    const char *envid;             /* DSN ENVID= or NULL */
    const char *category;          /* "INFECTED", "SPAM", "BANNED", ... */
    const char *reason;            /* "INFECTED: Eicar-Test-Signature" */
    const char *cause;             /* what the text says happened ("the next-hop mail
                                      server refused it"), or NULL: "the content filter
                                      blocked it: <reason>" */
    const char *message_id;        /* of the original, with <>, or NULL */
    unsigned long long arrival_ms; /* wall clock */
    const char *original;          /* the original message (its headers are returned) */
    size_t original_len;
    const struct fe_dsn_rcpt *rcpts;
    size_t n_rcpts;
};

/* The DSN message, CRLF line ends, not dot-stuffed; malloc'ed, *len_r bytes. */
char *fe_dsn_build(const struct fe_dsn_info *info, size_t *len_r);

/* True if a recipient's NOTIFY= value allows a failure report (RFC 3461
 * 4.1: absent, or a list holding FAILURE; NEVER forbids it). */
int fe_dsn_notify_failure(const char *notify);

#endif
