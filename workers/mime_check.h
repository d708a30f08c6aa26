/* mime_check.h - the worker's MIME pass: parse a message with GMime 3 and
 * report its structure (parts, Message-ID, parser warnings).
 *
 * Hostile input is the normal case here: GMime caps nesting (1024 levels,
 * GMIME_CRIT_NESTING_OVERFLOW) and so does our walk; a message GMime cannot
 * make sense of is reported, never fatal. The built-in checks (checks.h)
 * walk the leaf parts through mime_check_walk().
 *
 * Thread-safe once mime_check_init() ran: each call uses its own GMime
 * objects. */
#ifndef SLUICE_MIME_CHECK_H
#define SLUICE_MIME_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_CHECK_MAX_DEPTH 256    /* walk depth (GMime's own parser stops at 1024) */
#define MIME_CHECK_MAX_PARTS 100000 /* parts counted; the walk stops there */
#define MIME_LEAF_HEAD (256 * 1024) /* decoded bytes of a part held at once */

struct mime_info {
    bool parsed;            /* GMime built a message */
    unsigned parts;         /* MIME entities, containers and embedded messages' parts included */
    unsigned warnings;      /* GMIME_WARN_* reported by the parser */
    unsigned criticals;     /* GMIME_CRIT_*: parts may be read differently by other software */
    unsigned long long issue_mask;  /* bit (1 << GMimeParserWarning) for each kind seen */
    bool truncated_walk;    /* MIME_CHECK_MAX_DEPTH or _PARTS reached */
    char *message_id;       /* without <>, printable ASCII only, NULL if none; owned */
};

/* A leaf part (or an encrypted container) met by the walk, for the
 * built-in checks. Valid only during the callback. */
struct mime_leaf {
    unsigned index;             /* 1-based, in walk order (amavis' p001...) */
    unsigned depth;             /* 0 = the message's own body */
    const char *filename;       /* decoded (RFC 2231/2047), UTF-8, or NULL */
    const char *type;           /* "application/zip", lowercase */
    const char *smime_type;     /* application/pkcs7-mime's smime-type, or NULL */
    /* The content with Content-Transfer-Encoding undone: all of it when
     * whole, else its first len bytes (MIME_LEAF_HEAD), the rest read
     * through mime_reader_new(). A part sent as 7bit, 8bit or binary is
     * always whole and points into the message; a base64, quoted-printable
     * or uuencoded part is decoded here only up to MIME_LEAF_HEAD, so no
     * part is ever held decoded in full. */
    const char *data;
    size_t len;
    bool whole;
    bool encrypted;             /* multipart/encrypted, S/MIME enveloped-data */
    void *content;              /* the part's GMimeDataWrapper, for mime_reader_new() */
};
typedef void mime_leaf_fn(void *ctx, const struct mime_leaf *leaf);

/* g_mime_init() once per process (pthread_once); call before starting
 * threads that use mime_check(). GMime is never shut down: pools may be
 * started again (tests, reloads). */
void mime_check_init(void);

/* Parses len bytes (not copied, not modified, must stay valid during the
 * call) and fills *info_r. Returns 0, or -1 if no message could be built
 * (*info_r still initialised, parsed = false). */
int mime_check(const char *data, size_t len, struct mime_info *info_r);

/* mime_check() that also calls fn for every leaf part, embedded
 * messages' parts included (fn may be NULL). At most MIME_LEAF_HEAD
 * decoded bytes are held, one part at a time. */
int mime_check_walk(const char *data, size_t len, struct mime_info *info_r, mime_leaf_fn *fn,
                    void *ctx);

/* mime_check_walk() over GMime's message object (GMimeMessage) instead of
 * a top-level part: slower, and the same results. The tests hold the two
 * side by side. */
int mime_check_walk_as_message(const char *data, size_t len, struct mime_info *info_r,
                               mime_leaf_fn *fn, void *ctx);

/* A leaf's decoded content from its start, in chunks of the caller's
 * size: the whole of a part that is not whole in memory. Valid only
 * during the leaf's callback. */
struct mime_reader;
struct mime_reader *mime_reader_new(const struct mime_leaf *leaf);
/* Up to n bytes; 0 at the end of the content, -1 on a read error. */
long mime_reader_read(struct mime_reader *r, char *buf, size_t n);
/* Back to the start of the content (decoding starts over). */
void mime_reader_rewind(struct mime_reader *r);
void mime_reader_free(struct mime_reader *r);

/* Frees what *info owns; info may then be reused. */
void mime_info_free(struct mime_info *info);

#endif
