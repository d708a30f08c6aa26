/* sl_quar.h - the quarantine: where the messages the policy stops are kept,
 * shown, given back and expired (lib/quar, target sl_quar;
 * docs/quarantine.md).
 *
 * SYNOPSIS
 *   Two stores, chosen by quarantine.store:
 *     local:/dir   a directory in amavisd-new's layout ($QUARANTINEDIR with
 *                  $quarantine_subdir_levels = 1): /dir/<c>/<type>-<mail_id>,
 *                  <c> the mail_id's first character, one file per entry,
 *                  fsync'ed (file and directory) before sl_quar_put returns;
 *     sql:<conninfo>  PostgreSQL with amavisd-new's own schema (maddr, msgs,
 *                  msgrcpt, quarantine; deploy/sql/amavisd-pg.sql), one
 *                  transaction per entry, COMMITted before sl_quar_put
 *                  returns, so the web front ends written for amavis list it.
 *   An entry is one message: amavis' prefix header fields (X-Envelope-From,
 *   X-Envelope-To, X-Envelope-To-Blocked, X-Quarantine-ID, X-Amavis-Alert),
 *   sluice's own (X-Sluice-Quarantine: type, secret_id, origin, ...) and the
 *   message with LF line ends; with quarantine.encryption the message part
 *   is sealed (libsodium, XChaCha20-Poly1305) and the header fields stay
 *   readable, so that entries can be listed without the key.
 *
 *   Quarantine ids are amavis' "<type>-<mail_id>": virus-, banned-, spam-,
 *   badh-, the mail_id being the job id. Lookups take that, a bare mail_id,
 *   or amavis' file name with its subdirectory ("V/virus-V...").
 *
 * THREADS
 *   Every call blocks (file system, libpq). A struct sl_quar_store is used
 *   by one thread at a time: the frontend opens one per store thread
 *   (frontend/quar_pool.c), the sluice quarantine command one.
 *
 * OWNERSHIP
 *   Strings returned in entries are malloc'ed and belong to the entry
 *   (sl_quar_entry_clear). Errors are malloc'ed messages for the caller. */
#ifndef SL_QUAR_H
#define SL_QUAR_H

#include <stdbool.h>
#include <stddef.h>
#include "util/sl_buf.h"
#include "util/sl_id.h"
#include "util/sl_util.h"

struct sl_config;
struct sl_quar_store;

#define SL_QUAR_TYPE_MAX 8 /* "banned" */
#define SL_QUAR_ID_MAX (SL_QUAR_TYPE_MAX + 1 + SL_ID_LEN)
#define SL_QUAR_SECRET_LEN 12 /* 72 random bits, base64url, as amavis' secret_id */

/* One recipient of a quarantined message. */
struct sl_quar_rcpt {
    char *address;   /* without <> */
    bool blocked;    /* its copy is quarantined (X-Envelope-To-Blocked) */
    bool is_local;   /* msgrcpt.is_local */
    char content;    /* amavis' msgrcpt.content: V B U S Y H O C */
    char ds;         /* amavis' delivery status: P(ass) R(eject) B(ounce) D(iscard) T(empfail) */
    char *smtp_resp; /* the reply given for it, or NULL */
    char rs;         /* release status: ' ', 'R' released (SQL only) */
};

struct sl_quar_entry {
    char type[SL_QUAR_TYPE_MAX + 1]; /* "virus", "banned", "spam", "badh" */
    char mail_id[SL_ID_LEN + 1];
    char secret_id[SL_QUAR_SECRET_LEN + 1]; /* authorizes a release over AM.PDP */
    char *sender;                           /* envelope, without <>, "" for the null sender */
    struct sl_quar_rcpt *rcpts;
    size_t n_rcpts;
    char *origin;      /* origins.<name> the message came from */
    char *client;      /* that Postfix's address (client:PORT releases go there) */
    char *client_addr; /* the original SMTP client (XFORWARD ADDR), or NULL */
    char *category;    /* the message's category: "INFECTED", ... */
    char **alerts;     /* X-Amavis-Alert values */
    size_t n_alerts;
    char *policy; /* policy banks applied ("ORIGINATING"), or NULL */
    bool originating;
    bool spam_scanned;
    double spam_level;
    char *message_id, *from, *subject; /* header fields of the message, or NULL */
    char *host;                        /* the frontend that kept it */
    unsigned long long time_ms;        /* when it was received (wall clock) */
    size_t size;                       /* of the message as received */
    char *message;                     /* LF line ends; sl_quar_put takes CRLF or LF */
    size_t message_len;
};

void sl_quar_entry_clear(struct sl_quar_entry *e);
/* "virus-<mail_id>" into buf. */
void sl_quar_entry_id(const struct sl_quar_entry *e, char buf[SL_QUAR_ID_MAX + 1]);
/* A fresh secret_id (amavis' secret_id, base64url). */
void sl_quar_secret_new(char buf[SL_QUAR_SECRET_LEN + 1]);
/* amavis' one-letter content type of a category name (msgs.content):
 * INFECTED V, BANNED B, UNCHECKED U, SPAM S, SPAMMY Y, BAD-HEADER H,
 * OVERSIZED O, anything else C. */
char sl_quar_content_letter(const char *category);

/* Splits an id as the user gives it: "virus-<mail_id>", "<mail_id>", or a
 * file name "V/virus-<mail_id>". 0 and type_r ("" when none was given),
 * mail_id_r; -1 when it is none of these. */
SL_WARN_UNUSED int sl_quar_id_parse(const char *id, char type_r[SL_QUAR_TYPE_MAX + 1],
                                    char mail_id_r[SL_ID_LEN + 1]);

/* Opens the store of config (quarantine.store, the key of
 * quarantine.encryption). A sql: store connects on first use, and again
 * after a failure. NULL with *error_r when the store is not configured or
 * the key cannot be read. */
struct sl_quar_store *sl_quar_store_open(const struct sl_config *config, char **error_r);
void sl_quar_store_close(struct sl_quar_store **storep);
/* "local:/var/lib/sluice/quarantine" or "sql:host=..." as configured. */
const char *sl_quar_store_name(const struct sl_quar_store *store);

/* Keeps e (message CRLF or LF; mail_id, type, secret set by the caller):
 * on 0 it is durable (fsync'ed, COMMITted). -1 with *error_r. */
SL_WARN_UNUSED int sl_quar_put(struct sl_quar_store *store, const struct sl_quar_entry *e,
                               char **error_r);
/* 1 and *e_r (with the message, opened if sealed), 0 when there is no
 * such entry, -1 with *error_r. */
SL_WARN_UNUSED int sl_quar_get(struct sl_quar_store *store, const char *id,
                               struct sl_quar_entry *e_r, char **error_r);

/* What list returns: the entries (without message) of recipient (NULL:
 * all) received at or after since_ms, oldest first. */
struct sl_quar_filter {
    const char *recipient;
    unsigned long long since_ms;
};
typedef void sl_quar_list_fn(void *ctx, const struct sl_quar_entry *e);
SL_WARN_UNUSED int sl_quar_list(struct sl_quar_store *store, const struct sl_quar_filter *f,
                                sl_quar_list_fn *cb, void *ctx, char **error_r);

/* 1 deleted, 0 no such entry, -1 with *error_r. */
SL_WARN_UNUSED int sl_quar_delete(struct sl_quar_store *store, const char *id, char **error_r);

/* Removes the entries received before before_ms, once across the cluster:
 * only one process at a time does it (sql: a PostgreSQL advisory lock;
 * local: a lock file in the directory). 1 and *n_r entries removed, 0
 * when another process holds the lock (nothing done), -1 with *error_r. */
SL_WARN_UNUSED int sl_quar_expire(struct sl_quar_store *store, unsigned long long before_ms,
                                  unsigned long *n_r, char **error_r);

/* Records that the entry was released to rcpts (sql: msgrcpt.rs = 'R', as
 * amavis' front ends expect; local: nothing kept). 0, or -1. */
SL_WARN_UNUSED int sl_quar_mark_released(struct sl_quar_store *store, const char *mail_id,
                                         const char *const *rcpts, size_t n, char **error_r);

/* ---- release (quar_release.c) ----------------------------------------- */

struct sl_quar_release_req {
    const char *id;           /* as the user gives it (sl_quar_id_parse) */
    const char *secret_id;    /* checked when not NULL (AM.PDP); NULL: not asked */
    const char *const *rcpts; /* where to; none: the blocked recipients */
    size_t n_rcpts;
    const char *to_host; /* NULL: the origin's reinjection address */
    unsigned to_port;
    const char *requested_by; /* Resent-From: (AM.PDP requested_by), or NULL */
    const char *hostname;     /* ours: EHLO, Resent-Message-ID */
};

struct sl_quar_release_result {
    char rel_id[SL_ID_LEN + 1]; /* this release's id: "rel-<id>" in the log */
    char *target;               /* "smtp:[127.0.0.1]:10025" */
    char **rcpts;               /* the recipients, and for each */
    int *codes;                 /* the SMTP code and */
    char **replies;             /* our reply, quoting the MTA's */
    size_t n;
};
void sl_quar_release_result_clear(struct sl_quar_release_result *r);
/* The sender of notifications and releases' Resent-From:
 * quarantine.notify.from, else "virusalert@<hostname>" (amavis'
 * $mailfrom_notify_admin) written into buf. */
const char *sl_quar_notify_from(const struct sl_config *config, const char *hostname, char *buf,
                                size_t len);

/* Gives entry id back to its recipients (or req->rcpts) through the
 * origin's reinjection listener (origins.<name>.reinject of the origin it
 * came from; client:PORT: the Postfix that handed it over) or to_host, as
 * amavisd-new's release_format 'resend': the message as it came, with
 * Resent-From, Resent-To, Resent-Date, Resent-Message-ID and amavis'
 * X-Quarantine-ID on top, the original envelope sender. Logs as amavis
 * does: "(rel-ID) Quarantined message release (miscategorized): ...".
 * 1: sent, *res_r says what each recipient got; 0: refused (no such entry,
 * wrong secret_id, nothing to send), *error_r says why; -1: a temporary
 * failure (store, network), *error_r. */
SL_WARN_UNUSED int sl_quar_release(struct sl_quar_store *store, const struct sl_config *config,
                                   const struct sl_quar_release_req *req,
                                   struct sl_quar_release_result *res_r, char **error_r);

/* ---- AM.PDP (quar_pdp.c) -------------------------------------------------
 * amavisd-new's policy delegation protocol as amavisd-release speaks it:
 * request lines "name=value" (%XX-encoded), CRLF or LF, an empty line
 * ends the request; the reply is lines of the same form and an empty
 * line. No I/O: feed lines, get requests. */

struct sl_pdp_attr {
    char *name;
    char *value;
};
struct sl_pdp_request {
    struct sl_pdp_attr *attrs; /* in order; names may repeat (recipient) */
    size_t n;
};
/* Adds one line (without its line end). 1: the request is complete (an
 * empty line), 0: more lines wanted, -1: not an attribute line (*error_r,
 * static; amavis logs and skips it, so may the caller). */
int sl_pdp_feed_line(struct sl_pdp_request *req, const char *line, size_t len,
                     const char **error_r);
/* The first value of name, or NULL; sl_pdp_all: every value of name. */
const char *sl_pdp_get(const struct sl_pdp_request *req, const char *name);
size_t sl_pdp_all(const struct sl_pdp_request *req, const char *name, const char **out, size_t max);
void sl_pdp_request_clear(struct sl_pdp_request *req);
/* Appends "name=value\r\n" to out, encoded as amavis' proto_encode. */
void sl_pdp_encode(struct sl_buf *out, const char *name, const char *value);

/* The reply to a request (sl_pdp_feed_line returned 1): a release through
 * sl_quar_release (request=release, mail_id, secret_id, quar_type,
 * partition_tag, recipient...; requeue and report are refused), one
 * setreply per recipient as amavis' dispatch_from_quarantine writes them,
 * the final empty line included. */
void sl_pdp_answer(struct sl_quar_store *store, const struct sl_config *config,
                   const char *hostname, const struct sl_pdp_request *req, struct sl_buf *out);

#endif
