/* mime_check.c - GMime 3 pass over a message (mime_check.h). */
#include "mime_check.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <string.h>

#include "util/sl_log.h"
#include "util/sl_util.h"

#define MIME_CHECK_MAX_ID 255       /* Message-ID bytes kept for the log line */

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;
static pthread_key_t mime_thread_key;

/* A parser and its stream per thread, kept from one message to the next:
 * making them cost about as much as parsing a small message. Between
 * messages the stream reads an empty array, never the last message; the
 * parser keeps its buffers and its copy of the last message's header
 * fields until the next message. */
struct mime_thread {
    GMimeParser *parser;
    GMimeStream *stream;
    GByteArray *empty;
    bool busy; /* a walk runs on it: a nested one takes its own */
};

static void
mime_thread_free(void *p)
{
    struct mime_thread *t = p;

    g_object_unref(t->parser);
    g_object_unref(t->stream);
    g_byte_array_free(t->empty, TRUE);
    free(t);
}

static void
mime_init_once(void)
{
    g_mime_init();
    if (pthread_key_create(&mime_thread_key, mime_thread_free) != 0)
        sl_bug(__FILE__, __LINE__, "pthread_key_create failed");
}

static struct mime_thread *
mime_thread_new(void)
{
    struct mime_thread *t = sl_calloc(1, sizeof(*t));

    t->empty = g_byte_array_new();
    t->stream = g_mime_stream_mem_new_with_byte_array(t->empty);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(t->stream), FALSE);
    t->parser = g_mime_parser_new_with_stream(t->stream);
    return t;
}

/* The thread's parser, or a new one the caller frees (*own_r) when the
 * thread's is busy or cannot be kept. */
static struct mime_thread *
mime_thread_take(bool *own_r)
{
    struct mime_thread *t;

    pthread_once(&mime_once, mime_init_once);
    t = pthread_getspecific(mime_thread_key);
    *own_r = false;
    if (t == NULL) {
        t = mime_thread_new();
        if (pthread_setspecific(mime_thread_key, t) != 0)
            *own_r = true;
    } else if (t->busy) {
        t = mime_thread_new();
        *own_r = true;
    }
    t->busy = true;
    return t;
}

void
mime_check_init(void)
{
    pthread_once(&mime_once, mime_init_once);
}

/* RFC 5322 3.6's fields that may occur once: at the top level of a
 * message, GMime reports a repeated one, or a repeated Content-* field,
 * and no other (a second Received: is the normal case). */
static bool
repeat_reported_at_top(const char *name)
{
    static const char *const once[] = {"bcc",         "cc",         "date",       "from",
                                       "in-reply-to", "message-id", "references", "reply-to",
                                       "sender",      "subject",    "to"};

    if (name == NULL || g_ascii_strncasecmp(name, "Content-", 8) == 0)
        return true;
    for (size_t i = 0; i < SL_N_ELEMENTS(once); i++)
        if (g_ascii_strcasecmp(name, once[i]) == 0)
            return true;
    return false;
}

struct parse_ctx {
    struct mime_info *info;
    gint64 top_end; /* where the top-level header section ends; -1: parsed as a message */
};

static void
on_parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer user_data)
{
    struct parse_ctx *pc = user_data;
    struct mime_info *info = pc->info;

    /* Parsed as a part, every repeated top-level field is reported: keep
     * only what the parse as a message reports (repeat_reported_at_top). */
    if ((code == GMIME_CRIT_CONFLICTING_HEADER || code == GMIME_WARN_DUPLICATED_HEADER) &&
        offset >= 0 && offset < pc->top_end && !repeat_reported_at_top(item))
        return;
    switch (code) {
    case GMIME_CRIT_INVALID_HEADER_NAME:
    case GMIME_CRIT_CONFLICTING_HEADER:
    case GMIME_CRIT_CONFLICTING_PARAMETER:
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
    case GMIME_CRIT_NESTING_OVERFLOW:
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
        info->criticals++;
        break;
    default:
        info->warnings++;
        break;
    }
    if ((unsigned)code < 64)
        info->issue_mask |= 1ULL << (unsigned)code;
}

struct walk_ctx {
    struct mime_info *info;
    mime_leaf_fn *fn;
    void *ctx;
};

static char *
lower_type(GMimeContentType *ct)
{
    char *t = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
    char *out = sl_strdup(t != NULL ? t : "application/octet-stream");

    g_free(t);
    for (char *p = out; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

struct mime_reader {
    GMimeDataWrapper *content;  /* NULL: reading leaf data (a whole leaf) */
    const char *data;
    size_t len, off;
    GMimeStream *filtered;      /* the part's stream through its decoder */
};

static bool
needs_decoding(GMimeContentEncoding enc)
{
    /* what g_mime_data_wrapper_write_to_stream() decodes; the rest is as sent */
    return enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
           enc == GMIME_CONTENT_ENCODING_UUENCODE;
}

static void
reader_open(struct mime_reader *r)
{
    GMimeStream *raw = g_mime_data_wrapper_get_stream(r->content);
    GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(r->content);

    g_mime_stream_reset(raw);
    r->filtered = g_mime_stream_filter_new(raw);
    if (needs_decoding(enc)) {
        GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);
        g_mime_stream_filter_add(GMIME_STREAM_FILTER(r->filtered), f);
        g_object_unref(f);
    }
}

struct mime_reader *
mime_reader_new(const struct mime_leaf *leaf)
{
    struct mime_reader *r = sl_calloc(1, sizeof(*r));

    if (leaf->whole || leaf->content == NULL) {
        r->data = leaf->data;
        r->len = leaf->len;
        return r;
    }
    r->content = g_object_ref(GMIME_DATA_WRAPPER(leaf->content));
    reader_open(r);
    return r;
}

long
mime_reader_read(struct mime_reader *r, char *buf, size_t n)
{
    if (r->content == NULL) {
        size_t k = r->len - r->off < n ? r->len - r->off : n;
        memcpy(buf, r->data + r->off, k);
        r->off += k;
        return (long)k;
    }
    for (;;) {
        ssize_t k = g_mime_stream_read(r->filtered, buf, n);
        /* a filter stream also returns 0 when a block decoded to nothing
         * (base64 line breaks only): the end is only where eos says so */
        if (k != 0 || n == 0 || g_mime_stream_eos(r->filtered))
            return k < 0 ? -1 : (long)k;
    }
}

void
mime_reader_rewind(struct mime_reader *r)
{
    if (r->content == NULL) {
        r->off = 0;
        return;
    }
    g_object_unref(r->filtered);
    reader_open(r);
}

void
mime_reader_free(struct mime_reader *r)
{
    if (r == NULL)
        return;
    if (r->content != NULL) {
        g_object_unref(r->filtered);
        g_object_unref(r->content);
    }
    free(r);
}

/* Where a part sent as is lies in the message, if GMime gave a window on
 * the message's own bytes (a persistent memory stream). */
static bool
content_in_place(GMimeDataWrapper *content, const char **data_r, size_t *len_r)
{
    GMimeStream *s = g_mime_data_wrapper_get_stream(content);
    GByteArray *a;
    gint64 end;

    if (needs_decoding(g_mime_data_wrapper_get_encoding(content)) || !GMIME_IS_STREAM_MEM(s))
        return false;
    a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
    if (a == NULL)
        return false;
    end = s->bound_end < 0 ? (gint64)a->len : s->bound_end;
    if (s->bound_start < 0 || s->bound_start > end || end > (gint64)a->len)
        return false;
    *data_r = (const char *)a->data + s->bound_start;
    *len_r = (size_t)(end - s->bound_start);
    return true;
}

/* Hands one part to the callback: a part sent as is in place, an encoded
 * one decoded up to MIME_LEAF_HEAD (whole if it is no longer). */
static void
visit_leaf(GMimeObject *obj, unsigned depth, struct walk_ctx *wc, bool encrypted)
{
    struct mime_leaf leaf = { .index = wc->info->parts, .depth = depth, .encrypted = encrypted,
                              .whole = true };
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    char *type = lower_type(ct);
    char *head = NULL;

    leaf.type = type;
    if (ct != NULL)
        leaf.smime_type = g_mime_content_type_get_parameter(ct, "smime-type");
    if (GMIME_IS_PART(obj)) {
        GMimePart *part = GMIME_PART(obj);
        GMimeDataWrapper *content = g_mime_part_get_content(part);
        leaf.filename = g_mime_part_get_filename(part);
        leaf.content = content;
        if (content != NULL && !content_in_place(content, &leaf.data, &leaf.len)) {
            struct mime_leaf src = { .whole = false, .content = content };
            struct mime_reader *r = mime_reader_new(&src);
            char one;
            long k = 0;
            head = sl_malloc(MIME_LEAF_HEAD);
            while (leaf.len < MIME_LEAF_HEAD &&
                   (k = mime_reader_read(r, head + leaf.len, MIME_LEAF_HEAD - leaf.len)) > 0)
                leaf.len += (size_t)k;
            /* a part of exactly MIME_LEAF_HEAD bytes is still whole */
            leaf.whole = k <= 0 || mime_reader_read(r, &one, 1) <= 0;
            mime_reader_free(r);
            leaf.data = head;
        }
    }
    if (leaf.data == NULL)
        leaf.data = "";
    wc->fn(wc->ctx, &leaf);
    free(head);
    free(type);
}

/* Recursive, but bounded by MIME_CHECK_MAX_DEPTH whatever GMime built. */
static void
walk(GMimeObject *obj, unsigned depth, struct walk_ctx *wc)
{
    struct mime_info *info = wc->info;

    if (obj == NULL)
        return;
    if (info->parts >= MIME_CHECK_MAX_PARTS || depth >= MIME_CHECK_MAX_DEPTH) {
        info->truncated_walk = true;
        return;
    }
    info->parts++;
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        if (wc->fn != NULL && GMIME_IS_MULTIPART_ENCRYPTED(obj))
            visit_leaf(obj, depth, wc, true);
        for (int i = 0; i < n; i++)
            walk(g_mime_multipart_get_part(mp, i), depth + 1, wc);
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (inner != NULL)
            walk(g_mime_message_get_mime_part(inner), depth + 1, wc);
    } else if (wc->fn != NULL) {
        visit_leaf(obj, depth, wc, false);
    }
}

/* Keeps a Message-ID fit for a log line and a protobuf string. */
static char *
sanitize_id(const char *id)
{
    size_t n = strlen(id);
    char *out;

    if (n > MIME_CHECK_MAX_ID)
        n = MIME_CHECK_MAX_ID;
    out = sl_strndup(id, n);
    for (char *p = out; *p != '\0'; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            *p = '?';
    return out;
}

/* Where GMime ends the top-level header section: at the first empty line
 * (LF or CRLF alone), else at the end. */
static gint64
top_header_end(const char *data, size_t len)
{
    size_t pos = 0;

    while (pos < len) {
        if (data[pos] == '\n' || (data[pos] == '\r' && (pos + 1 == len || data[pos + 1] == '\n')))
            return (gint64)pos;
        const char *nl = memchr(data + pos, '\n', len - pos);
        if (nl == NULL)
            break;
        pos = (size_t)(nl - data) + 1;
    }
    return (gint64)len;
}

/* An mbox separator ("From ...", or ">From ...") on the first line: the
 * parse as a message skips it, the parse as a part stops there. */
static bool
starts_with_from_line(const char *data, size_t len)
{
    if (len > 0 && data[0] == '>') {
        data++;
        len--;
    }
    return len >= 5 && memcmp(data, "From ", 5) == 0;
}

/* The Message-ID as GMime's message object takes it: the value of the
 * last such field, decoded; g_free() it. */
static char *
top_message_id(GMimeObject *top)
{
    GMimeHeaderList *headers = g_mime_object_get_header_list(top);

    for (int i = g_mime_header_list_get_count(headers) - 1; i >= 0; i--) {
        GMimeHeader *h = g_mime_header_list_get_header_at(headers, i);
        if (g_ascii_strcasecmp(g_mime_header_get_name(h), "Message-Id") == 0) {
            const char *value = g_mime_header_get_value(h);
            return value != NULL ? g_mime_utils_decode_message_id(value) : NULL;
        }
    }
    return NULL;
}

/* The top level is parsed as a MIME part rather than a GMimeMessage: the
 * message object parses every address field and the date into objects of
 * their own, about half of GMime's work on a small message, and nothing
 * here reads them. What the two parses report differently is evened out:
 * the warnings (on_parser_warning), the Message-ID (top_message_id), and
 * a leading mbox separator, for which the message parse is kept. */
static int
walk_message(const char *data, size_t len, struct mime_info *info_r, mime_leaf_fn *fn, void *ctx,
             bool as_message)
{
    struct walk_ctx wc = {.info = info_r, .fn = fn, .ctx = ctx};
    struct parse_ctx pc = {.info = info_r, .top_end = -1};
    struct mime_thread *t;
    bool own;
    GMimeParserOptions *options;
    GByteArray *array;
    GMimeMessage *message = NULL;
    GMimeObject *top = NULL;
    char *id = NULL;

    memset(info_r, 0, sizeof(*info_r));
    if (len == 0 || len > G_MAXUINT)    /* nothing to parse; GByteArray's limit */
        return -1;
    as_message = as_message || starts_with_from_line(data, len);
    if (!as_message)
        pc.top_end = top_header_end(data, len);

    /* Zero-copy: the stream reads the caller's bytes through a GByteArray
     * it does not own; the array's shell is freed below without its data.
     * Parts keep references on the stream (persist-stream mode), so the
     * message is released before the bytes can go. */
    array = g_byte_array_new_take((guint8 *)data, len);
    t = mime_thread_take(&own);
    g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(t->stream), array);
    g_mime_parser_init_with_stream(t->parser, t->stream);
    g_mime_parser_set_format(t->parser, GMIME_FORMAT_MESSAGE);

    options = g_mime_parser_options_new();
    g_mime_parser_options_set_warning_callback(options, on_parser_warning, &pc);
    if (as_message) {
        message = g_mime_parser_construct_message(t->parser, options);
        if (message != NULL) {
            top = g_mime_message_get_mime_part(message);
            id = g_strdup(g_mime_message_get_message_id(message));
        }
    } else {
        top = g_mime_parser_construct_part(t->parser, options);
        if (top != NULL)
            id = top_message_id(top);
    }
    if (message != NULL || top != NULL) {
        info_r->parsed = true;
        walk(top, 0, &wc);
        if (id != NULL && id[0] != '\0')
            info_r->message_id = sanitize_id(id);
    }
    g_free(id);
    if (message != NULL)
        g_object_unref(message);
    else if (top != NULL)
        g_object_unref(top);
    g_mime_parser_options_free(options);
    /* The stream lets go of the caller's bytes whoever holds it. Only the
     * thread and the parser should: else start afresh next time, and leave
     * the old stream, now empty, to whatever kept it. */
    g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(t->stream), t->empty);
    t->busy = false;
    if (G_OBJECT(t->stream)->ref_count != 2) {
        sl_error("mime_check: GMime still holds the message stream; leaving it");
        g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(t->stream), g_byte_array_new());
        if (!own && pthread_setspecific(mime_thread_key, NULL) != 0)
            sl_bug(__FILE__, __LINE__, "pthread_setspecific failed");
        own = true;
    }
    if (own)
        mime_thread_free(t);
    guint8 *ours = g_byte_array_free(array, FALSE);     /* the shell only */
    (void)ours;                                         /* the caller's bytes */
    return info_r->parsed ? 0 : -1;
}

int
mime_check(const char *data, size_t len, struct mime_info *info_r)
{
    return walk_message(data, len, info_r, NULL, NULL, false);
}

int
mime_check_walk(const char *data, size_t len, struct mime_info *info_r, mime_leaf_fn *fn, void *ctx)
{
    return walk_message(data, len, info_r, fn, ctx, false);
}

int
mime_check_walk_as_message(const char *data, size_t len, struct mime_info *info_r, mime_leaf_fn *fn,
                           void *ctx)
{
    return walk_message(data, len, info_r, fn, ctx, true);
}

void
mime_info_free(struct mime_info *info)
{
    free(info->message_id);
    info->message_id = NULL;
}
