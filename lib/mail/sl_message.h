/* sl_message.h - writing a message to the reinjection MTA: header edits
 * from the worker's verdict applied, then dot-stuffed (RFC 5321 4.5.2).
 *
 * The input is the message as received (CRLF line ends, not stuffed). The
 * header section ends at the first empty line (or the end of the message
 * if there is none). Header names compare case-insensitively. */
#ifndef SL_MESSAGE_H
#define SL_MESSAGE_H

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
 * the order given, above the original first header. */
void sl_message_write_stuffed(const char *msg, size_t len, const struct sl_header_edit *edits,
                              size_t n_edits, struct sl_buf *out);

/* The value of the first header called name (unfolded, malloc'ed, caller
 * frees), or NULL. Looks only at the header section. */
char *sl_message_header(const char *msg, size_t len, const char *name);

#endif
