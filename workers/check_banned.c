/* check_banned.c - banned files: names, types, archives (checks.h).
 *
 * Follows amavisd-new's $banned_filename_re defaults: a basic list of
 * banned last extensions (.exe .vbs .pif .scr .cpl), a wider list banned
 * after another extension ("invoice.pdf.exe", "a.txt   .com": amavis'
 * double-extension rule, where the extension before must hold a letter),
 * banned MIME types whether declared or found by libmagic (a renamed
 * Windows executable is still application/x-dosexec), and operator
 * patterns (PCRE2, caseless) matched against names and both types.
 *
 * Archives are opened with libarchive and walked entry by entry: from
 * memory when the part is whole in memory, else through read and seek
 * callbacks over the part's decoder (mime_reader), so that a large encoded
 * archive is never held decoded in full; recursing into archives inside archives up to archive_max_depth.
 * Budgets are per message: archive_max_entries entries, archive_max_size
 * expanded bytes, and an expansion ratio (expanded : outermost archive
 * bytes, checked once past 1 MiB). Any limit hit is an "overlimit"
 * finding and stops all further archive work for the message, so a zip
 * bomb costs at most archive_max_size bytes of decompression. An entry is
 * held in memory only while it may be an archive itself. */
#include "checks.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/sl_config.h"
#include "util/sl_buf.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define BANNED_NAME_MAX 512
#define MAGIC_HEAD (256 * 1024)      /* bytes given to libmagic */
_Static_assert(MAGIC_HEAD <= MIME_LEAF_HEAD, "libmagic sees a leaf's head only");
#define RATIO_FLOOR (1024ULL * 1024) /* the ratio applies past this many bytes */
#define READ_CHUNK (64 * 1024)

void
check_add(char ***v, size_t *n, const char *fmt, ...)
{
    va_list ap;
    char *s;

    if (*n >= CHECK_MAX_FINDINGS)
        return;
    va_start(ap, fmt);
    s = sl_vasprintf(fmt, ap);
    va_end(ap);
    /* findings end up in log lines and header fields: printable only */
    for (unsigned char *p = (unsigned char *)s; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (strlen(s) > 400)
        strcpy(s + 397, "...");
    *v = sl_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = s;
}

static bool
in_list(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], s) == 0)
            return true;
    return false;
}

static const char *
banned_name_reason_buf(const struct sl_policy_config *p, const char *name, char *why, size_t len)
{
    char buf[BANNED_NAME_MAX];
    const char *base = name;
    size_t n;

    if (name == NULL || name[0] == '\0')
        return NULL;
    for (const char *q = name; *q != '\0'; q++)
        if (*q == '/' || *q == '\\')
            base = q + 1;
    snprintf(buf, sizeof(buf), "%s", base);
    /* Windows drops trailing dots and blanks: "a.exe." runs as a.exe */
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '.' || isspace((unsigned char)buf[n - 1])))
        buf[--n] = '\0';
    char *last = strrchr(buf, '.');
    if (last == NULL || last == buf)
        return NULL;
    const char *ext = last + 1;
    while (isspace((unsigned char)*ext))
        ext++;
    if (*ext == '\0')
        return NULL;
    if (in_list(p->banned_extensions, p->n_banned_extensions, ext)) {
        snprintf(why, len, "banned extension .%s", ext);
        return why;
    }
    if (!in_list(p->banned_double_extensions, p->n_banned_double_extensions, ext))
        return NULL;
    *last = '\0';
    char *prev = strrchr(buf, '.');
    if (prev == NULL)
        return NULL;
    bool letter = false;
    for (const char *q = prev + 1; *q != '\0'; q++)
        letter |= isalpha((unsigned char)*q) != 0;
    if (!letter)
        return NULL;
    /* "pdf   " before ".exe": keep the reason on one tidy line */
    for (char *q = prev + 1; *q != '\0'; q++)
        if (isspace((unsigned char)*q))
            *q = '_';
    snprintf(why, len, "double extension .%s.%s", prev + 1, ext);
    return why;
}

const char *
banned_name_reason(const struct sl_policy_config *p, const char *name)
{
    static __thread char why[160];
    return banned_name_reason_buf(p, name, why, sizeof(why));
}

pcre2_code **
banned_compile(char *const *patterns, size_t n)
{
    pcre2_code **res = sl_calloc(n > 0 ? n : 1, sizeof(*res));

    for (size_t i = 0; i < n; i++) {
        int code;
        PCRE2_SIZE off;
        res[i] =
            pcre2_compile((PCRE2_SPTR)patterns[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_CASELESS | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
        if (res[i] == NULL)
            sl_error("banned_names_re: pattern \"%s\" does not compile; ignored", patterns[i]);
    }
    return res;
}

void
banned_free_compiled(pcre2_code **res, size_t n)
{
    if (res == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        pcre2_code_free(res[i]);
    free(res);
}

/* Index of the first pattern matching s, or -1. */
static int
pattern_match(const struct check_ctx *ctx, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return -1;
    for (size_t i = 0; i < ctx->n_res; i++) {
        if (ctx->res[i] == NULL)
            continue;
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(ctx->res[i], NULL);
        int r = pcre2_match(ctx->res[i], (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
        pcre2_match_data_free(md);
        if (r >= 0)
            return (int)i;
    }
    return -1;
}

static const char *
real_type(const struct check_ctx *ctx, const char *data, size_t len)
{
    const char *t;

    if (ctx->magic == NULL)
        return NULL;
    t = magic_buffer(ctx->magic, data, len < MAGIC_HEAD ? len : MAGIC_HEAD);
    return t;
}

static bool
is_archive_type(const char *t)
{
    static const char *const types[] = {
        "application/zip",
        "application/x-zip-compressed",
        "application/x-7z-compressed",
        "application/x-rar",
        "application/vnd.rar",
        "application/x-rar-compressed",
        "application/gzip",
        "application/x-gzip",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-tar",
        "application/x-gtar",
        "application/x-ustar",
        "application/x-cpio",
        "application/vnd.ms-cab-compressed",
        "application/x-iso9660-image",
        "application/x-lzip",
        "application/x-lzma",
        "application/zstd",
        "application/x-zstd",
        "application/x-lha",
        "application/x-lzh-compressed",
        "application/x-archive",
        "application/java-archive",
        "application/x-compress",
        "application/x-xar",
    };
    if (t == NULL)
        return false;
    for (size_t i = 0; i < SL_N_ELEMENTS(types); i++)
        if (strcasecmp(t, types[i]) == 0)
            return true;
    return false;
}

/* Name and both types against the rules; a finding per banned object. */
static void
check_object(struct banned_state *st, const char *chain, const char *name, const char *declared,
             const char *real)
{
    const struct check_ctx *ctx = st->ctx;
    const struct sl_policy_config *p = ctx->p;
    char why[160];
    int k;

    if (banned_name_reason_buf(p, name, why, sizeof(why)) != NULL) {
        check_add(&st->f->banned, &st->f->n_banned, "%s (%s)", chain, why);
        return;
    }
    if (declared != NULL && in_list(p->banned_types, p->n_banned_types, declared)) {
        check_add(&st->f->banned, &st->f->n_banned, "%s (type %s)", chain, declared);
        return;
    }
    if (real != NULL && in_list(p->banned_types, p->n_banned_types, real)) {
        check_add(&st->f->banned, &st->f->n_banned, "%s (real type %s)", chain, real);
        return;
    }
    if ((k = pattern_match(ctx, name)) >= 0 || (k = pattern_match(ctx, declared)) >= 0 ||
        (k = pattern_match(ctx, real)) >= 0)
        check_add(&st->f->banned, &st->f->n_banned, "%s (banned_names_re: %s)", chain,
                  p->banned_names_re[k]);
}

static void overlimit(struct banned_state *st, const char *chain, const char *fmt, ...)
    SL_PRINTF(3, 4);

static void
overlimit(struct banned_state *st, const char *chain, const char *fmt, ...)
{
    va_list ap;
    char *what;

    va_start(ap, fmt);
    what = sl_vasprintf(fmt, ap);
    va_end(ap);
    check_add(&st->f->overlimit, &st->f->n_overlimit, "%s: %s", what, chain);
    free(what);
    st->stopped = true;
}

static bool
past_deadline(const struct banned_state *st)
{
    return st->ctx->deadline_ms != 0 && sl_now_mono_ms() >= st->ctx->deadline_ms;
}

/* Counts n expanded bytes against the budgets; false once a limit is hit. */
static bool
budget(struct banned_state *st, size_t n, const char *chain)
{
    const struct sl_policy_config *p = st->ctx->p;

    st->expanded += n;
    if (st->expanded > p->archive_max_size) {
        overlimit(st, chain, "archive contents above archive_max_size (%llu bytes)",
                  (unsigned long long)p->archive_max_size);
        return false;
    }
    if (st->expanded > RATIO_FLOOR && st->input > 0 &&
        st->expanded / st->input > p->archive_max_ratio) {
        overlimit(st, chain, "archive expansion ratio above archive_max_ratio (%u)",
                  p->archive_max_ratio);
        return false;
    }
    if (past_deadline(st)) {
        overlimit(st, chain, "archive checks ran out of time");
        return false;
    }
    return true;
}

static bool
looks_encrypted_error(struct archive *a)
{
    const char *e = archive_error_string(a);
    return archive_read_has_encrypted_entries(a) > 0 ||
           (e != NULL && (strcasestr(e, "encrypt") != NULL || strcasestr(e, "passphrase") != NULL ||
                          strcasestr(e, "password") != NULL));
}

/* The name a raw-format "archive" (a lone .gz/.bz2/.xz file) stands for. */
static char *
raw_entry_name(const char *outer)
{
    static const char *const exts[] = {".gz", ".tgz", ".bz2", ".xz", ".lz", ".lzma", ".z", ".zst"};
    char *n = sl_strdup(outer != NULL && outer[0] != '\0' ? outer : "data");
    size_t len = strlen(n);

    for (size_t i = 0; i < SL_N_ELEMENTS(exts); i++) {
        size_t el = strlen(exts[i]);
        if (len > el && strcasecmp(n + len - el, exts[i]) == 0) {
            n[len - el] = '\0';
            if (strcasecmp(exts[i], ".tgz") == 0)
                strcat(n, ".tar"); /* room: ".tgz" was 4 bytes */
            break;
        }
    }
    return n;
}

static void check_archive(struct banned_state *st, const char *chain, const char *outer_name,
                          const char *data, size_t len, unsigned depth);

/* Reads the current entry: keeps the head for libmagic, the whole entry
 * only while it may be an archive to recurse into. */
static void
check_entry(struct banned_state *st, struct archive *a, const char *chain, const char *name,
            unsigned depth)
{
    struct sl_buf buf;
    bool keep_all = true, archive = false;
    const char *real = NULL;
    char chunk[READ_CHUNK];

    sl_buf_init(&buf);
    for (;;) {
        la_ssize_t n = archive_read_data(a, chunk, sizeof(chunk));
        if (n == 0)
            break;
        if (n < 0) {
            if (looks_encrypted_error(a))
                check_add(&st->f->encrypted, &st->f->n_encrypted, "%s", chain);
            else
                sl_debug("archive entry %s: %s", chain, archive_error_string(a));
            break;
        }
        if (!budget(st, (size_t)n, chain))
            break;
        if (keep_all || buf.len < MAGIC_HEAD)
            sl_buf_append(&buf, chunk, (size_t)n);
        if (keep_all && buf.len >= MAGIC_HEAD && real == NULL) {
            /* enough to tell whether it is an archive worth keeping */
            real = real_type(st->ctx, buf.data, buf.len);
            archive = is_archive_type(real);
            keep_all = archive && depth < st->ctx->p->archive_max_depth;
        }
    }
    if (real == NULL && buf.len > 0) {
        real = real_type(st->ctx, buf.data, buf.len);
        archive = is_archive_type(real);
    }
    check_object(st, chain, name, NULL, real);
    if (archive && !st->stopped && keep_all)
        check_archive(st, chain, name, buf.data, buf.len, depth + 1);
    else if (archive && !st->stopped)
        overlimit(st, chain, "archives nested deeper than archive_max_depth (%u)",
                  st->ctx->p->archive_max_depth);
    sl_buf_free(&buf);
}

static struct archive *
archive_new(void)
{
    struct archive *a = archive_read_new();

    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    archive_read_support_format_raw(a); /* lone .gz / .bz2 / .xz files */
    return a;
}

static void archive_walk(struct banned_state *st, struct archive *a, const char *chain,
                         const char *outer_name, unsigned depth);

static void
check_archive(struct banned_state *st, const char *chain, const char *outer_name, const char *data,
              size_t len, unsigned depth)
{
    struct archive *a;

    if (depth > st->ctx->p->archive_max_depth) {
        overlimit(st, chain, "archives nested deeper than archive_max_depth (%u)",
                  st->ctx->p->archive_max_depth);
        return;
    }
    a = archive_new();
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        sl_debug("archive %s: %s", chain, archive_error_string(a));
        archive_read_free(a);
        return;
    }
    archive_walk(st, a, chain, outer_name, depth);
}

/* Walks an opened archive's entries, then frees it. */
static void
archive_walk(struct banned_state *st, struct archive *a, const char *chain,
             const char *outer_name, unsigned depth)
{
    struct archive_entry *entry;
    bool first = true;

    while (!st->stopped) {
        int r = archive_read_next_header(a, &entry);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            if (looks_encrypted_error(a))
                check_add(&st->f->encrypted, &st->f->n_encrypted, "%s", chain);
            else
                sl_debug("archive %s: %s", chain, archive_error_string(a));
            break;
        }
        bool raw = archive_format(a) == ARCHIVE_FORMAT_RAW;
        if (first && raw && archive_filter_count(a) <= 1)
            break; /* raw without a compression filter: not an archive */
        first = false;
        if (++st->entries > st->ctx->p->archive_max_entries) {
            overlimit(st, chain, "more than archive_max_entries (%u) archive entries",
                      st->ctx->p->archive_max_entries);
            break;
        }
        char *name =
            raw ? raw_entry_name(outer_name)
                : sl_strdup(archive_entry_pathname_utf8(entry) != NULL
                                ? archive_entry_pathname_utf8(entry)
                            : archive_entry_pathname(entry) != NULL ? archive_entry_pathname(entry)
                                                                    : "?");
        char *sub = sl_asprintf("%s | %s", chain, name);
        if (archive_entry_is_encrypted(entry)) {
            check_add(&st->f->encrypted, &st->f->n_encrypted, "%s", sub);
            check_object(st, sub, name, NULL, NULL);
            (void)archive_read_data_skip(a);
        } else if (archive_entry_filetype(entry) == AE_IFREG || raw) {
            check_entry(st, a, sub, name, depth);
        } else {
            check_object(st, sub, name, NULL, NULL);
        }
        free(sub);
        free(name);
    }
    archive_read_free(a);
}

/* A nameless part declared text/... whose first KiB is plain text needs no
 * libmagic: its text tests run regular expressions and cost milliseconds per
 * message body, the bulk of a worker's time. Anything with a NUL or other
 * control bytes up front (an executable or archive in disguise) still goes
 * through libmagic. */
static bool
plain_text_body(const char *name, const char *declared_type, const char *data, size_t len)
{
    if ((name != NULL && name[0] != '\0') || declared_type == NULL ||
        strncasecmp(declared_type, "text/", 5) != 0)
        return false;
    size_t n = len < 1024 ? len : 1024;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c < 0x20 && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != 0x1b)
            return false;
    }
    return true;
}

/* An outermost archive read through its part's decoder: libarchive asks
 * for bytes, skips and seeks (a zip's central directory is at the end);
 * a seek backwards decodes again from the start. */
struct arc_stream {
    struct banned_state *st;
    struct mime_reader *r;
    la_int64_t pos, size;
    char buf[READ_CHUNK];
};

static la_ssize_t
arc_read(struct archive *a, void *arg, const void **buf_r)
{
    struct arc_stream *s = arg;
    long k = mime_reader_read(s->r, s->buf, sizeof(s->buf));

    if (k < 0) {
        archive_set_error(a, EIO, "decoding the MIME part failed");
        return -1;
    }
    s->pos += k;
    *buf_r = s->buf;
    return k;
}

/* Reads and drops up to n bytes; returns how many. */
static la_int64_t
arc_forward(struct arc_stream *s, la_int64_t n)
{
    la_int64_t done = 0;

    while (done < n) {
        size_t want = n - done < (la_int64_t)sizeof(s->buf) ? (size_t)(n - done) : sizeof(s->buf);
        long k = mime_reader_read(s->r, s->buf, want);
        if (k <= 0)
            break;
        done += k;
    }
    s->pos += done;
    return done;
}

static la_int64_t
arc_skip(struct archive *a, void *arg, la_int64_t request)
{
    (void)a;
    return arc_forward(arg, request);
}

static la_int64_t
arc_seek(struct archive *a, void *arg, la_int64_t offset, int whence)
{
    struct arc_stream *s = arg;
    la_int64_t to = whence == SEEK_SET ? offset : whence == SEEK_CUR ? s->pos + offset
                                                                     : s->size + offset;

    if (to < 0 || past_deadline(s->st)) {
        archive_set_error(a, EINVAL, "seek refused");
        return ARCHIVE_FATAL;
    }
    if (to > s->size)
        to = s->size;
    if (to < s->pos) {
        mime_reader_rewind(s->r);
        s->pos = 0;
    }
    arc_forward(s, to - s->pos);
    return s->pos;
}

static void
check_archive_stream(struct banned_state *st, const char *chain, const char *outer_name,
                     const struct mime_leaf *leaf)
{
    struct arc_stream *s = sl_calloc(1, sizeof(*s));
    struct archive *a;

    s->st = st;
    s->r = mime_reader_new(leaf);
    s->size = arc_forward(s, INT64_MAX); /* the decoded size, for seeks from the end */
    mime_reader_rewind(s->r);
    s->pos = 0;
    st->input += (unsigned long long)s->size;
    a = archive_new();
    archive_read_set_callback_data(a, s);
    archive_read_set_read_callback(a, arc_read);
    archive_read_set_skip_callback(a, arc_skip);
    archive_read_set_seek_callback(a, arc_seek);
    if (archive_read_open1(a) != ARCHIVE_OK) {
        sl_debug("archive %s: %s", chain, archive_error_string(a));
        archive_read_free(a);
    } else {
        archive_walk(st, a, chain, outer_name, 1);
    }
    mime_reader_free(s->r);
    free(s);
}

void
banned_check_part(struct banned_state *st, const struct mime_leaf *leaf)
{
    /* the tests below need only the part's head (MAGIC_HEAD, 1 KiB) */
    const char *name = leaf->filename, *declared_type = leaf->type;
    const char *real = plain_text_body(name, declared_type, leaf->data, leaf->len)
                           ? "text/plain"
                           : real_type(st->ctx, leaf->data, leaf->len);
    char *chain = sl_asprintf("%s,%s", declared_type != NULL ? declared_type : "?",
                              name != NULL && name[0] != '\0' ? name : "-");
    char *real_copy = real != NULL ? sl_strdup(real) : NULL; /* magic reuses its buffer */

    check_object(st, chain, name, declared_type, real_copy);
    /* archive_max_depth 0: archives are not opened at all */
    if (!st->stopped && st->ctx->p->archive_max_depth > 0 &&
        (is_archive_type(real_copy) || (real_copy == NULL && is_archive_type(declared_type)))) {
        if (leaf->whole) {
            st->input += leaf->len;
            check_archive(st, chain, name, leaf->data, leaf->len, 1);
        } else {
            check_archive_stream(st, chain, name, leaf);
        }
    }
    free(real_copy);
    free(chain);
}
