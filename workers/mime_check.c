/* mime_check.c - GMime 3 pass over a message (mime_check.h). */
#include "mime_check.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <string.h>

#include "util/sl_log.h"
#include "util/sl_util.h"

#define MIME_CHECK_MAX_ID 255       /* Message-ID bytes kept for the log line */

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;

static void
mime_init_once(void)
{
    g_mime_init();
}

void
mime_check_init(void)
{
    pthread_once(&mime_once, mime_init_once);
}

static void
on_parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer user_data)
{
    struct mime_info *info = user_data;

    (void)offset;
    (void)item;
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

/* Hands one part to the callback, its content decoded into memory. */
static void
visit_leaf(GMimeObject *obj, unsigned depth, struct walk_ctx *wc, bool encrypted)
{
    struct mime_leaf leaf = { .index = wc->info->parts, .depth = depth, .encrypted = encrypted };
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    char *type = lower_type(ct);
    GByteArray *bytes = NULL;

    leaf.type = type;
    if (ct != NULL)
        leaf.smime_type = g_mime_content_type_get_parameter(ct, "smime-type");
    if (GMIME_IS_PART(obj)) {
        GMimePart *part = GMIME_PART(obj);
        GMimeDataWrapper *content = g_mime_part_get_content(part);
        leaf.filename = g_mime_part_get_filename(part);
        if (content != NULL) {
            GMimeStream *mem = g_mime_stream_mem_new();
            /* Decodes base64/quoted-printable/uuencode; the result is never
             * larger than the encoded part, so bounded by the message. The
             * array is taken from the stream (which would empty it). */
            g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
            g_mime_data_wrapper_write_to_stream(content, mem);
            bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
            g_object_unref(mem);
            leaf.data = (const char *)bytes->data;
            leaf.len = bytes->len;
        }
    }
    if (leaf.data == NULL)
        leaf.data = "";
    wc->fn(wc->ctx, &leaf);
    if (bytes != NULL)
        g_byte_array_free(bytes, TRUE);
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

int
mime_check(const char *data, size_t len, struct mime_info *info_r)
{
    return mime_check_walk(data, len, info_r, NULL, NULL);
}

int
mime_check_walk(const char *data, size_t len, struct mime_info *info_r, mime_leaf_fn *fn,
                void *ctx)
{
    struct walk_ctx wc = { .info = info_r, .fn = fn, .ctx = ctx };
    GMimeParserOptions *options;
    GByteArray *array;
    GMimeStream *stream;
    GMimeParser *parser;
    GMimeMessage *message;
    const char *id;

    memset(info_r, 0, sizeof(*info_r));
    if (len == 0 || len > G_MAXUINT)    /* nothing to parse; GByteArray's limit */
        return -1;

    /* Zero-copy: the stream reads the caller's bytes through a GByteArray
     * it does not own; the array's shell is freed below without its data.
     * Parts keep references on the stream (persist-stream mode), so the
     * message is released before the bytes can go. */
    array = g_byte_array_new_take((guint8 *)data, len);
    stream = g_mime_stream_mem_new_with_byte_array(array);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);

    options = g_mime_parser_options_new();
    g_mime_parser_options_set_warning_callback(options, on_parser_warning, info_r);
    parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    message = g_mime_parser_construct_message(parser, options);

    if (message != NULL) {
        info_r->parsed = true;
        walk(g_mime_message_get_mime_part(message), 0, &wc);
        id = g_mime_message_get_message_id(message);
        if (id != NULL && id[0] != '\0')
            info_r->message_id = sanitize_id(id);
        g_object_unref(message);
    }
    g_object_unref(parser);
    g_mime_parser_options_free(options);
    /* Nothing else may hold the stream now: it points into bytes we do
     * not own. Should GMime keep a reference after all, leak the stream
     * rather than let it outlive the bytes in a usable state. */
    if (G_OBJECT(stream)->ref_count != 1) {
        sl_error("mime_check: GMime still holds the message stream; leaking it");
        return info_r->parsed ? 0 : -1;
    }
    g_object_unref(stream);
    guint8 *ours = g_byte_array_free(array, FALSE);     /* the shell only */
    (void)ours;                                         /* the caller's bytes */
    return info_r->parsed ? 0 : -1;
}

void
mime_info_free(struct mime_info *info)
{
    free(info->message_id);
    info->message_id = NULL;
}
