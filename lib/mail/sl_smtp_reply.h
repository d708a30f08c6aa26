/* sl_smtp_reply.h - incremental parser of SMTP server replies (RFC 5321
 * 4.2, multi-line replies, RFC 2034 enhanced status codes), used by the
 * reinjector to read what the origin's :10025 answers.
 *
 * No I/O: feed bytes, pull complete replies. A reply line without CRLF,
 * with a bad code, a code that changes between lines of one reply, longer
 * than 2048 bytes, or a reply of more than 100 lines is an error (-1): the
 * caller must treat the connection as broken (4xx for its recipients). */
#ifndef SL_SMTP_REPLY_H
#define SL_SMTP_REPLY_H

#include <stddef.h>
#include "util/sl_util.h"

struct sl_smtp_reply {
    int code;                 /* 200..599 */
    char enhanced[16];        /* "2.0.0" from the first line if present, else "" */
    char *text;               /* all lines' text after "NNN-"/"NNN ", joined by "\n";
                                 the enhanced code is kept in the text as sent */
    char **lines;             /* each line's text (same as in text), n_lines of them */
    size_t n_lines;
};

struct sl_smtp_reply_parser;

struct sl_smtp_reply_parser *sl_smtp_reply_parser_new(void);
void sl_smtp_reply_parser_destroy(struct sl_smtp_reply_parser **parserp);
void sl_smtp_reply_parser_feed(struct sl_smtp_reply_parser *p, const void *buf, size_t len);
/* Discards buffered bytes (e.g. when a connection is reused). */
void sl_smtp_reply_parser_reset(struct sl_smtp_reply_parser *p);

/* 1: *reply_r filled (caller owns it: sl_smtp_reply_free); 0: need more;
 * -1: protocol error, *error_r static text; the parser stays in error. */
SL_WARN_UNUSED int sl_smtp_reply_parser_next(struct sl_smtp_reply_parser *p,
                                             struct sl_smtp_reply *reply_r,
                                             const char **error_r);
void sl_smtp_reply_free(struct sl_smtp_reply *reply);

/* The first line of a reply as one string "250 2.0.0 Ok: queued as X"
 * (caller frees). Used to quote the next hop's answer in our own replies. */
char *sl_smtp_reply_first_line(const struct sl_smtp_reply *reply);

#endif
