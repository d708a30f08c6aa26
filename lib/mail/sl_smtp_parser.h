/* sl_smtp_parser.h - incremental LMTP/SMTP server-side input parser
 * (RFC 5321 section 4.1, RFC 2033, RFC 2920 pipelining).
 *
 * No I/O: feed bytes with sl_smtp_parser_feed(), pull items with
 * sl_smtp_parser_next(). The parser has two modes:
 *
 *   command mode: every complete CRLF-terminated line becomes one
 *     struct sl_smtp_cmd. A line with a bare LF or bare CR, a NUL, or longer
 *     than limits.max_command_line is an error (-1) of one of the kinds of
 *     enum sl_smtp_error; the parser has then skipped to the next line end
 *     and stays usable.
 *
 *   data mode (after sl_smtp_parser_begin_data()): message lines are
 *     dot-unstuffed (RFC 5321 4.5.2) and appended to the caller's sink
 *     buffer with CRLF line ends. Only <CRLF>.<CRLF> ends the data (the
 *     SMTP smuggling forms <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR> do not);
 *     a bare LF inside data is normalised to CRLF, a bare CR (one not
 *     before an LF) becomes a space, as Postfix makes it; both are counted
 *     in struct sl_smtp_data_info. Once the body exceeds limits.max_message_size
 *     the parser keeps consuming but stops storing and sets too_big.
 *     When the terminating line is seen, next() returns 1 with
 *     cmd_r->verb == SL_CMD_DATA_END and the parser is back in command mode.
 *
 * Strings in *cmd_r point into the parser's buffer and stay valid until the
 * next call to sl_smtp_parser_next() or sl_smtp_parser_feed().
 */
#ifndef SL_SMTP_PARSER_H
#define SL_SMTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include "util/sl_buf.h"
#include "util/sl_util.h"

enum sl_smtp_verb {
    SL_CMD_UNKNOWN = 0,     /* verb not recognised: reply 500 5.5.2 */
    SL_CMD_LHLO,
    SL_CMD_EHLO,
    SL_CMD_HELO,
    SL_CMD_MAIL,
    SL_CMD_RCPT,
    SL_CMD_DATA,
    SL_CMD_BDAT,            /* recognised so we can answer 502, never advertised */
    SL_CMD_RSET,
    SL_CMD_NOOP,
    SL_CMD_QUIT,
    SL_CMD_VRFY,
    SL_CMD_EXPN,
    SL_CMD_HELP,
    SL_CMD_XFORWARD,
    SL_CMD_STARTTLS,
    SL_CMD_AUTH,
    SL_CMD_ETRN,
    SL_CMD_DATA_END,        /* data mode: the message is complete */
};

struct sl_smtp_cmd {
    enum sl_smtp_verb verb;
    const char *verb_text;  /* the verb as the client wrote it (NUL-terminated) */
    const char *arg;        /* the rest of the line after one space, "" if none */
};

struct sl_smtp_limits {
    size_t max_command_line;    /* bytes including CRLF; RFC 5321 says 512, default 4096 */
    size_t max_message_size;    /* bytes of unstuffed message stored; 0 = unlimited */
};

struct sl_smtp_data_info {
    size_t size;            /* bytes of the whole message as received (even if not stored) */
    bool too_big;           /* size exceeded limits.max_message_size; sink holds a prefix */
    unsigned bare_lf;       /* bare LFs normalised to CRLF */
    unsigned bare_cr;       /* bare CRs replaced by a space */
    unsigned nul_bytes;     /* NUL bytes seen (kept; the worker decides) */
    bool eight_bit;         /* any byte >= 0x80 */
    size_t longest_line;    /* without CRLF */
};

struct sl_smtp_parser;

struct sl_smtp_parser *sl_smtp_parser_new(const struct sl_smtp_limits *limits);
void sl_smtp_parser_destroy(struct sl_smtp_parser **parserp);

void sl_smtp_parser_feed(struct sl_smtp_parser *p, const void *buf, size_t len);
/* Bytes fed but not yet consumed by next(). Lets the server detect
 * commands pipelined where RFC 2920 forbids it (e.g. data before 354). */
size_t sl_smtp_parser_pending(const struct sl_smtp_parser *p);
/* Those bytes (sl_smtp_parser_pending() of them, not NUL-terminated), for
 * logging what a client pipelined; valid until the next feed() or next(). */
const char *sl_smtp_parser_pending_data(const struct sl_smtp_parser *p);

/* Switch to data mode; the message goes to *sink (not owned, must outlive
 * data mode). Resets the data info. */
void sl_smtp_parser_begin_data(struct sl_smtp_parser *p, struct sl_buf *sink);
bool sl_smtp_parser_in_data(const struct sl_smtp_parser *p);
const struct sl_smtp_data_info *sl_smtp_parser_data_info(const struct sl_smtp_parser *p);

/* Why a command line was refused, one kind per way the parser refuses one
 * (as Dovecot's lib-smtp reports enum smtp_command_parse_error). */
enum sl_smtp_error {
    SL_SMTP_ERR_NONE = 0,      /* not an error: next() returned 1 or 0 */
    SL_SMTP_ERR_LINE_TOO_LONG, /* no LF within limits.max_command_line (RFC 5321 4.5.3.1.4) */
    SL_SMTP_ERR_BARE_LF,       /* the line ends in LF without CR (RFC 5321 2.3.8) */
    SL_SMTP_ERR_BARE_CR,       /* a CR inside the line, not before its LF (RFC 5321 2.3.8) */
    SL_SMTP_ERR_NUL,           /* a NUL byte in the line */
    SL_SMTP_ERR_COUNT
};

/* 1: *cmd_r filled; 0: need more input; -1: a bad line (skipped):
 * *error_kind_r says what was wrong and *error_r is a static human-readable
 * reason for logs ("line too long", "bare LF in command", ...), the
 * reason of sl_smtp_error_reply(*error_kind_r). *error_kind_r is
 * SL_SMTP_ERR_NONE unless -1. */
SL_WARN_UNUSED int sl_smtp_parser_next(struct sl_smtp_parser *p, struct sl_smtp_cmd *cmd_r,
                                       enum sl_smtp_error *error_kind_r, const char **error_r);

/* What a server answers to a line refused with each kind, in the form
 * Postfix's smtpd gives its protocol errors ("500 5.5.2 Error: bad
 * syntax"); the session then goes on with the next line. */
struct sl_smtp_error_reply {
    int code;             /* RFC 5321 4.2.3 */
    const char *enhanced; /* RFC 3463 */
    const char *text;     /* after the enhanced code: "Error: line too long" */
    const char *reason;   /* the text without "Error: ", next()'s *error_r */
};
/* The row of kind in the table (static); kind must be one next() reports,
 * not SL_SMTP_ERR_NONE. */
const struct sl_smtp_error_reply *sl_smtp_error_reply(enum sl_smtp_error kind);

/* ---- argument parsers (RFC 5321 4.1.2, RFC 1870, RFC 3461, RFC 6152, RFC 6531) ---- */

struct sl_smtp_param {
    char *keyword;          /* upper-cased */
    char *value;            /* NULL if the parameter had no "=value" */
};

struct sl_smtp_path {
    char *address;          /* without angle brackets; "" for the null path <> */
    struct sl_smtp_param *params;
    size_t n_params;
};

/* Parses "FROM:<addr> [params]" (prefix "FROM:") or "TO:<addr> [params]"
 * (prefix "TO:"). Accepts a space after the colon as Postfix does.
 * Returns 0 and fills *path_r (caller frees with sl_smtp_path_free), or -1
 * with *error_r set. max_address bounds the address length. */
SL_WARN_UNUSED int sl_smtp_parse_path(const char *arg, const char *prefix, size_t max_address,
                                      struct sl_smtp_path *path_r, const char **error_r);
void sl_smtp_path_free(struct sl_smtp_path *path);
/* The value of a parameter (case-insensitive keyword), or NULL. *present_r
 * tells a "KEY" without value from an absent one (present_r may be NULL). */
const char *sl_smtp_path_param(const struct sl_smtp_path *path, const char *keyword,
                               bool *present_r);

/* XFORWARD attributes (Postfix XFORWARD_README), in the order Postfix's
 * SMTP client sends them: what our server accepts and what the reinjector
 * passes on to the origin use the same names. */
enum sl_xforward_attr {
    SL_XF_NAME,
    SL_XF_ADDR,
    SL_XF_PORT,
    SL_XF_PROTO,
    SL_XF_HELO,
    SL_XF_IDENT,
    SL_XF_SOURCE,
    SL_XF_DOMAIN,
    SL_XF_COUNT
};
/* "NAME", "ADDR", ... indexed by enum sl_xforward_attr. */
extern const char *const sl_xforward_attr_names[SL_XF_COUNT];
/* The attribute called name (any case), or -1 for one we do not know. */
int sl_xforward_attr_lookup(const char *name);

/* XFORWARD attr=value [attr=value...] (Postfix XFORWARD_README).
 * Calls cb for each pair; returns 0, or -1 on syntax error with *error_r. */
SL_WARN_UNUSED int sl_smtp_parse_xforward(const char *arg,
                                          void (*cb)(void *ctx, const char *name,
                                                     const char *value),
                                          void *ctx, const char **error_r);

#endif
