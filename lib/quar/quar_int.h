/* quar_int.h - what the files of lib/quar share; nothing outside lib/quar
 * includes it (the API is sl_quar.h).
 *
 *   quar_store.c  open/close, ids, the calls dispatched to a backend
 *   quar_text.c   an entry as the stores keep it: amavis' prefix header
 *                 fields, X-Sluice-Quarantine, the message (LF); sealing
 *   quar_local.c  local:/dir
 *   quar_sql.c    sql: (libpq, amavisd-new's schema)
 *   quar_smtp.c   the blocking SMTP client a release sends with
 *   quar_release.c, quar_pdp.c  release, and amavis' AM.PDP protocol */
#ifndef SL_QUAR_INT_H
#define SL_QUAR_INT_H

#include <sodium.h>
#include "quar/sl_quar.h"
#include "util/sl_buf.h"

#define QUAR_KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES

/* One backend: each function as in sl_quar.h, with the store's state. */
struct quar_backend {
    int (*put)(struct sl_quar_store *s, const struct sl_quar_entry *e, const char *text, size_t len,
               char **error_r);
    /* *text_r: the stored text (malloc'ed); 1, 0 (none) or -1. mail_id and
     * type (may be "") are the parsed id; *type_r the entry's type. */
    int (*get)(struct sl_quar_store *s, const char *type, const char *mail_id, char **text_r,
               size_t *len_r, struct sl_quar_entry *meta_r, char **error_r);
    int (*list)(struct sl_quar_store *s, const struct sl_quar_filter *f, sl_quar_list_fn *cb,
                void *ctx, char **error_r);
    int (*del)(struct sl_quar_store *s, const char *type, const char *mail_id, char **error_r);
    int (*expire)(struct sl_quar_store *s, unsigned long long before_ms, unsigned long *n_r,
                  char **error_r);
    int (*mark_released)(struct sl_quar_store *s, const char *mail_id, const char *const *rcpts,
                         size_t n, char **error_r);
    void (*close)(struct sl_quar_store *s);
};

struct sl_quar_store {
    const struct quar_backend *be;
    char *name;  /* quarantine.store as configured */
    char *where; /* local: the directory; sql: the connection string */
    unsigned timeout_s;
    bool sealed; /* quarantine.encryption */
    unsigned char key[QUAR_KEY_LEN];
    void *conn; /* sql: the PGconn, NULL until first use */
};

extern const struct quar_backend quar_local_backend;
extern const struct quar_backend quar_sql_backend;

/* ---- quar_text.c --------------------------------------------------- */

/* The stored text of e: amavis' prefix header fields (local_delivery:
 * Return-Path and Delivered-To first, as amavis' local: method writes),
 * X-Sluice-Quarantine, then the message with LF line ends, sealed with
 * key when key is not NULL. Malloc'ed, *len_r bytes. */
char *quar_text_build(const struct sl_quar_entry *e, bool local_delivery, const unsigned char *key,
                      size_t *len_r);
/* Reads a stored text (sluice's, or amavis' own: the prefix ends at the
 * first header field amavis' release would not skip) into e: envelope,
 * ids, X-Sluice-Quarantine's fields, header fields of the message, and
 * with want_message the message itself (opened with key when sealed; no
 * key: an error). 0, or -1 with *error_r. Fields e has already are
 * replaced. */
int quar_text_parse(const char *text, size_t len, const unsigned char *key, bool want_message,
                    struct sl_quar_entry *e, char **error_r);

/* A header field's value from a header section with LF or CRLF line ends
 * (unfolded, malloc'ed), or NULL. */
char *quar_header(const char *msg, size_t len, const char *name);
/* The message with LF line ends (CRLF pairs made LF); malloc'ed. */
char *quar_to_lf(const char *msg, size_t len, size_t *len_r);
/* Text fit for a varchar column of amavis' schema: control characters and
 * invalid UTF-8 made '?', at most max bytes (cut at a character). */
char *quar_column_text(const char *s, size_t max);

/* ---- quar_smtp.c --------------------------------------------------- */

struct quar_smtp_msg {
    const char *host;
    unsigned port;
    unsigned timeout_s; /* each step */
    const char *helo;
    const char *sender; /* without <>, "" for the null sender */
    const char *const *rcpts;
    size_t n_rcpts;
    const char *head; /* header fields put on top, CRLF lines */
    const char *msg;  /* LF or CRLF lines, not dot-stuffed */
    size_t msg_len;
};
struct quar_smtp_reply {
    int code;    /* the recipient's: its RCPT reply, else the final one */
    char *reply; /* that reply's first line (malloc'ed) */
};
/* 0 and replies_r[n_rcpts] filled (the caller frees each reply), or -1
 * with *error_r: nothing was accepted, whatever the server said. */
int quar_smtp_send(const struct quar_smtp_msg *m, struct quar_smtp_reply *replies_r,
                   char **error_r);

/* ---- quar_store.c -------------------------------------------------- */

/* A fresh error message. */
int quar_fail(char **error_r, const char *fmt, ...) SL_PRINTF(2, 3);
/* "virus" from an amavis content letter (msgs.content): V virus, B banned,
 * S and Y spam, H and M badh; NULL for others. */
const char *quar_type_of_letter(char c);
bool quar_type_valid(const char *type);

#endif
