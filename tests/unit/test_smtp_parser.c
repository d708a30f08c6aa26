/* test_smtp_parser.c - sl_smtp_parser: commands, data, argument parsers.
 *
 * Every parser case runs fed whole, fed one byte per feed() call, and (for
 * short inputs) split in two at every offset; all runs must produce the
 * same transcript, and that transcript must be the expected one. A refused
 * line shows in it as its error kind and text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/sl_smtp_parser.h"

static const char *const verb_names[] = {
    [SL_CMD_UNKNOWN] = "UNKNOWN",   [SL_CMD_LHLO] = "LHLO",         [SL_CMD_EHLO] = "EHLO",
    [SL_CMD_HELO] = "HELO",         [SL_CMD_MAIL] = "MAIL",         [SL_CMD_RCPT] = "RCPT",
    [SL_CMD_DATA] = "DATA",         [SL_CMD_BDAT] = "BDAT",         [SL_CMD_RSET] = "RSET",
    [SL_CMD_NOOP] = "NOOP",         [SL_CMD_QUIT] = "QUIT",         [SL_CMD_VRFY] = "VRFY",
    [SL_CMD_EXPN] = "EXPN",         [SL_CMD_HELP] = "HELP",         [SL_CMD_XFORWARD] = "XFORWARD",
    [SL_CMD_STARTTLS] = "STARTTLS", [SL_CMD_AUTH] = "AUTH",         [SL_CMD_ETRN] = "ETRN",
    [SL_CMD_DATA_END] = "DATA_END",
};

static const char *const error_names[] = {
    [SL_SMTP_ERR_NONE] = "NONE",
    [SL_SMTP_ERR_LINE_TOO_LONG] = "LINE_TOO_LONG",
    [SL_SMTP_ERR_BARE_LF] = "BARE_LF",
    [SL_SMTP_ERR_BARE_CR] = "BARE_CR",
    [SL_SMTP_ERR_NUL] = "NUL",
};

static void
escape(struct sl_buf *t, const char *s, size_t n)
{
    if (n > 200) {
        /* FNV-1a: big bodies are compared by length and hash */
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)s[i]) * 16777619u;
        sl_buf_printf(t, "<%zu bytes fnv %08x>", n, h);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r')
            sl_buf_append_str(t, "\\r");
        else if (s[i] == '\n')
            sl_buf_append_str(t, "\\n");
        else if (s[i] == '\0')
            sl_buf_append_str(t, "\\0");
        else
            sl_buf_append(t, &s[i], 1);
    }
}

/* Pulls everything; a DATA command is answered with begin_data() at once,
 * as a server would after its 354. */
static void
drain(struct sl_smtp_parser *p, struct sl_buf *t, struct sl_buf *sink, size_t max_line)
{
    for (;;) {
        struct sl_smtp_cmd cmd;
        enum sl_smtp_error kind = SL_SMTP_ERR_COUNT;
    const char *err = NULL;
        int r = sl_smtp_parser_next(p, &cmd, &kind, &err);

        if (r == 0) {
            assert_int_equal(kind, SL_SMTP_ERR_NONE);
            /* memory bound: command mode keeps less than one line */
            if (sl_smtp_parser_in_data(p))
                assert_int_equal(sl_smtp_parser_pending(p), 0);
            else
                assert_true(sl_smtp_parser_pending(p) < max_line);
            return;
        }
        if (r < 0) {
            /* the kind, and the text that goes with it in the reply table */
            assert_true(kind > SL_SMTP_ERR_NONE && kind < SL_SMTP_ERR_COUNT);
            assert_non_null(err);
            assert_string_equal(err, sl_smtp_error_reply(kind)->reason);
            sl_buf_printf(t, "E %s %s\n", error_names[kind], err);
            continue;
        }
        assert_int_equal(kind, SL_SMTP_ERR_NONE);
        assert_int_equal(r, 1);
        if (cmd.verb == SL_CMD_DATA_END) {
            const struct sl_smtp_data_info *di = sl_smtp_parser_data_info(p);
            sl_buf_printf(t, "D size=%zu big=%d lf=%u cr=%u nul=%u 8bit=%d longest=%zu body=",
                          di->size, di->too_big, di->bare_lf, di->bare_cr, di->nul_bytes,
                          di->eight_bit, di->longest_line);
            escape(t, sink->data ? sink->data : "", sink->len);
            sl_buf_append_str(t, "\n");
            sl_buf_reset(sink);
            continue;
        }
        sl_buf_printf(t, "C %s [%s] [", verb_names[cmd.verb], cmd.verb_text);
        escape(t, cmd.arg, strlen(cmd.arg));
        sl_buf_append_str(t, "]\n");
        if (cmd.verb == SL_CMD_DATA)
            sl_smtp_parser_begin_data(p, sink);
    }
}

/* step 0: whole; step 1: one byte per feed; otherwise split at step-2. */
static char *
run(const char *in, size_t len, size_t max_line, size_t max_msg, size_t mode)
{
    struct sl_smtp_limits lim = { .max_command_line = max_line ? max_line : 512,
                                  .max_message_size = max_msg };
    struct sl_smtp_parser *p = sl_smtp_parser_new(&lim);
    struct sl_buf t, sink;

    sl_buf_init(&t);
    sl_buf_init(&sink);
    sl_buf_append(&t, "", 0);
    if (mode == 0) {
        sl_smtp_parser_feed(p, in, len);
        drain(p, &t, &sink, lim.max_command_line);
    } else if (mode == 1) {
        for (size_t i = 0; i < len; i++) {
            sl_smtp_parser_feed(p, in + i, 1);
            drain(p, &t, &sink, lim.max_command_line);
        }
    } else {
        size_t cut = mode - 2;
        sl_smtp_parser_feed(p, in, cut);
        drain(p, &t, &sink, lim.max_command_line);
        sl_smtp_parser_feed(p, in + cut, len - cut);
        drain(p, &t, &sink, lim.max_command_line);
    }
    sl_buf_free(&sink);
    sl_smtp_parser_destroy(&p);
    assert_null(p);
    return sl_buf_steal(&t, NULL);
}

static void
check(const char *name, const char *in, size_t len, size_t max_line, size_t max_msg,
      const char *expect)
{
    char *whole = run(in, len, max_line, max_msg, 0);
    char *trickle = run(in, len, max_line, max_msg, 1);

    if (strcmp(whole, expect) != 0)
        print_error("case %s (whole):\n got: %s\nwant: %s\n", name, whole, expect);
    assert_string_equal(whole, expect);
    if (strcmp(trickle, whole) != 0)
        print_error("case %s (trickle):\n got: %s\nwant: %s\n", name, trickle, whole);
    assert_string_equal(trickle, whole);
    if (len < 300) {
        for (size_t cut = 0; cut <= len; cut++) {
            char *split = run(in, len, max_line, max_msg, cut + 2);
            if (strcmp(split, whole) != 0)
                print_error("case %s (split at %zu):\n got: %s\n", name, cut, split);
            assert_string_equal(split, whole);
            free(split);
        }
    }
    free(whole);
    free(trickle);
}

struct pcase {
    const char *name;
    const char *in;
    size_t len;
    size_t max_line;        /* 0: 512 */
    size_t max_msg;         /* 0: unlimited */
    const char *expect;
};

#define IN(s) s, sizeof(s) - 1

static const struct pcase command_cases[] = {
    { "lhlo", IN("LHLO mx.example\r\n"), 0, 0, "C LHLO [LHLO] [mx.example]\n" },
    { "ehlo lower", IN("ehlo mx.example\r\n"), 0, 0, "C EHLO [ehlo] [mx.example]\n" },
    { "helo", IN("HeLo x\r\n"), 0, 0, "C HELO [HeLo] [x]\n" },
    { "mail", IN("MAIL FROM:<a@b.example>\r\n"), 0, 0,
      "C MAIL [MAIL] [FROM:<a@b.example>]\n" },
    { "rcpt", IN("rcpt TO:<c@d.example>\r\n"), 0, 0, "C RCPT [rcpt] [TO:<c@d.example>]\n" },
    { "data", IN("DATA\r\n"), 0, 0, "C DATA [DATA] []\n" },
    { "bdat", IN("BDAT 100 LAST\r\n"), 0, 0, "C BDAT [BDAT] [100 LAST]\n" },
    { "rset", IN("RSET\r\n"), 0, 0, "C RSET [RSET] []\n" },
    { "noop", IN("NOOP\r\n"), 0, 0, "C NOOP [NOOP] []\n" },
    { "quit", IN("QUIT\r\n"), 0, 0, "C QUIT [QUIT] []\n" },
    { "vrfy", IN("VRFY postmaster\r\n"), 0, 0, "C VRFY [VRFY] [postmaster]\n" },
    { "expn", IN("EXPN list\r\n"), 0, 0, "C EXPN [EXPN] [list]\n" },
    { "help", IN("help\r\n"), 0, 0, "C HELP [help] []\n" },
    { "xforward", IN("XFORWARD NAME=a ADDR=192.0.2.1\r\n"), 0, 0,
      "C XFORWARD [XFORWARD] [NAME=a ADDR=192.0.2.1]\n" },
    { "starttls", IN("StartTLS\r\n"), 0, 0, "C STARTTLS [StartTLS] []\n" },
    { "auth", IN("AUTH PLAIN dGVzdA==\r\n"), 0, 0, "C AUTH [AUTH] [PLAIN dGVzdA==]\n" },
    { "etrn", IN("ETRN example.org\r\n"), 0, 0, "C ETRN [ETRN] [example.org]\n" },
    { "unknown", IN("FOO bar baz\r\n"), 0, 0, "C UNKNOWN [FOO] [bar baz]\n" },
    { "verb prefix is not a verb", IN("MAILX FROM:<a@b>\r\n"), 0, 0,
      "C UNKNOWN [MAILX] [FROM:<a@b>]\n" },
    { "empty line", IN("\r\n"), 0, 0, "C UNKNOWN [] []\n" },
    { "two spaces keep one", IN("NOOP  x\r\n"), 0, 0, "C NOOP [NOOP] [ x]\n" },
    { "8-bit argument", IN("HELO caf\xc3\xa9\r\n"), 0, 0, "C HELO [HELO] [caf\xc3\xa9]\n" },
    { "pipelined", IN("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nNOOP\r\n"), 0, 0,
      "C MAIL [MAIL] [FROM:<a@b>]\nC RCPT [RCPT] [TO:<c@d>]\nC RCPT [RCPT] [TO:<e@f>]\n"
      "C NOOP [NOOP] []\n" },
    { "incomplete line waits", IN("NOOP\r\nQUI"), 0, 0, "C NOOP [NOOP] []\n" },
    { "incomplete CR waits", IN("NOOP\r"), 0, 0, "" },
    /* limit 16 bytes including CRLF */
    { "line at the limit", IN("NOOP 012345678\r\n"), 16, 0, "C NOOP [NOOP] [012345678]\n" },
    { "line one over the limit", IN("NOOP 0123456789\r\nQUIT\r\n"), 16, 0,
      "E LINE_TOO_LONG line too long\nC QUIT [QUIT] []\n" },
    { "long line skipped", IN("NOOP 0123456789abcdefghijklmnopqrstuvwxyz\r\nQUIT\r\n"), 16, 0,
      "E LINE_TOO_LONG line too long\nC QUIT [QUIT] []\n" },
    { "long line ending in bare LF", IN("NOOP 0123456789abcdefghij\nQUIT\r\n"), 16, 0,
      "E LINE_TOO_LONG line too long\nC QUIT [QUIT] []\n" },
    { "two long lines", IN("0123456789abcdefghij\r\n0123456789abcdefghij\r\nQUIT\r\n"), 16, 0,
      "E LINE_TOO_LONG line too long\nE LINE_TOO_LONG line too long\nC QUIT [QUIT] []\n" },
    { "bare LF", IN("NOOP\nQUIT\r\n"), 0, 0,
      "E BARE_LF bare LF in command\nC QUIT [QUIT] []\n" },
    { "bare LF empty line", IN("\nQUIT\r\n"), 0, 0,
      "E BARE_LF bare LF in command\nC QUIT [QUIT] []\n" },
    { "bare CR", IN("NOOP\rQUIT\r\nRSET\r\n"), 0, 0,
      "E BARE_CR bare CR in command\nC RSET [RSET] []\n" },
    { "CR CR LF", IN("NOOP\r\r\nQUIT\r\n"), 0, 0,
      "E BARE_CR bare CR in command\nC QUIT [QUIT] []\n" },
    { "NUL", IN("NO\0OP\r\nQUIT\r\n"), 0, 0, "E NUL NUL in command\nC QUIT [QUIT] []\n" },
    { "CR before NUL: the first bad byte decides", IN("NO\rO\0P\r\nQUIT\r\n"), 0, 0,
      "E BARE_CR bare CR in command\nC QUIT [QUIT] []\n" },
    { "NUL and bare LF: the NUL decides", IN("NO\0OP\nQUIT\r\n"), 0, 0,
      "E NUL NUL in command\nC QUIT [QUIT] []\n" },
    { "smuggled command after bare LF", IN("NOOP\nMAIL FROM:<x@y>\r\n"), 0, 0,
      "E BARE_LF bare LF in command\nC MAIL [MAIL] [FROM:<x@y>]\n" },
};

static const struct pcase data_cases[] = {
    { "data with dot-stuffing",
      IN("DATA\r\nSubject: x\r\n\r\n..leading dot\r\n...\r\n..\r\nend\r\n.\r\nQUIT\r\n"), 0, 0,
      "C DATA [DATA] []\n"
      "D size=40 big=0 lf=0 cr=0 nul=0 8bit=0 longest=12 "
      "body=Subject: x\\r\\n\\r\\n.leading dot\\r\\n..\\r\\n.\\r\\nend\\r\\n\n"
      "C QUIT [QUIT] []\n" },
    { "data ends immediately", IN("DATA\r\n.\r\nQUIT\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=0 big=0 lf=0 cr=0 nul=0 8bit=0 longest=0 body=\n"
      "C QUIT [QUIT] []\n" },
    { "empty line then end", IN("DATA\r\n\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=2 big=0 lf=0 cr=0 nul=0 8bit=0 longest=0 body=\\r\\n\n" },
    { "dot inside a line is text", IN("DATA\r\na.b\r\n x.\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=10 big=0 lf=0 cr=0 nul=0 8bit=0 longest=3 "
      "body=a.b\\r\\n x.\\r\\n\n" },
    { "data not ended", IN("DATA\r\nhello\r\n"), 0, 0, "C DATA [DATA] []\n" },
    { "data not ended by dot without LF", IN("DATA\r\nhello\r\n.\r"), 0, 0, "C DATA [DATA] []\n" },
    /* SMTP smuggling (CVE-2023-51764/5/6): none of these end the data, the
     * smuggled command stays in the body, with CRLF line ends; a bare CR is
     * no line end but a space (as Postfix makes it). */
    { "smuggling LF.LF", IN("DATA\r\nhello\n.\nMAIL FROM:<evil@x>\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=30 big=0 lf=2 cr=0 nul=0 8bit=0 longest=18 "
      "body=hello\\r\\n.\\r\\nMAIL FROM:<evil@x>\\r\\n\n" },
    { "smuggling LF.CRLF", IN("DATA\r\nhello\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=30 big=0 lf=1 cr=0 nul=0 8bit=0 longest=18 "
      "body=hello\\r\\n.\\r\\nMAIL FROM:<evil@x>\\r\\n\n" },
    { "smuggling CR.CR", IN("DATA\r\nhello\r.\rMAIL FROM:<evil@x>\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=28 big=0 lf=0 cr=2 nul=0 8bit=0 longest=26 "
      "body=hello . MAIL FROM:<evil@x>\\r\\n\n" },
    { "smuggling CRLF.LF", IN("DATA\r\nhello\r\n.\nMAIL FROM:<evil@x>\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=30 big=0 lf=1 cr=0 nul=0 8bit=0 longest=18 "
      "body=hello\\r\\n.\\r\\nMAIL FROM:<evil@x>\\r\\n\n" },
    { "smuggling CRLF.CR", IN("DATA\r\nhello\r\n.\rMAIL FROM:<evil@x>\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=28 big=0 lf=0 cr=1 nul=0 8bit=0 longest=19 "
      "body=hello\\r\\n MAIL FROM:<evil@x>\\r\\n\n" },
    { "smuggling CR.CRLF", IN("DATA\r\nhello\r.\r\nMAIL FROM:<evil@x>\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=29 big=0 lf=0 cr=1 nul=0 8bit=0 longest=18 "
      "body=hello .\\r\\nMAIL FROM:<evil@x>\\r\\n\n" },
    { "no unstuffing after a bare line end", IN("DATA\r\na\r..x\n..y\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=12 big=0 lf=1 cr=1 nul=0 8bit=0 longest=5 "
      "body=a ..x\\r\\n..y\\r\\n\n" },
    { "smuggling LF.LF alone never ends", IN("DATA\r\nhello\n.\nQUIT\r\n"), 0, 0,
      "C DATA [DATA] []\n" },
    { "smuggling first line .LF", IN("DATA\r\n.\nQUIT\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=9 big=0 lf=1 cr=0 nul=0 8bit=0 longest=4 "
      "body=.\\r\\nQUIT\\r\\n\n" },
    { "bare CR before CRLF", IN("DATA\r\na\r\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=4 big=0 lf=0 cr=1 nul=0 8bit=0 longest=2 "
      "body=a \\r\\n\n" },
    /* a bare CR in a header does not start a new one (Postfix: a space) */
    { "bare CR in a header", IN("DATA\r\nX-Note: hi\rFrom: ceo@v\r\n\r\nb\rc\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=31 big=0 lf=0 cr=2 nul=0 8bit=0 longest=22 "
      "body=X-Note: hi From: ceo@v\\r\\n\\r\\nb c\\r\\n\n" },
    { "bare CR at a line start folds", IN("DATA\r\nA: 1\r\n\rB: 2\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=13 big=0 lf=0 cr=1 nul=0 8bit=0 longest=5 "
      "body=A: 1\\r\\n B: 2\\r\\n\n" },
    { "too big", IN("DATA\r\n0123456789abcdef\r\nxy\r\n.\r\nQUIT\r\n"), 0, 10,
      "C DATA [DATA] []\nD size=22 big=1 lf=0 cr=0 nul=0 8bit=0 longest=16 body=0123456789\n"
      "C QUIT [QUIT] []\n" },
    { "exactly at the size cap", IN("DATA\r\n01234567\r\n.\r\n"), 0, 10,
      "C DATA [DATA] []\nD size=10 big=0 lf=0 cr=0 nul=0 8bit=0 longest=8 "
      "body=01234567\\r\\n\n" },
    { "8-bit and NUL", IN("DATA\r\ncaf\xc3\xa9\r\na\0b\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=12 big=0 lf=0 cr=0 nul=1 8bit=1 longest=5 "
      "body=caf\xc3\xa9\\r\\na\\0b\\r\\n\n" },
    { "pipelined after data", IN("DATA\r\nx\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\nDATA\r\n"
                                 "y\r\n.\r\nQUIT\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=3 big=0 lf=0 cr=0 nul=0 8bit=0 longest=1 body=x\\r\\n\n"
      "C MAIL [MAIL] [FROM:<>]\nC RCPT [RCPT] [TO:<a@b>]\nC DATA [DATA] []\n"
      "D size=3 big=0 lf=0 cr=0 nul=0 8bit=0 longest=1 body=y\\r\\n\nC QUIT [QUIT] []\n" },
    /* more near misses: a dot line with an extra CR is text (a stuffing
     * dot and a space; Postfix 3.7's smtpd would take it for the end); after
     * a bare LF an empty CRLF line gives a real line start again */
    { "dot CR CR LF is not the end", IN("DATA\r\na\r\n.\r\r\n.\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=6 big=0 lf=0 cr=1 nul=0 8bit=0 longest=1 "
      "body=a\\r\\n \\r\\n\n" },
    { "end after a bare LF and a CRLF", IN("DATA\r\nx\n\r\n.\r\nQUIT\r\n"), 0, 0,
      "C DATA [DATA] []\nD size=5 big=0 lf=1 cr=0 nul=0 8bit=0 longest=1 "
      "body=x\\r\\n\\r\\n\nC QUIT [QUIT] []\n" },
    { "smuggled end with a stuffed dot", IN("DATA\r\nhi\n..\n.\r\n"), 0, 0,
      "C DATA [DATA] []\n" },
    { "data line longer than the command limit", IN("DATA\r\n0123456789abcdefghij\r\n.\r\n"),
      16, 0,
      "C DATA [DATA] []\nD size=22 big=0 lf=0 cr=0 nul=0 8bit=0 longest=20 "
      "body=0123456789abcdefghij\\r\\n\n" },
};

static void
test_commands(void **state)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(command_cases); i++) {
        const struct pcase *c = &command_cases[i];
        check(c->name, c->in, c->len, c->max_line, c->max_msg, c->expect);
    }
}

static void
test_data(void **state)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(data_cases); i++) {
        const struct pcase *c = &data_cases[i];
        check(c->name, c->in, c->len, c->max_line, c->max_msg, c->expect);
    }
}

/* A 1 MiB line in data, also with a leading stuffed dot; whole and trickled. */
static void
test_data_huge_line(void **state)
{
    const size_t n = 1024 * 1024;
    struct sl_buf in, body, expect;

    sl_buf_init(&in);
    sl_buf_init(&body);
    sl_buf_init(&expect);
    sl_buf_append_str(&in, "DATA\r\n..");
    sl_buf_append(&body, ".", 1);
    for (size_t i = 1; i < n; i++) {
        char c = (char)('a' + i % 26);
        sl_buf_append(&in, &c, 1);
        sl_buf_append(&body, &c, 1);
    }
    sl_buf_append_str(&in, "\r\n.\r\nQUIT\r\n");
    sl_buf_append_str(&body, "\r\n");
    sl_buf_printf(&expect, "C DATA [DATA] []\nD size=%zu big=0 lf=0 cr=0 nul=0 8bit=0 longest=%zu body=",
                  n + 2, n);
    escape(&expect, body.data, body.len);
    sl_buf_append_str(&expect, "\nC QUIT [QUIT] []\n");
    check("1 MiB line", in.data, in.len, 0, 0, expect.data);
    sl_buf_free(&in);
    sl_buf_free(&body);
    sl_buf_free(&expect);
}

/* An over-long command line is dropped as it arrives, not buffered. */
static void
test_long_line_not_buffered(void **state)
{
    struct sl_smtp_limits lim = { .max_command_line = 64 };
    struct sl_smtp_parser *p = sl_smtp_parser_new(&lim);
    struct sl_smtp_cmd cmd;
    enum sl_smtp_error kind;
    const char *err = NULL;
    char junk[10000];

    memset(junk, 'x', sizeof(junk));
    sl_smtp_parser_feed(p, junk, sizeof(junk));
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), -1);
    assert_int_equal(kind, SL_SMTP_ERR_LINE_TOO_LONG);
    assert_string_equal(err, "line too long");
    assert_int_equal(sl_smtp_parser_pending(p), 0);
    for (int i = 0; i < 100; i++) {
        sl_smtp_parser_feed(p, junk, sizeof(junk));
        assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 0);
        assert_int_equal(sl_smtp_parser_pending(p), 0);
    }
    sl_smtp_parser_feed(p, "x\r\nQUIT\r\n", 9);
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 1);
    assert_int_equal(cmd.verb, SL_CMD_QUIT);
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 0);
    sl_smtp_parser_destroy(&p);
    sl_smtp_parser_destroy(&p);     /* NULL is fine */
}

/* pending() shows data sent before the 354 (RFC 2920 3.1). */
static void
test_pending_after_data(void **state)
{
    struct sl_smtp_parser *p = sl_smtp_parser_new(NULL);
    struct sl_smtp_cmd cmd;
    enum sl_smtp_error kind;
    const char *err = NULL;

    sl_smtp_parser_feed(p, "DATA\r\nSubject", 13);
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 1);
    assert_int_equal(cmd.verb, SL_CMD_DATA);
    assert_int_equal(sl_smtp_parser_pending(p), 7);
    assert_false(sl_smtp_parser_in_data(p));
    struct sl_buf sink;
    sl_buf_init(&sink);
    sl_smtp_parser_begin_data(p, &sink);
    assert_true(sl_smtp_parser_in_data(p));
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 0);
    sl_smtp_parser_feed(p, ": x\r\n.\r\n", 8);
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 1);
    assert_int_equal(cmd.verb, SL_CMD_DATA_END);
    assert_false(sl_smtp_parser_in_data(p));
    assert_string_equal(sink.data, "Subject: x\r\n");
    sl_buf_free(&sink);
    sl_smtp_parser_destroy(&p);
}

/* What the session shows (and logs) when a client pipelines where RFC 2920
 * forbids it: the bytes after the command just parsed, whole or trickled. */
static void
test_pending_data(void **state)
{
    static const char in[] = "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT";
    struct sl_smtp_parser *p = sl_smtp_parser_new(NULL);
    struct sl_smtp_cmd cmd;
    enum sl_smtp_error kind;
    const char *err = NULL;

    assert_int_equal(sl_smtp_parser_pending(p), 0);
    assert_string_equal(sl_smtp_parser_pending_data(p), "");     /* nothing fed yet */
    sl_smtp_parser_feed(p, in, sizeof(in) - 1);
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 1);
    assert_int_equal(cmd.verb, SL_CMD_LHLO);
    assert_int_equal(sl_smtp_parser_pending(p), strlen("MAIL FROM:<a@b>\r\nRCPT"));
    assert_memory_equal(sl_smtp_parser_pending_data(p), "MAIL FROM:<a@b>\r\nRCPT",
                        sl_smtp_parser_pending(p));
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 1);
    assert_int_equal(cmd.verb, SL_CMD_MAIL);
    assert_int_equal(sl_smtp_parser_pending(p), 4);
    assert_memory_equal(sl_smtp_parser_pending_data(p), "RCPT", 4);
    assert_int_equal(sl_smtp_parser_next(p, &cmd, &kind, &err), 0);
    sl_smtp_parser_destroy(&p);

    /* trickled: after each complete line nothing is pending */
    p = sl_smtp_parser_new(NULL);
    for (size_t i = 0; i < sizeof(in) - 1; i++) {
        sl_smtp_parser_feed(p, in + i, 1);
        int r = sl_smtp_parser_next(p, &cmd, &kind, &err);
        assert_true(r == 0 || r == 1);
        if (r == 1)
            assert_int_equal(sl_smtp_parser_pending(p), 0);
    }
    sl_smtp_parser_destroy(&p);
}

/* ---- paths ---- */

struct path_case {
    const char *arg;
    const char *prefix;
    size_t max_address;
    int ret;
    const char *expect;     /* address, or the error */
    const char *params;     /* "KW=v;KW;" */
};

static const struct path_case path_cases[] = {
    { "FROM:<a@b.example>", "FROM:", 256, 0, "a@b.example", "" },
    { "from:<a@b.example>", "FROM:", 256, 0, "a@b.example", "" },
    { "FROM: <a@b.example>", "FROM:", 256, 0, "a@b.example", "" },
    { "FROM:<>", "FROM:", 256, 0, "", "" },
    { "FROM:<> BODY=8BITMIME", "FROM:", 256, 0, "", "BODY=8BITMIME;" },
    { "FROM:<a@b> SIZE=12345 BODY=8BITMIME RET=HDRS ENVID=QQ314159 SMTPUTF8", "FROM:", 256, 0,
      "a@b", "SIZE=12345;BODY=8BITMIME;RET=HDRS;ENVID=QQ314159;SMTPUTF8;" },
    { "FROM:<a@b> size=10  smtputf8", "FROM:", 256, 0, "a@b", "SIZE=10;SMTPUTF8;" },
    { "TO:<c@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d", "TO:", 256, 0, "c@d",
      "NOTIFY=SUCCESS,FAILURE;ORCPT=rfc822;c@d;" },
    { "TO:<postmaster>", "TO:", 256, 0, "postmaster", "" },
    { "FROM:<\"a b\"@x.example>", "FROM:", 256, 0, "\"a b\"@x.example", "" },
    { "FROM:<\"a>b\"@x>", "FROM:", 256, 0, "\"a>b\"@x", "" },
    { "FROM:<\"a\\\"b\"@x>", "FROM:", 256, 0, "\"a\\\"b\"@x", "" },
    { "TO:<@r1.example,@r2.example:u@d.example>", "TO:", 256, 0, "u@d.example", "" },
    { "FROM:<j\xc3\xb8rn@d.example> SMTPUTF8", "FROM:", 256, 0, "j\xc3\xb8rn@d.example",
      "SMTPUTF8;" },
    { "FROM:<12345678>", "FROM:", 8, 0, "12345678", "" },
    /* bad */
    { "FROM:a@b", "FROM:", 256, -1, "syntax error: missing '<'", NULL },
    { "FROM:", "FROM:", 256, -1, "syntax error: missing '<'", NULL },
    { "FROM:<a@b", "FROM:", 256, -1, "syntax error: missing '>'", NULL },
    { "FROM:<<a@b>>", "FROM:", 256, -1, "syntax error: unbalanced '<'", NULL },
    { "FROM:<a@b>>", "FROM:", 256, -1, "syntax error: garbage after address", NULL },
    { "FROM:<a@b>x", "FROM:", 256, -1, "syntax error: garbage after address", NULL },
    { "FROM:<a\x01@b>", "FROM:", 256, -1, "syntax error: control character in address", NULL },
    { "FROM:<a\t@b>", "FROM:", 256, -1, "syntax error: control character in address", NULL },
    { "FROM:<a b@c>", "FROM:", 256, -1, "syntax error: space in address", NULL },
    { "FROM:<\"a b@c>", "FROM:", 256, -1, "syntax error: unterminated quoted string", NULL },
    { "FROM:<123456789>", "FROM:", 8, -1, "address too long", NULL },
    { "TO:<>", "TO:", 256, -1, "syntax error: empty recipient", NULL },
    { "TO:<a@b>", "FROM:", 256, -1, "syntax error: missing FROM:/TO:", NULL },
    { "FROM<a@b>", "FROM:", 256, -1, "syntax error: missing FROM:/TO:", NULL },
    { "FROM:<@r1:>", "FROM:", 256, -1, "syntax error: bad source route", NULL },
    { "FROM:<@r1a@b>", "FROM:", 256, -1, "syntax error: bad source route", NULL },
    { "FROM:<a@b> SIZE=", "FROM:", 256, -1, "empty parameter value", NULL },
    { "FROM:<a@b> =x", "FROM:", 256, -1, "bad parameter keyword", NULL },
    { "FROM:<a@b> SI_ZE=1", "FROM:", 256, -1, "bad parameter keyword", NULL },
    { "FROM:<a@b> SIZE=1\x7f", "FROM:", 256, -1, "bad parameter value", NULL },
    { "FROM:<a@b> SIZE=1=2", "FROM:", 256, -1, "bad parameter value", NULL },
};

static void
test_paths(void **state)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(path_cases); i++) {
        const struct path_case *c = &path_cases[i];
        struct sl_smtp_path path;
    const char *err = NULL;
        int r = sl_smtp_parse_path(c->arg, c->prefix, c->max_address, &path, &err);

        if (r != c->ret)
            print_error("path case %zu \"%s\": ret %d err %s\n", i, c->arg, r, err ? err : "-");
        assert_int_equal(r, c->ret);
        if (r < 0) {
            assert_string_equal(err, c->expect);
            assert_null(path.address);
            assert_int_equal(path.n_params, 0);
            continue;
        }
        assert_string_equal(path.address, c->expect);
        struct sl_buf pb;
        sl_buf_init(&pb);
        sl_buf_append(&pb, "", 0);
        for (size_t j = 0; j < path.n_params; j++) {
            sl_buf_append_str(&pb, path.params[j].keyword);
            if (path.params[j].value != NULL)
                sl_buf_printf(&pb, "=%s", path.params[j].value);
            sl_buf_append_str(&pb, ";");
        }
        assert_string_equal(pb.data, c->params);
        sl_buf_free(&pb);
        sl_smtp_path_free(&path);
        assert_null(path.address);
    }
}

static void
test_path_param(void **state)
{
    struct sl_smtp_path path;
    const char *err = NULL;
    bool present = false;

    assert_int_equal(sl_smtp_parse_path("FROM:<a@b> SIZE=100 SMTPUTF8", "FROM:", 256, &path, &err),
                     0);
    assert_string_equal(sl_smtp_path_param(&path, "size", &present), "100");
    assert_true(present);
    assert_null(sl_smtp_path_param(&path, "SMTPUTF8", &present));
    assert_true(present);
    assert_null(sl_smtp_path_param(&path, "BODY", &present));
    assert_false(present);
    assert_null(sl_smtp_path_param(&path, "BODY", NULL));
    sl_smtp_path_free(&path);
}

/* ---- XFORWARD ---- */

static void
xf_cb(void *ctx, const char *name, const char *value)
{
    sl_buf_printf(ctx, "%s=%s;", name, value);
}

struct xf_case {
    const char *arg;
    int ret;
    const char *expect;     /* pairs, or the error */
};

static const struct xf_case xf_cases[] = {
    { "NAME=mx.example ADDR=192.0.2.1 PORT=25 PROTO=ESMTP helo=client.example", 0,
      "NAME=mx.example;ADDR=192.0.2.1;PORT=25;PROTO=ESMTP;HELO=client.example;" },
    { "addr=[UNAVAILABLE]  Login= ", 0, "ADDR=[UNAVAILABLE];LOGIN=;" },
    { "IDENT=a=b", 0, "IDENT=a=b;" },
    { "", -1, "XFORWARD: no attributes" },
    { "   ", -1, "XFORWARD: no attributes" },
    { "=x", -1, "XFORWARD: empty attribute name" },
    { "NAME", -1, "XFORWARD: missing '='" },
    { "NAME=a ADDR", -1, "XFORWARD: missing '='" },
    { "NAME=a =b", -1, "XFORWARD: empty attribute name" },
    { "NAME=a\x01z", -1, "XFORWARD: control character in value" },
    { "NA.ME=a", -1, "XFORWARD: missing '='" },
    { "@=a", -1, "XFORWARD: bad attribute name" },
};

static void
test_xforward(void **state)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(xf_cases); i++) {
        const struct xf_case *c = &xf_cases[i];
        struct sl_buf out;
    const char *err = NULL;

        sl_buf_init(&out);
        sl_buf_append(&out, "", 0);
        int r = sl_smtp_parse_xforward(c->arg, xf_cb, &out, &err);
        assert_int_equal(r, c->ret);
        if (r == 0) {
            assert_string_equal(out.data, c->expect);
        } else {
            assert_string_equal(err, c->expect);
            assert_string_equal(out.data, "");  /* no callback on a bad line */
        }
        sl_buf_free(&out);
    }
}

/* The replies on the wire for each kind (tests/dialogue expects them, and
 * docs/protocol.md lists them). */
static void
test_error_replies(void **state)
{
    static const struct {
        enum sl_smtp_error kind;
        const char *reply;
    } replies[] = {
        { SL_SMTP_ERR_LINE_TOO_LONG, "500 5.5.2 Error: line too long" },
        { SL_SMTP_ERR_BARE_LF, "500 5.5.2 Error: bare LF in command" },
        { SL_SMTP_ERR_BARE_CR, "500 5.5.2 Error: bare CR in command" },
        { SL_SMTP_ERR_NUL, "500 5.5.2 Error: NUL in command" },
    };

    assert_int_equal(SL_N_ELEMENTS(replies), SL_SMTP_ERR_COUNT - 1); /* every kind */
    for (size_t i = 0; i < SL_N_ELEMENTS(replies); i++) {
        const struct sl_smtp_error_reply *r = sl_smtp_error_reply(replies[i].kind);
        char line[128];

        snprintf(line, sizeof(line), "%d %s %s", r->code, r->enhanced, r->text);
        assert_string_equal(line, replies[i].reply);
        assert_string_equal(r->text + strlen("Error: "), r->reason);
    }
}

/* The attribute names the server accepts and the reinjector sends, in
 * the order Postfix sends them. */
static void
test_xforward_attrs(void **state)
{
    static const char *const names[] = { "NAME", "ADDR", "PORT", "PROTO",
                                         "HELO", "IDENT", "SOURCE", "DOMAIN" };

    assert_int_equal(SL_N_ELEMENTS(names), SL_XF_COUNT);
    for (int i = 0; i < SL_XF_COUNT; i++) {
        char lower[16];
        size_t k = 0;

        assert_string_equal(sl_xforward_attr_names[i], names[i]);
        assert_int_equal(sl_xforward_attr_lookup(names[i]), i);
        for (; names[i][k] != '\0'; k++)
            lower[k] = (char)(names[i][k] | 0x20);
        lower[k] = '\0';
        assert_int_equal(sl_xforward_attr_lookup(lower), i);
    }
    assert_int_equal(sl_xforward_attr_lookup("LOGIN"), -1);
    assert_int_equal(sl_xforward_attr_lookup(""), -1);
    assert_int_equal(sl_xforward_attr_lookup("NAMEX"), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_data_huge_line),
        cmocka_unit_test(test_long_line_not_buffered),
        cmocka_unit_test(test_pending_after_data),
        cmocka_unit_test(test_pending_data),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_path_param),
        cmocka_unit_test(test_error_replies),
        cmocka_unit_test(test_xforward),
        cmocka_unit_test(test_xforward_attrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
