/* sl_message.h - writing a message to the reinjection MTA: header edits
 * from the worker's verdict applied, then dot-stuffed (RFC 5321 4.5.2).
 *
 * The input is the message as received (CRLF line ends, not stuffed). The
 * header section ends at the first empty line, or at the first line that
 * is neither a header field nor a continuation line (body text without
 * the empty line before it: Postfix's cleanup reads it so), or at the end
 * of the message. Header names compare case-insensitively. */
#ifndef SL_MESSAGE_H
#define SL_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include "util/sl_buf.h"

/* Numbered as HeaderEdit.Op in proto/sluice.proto, so that lib/net maps
 * between the two without knowing this header (sl_wire_header_op_*). */
enum sl_header_op {
    SL_HDR_PREPEND = 0,   /* above all existing headers (trace headers) */
    SL_HDR_APPEND = 1,    /* after the last header */
    SL_HDR_REPLACE = 2,   /* replace all headers of that name; append if none */
    SL_HDR_DELETE = 3,    /* delete all headers of that name */
};

struct sl_header_edit {
    enum sl_header_op op;
    const char *name;     /* "X-Virus-Scanned" */
    const char *value;    /* unfolded; folded here at 78 columns where spaces allow */
};

/* Appends to out the message with edits applied, dot-stuffed, every line
 * CRLF-terminated (a final line without CRLF gets one). Does NOT append the
 * terminating ".\r\n". Edits are applied in order; PREPEND edits end up in
 * the order given, above the original first header; APPEND edits after the
 * last field of the header section, never after body text. When a field
 * was added to a message whose body does not start with the empty line,
 * the empty line is inserted before the body. Returns the number of
 * stuffing dots in what was appended: the message's size as RFC 1870
 * counts it (for SIZE=) is what was appended less that. */
size_t sl_message_write_stuffed(const char *msg, size_t len, const struct sl_header_edit *edits,
                              size_t n_edits, struct sl_buf *out);

/* The streamed form of sl_message_write_stuffed(): appends the header
 * section with edits applied and stuffed (and the empty line it may need),
 * sets *body_off_r to where the body starts in msg, and returns the
 * stuffing dots appended. The body then goes through an sl_stuffer in
 * chunks of any size; the two together give the same bytes. */
size_t sl_message_write_head(const char *msg, size_t len, const struct sl_header_edit *edits,
                             size_t n_edits, struct sl_buf *out, size_t *body_off_r);

struct sl_stuffer {
    bool bol;           /* at the start of a line */
    bool cr;            /* the last byte fed was a CR */
    size_t dots;        /* stuffing dots added */
    size_t out_len;     /* bytes produced (also when out is NULL) */
};

void sl_stuffer_init(struct sl_stuffer *st);
/* Appends p[0, n) stuffed, CRLF line ends, to out; out NULL only counts. */
void sl_stuffer_feed(struct sl_stuffer *st, const char *p, size_t n, struct sl_buf *out);
/* The end of the body: a last line without its CRLF gets one. */
void sl_stuffer_finish(struct sl_stuffer *st, struct sl_buf *out);

/* Where the header section of msg ends (see above): the offset of the
 * empty line, of the first body line, or len. */
size_t sl_message_header_end(const char *msg, size_t len);

/* The value of the first header called name (unfolded, malloc'ed, caller
 * frees), or NULL. Looks only at the header section. */
char *sl_message_header(const char *msg, size_t len, const char *name);

#endif
