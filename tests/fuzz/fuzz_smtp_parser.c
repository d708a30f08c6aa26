/* fuzz_smtp_parser.c - libFuzzer target for lib/mail/sl_smtp_parser (the
 * bytes a client sends to port 10024) and its argument parsers.
 *
 * INPUT
 *   byte 0: the limits (bits 0-2: max_command_line, bits 3-5:
 *   max_message_size, from the tables below); the rest: what the client
 *   sends. The harness plays the server: every DATA command is answered
 *   with sl_smtp_parser_begin_data() at once, as after a 354.
 *
 * INVARIANTS (any violation aborts: libFuzzer reports it as a crash)
 *   1. Fed whole, fed one byte per call (the first TRICKLE_MAX bytes), and
 *      fed in chunks whose sizes come from a hash of the input, the parser produces the same
 * transcript (commands, errors, messages with their data_info).
 *   2. That transcript equals the one of a reference model written here
 *      from RFC 5321 and the header's contract: a command line ends at the
 *      first LF and is valid only as text CRLF without CR or NUL; a line
 *      whose LF is not within max_command_line bytes is "line too long" and
 *      skipped through its LF; a refused line has the error kind of its
 *      fault and that kind's text in the reply table; data ends only at
 *      the first <CRLF>.<CRLF> (so never at <LF>.<LF>, <LF>.<CR><LF>,
 *      <CR>.<CR>); a leading dot is removed only from a real
 *      (CRLF-started) line that has more text before any bare LF;
 *      each bare LF becomes CRLF, each bare CR a space; past
 *      max_message_size only a prefix is stored. In the whole run the bytes consumed after each
 *      item (fed - sl_smtp_parser_pending()) also match the model.
 *   3. A stored message never holds a bare CR or LF (the truncated prefix
 *      of a too-big one may end in the CR of a cut CRLF), ends in CRLF,
 *      and its length is data_info.size.
 *   4. MAIL/RCPT/XFORWARD arguments: a parsed path has a non-empty (RCPT)
 *      address of at most the limit without control characters, parameter
 *      keywords [A-Z0-9][A-Z0-9-]*, values without control characters,
 *      '=' or space; written back as "FROM:<addr> KW=V" it parses to the
 *      same result. XFORWARD reports no pair when it fails, and only
 *      upper-case names and values without space or control characters.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "mail/sl_smtp_parser.h"
#include "util/sl_buf.h"

static const size_t cmd_limits[8] = {2, 3, 7, 16, 64, 512, 1024, 4096};
static const size_t msg_limits[8] = {0, 1, 2, 5, 16, 100, 1000, 0};
#define MAX_ADDRESS 64
#define TRICKLE_MAX 1024

/* ---- transcripts ----
 *
 * Binary records (a tag byte, then values and length-prefixed bytes), so
 * that recording costs a few memcpy per item: the bytes are only made
 * readable when two transcripts differ. */

static void
put_raw(struct sl_buf *t, const void *p, size_t n)
{
    sl_buf_append(t, p, n);
}

static void
put_bytes(struct sl_buf *t, const char *s, size_t n)
{
    put_raw(t, &n, sizeof(n));
    put_raw(t, s, n);
}

static void
put_cmd(struct sl_buf *t, int verb, const char *verb_text, size_t vlen, const char *arg,
        size_t alen)
{
    put_raw(t, "C", 1);
    put_raw(t, &verb, sizeof(verb));
    put_bytes(t, verb_text, vlen);
    put_bytes(t, arg, alen);
}

static void
put_error(struct sl_buf *t, enum sl_smtp_error kind, const char *error)
{
    int k = (int)kind;
    put_raw(t, "E", 1);
    put_raw(t, &k, sizeof(k));
    put_bytes(t, error, strlen(error));
}

static void
put_pos(struct sl_buf *t, size_t pos)
{
    put_raw(t, "@", 1);
    put_raw(t, &pos, sizeof(pos));
}

static void
put_end(struct sl_buf *t, const struct sl_smtp_data_info *in, const char *msg, size_t len)
{
    /* field by field: the struct's padding bytes are not part of it */
    unsigned char flags = (unsigned char)(in->too_big | in->eight_bit << 1);
    put_raw(t, "D", 1);
    put_raw(t, &in->size, sizeof(in->size));
    put_raw(t, &flags, 1);
    put_raw(t, &in->bare_lf, sizeof(in->bare_lf));
    put_raw(t, &in->bare_cr, sizeof(in->bare_cr));
    put_raw(t, &in->nul_bytes, sizeof(in->nul_bytes));
    put_raw(t, &in->longest_line, sizeof(in->longest_line));
    put_bytes(t, msg, len);
}

static void
transcripts_equal(const char *what, const struct sl_buf *a, const struct sl_buf *b)
{
    if (a->len == b->len && memcmp(a->data, b->data, a->len) == 0)
        return;
    size_t i = 0;
    while (i < a->len && i < b->len && a->data[i] == b->data[i])
        i++;
    size_t from = i > 200 ? i - 200 : 0;
    fprintf(stderr, "fuzz: transcripts differ (%s) at offset %zu\n", what, i);
    fuzz_dump("first, from the context", a->data + from, a->len - from);
    fuzz_dump("second, from the context", b->data + from, b->len - from);
    FUZZ_CHECK(false, "%s", what);
}

/* ---- invariant 4: argument parsers ---- */

static bool
has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static void
check_path(const char *arg, const char *prefix)
{
    struct sl_smtp_path path, again;
    const char *error = NULL;

    if (sl_smtp_parse_path(arg, prefix, MAX_ADDRESS, &path, &error) != 0) {
        FUZZ_CHECK(error != NULL && path.address == NULL && path.n_params == 0,
                   "failed parse must leave an empty path and an error");
        return;
    }
    FUZZ_CHECK(path.address != NULL, "no address");
    FUZZ_CHECK(strlen(path.address) <= MAX_ADDRESS, "address of %zu > %d", strlen(path.address),
               MAX_ADDRESS);
    FUZZ_CHECK(!has_ctl(path.address), "control character in address");
    FUZZ_CHECK(strcmp(prefix, "TO:") != 0 || path.address[0] != '\0', "empty RCPT address");

    struct sl_buf w;
    sl_buf_init(&w);
    sl_buf_printf(&w, "%s<%s>", prefix, path.address);
    for (size_t i = 0; i < path.n_params; i++) {
        const struct sl_smtp_param *pr = &path.params[i];
        const char *k = pr->keyword;
        FUZZ_CHECK((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= '0' && k[0] <= '9'), "keyword \"%s\"",
                   k);
        for (; *k != '\0'; k++)
            FUZZ_CHECK((*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '-',
                       "keyword \"%s\"", pr->keyword);
        if (pr->value != NULL) {
            FUZZ_CHECK(pr->value[0] != '\0', "empty value of %s", pr->keyword);
            FUZZ_CHECK(!has_ctl(pr->value) && strpbrk(pr->value, "= ") == NULL, "bad value of %s",
                       pr->keyword);
        }
        bool present = false;
        (void)sl_smtp_path_param(&path, pr->keyword, &present);
        FUZZ_CHECK(present, "sl_smtp_path_param does not find %s", pr->keyword);
        sl_buf_printf(&w, " %s%s%s", pr->keyword, pr->value ? "=" : "", pr->value ? pr->value : "");
    }

    /* Written back, the path must read the same. Not for an address that
     * starts with '@': the parser drops an obsolete source route up to the
     * first ':' (RFC 5321 4.1.2) and does not validate the mailbox after it,
     * so "<@a:@b:c>" gives "@b:c", which reads back as route "@b:" + "c". */
    if (path.address[0] != '@') {
        FUZZ_CHECK(sl_smtp_parse_path(w.data, prefix, MAX_ADDRESS, &again, &error) == 0,
                   "\"%s\" does not parse again: %s", w.data, error);
        FUZZ_CHECK(strcmp(again.address, path.address) == 0 && again.n_params == path.n_params,
                   "\"%s\" parses differently", w.data);
        for (size_t i = 0; i < path.n_params; i++) {
            FUZZ_CHECK(strcmp(again.params[i].keyword, path.params[i].keyword) == 0, "keyword %zu",
                       i);
            FUZZ_CHECK((again.params[i].value == NULL) == (path.params[i].value == NULL) &&
                           (path.params[i].value == NULL ||
                            strcmp(again.params[i].value, path.params[i].value) == 0),
                       "value %zu", i);
        }
        sl_smtp_path_free(&again);
    }
    sl_buf_free(&w);
    sl_smtp_path_free(&path);
}

static void
xforward_cb(void *ctx, const char *name, const char *value)
{
    unsigned *n = ctx;

    (*n)++;
    FUZZ_CHECK(name[0] != '\0', "empty XFORWARD name");
    for (const char *s = name; *s != '\0'; s++)
        FUZZ_CHECK((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-',
                   "XFORWARD name \"%s\"", name);
    FUZZ_CHECK(!has_ctl(value) && strchr(value, ' ') == NULL, "XFORWARD value");
}

static void
check_args(const struct sl_smtp_cmd *cmd)
{
    const char *error = NULL;
    unsigned n = 0;

    switch (cmd->verb) {
    case SL_CMD_MAIL:
        check_path(cmd->arg, "FROM:");
        break;
    case SL_CMD_RCPT:
        check_path(cmd->arg, "TO:");
        break;
    case SL_CMD_XFORWARD:
        if (sl_smtp_parse_xforward(cmd->arg, xforward_cb, &n, &error) != 0)
            FUZZ_CHECK(n == 0 && error != NULL, "XFORWARD failed after %u callbacks", n);
        else
            FUZZ_CHECK(n > 0, "XFORWARD succeeded without pairs");
        break;
    default:
        break;
    }
}

/* ---- the parser under test ---- */

struct run {
    struct sl_smtp_parser *p;
    struct sl_buf t; /* transcript */
    struct sl_buf sink;
    size_t fed;
    bool positions; /* record consumed offsets (whole run) */
    bool check_args;
    size_t max_msg;
};

static void
check_message(const struct run *r, const struct sl_smtp_data_info *in)
{
    const char *m = r->sink.data ? r->sink.data : "";
    size_t n = r->sink.len;

    if (in->too_big) {
        FUZZ_CHECK(r->max_msg != 0 && n == r->max_msg && in->size > r->max_msg,
                   "too_big with %zu stored, size %zu, limit %zu", n, in->size, r->max_msg);
        size_t at = fuzz_bare_crlf_at(m, n);
        FUZZ_CHECK(at == n || (at == n - 1 && m[at] == '\r'), "bare CR/LF at %zu in stored prefix",
                   at);
        return;
    }
    FUZZ_CHECK(n == in->size, "stored %zu, size %zu", n, in->size);
    FUZZ_CHECK(r->max_msg == 0 || n <= r->max_msg, "stored %zu > limit %zu", n, r->max_msg);
    FUZZ_CHECK(fuzz_bare_crlf_at(m, n) == n, "bare CR/LF at %zu in the message",
               fuzz_bare_crlf_at(m, n));
    FUZZ_CHECK(n == 0 || (n >= 2 && m[n - 2] == '\r' && m[n - 1] == '\n'),
               "message does not end in CRLF");
}

static void
drain(struct run *r)
{
    for (;;) {
        struct sl_smtp_cmd cmd;
        enum sl_smtp_error kind = SL_SMTP_ERR_COUNT;
        const char *error = NULL;
        int ret = sl_smtp_parser_next(r->p, &cmd, &kind, &error);

        FUZZ_CHECK(ret < 0 || kind == SL_SMTP_ERR_NONE, "an error kind with %d", ret);
        if (ret == 0)
            return;
        if (ret < 0) {
            FUZZ_CHECK(kind > SL_SMTP_ERR_NONE && kind < SL_SMTP_ERR_COUNT, "-1 with kind %d",
                       (int)kind);
            FUZZ_CHECK(error != NULL && strcmp(error, sl_smtp_error_reply(kind)->reason) == 0,
                       "-1 without the text of its kind");
            put_error(&r->t, kind, error);
        } else if (cmd.verb == SL_CMD_DATA_END) {
            const struct sl_smtp_data_info *in = sl_smtp_parser_data_info(r->p);
            FUZZ_CHECK(!sl_smtp_parser_in_data(r->p), "still in data after DATA_END");
            check_message(r, in);
            put_end(&r->t, in, r->sink.data ? r->sink.data : "", r->sink.len);
            sl_buf_reset(&r->sink);
        } else {
            FUZZ_CHECK(!sl_smtp_parser_in_data(r->p), "a command in data mode");
            put_cmd(&r->t, cmd.verb, cmd.verb_text, strlen(cmd.verb_text), cmd.arg,
                    strlen(cmd.arg));
            if (r->check_args)
                check_args(&cmd);
            if (cmd.verb == SL_CMD_DATA)
                sl_smtp_parser_begin_data(r->p, &r->sink);
        }
        if (r->positions)
            put_pos(&r->t, r->fed - sl_smtp_parser_pending(r->p));
    }
}

static void
run_init(struct run *r, const struct sl_smtp_limits *lim)
{
    memset(r, 0, sizeof(*r));
    r->p = sl_smtp_parser_new(lim);
    sl_buf_init(&r->t);
    sl_buf_init(&r->sink);
    sl_buf_append(&r->t, "", 0);
    r->max_msg = lim->max_message_size;
}

static void
run_feed(struct run *r, const uint8_t *s, size_t n)
{
    sl_smtp_parser_feed(r->p, s, n);
    r->fed += n;
    drain(r);
}

static void
run_free(struct run *r)
{
    sl_smtp_parser_destroy(&r->p);
    sl_buf_free(&r->t);
    sl_buf_free(&r->sink);
}

/* ---- the reference model (invariant 2) ---- */

static const struct {
    const char *name;
    enum sl_smtp_verb verb;
} model_verbs[] = {
    {"LHLO", SL_CMD_LHLO}, {"EHLO", SL_CMD_EHLO},         {"HELO", SL_CMD_HELO},
    {"MAIL", SL_CMD_MAIL}, {"RCPT", SL_CMD_RCPT},         {"DATA", SL_CMD_DATA},
    {"BDAT", SL_CMD_BDAT}, {"RSET", SL_CMD_RSET},         {"NOOP", SL_CMD_NOOP},
    {"QUIT", SL_CMD_QUIT}, {"VRFY", SL_CMD_VRFY},         {"EXPN", SL_CMD_EXPN},
    {"HELP", SL_CMD_HELP}, {"XFORWARD", SL_CMD_XFORWARD}, {"STARTTLS", SL_CMD_STARTTLS},
    {"AUTH", SL_CMD_AUTH}, {"ETRN", SL_CMD_ETRN},
};

static int
model_verb(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof(model_verbs) / sizeof(model_verbs[0]); i++)
        if (strlen(model_verbs[i].name) == n && strncasecmp(s, model_verbs[i].name, n) == 0)
            return (int)model_verbs[i].verb;
    return SL_CMD_UNKNOWN;
}

static const char *
find_lf(const char *s, size_t from, size_t to)
{
    return from < to ? memchr(s + from, '\n', to - from) : NULL;
}

/* The message of data d[0..n) (everything before the final ".\r\n": whole
 * CRLF-terminated lines), as RFC 5321 4.5.2 and the header describe it. */
static void
model_message(const char *d, size_t n, size_t max_msg, struct sl_buf *t)
{
    struct sl_smtp_data_info in;
    struct sl_buf m;
    size_t line = 0;

    memset(&in, 0, sizeof(in));
    sl_buf_init(&m);
    sl_buf_append(&m, "", 0);
    for (size_t i = 0; i < n;) {
        /* one real line: up to the next CRLF (there is one: d ends in CRLF) */
        size_t e = i;
        while (!(d[e] == '\r' && d[e + 1] == '\n'))
            e++;
        size_t k = i;
        if (d[i] == '.' && e - i >= 2 && d[i + 1] != '\n')
            k++; /* a stuffed dot */
        for (; k < e; k++) {
            unsigned char c = (unsigned char)d[k];
            if (c == '\r') {
                in.bare_cr++;
                sl_buf_append(&m, " ", 1);
                line++;
                continue;
            }
            if (c == '\n') {
                in.bare_lf++;
                sl_buf_append(&m, "\r\n", 2);
                if (line > in.longest_line)
                    in.longest_line = line;
                line = 0;
                continue;
            }
            if (c == 0)
                in.nul_bytes++;
            if (c >= 0x80)
                in.eight_bit = true;
            sl_buf_append(&m, &d[k], 1);
            line++;
        }
        sl_buf_append(&m, "\r\n", 2);
        if (line > in.longest_line)
            in.longest_line = line;
        line = 0;
        i = e + 2;
    }
    in.size = m.len;
    size_t stored = m.len;
    if (max_msg != 0 && m.len > max_msg) {
        in.too_big = true;
        stored = max_msg;
    }
    put_end(t, &in, m.data, stored);
    sl_buf_free(&m);
}

static void
model(const char *s, size_t n, size_t max_line, size_t max_msg, bool positions, struct sl_buf *t)
{
    size_t i = 0;

    sl_buf_append(t, "", 0);
    while (i < n) {
        size_t lim = i + max_line < n ? i + max_line : n;
        const char *lf = find_lf(s, i, lim);
        if (lf == NULL) {
            if (n - i < max_line)
                break; /* an incomplete line: need more input */
            put_error(t, SL_SMTP_ERR_LINE_TOO_LONG, "line too long");
            lf = find_lf(s, i + max_line, n);
            i = lf != NULL ? (size_t)(lf - s) + 1 : n;
            if (positions)
                put_pos(t, i);
            continue;
        }
        size_t start = i, len = (size_t)(lf - s) - start;
        size_t text = len > 0 && s[start + len - 1] == '\r' ? len - 1 : len;
        i = start + len + 1;
        const char *bad = NULL;
        enum sl_smtp_error kind = SL_SMTP_ERR_NONE;
        for (size_t k = start; k < start + text && bad == NULL; k++) {
            if (s[k] == '\r') {
                bad = "bare CR in command";
                kind = SL_SMTP_ERR_BARE_CR;
            } else if (s[k] == '\0') {
                bad = "NUL in command";
                kind = SL_SMTP_ERR_NUL;
            }
        }
        if (bad == NULL && text == len) {
            bad = "bare LF in command";
            kind = SL_SMTP_ERR_BARE_LF;
        }
        if (bad != NULL) {
            put_error(t, kind, bad);
            if (positions)
                put_pos(t, i);
            continue;
        }
        const char *sp = memchr(s + start, ' ', text);
        size_t vlen = sp ? (size_t)(sp - (s + start)) : text;
        const char *arg = sp ? sp + 1 : s + start + text;
        size_t alen = sp ? text - vlen - 1 : 0;
        int verb = model_verb(s + start, vlen);
        put_cmd(t, verb, s + start, vlen, arg, alen);
        if (positions)
            put_pos(t, i);
        if (verb != SL_CMD_DATA)
            continue;

        /* Data: ends at the first CRLF "." CRLF, counting the CRLF that
         * ended the DATA line itself (i >= 2 and s[i-2..i) is CRLF here). */
        size_t e = i - 2;
        while (e + 5 <= n && memcmp(s + e, "\r\n.\r\n", 5) != 0)
            e++;
        if (e + 5 > n)
            return; /* unterminated: nothing more comes out */
        model_message(s + i, e + 2 - i, max_msg, t);
        i = e + 5;
        if (positions)
            put_pos(t, i);
    }
}

/* ---- the target ---- */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct sl_smtp_limits lim = {cmd_limits[data[0] & 7], msg_limits[(data[0] >> 3) & 7]};
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    struct run whole, bytes, chunks;
    struct sl_buf ref;

    run_init(&whole, &lim);
    whole.positions = true;
    whole.check_args = true;
    run_feed(&whole, in, n);

    sl_buf_init(&ref);
    model((const char *)in, n, lim.max_command_line, lim.max_message_size, true, &ref);
    transcripts_equal("parser fed whole vs reference model", &whole.t, &ref);
    sl_buf_free(&ref);
    run_free(&whole);

    /* The same without positions, which depend on how much was fed. */
    run_init(&whole, &lim);
    run_feed(&whole, in, n);

    /* One byte per call costs a re-scan of the partial line each time
     * (quadratic); past TRICKLE_MAX bytes the rest goes in one call, and
     * the chunked run below covers long inputs. */
    run_init(&bytes, &lim);
    for (size_t i = 0; i < n; i++) {
        size_t len = i < TRICKLE_MAX ? 1 : n - i;
        run_feed(&bytes, in + i, len);
        i += len - 1;
    }
    transcripts_equal("fed whole vs one byte at a time", &whole.t, &bytes.t);
    run_free(&bytes);

    run_init(&chunks, &lim);
    uint64_t rng = fuzz_hash(data, size);
    for (size_t i = 0; i < n;) {
        size_t len = 1 + (size_t)(fuzz_rand(&rng) % (1u << (fuzz_rand(&rng) % 11)));
        if (len > n - i)
            len = n - i;
        run_feed(&chunks, in + i, len);
        i += len;
    }
    transcripts_equal("fed whole vs in chunks", &whole.t, &chunks.t);
    run_free(&chunks);
    run_free(&whole);
    return 0;
}
