/* sl_smtp_reply.c - incremental parser of SMTP server replies (RFC 5321
 * 4.2, RFC 2034/3463 enhanced status codes). See sl_smtp_reply.h.
 *
 * The peer is our own Postfix on :10025, so anything odd means the
 * connection cannot be trusted: every deviation is a sticky error and the
 * caller answers 4xx (never lose mail: docs/design.md). We therefore do not
 * tolerate LF-only line ends, although some servers send them.
 */
#include "mail/sl_smtp_reply.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sl_buf.h"
#include "util/sl_inbuf.h"

#define REPLY_MAX_LINE 2048     /* bytes per line including CRLF */
#define REPLY_MAX_LINES 100

struct sl_smtp_reply_parser {
    struct sl_inbuf in;         /* unconsumed input */

    const char *error;          /* sticky once set */

    /* the reply being assembled */
    int code;
    char **lines;
    size_t n_lines;
};

struct sl_smtp_reply_parser *
sl_smtp_reply_parser_new(void)
{
    return sl_calloc(1, sizeof(struct sl_smtp_reply_parser));
}

static void
partial_clear(struct sl_smtp_reply_parser *p)
{
    for (size_t i = 0; i < p->n_lines; i++)
        free(p->lines[i]);
    free(p->lines);
    p->lines = NULL;
    p->n_lines = 0;
    p->code = 0;
}

void
sl_smtp_reply_parser_destroy(struct sl_smtp_reply_parser **parserp)
{
    struct sl_smtp_reply_parser *p = *parserp;

    if (p == NULL)
        return;
    partial_clear(p);
    sl_inbuf_free(&p->in);
    free(p);
    *parserp = NULL;
}

void
sl_smtp_reply_parser_feed(struct sl_smtp_reply_parser *p, const void *buf, size_t len)
{
    if (p->error != NULL)
        return;                 /* in error nothing more is looked at */
    sl_inbuf_feed(&p->in, buf, len);
}

void
sl_smtp_reply_parser_reset(struct sl_smtp_reply_parser *p)
{
    partial_clear(p);
    sl_inbuf_clear(&p->in);
    p->error = NULL;
}

static int
fail(struct sl_smtp_reply_parser *p, const char *why, const char **error_r)
{
    p->error = why;
    partial_clear(p);
    sl_inbuf_clear(&p->in);
    *error_r = why;
    return -1;
}

/* RFC 3463 2: class "." subject "." detail, class 2/4/5, subject and detail
 * 1-3 digits, followed by a space or the end of the line. The class must
 * match the reply code's first digit (RFC 2034 4), else it is not one. */
static void
extract_enhanced(const char *text, int code, char enhanced_r[16])
{
    const char *s = text;

    enhanced_r[0] = '\0';
    if (*s != '2' && *s != '4' && *s != '5')
        return;
    if (*s - '0' != code / 100)
        return;
    s++;
    for (int part = 0; part < 2; part++) {
        if (*s != '.')
            return;
        s++;
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4) {
            s++;
            digits++;
        }
        if (digits < 1 || digits > 3)
            return;
    }
    if (*s != ' ' && *s != '\0')
        return;
    size_t n = (size_t)(s - text);      /* at most 1+1+3+1+3 = 9 */
    memcpy(enhanced_r, text, n);
    enhanced_r[n] = '\0';
}

int
sl_smtp_reply_parser_next(struct sl_smtp_reply_parser *p, struct sl_smtp_reply *reply_r,
                          const char **error_r)
{
    if (p->error != NULL) {
        *error_r = p->error;
        return -1;
    }
    for (;;) {
        size_t avail = sl_inbuf_pending(&p->in);
        if (avail == 0)
            return 0;
        const char *start = sl_inbuf_head(&p->in);
        size_t scan = avail < REPLY_MAX_LINE ? avail : REPLY_MAX_LINE;
        const char *lf = memchr(start, '\n', scan);

        if (lf == NULL) {
            if (avail < REPLY_MAX_LINE)
                return 0;
            return fail(p, "reply line too long", error_r);
        }
        size_t linelen = (size_t)(lf - start);
        if (linelen == 0 || start[linelen - 1] != '\r')
            return fail(p, "reply line without CRLF", error_r);
        size_t textlen = linelen - 1;
        if (memchr(start, '\r', textlen) != NULL)
            return fail(p, "bare CR in reply", error_r);
        if (memchr(start, '\0', textlen) != NULL)
            return fail(p, "NUL in reply", error_r);

        /* RFC 5321 4.2: Reply-code [ SP / "-" textstring ] CRLF, code
         * %x32-35 %x30-35 %x30-39. A code alone is a valid last line. */
        if (textlen < 3 || start[0] < '2' || start[0] > '5' || start[1] < '0' || start[1] > '5' ||
            start[2] < '0' || start[2] > '9')
            return fail(p, "bad reply code", error_r);
        bool last;
        if (textlen == 3 || start[3] == ' ')
            last = true;
        else if (start[3] == '-')
            last = false;
        else
            return fail(p, "bad reply code separator", error_r);
        int code = (start[0] - '0') * 100 + (start[1] - '0') * 10 + (start[2] - '0');
        if (p->n_lines > 0 && code != p->code)
            return fail(p, "inconsistent reply codes", error_r);
        if (p->n_lines >= REPLY_MAX_LINES)
            return fail(p, "too many reply lines", error_r);

        p->code = code;
        p->lines = sl_realloc(p->lines, (p->n_lines + 1) * sizeof(*p->lines));
        p->lines[p->n_lines++] =
            textlen > 4 ? sl_strndup(start + 4, textlen - 4) : sl_strdup("");
        sl_inbuf_consume(&p->in, linelen + 1);
        if (!last)
            continue;

        struct sl_buf text;
        sl_buf_init(&text);
        for (size_t i = 0; i < p->n_lines; i++) {
            if (i > 0)
                sl_buf_append(&text, "\n", 1);
            sl_buf_append_str(&text, p->lines[i]);
        }
        reply_r->code = p->code;
        extract_enhanced(p->lines[0], p->code, reply_r->enhanced);
        reply_r->text = sl_buf_steal(&text, NULL);
        reply_r->lines = p->lines;
        reply_r->n_lines = p->n_lines;
        p->lines = NULL;
        p->n_lines = 0;
        p->code = 0;
        return 1;
    }
}

void
sl_smtp_reply_free(struct sl_smtp_reply *reply)
{
    if (reply == NULL)
        return;
    for (size_t i = 0; i < reply->n_lines; i++)
        free(reply->lines[i]);
    free(reply->lines);
    free(reply->text);
    memset(reply, 0, sizeof(*reply));
}

char *
sl_smtp_reply_first_line(const struct sl_smtp_reply *reply)
{
    const char *first = reply->n_lines > 0 ? reply->lines[0] : "";
    return sl_asprintf("%03d%s%s", reply->code, *first ? " " : "", first);
}
