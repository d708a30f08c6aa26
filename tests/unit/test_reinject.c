/* test_reinject.c - the reinjector against the real Postfix smtp-sink.
 *
 * Each test starts /usr/sbin/smtp-sink on a free 127.0.0.1 port with
 * -v (every command it receives is logged to a file we read) and -d (each
 * transaction is dumped to a file: envelope and data as received), runs
 * the reinjector in a libevent loop bounded by a guard timer, and checks
 * what every recipient was told and what actually arrived.
 *
 * smtp-sink fault options (man smtp-sink): -r CMD soft reject (450),
 * -f CMD hard reject (500) (both also turn PIPELINING off), -q CMD
 * disconnect without reply, -Q CMD 421 and disconnect, -w N delay the DATA
 * reply, -t N its own command timeout (closes idle connections).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "frontend/reinject.h"
#include "util/sl_body.h"
#include "util/sl_buf.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define SMTP_SINK "/usr/sbin/smtp-sink"
#define GUARD_S 15 /* no test waits longer than this for anything */

/* ---------------------------------------------------------------- smtp-sink */

struct sink {
    pid_t pid;
    unsigned port;
    char dir[64]; /* dump directory */
    char log[96]; /* its -v output */
};

/* Copies of the running test's sinks, so that teardown stops them even
 * when an assertion jumped out of the test (its stack is gone then). */
static struct sink live_sinks[4];

static unsigned
free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* True once something listens on 127.0.0.1:port (no connection made, so
 * the sink's connection count stays exact). */
static bool
port_listening(unsigned port)
{
    char want[32], line[256];
    bool found = false;
    FILE *f = fopen("/proc/net/tcp", "r");

    if (!f)
        return false;
    snprintf(want, sizeof(want), "0100007F:%04X", port);
    while (fgets(line, sizeof(line), f))
        if (strstr(line, want) && strstr(line, " 0A "))
            found = true;
    fclose(f);
    return found;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* extra: NULL-terminated smtp-sink options, e.g. { "-r", "MAIL", NULL }. */
static void
sink_start(struct sink *s, const char *const *extra)
{
    const char *argv[32];
    char tmpl[80], listen[48];
    size_t n = 0;
    int fd;

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/sl-reinject-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    assert_int_equal(chmod(s->dir, 0777), 0); /* the sink writes as nobody */
    snprintf(s->log, sizeof(s->log), "%s/sink.log", s->dir);
    snprintf(tmpl, sizeof(tmpl), "%s/d/%%M.", s->dir);
    s->port = free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", s->port);

    argv[n++] = SMTP_SINK;
    argv[n++] = "-v";
    if (geteuid() == 0) {
        argv[n++] = "-u";
        argv[n++] = "nobody";
    }
    argv[n++] = "-d";
    argv[n++] = tmpl;
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n++] = listen;
    argv[n++] = "100";
    argv[n] = NULL;

    fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        dup2(fd, 2);
        dup2(fd, 1);
        execv(SMTP_SINK, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    for (size_t i = 0; i < SL_N_ELEMENTS(live_sinks); i++)
        if (live_sinks[i].pid == 0) {
            live_sinks[i] = *s;
            break;
        }
    for (int i = 0; i < 500 && !port_listening(s->port); i++)
        sleep_ms(10);
    assert_true(port_listening(s->port));
}

/* Returns false if the sink had exited by itself (crash, fatal error). */
static bool
sink_stop(struct sink *s)
{
    char cmd[160];
    bool alive = true;
    int status;

    for (size_t i = 0; i < SL_N_ELEMENTS(live_sinks); i++)
        if (s != &live_sinks[i] && live_sinks[i].pid == s->pid)
            live_sinks[i].pid = 0;
    if (s->pid > 0) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "smtp-sink exited by itself: status 0x%x (log %s)\n", status, s->log);
            alive = false;
        } else {
            kill(s->pid, SIGTERM);
            waitpid(s->pid, NULL, 0);
        }
        s->pid = 0;
    }
    if (!alive)
        return false;
    if (s->dir[0] && getenv("SL_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", s->dir);
    }
    return true;
}

static char *
read_file(const char *path)
{
    struct sl_buf b;
    char buf[4096];
    size_t n;
    FILE *f = fopen(path, "r");

    sl_buf_init(&b);
    sl_buf_append_str(&b, "");
    if (!f)
        return sl_buf_steal(&b, NULL);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        sl_buf_append(&b, buf, n);
    fclose(f);
    return sl_buf_steal(&b, NULL);
}

/* The dumped transactions, concatenated in name order; *n_r = how many. */
static char *
sink_dumps(const struct sink *s, int *n_r)
{
    char dir[96], path[400];
    struct dirent **names;
    struct sl_buf all;
    int n, count = 0;

    snprintf(dir, sizeof(dir), "%s/d", s->dir);
    sl_buf_init(&all);
    sl_buf_append_str(&all, "");
    n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char *text;

            snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
            text = read_file(path);
            sl_buf_append_str(&all, text);
            sl_buf_append_str(&all, "=====\n");
            free(text);
            count++;
        }
        free(names[i]);
    }
    if (n >= 0)
        free(names);
    *n_r = count;
    return sl_buf_steal(&all, NULL);
}

static int
count_substr(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* How many connections the sink accepted. */
static int
sink_connects(const struct sink *s)
{
    char *log = read_file(s->log);
    int n = count_substr(log, ": connect (");

    free(log);
    return n;
}

/* ---------------------------------------------------------------- reinjector harness */

struct outcome {
    int calls;
    bool during_start; /* done() ran inside fe_reinject_start: a bug */
    int codes[8];
    char *replies[8];
    bool from_mta[8];
    size_t n_rcpts;
    char *stage, *queued_as, *mta;
    bool cancelled;
    bool wanted; /* what wanted() answers */
    int wanted_calls;
};

struct harness {
    struct event_base *base;
    struct fe_reinjector *r;
    struct event *guard;
    bool guard_fired;
    bool in_start;
    int done_total;
};

static struct harness H;

static void
outcome_clear(struct outcome *o)
{
    for (size_t i = 0; i < 8; i++)
        free(o->replies[i]);
    free(o->stage);
    free(o->queued_as);
    free(o->mta);
    memset(o, 0, sizeof(*o));
    o->wanted = true;
}

static void
on_done(void *ctx, const struct fe_reinject_result *res)
{
    struct outcome *o = ctx;

    o->calls++;
    H.done_total++;
    if (H.in_start)
        o->during_start = true;
    if (o->calls > 1)
        return;
    o->n_rcpts = res->n_rcpts;
    for (size_t i = 0; i < res->n_rcpts && i < 8; i++) {
        o->codes[i] = res->rcpts[i].code;
        o->replies[i] = sl_strdup(res->rcpts[i].reply ? res->rcpts[i].reply : "(null)");
        o->from_mta[i] = res->rcpts[i].from_mta;
    }
    o->stage = res->stage ? sl_strdup(res->stage) : NULL;
    o->queued_as = res->queued_as ? sl_strdup(res->queued_as) : NULL;
    o->mta = sl_strdup(res->mta);
    o->cancelled = res->cancelled;
}

static bool
on_wanted(void *ctx)
{
    struct outcome *o = ctx;

    o->wanted_calls++;
    return o->wanted;
}

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
    H.guard_fired = true;
    event_base_loopbreak(H.base);
}

/* Runs the loop until done_total reaches target or secs pass; returns
 * whether the target was reached (false = something hung). */
static bool
run_until(int target, double secs)
{
    long ms = (long)(secs * 1000);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    H.guard_fired = false;
    evtimer_add(H.guard, &tv);
    while (H.done_total < target && !H.guard_fired)
        event_base_loop(H.base, EVLOOP_ONCE);
    evtimer_del(H.guard);
    return H.done_total >= target;
}

/* Runs the loop for secs whatever happens (to see that nothing happens). */
static void
run_for(double secs)
{
    run_until(1 << 30, secs);
}

static int
setup(void **state)
{
    memset(&H, 0, sizeof(H));
    H.base = event_base_new();
    assert_non_null(H.base);
    H.guard = evtimer_new(H.base, guard_cb, NULL);
    H.r = fe_reinjector_new(H.base, "sluice.test", 5);
    return 0;
}

static int
teardown(void **state)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(live_sinks); i++)
        if (live_sinks[i].pid > 0)
            (void)sink_stop(&live_sinks[i]);
    fe_reinjector_destroy(&H.r);
    assert_null(H.r);
    event_free(H.guard);
    event_base_free(H.base);
    return 0;
}

static const struct fe_reinject_rcpt three_rcpts[] = {
    {"a@example.net", NULL, NULL},
    {"b@example.net", "SUCCESS,FAILURE", "rfc822;b@example.org"},
    {"c@example.net", NULL, NULL},
};

static char *const xfwd[SL_XF_COUNT] = {
    [SL_XF_NAME] = "mail.example.com",
    [SL_XF_ADDR] = "192.0.2.7",
    [SL_XF_PORT] = "40000",
    [SL_XF_PROTO] = "ESMTP",
    [SL_XF_HELO] = "client.example.com",
    [SL_XF_IDENT] = "4XyzAbc123",
    [SL_XF_SOURCE] = "REMOTE",
};

struct msg {
    struct fe_reinject_request req;
    struct sl_body *body;
};

static void
msg_init(struct msg *m, const struct sink *s, const char *text)
{
    memset(m, 0, sizeof(*m));
    m->body = sl_body_new(sl_strdup(text), strlen(text));
    m->req = (struct fe_reinject_request){
        .job_id = "TESTJOB00001",
        .host = "127.0.0.1",
        .port = s ? s->port : 0,
        .max_conns = 2,
        .mail_from = "sender@example.com",
        .body_type = "8BITMIME",
        .rcpts = three_rcpts,
        .n_rcpts = 3,
        .xforward = xfwd,
        .body = m->body,
    };
}

static void
msg_free(struct msg *m)
{
    sl_body_unref(&m->body); /* the request took its own reference */
}

static struct fe_reinject_op *
start(struct msg *m, struct outcome *o)
{
    struct fe_reinject_op *op;

    H.in_start = true;
    op = fe_reinject_start(H.r, &m->req, on_done, on_wanted, o);
    H.in_start = false;
    assert_non_null(op);
    return op;
}

static const char simple_text[] = "From: sender@example.com\r\n"
                                  "To: a@example.net\r\n"
                                  "Subject: test\r\n"
                                  "\r\n"
                                  "Hello.\r\n";

/* ---------------------------------------------------------------- tests */

static void
test_three_recipients_delivered(void **state)
{
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *dump, *log, mta[64];
    int n;
    const char *const opts[] = {NULL};

    sink_start(&s, opts);
    outcome_clear(&o);
    msg_init(&m, &s, simple_text);
    m.req.ret = "HDRS";
    m.req.envid = "QQ314159";
    m.req.smtputf8 = true; /* requested, but the sink does not offer it */
    start(&m, &o);
    assert_int_equal(o.calls, 0);
    assert_true(run_until(1, GUARD_S));
    assert_int_equal(o.calls, 1);
    assert_false(o.during_start);
    assert_int_equal(o.n_rcpts, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o.codes[i], 250);
        assert_string_equal(o.replies[i], "250 2.0.0 Ok"); /* the sink's own words */
        assert_true(o.from_mta[i]);
    }
    assert_null(o.stage);
    assert_false(o.cancelled);
    assert_null(o.queued_as); /* smtp-sink does not say "queued as" */
    assert_int_equal(o.wanted_calls, 1);
    snprintf(mta, sizeof(mta), "smtp:[127.0.0.1]:%u", s.port);
    assert_string_equal(o.mta, mta);

    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(dump, "X-Helo-Args: sluice.test\n"));
    /* 8BITMIME and DSN advertised: BODY, RET, ENVID, NOTIFY, ORCPT passed;
     * SIZE and SMTPUTF8 not advertised: not sent */
    assert_non_null(
        strstr(dump, "X-Mail-Args: <sender@example.com> BODY=8BITMIME RET=HDRS ENVID=QQ314159\n"));
    assert_non_null(strstr(dump, "X-Rcpt-Args: <a@example.net>\n"
                                 "X-Rcpt-Args: <b@example.net> NOTIFY=SUCCESS,FAILURE "
                                 "ORCPT=rfc822;b@example.org\n"
                                 "X-Rcpt-Args: <c@example.net>\n"));
    assert_non_null(strstr(dump, "Subject: test\n\nHello.\n"));
    free(dump);

    /* XFORWARD: only what the sink advertised (NAME ADDR PROTO HELO), in
     * one line, before MAIL; the pipelined group follows */
    log = read_file(s.log);
    assert_non_null(strstr(log, "XFORWARD NAME=mail.example.com ADDR=192.0.2.7 PROTO=ESMTP "
                                "HELO=client.example.com\n"));
    assert_null(strstr(log, "IDENT="));
    assert_null(strstr(log, "PORT="));
    assert_true(strstr(log, "XFORWARD") < strstr(log, "MAIL FROM"));
    free(log);

    msg_free(&m);
    outcome_clear(&o);
    assert_true(sink_stop(&s));
}

/* RFC 6531 3.4: an envelope that needs SMTPUTF8 never goes to a server
 * that does not offer it (smtp-sink does not): every recipient gets 451 at
 * fwd-mail-from and no MAIL is sent; on a fresh connection and on a pooled
 * one, which then still works for the next message. */
static void
test_smtputf8_required_not_offered(void **state)
{
    static const struct fe_reinject_rcpt utf8_rcpts[] = {
        {"j\xc3\xb6rg@example.net", NULL, NULL},
        {"b@example.net", NULL, NULL},
    };
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *log;
    int n;
    const char *const opts[] = {NULL};

    sink_start(&s, opts);
    for (int round = 0; round < 2; round++) {   /* fresh, then pooled */
        outcome_clear(&o);
        msg_init(&m, &s, simple_text);
        if (round == 1) {
            /* a plain message first, so that a pooled connection exists */
            struct outcome plain = {0};
            outcome_clear(&plain);
            start(&m, &plain);
            assert_true(run_until(H.done_total + 1, GUARD_S));
            assert_int_equal(plain.codes[0], 250);
            outcome_clear(&plain);
        }
        m.req.smtputf8 = true;
        m.req.rcpts = utf8_rcpts;
        m.req.n_rcpts = 2;
        start(&m, &o);
        assert_true(run_until(H.done_total + 1, GUARD_S));
        assert_int_equal(o.n_rcpts, 2);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(o.codes[i], 451);
            assert_false(o.from_mta[i]);
            assert_non_null(strstr(o.replies[i], "SMTPUTF8 is required, but was not offered"));
        }
        assert_string_equal(o.stage, "fwd-mail-from");
        msg_free(&m);
    }
    outcome_clear(&o);
    free(sink_dumps(&s, &n));
    assert_int_equal(n, 1); /* only the plain message */
    log = read_file(s.log);
    assert_null(strstr(log, "j\xc3\xb6rg"));
    free(log);
    assert_true(sink_stop(&s));
}

static void
test_dot_stuffing(void **state)
{
    static const char text[] = "Subject: dots\r\n"
                               "\r\n"
                               ".leading dot\r\n"
                               "..two dots\r\n"
                               ".\r\n"
                               "after the lone dot\r\n"
                               "last line without CRLF";
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *dump;
    int n;

    sink_start(&s, NULL);
    outcome_clear(&o);
    msg_init(&m, &s, text);
    start(&m, &o);
    assert_true(run_until(1, GUARD_S));
    assert_int_equal(o.codes[0], 250);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 1);
    /* the sink un-stuffs: what it stored is the message as we had it */
    assert_non_null(strstr(dump, "Subject: dots\n\n.leading dot\n..two dots\n.\n"
                                 "after the lone dot\nlast line without CRLF\n"));
    free(dump);
    msg_free(&m);
    outcome_clear(&o);
    assert_true(sink_stop(&s));
}

/* A body of several write chunks (256 KiB each, counted from the body's
 * start) with a CRLF "." cut between CR and LF at the first chunk's end
 * and between LF and "." at the second's; *want: what the sink stores of
 * it (LF line ends, unstuffed). */
static void
big_text(struct sl_buf *text, struct sl_buf *want)
{
    static const char head[] = "Subject: big\r\n\r\n";
    const size_t chunk = 256 * 1024, hl = sizeof(head) - 1;

    sl_buf_init(text);
    sl_buf_append_str(text, head);
    while (text->len - hl < chunk - 100)
        sl_buf_printf(text, "%.98s\r\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    while (text->len - hl < chunk - 1)
        sl_buf_append_str(text, "b");
    sl_buf_append_str(text, "\r\n.dot at the first cut\r\n");
    while (text->len - hl < 2 * chunk - 2)
        sl_buf_append_str(text, "c");
    sl_buf_append_str(text, "\r\n.dot at the second cut\r\n..two\r\n");
    while (text->len - hl < 3 * chunk + 5000)
        sl_buf_append_str(text, ".d\r\n");
    sl_buf_append_str(text, "last line without CRLF");
    sl_buf_init(want);
    for (size_t i = 0; i < text->len; i++)
        if (text->data[i] != '\r')
            sl_buf_append(want, &text->data[i], 1);
    sl_buf_append_str(want, "\n");
}

/* The body stuffed as it is sent, chunk by chunk. */
static void
test_big_body_in_chunks(void **state)
{
    struct sl_buf text, want;
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *dump;
    int n;

    (void)state;
    big_text(&text, &want);
    sink_start(&s, NULL);
    outcome_clear(&o);
    msg_init(&m, &s, text.data);
    start(&m, &o);
    assert_true(run_until(1, GUARD_S));
    assert_int_equal(o.codes[0], 250);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(dump, want.data));
    free(dump);
    msg_free(&m);
    outcome_clear(&o);
    assert_true(sink_stop(&s));
    sl_buf_free(&text);
    sl_buf_free(&want);
}

/* A big message whose pooled connection turns out closed is sent again on a
 * new one from its first byte: one whole copy arrives. */
static void
test_big_body_retried(void **state)
{
    const char *const opts[] = {"-t", "2", NULL};
    struct sl_buf text, want;
    struct sink s;
    struct msg m1, m2;
    struct outcome o1 = {0}, o2 = {0};
    char *dump;
    int n;

    (void)state;
    big_text(&text, &want);
    sink_start(&s, opts);
    outcome_clear(&o1);
    outcome_clear(&o2);
    msg_init(&m1, &s, simple_text);
    start(&m1, &o1);
    assert_true(run_until(1, GUARD_S));
    assert_int_equal(o1.codes[0], 250);
    sleep_ms(2500);     /* the sink drops the pooled connection meanwhile */
    msg_init(&m2, &s, text.data);
    start(&m2, &o2);
    assert_true(run_until(2, GUARD_S));
    assert_int_equal(o2.codes[0], 250);
    assert_int_equal(sink_connects(&s), 2);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 2);
    assert_non_null(strstr(dump, want.data));
    assert_null(strstr(strstr(dump, want.data) + 1, want.data));
    free(dump);
    msg_free(&m1);
    msg_free(&m2);
    outcome_clear(&o1);
    outcome_clear(&o2);
    assert_true(sink_stop(&s));
    sl_buf_free(&text);
    sl_buf_free(&want);
}

static void
test_edits_applied(void **state)
{
    static const struct sl_header_edit edits[] = {
        {SL_HDR_PREPEND, "Received", "from localhost by sluice.test (sluice) id TESTJOB00001"},
        {SL_HDR_REPLACE, "Subject", "***SPAM*** test"},
        {SL_HDR_APPEND, "X-Spam-Flag", "YES"},
    };
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *dump, *ours, *from;
    int n;

    sink_start(&s, NULL);
    outcome_clear(&o);
    msg_init(&m, &s, simple_text);
    m.req.edits = edits;
    m.req.n_edits = SL_N_ELEMENTS(edits);
    start(&m, &o);
    assert_true(run_until(1, GUARD_S));
    assert_int_equal(o.codes[0], 250);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 1);
    ours = strstr(dump, "Received: from localhost by sluice.test (sluice) id TESTJOB00001\n");
    from = strstr(dump, "From: sender@example.com\n");
    assert_non_null(ours);
    assert_non_null(from);
    assert_true(ours < from); /* prepended above the original first header */
    assert_non_null(strstr(dump, "Subject: ***SPAM*** test\n"));
    assert_null(strstr(dump, "Subject: test\n"));
    assert_non_null(strstr(dump, "X-Spam-Flag: YES\n\nHello.\n"));
    free(dump);
    msg_free(&m);
    outcome_clear(&o);
    assert_true(sink_stop(&s));
}

static void
test_connection_reused(void **state)
{
    struct sink s;
    struct msg m;
    struct outcome o1 = {0}, o2 = {0}, o3 = {0}, o4 = {0};
    char *dump;
    int n;

    sink_start(&s, NULL);
    outcome_clear(&o1);
    outcome_clear(&o2);
    outcome_clear(&o3);
    outcome_clear(&o4);
    msg_init(&m, &s, simple_text);
    m.req.max_conns = 1;
    /* sequentially */
    start(&m, &o1);
    assert_true(run_until(1, GUARD_S));
    start(&m, &o2);
    assert_true(run_until(2, GUARD_S));
    /* and two at once with max_conns 1: the second waits, then reuses */
    start(&m, &o3);
    start(&m, &o4);
    assert_true(run_until(4, GUARD_S));
    assert_int_equal(o1.codes[2], 250);
    assert_int_equal(o2.codes[2], 250);
    assert_int_equal(o3.codes[2], 250);
    assert_int_equal(o4.codes[2], 250);
    assert_int_equal(sink_connects(&s), 1);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 4);
    /* XFORWARD again for each transaction (Postfix resets it) */
    free(dump);
    dump = read_file(s.log);
    assert_int_equal(count_substr(dump, "XFORWARD NAME="), 4);
    assert_int_equal(count_substr(dump, ": RSET"), 0); /* not needed after a good DATA */
    free(dump);
    msg_free(&m);
    outcome_clear(&o1);
    outcome_clear(&o2);
    outcome_clear(&o3);
    outcome_clear(&o4);
    assert_true(sink_stop(&s));
}

static void
test_server_down(void **state)
{
    struct msg m;
    struct outcome o = {0};
    struct sink none = {.port = free_port()}; /* nothing listens there */

    outcome_clear(&o);
    msg_init(&m, &none, simple_text);
    start(&m, &o);
    assert_int_equal(o.calls, 0);
    assert_true(run_until(1, GUARD_S));
    assert_false(o.during_start);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o.codes[i], 451);
        assert_non_null(strstr(o.replies[i], "Connection refused"));
        assert_false(o.from_mta[i]);
    }
    assert_string_equal(o.stage, "fwd-connect");
    assert_int_equal(o.wanted_calls, 0);
    msg_free(&m);
    outcome_clear(&o);
}

struct fault_case {
    const char *opt, *cmd; /* smtp-sink option and its command */
    int code;              /* what every recipient gets */
    const char *reply;     /* substring of the reply */
    bool from_mta;
    const char *stage;
    bool dot_sent; /* whether the sink saw the final "." */
};

static const struct fault_case faults[] = {
    /* a refused XFORWARD is our relay's configuration: 4xx, never a bounce */
    {"-r", "XFORWARD", 450, "450 4.3.0 Error: command failed", true, "fwd-xforward", false},
    {"-f", "XFORWARD", 451, "500 5.3.0 Error: command failed", true, "fwd-xforward", false},
    {"-r", "MAIL", 450, "450 4.3.0 Error: command failed", true, "fwd-mail-from", false},
    {"-f", "MAIL", 500, "500 5.3.0 Error: command failed", true, "fwd-mail-from", false},
    {"-r", "RCPT", 450, "450 4.3.0 Error: command failed", true, "fwd-rcpt-to", false},
    {"-f", "RCPT", 500, "500 5.3.0 Error: command failed", true, "fwd-rcpt-to", false},
    {"-r", "DATA", 450, "450 4.3.0 Error: command failed", true, "fwd-data-cmd", false},
    {"-f", "DATA", 500, "500 5.3.0 Error: command failed", true, "fwd-data-cmd", false},
    {"-r", ".", 450, "450 4.3.0 Error: command failed", true, "fwd-end-data", true},
    {"-f", ".", 500, "500 5.3.0 Error: command failed", true, "fwd-end-data", true},
    /* disconnects: a 4xx, never the 250 the sink did not send */
    {"-q", ".", 451, "lost connection", false, "fwd-end-data", true},
    {"-q", "XFORWARD", 451, "lost connection", false, "fwd-xforward", false},
    {"-q", "MAIL", 451, "lost connection", false, "fwd-mail-from", false},
    {"-q", "RCPT", 451, "lost connection", false, "fwd-mail-from", false},
    {"-Q", "RCPT", 421, "421 4.0.0 Server closing connection", true, "fwd-rcpt-to", false},
    {"-Q", ".", 421, "421 4.0.0 Server closing connection", true, "fwd-end-data", true},
    {"-q", "CONNECT", 451, "lost connection", false, "fwd-connect", false},
};

static void
test_fault_modes(void **state)
{
    for (size_t f = 0; f < SL_N_ELEMENTS(faults); f++) {
        const struct fault_case *fc = &faults[f];
        const char *const opts[] = {fc->opt, fc->cmd, NULL};
        struct sink s;
        struct msg m;
        struct outcome o = {0};
        char *log;

        print_message("smtp-sink %s %s\n", fc->opt, fc->cmd);
        sink_start(&s, opts);
        outcome_clear(&o);
        msg_init(&m, &s, simple_text);
        start(&m, &o);
        assert_true(run_until(H.done_total + 1, GUARD_S));
        assert_int_equal(o.calls, 1);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(o.codes[i], fc->code);
            assert_non_null(strstr(o.replies[i], fc->reply));
            assert_int_equal(o.from_mta[i], fc->from_mta);
        }
        assert_non_null(o.stage);
        /* "-q MAIL" and "-q RCPT": pipelined, the sink drops us after the
         * earlier commands' 250s are on their way; whether we read them
         * before the reset is a race: the stage of any of them is right */
        if (strcmp(fc->opt, "-q") == 0 && strcmp(fc->cmd, "RCPT") == 0)
            assert_true(strcmp(o.stage, "fwd-xforward") == 0 ||
                        strcmp(o.stage, "fwd-mail-from") == 0 ||
                        strcmp(o.stage, "fwd-rcpt-to") == 0);
        else if (strcmp(fc->opt, "-q") == 0 && strcmp(fc->cmd, "MAIL") == 0)
            assert_true(strcmp(o.stage, "fwd-xforward") == 0 ||
                        strcmp(o.stage, "fwd-mail-from") == 0);
        else
            assert_string_equal(o.stage, fc->stage);
        assert_int_equal(o.wanted_calls, fc->dot_sent ? 1 : 0);
        assert_null(o.queued_as);
        log = read_file(s.log);
        assert_int_equal(strstr(log, "smtp-sink: .\n") != NULL, fc->dot_sent);
        free(log);
        msg_free(&m);
        outcome_clear(&o);
        assert_true(sink_stop(&s));
    }
}

/* 421 in reply to DATA: every recipient gets the 421, the body is never
 * sent. (smtp-sink cannot refuse RCPTs with PIPELINING on: -r/-f imply -p,
 * so "all RCPTs refused" runs unpipelined in test_fault_modes.) */
static void
test_421_at_data(void **state)
{
    const char *const opts[] = {"-Q", "DATA", NULL};
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *log;

    sink_start(&s, opts);
    outcome_clear(&o);
    msg_init(&m, &s, simple_text);
    start(&m, &o);
    assert_true(run_until(1, GUARD_S));
    for (int i = 0; i < 3; i++)
        assert_int_equal(o.codes[i], 421);
    assert_string_equal(o.stage, "fwd-data-cmd");
    assert_int_equal(o.wanted_calls, 0);
    log = read_file(s.log);
    assert_non_null(strstr(log, "smtp-sink: DATA\n"));
    assert_null(strstr(log, "Subject: test"));
    free(log);
    msg_free(&m);
    outcome_clear(&o);
    assert_true(sink_stop(&s));
}

static void
test_ehlo_rejected_helo_fallback(void **state)
{
    const char *const opts[] = {"-f", "EHLO", NULL};
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *dump, *log;
    int n;

    sink_start(&s, opts);
    outcome_clear(&o);
    msg_init(&m, &s, simple_text);
    start(&m, &o);
    assert_true(run_until(1, GUARD_S));
    for (int i = 0; i < 3; i++)
        assert_int_equal(o.codes[i], 250);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 1);
    /* no extensions after HELO: no BODY, no NOTIFY, no XFORWARD */
    assert_non_null(strstr(dump, "X-Client-Proto: SMTP\n"));
    assert_non_null(strstr(dump, "X-Mail-Args: <sender@example.com>\n"));
    assert_non_null(strstr(dump, "X-Rcpt-Args: <b@example.net>\n"));
    free(dump);
    log = read_file(s.log);
    assert_non_null(strstr(log, "HELO sluice.test\n"));
    assert_null(strstr(log, "XFORWARD"));
    free(log);
    msg_free(&m);
    outcome_clear(&o);
    assert_true(sink_stop(&s));
}

static void
test_xforward_split(void **state)
{
    char name[301], helo[301];
    char *x[SL_XF_COUNT] = {0};
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *log, *p;
    int lines = 0;

    memset(name, 'n', 300);
    name[300] = '\0';
    memset(helo, 'h', 300);
    helo[300] = '\0';
    x[SL_XF_NAME] = name;
    x[SL_XF_ADDR] = "192.0.2.7";
    x[SL_XF_HELO] = helo;
    x[SL_XF_PROTO] = "ESMTP";
    sink_start(&s, NULL);
    outcome_clear(&o);
    msg_init(&m, &s, simple_text);
    m.req.xforward = x;
    start(&m, &o);
    assert_true(run_until(1, GUARD_S));
    assert_int_equal(o.codes[0], 250);
    log = read_file(s.log);
    for (p = log; (p = strstr(p, "smtp-sink: XFORWARD ")) != NULL; p++) {
        size_t len = strcspn(p, "\n") - strlen("smtp-sink: ");

        assert_true(len + 2 <= 512); /* with CRLF */
        lines++;
    }
    assert_int_equal(lines, 2);
    assert_non_null(strstr(log, "NAME=nnnn"));
    assert_non_null(strstr(log, "HELO=hhhh"));
    assert_non_null(strstr(log, "ADDR=192.0.2.7"));
    assert_non_null(strstr(log, "PROTO=ESMTP"));
    free(log);
    msg_free(&m);
    outcome_clear(&o);
    assert_true(sink_stop(&s));
}

static void
test_not_wanted(void **state)
{
    struct sink s;
    struct msg m;
    struct outcome o = {0};
    char *dump, *log;
    int n;

    sink_start(&s, NULL);
    outcome_clear(&o);
    o.wanted = false;
    msg_init(&m, &s, simple_text);
    start(&m, &o);
    assert_true(run_until(1, GUARD_S));
    assert_int_equal(o.wanted_calls, 1);
    assert_true(o.cancelled);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o.codes[i] / 100, 4);
        assert_false(o.from_mta[i]);
    }
    run_for(0.3); /* let the sink notice the close */
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 0); /* an unterminated DATA is discarded */
    free(dump);
    log = read_file(s.log);
    assert_non_null(strstr(log, "smtp-sink: DATA\n"));
    assert_null(strstr(log, "smtp-sink: .\n"));
    free(log);
    msg_free(&m);
    outcome_clear(&o);
    assert_true(sink_stop(&s));
}

static void
test_max_conns(void **state)
{
    const char *const opts[] = {"-w", "1", NULL}; /* keep each transaction busy */
    struct sink s;
    struct msg m;
    struct outcome o[5] = {{0}};
    char *dump;
    int n;

    sink_start(&s, opts);
    msg_init(&m, &s, simple_text);
    m.req.max_conns = 2;
    for (int i = 0; i < 5; i++) {
        outcome_clear(&o[i]);
        start(&m, &o[i]);
    }
    assert_true(run_until(5, GUARD_S));
    for (int i = 0; i < 5; i++) {
        assert_int_equal(o[i].calls, 1);
        for (int j = 0; j < 3; j++)
            assert_int_equal(o[i].codes[j], 250);
        outcome_clear(&o[i]);
    }
    assert_int_equal(sink_connects(&s), 2);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 5);
    free(dump);
    msg_free(&m);
    assert_true(sink_stop(&s));
}

static void
test_cancel(void **state)
{
    const char *const opts[] = {"-w", "1", NULL};
    struct sink s;
    struct msg m;
    struct outcome o[3] = {{0}};
    struct fe_reinject_op *op[3];
    char *dump;
    int n;

    sink_start(&s, opts);
    msg_init(&m, &s, simple_text);
    m.req.max_conns = 1;
    for (int i = 0; i < 3; i++) {
        outcome_clear(&o[i]);
        op[i] = start(&m, &o[i]);
    }
    /* the second waits in the queue */
    fe_reinject_cancel(&op[1]);
    assert_null(op[1]);
    /* the first is on the wire, waiting for the delayed DATA reply */
    run_for(0.4);
    assert_int_equal(H.done_total, 0);
    fe_reinject_cancel(&op[0]);
    assert_true(run_until(1, GUARD_S)); /* the third still gets through */
    run_for(0.3);
    assert_int_equal(o[0].calls, 0);
    assert_int_equal(o[1].calls, 0);
    assert_int_equal(o[2].calls, 1);
    assert_int_equal(o[2].codes[0], 250);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 1); /* only the third arrived */
    free(dump);
    for (int i = 0; i < 3; i++)
        outcome_clear(&o[i]);
    msg_free(&m);
    assert_true(sink_stop(&s));
}

struct timeout_case {
    const char *opts[4];
    const char *stage;
};

/* reinjector timeout 1 s; the sink answers after 3 s */
static const struct timeout_case timeouts[] = {
    {{"-W", "CONNECT:3", NULL}, "fwd-connect"}, /* the greeting */
    {{"-p", "-W", "MAIL:3", NULL}, "fwd-mail-from"},
    {{"-p", "-w", "3", NULL}, "fwd-data-cmd"}, /* unpipelined: MAIL, RCPT answered */
};

/* Cancelled while the connection is still being set up: the connection is
 * not wasted, the next message uses it. */
static void
test_cancel_while_connecting(void **state)
{
    struct sink s;
    struct msg m;
    struct outcome o1 = {0}, o2 = {0};
    struct fe_reinject_op *op;
    char *dump;
    int n;

    sink_start(&s, NULL);
    outcome_clear(&o1);
    outcome_clear(&o2);
    msg_init(&m, &s, simple_text);
    m.req.max_conns = 1;
    op = start(&m, &o1);
    fe_reinject_cancel(&op);
    start(&m, &o2);
    assert_true(run_until(1, GUARD_S));
    run_for(0.2);
    assert_int_equal(o1.calls, 0);
    assert_int_equal(o2.calls, 1);
    assert_int_equal(o2.codes[0], 250);
    assert_int_equal(sink_connects(&s), 1);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 1);
    free(dump);
    msg_free(&m);
    outcome_clear(&o1);
    outcome_clear(&o2);
    assert_true(sink_stop(&s));
}

static void
test_timeout(void **state)
{
    fe_reinjector_destroy(&H.r);
    H.r = fe_reinjector_new(H.base, "sluice.test", 1);
    for (size_t t = 0; t < SL_N_ELEMENTS(timeouts); t++) {
        struct sink s;
        struct msg m;
        struct outcome o = {0};
        char *log;

        print_message("smtp-sink %s %s %s\n", timeouts[t].opts[0], timeouts[t].opts[1],
                      timeouts[t].opts[2] ? timeouts[t].opts[2] : "");
        sink_start(&s, timeouts[t].opts);
        outcome_clear(&o);
        msg_init(&m, &s, simple_text);
        start(&m, &o);
        assert_true(run_until(H.done_total + 1, GUARD_S));
        for (int i = 0; i < 3; i++) {
            assert_int_equal(o.codes[i], 451);
            assert_non_null(strstr(o.replies[i], "timed out"));
            assert_false(o.from_mta[i]);
        }
        assert_string_equal(o.stage, timeouts[t].stage);
        assert_int_equal(o.wanted_calls, 0);
        log = read_file(s.log);
        assert_null(strstr(log, "smtp-sink: .\n")); /* the message never ended */
        free(log);
        msg_free(&m);
        outcome_clear(&o);
        assert_true(sink_stop(&s));
    }
}

/* The sink drops idle connections after 1..2 s (-t 2; Postfix timers have
 * whole-second resolution, so -t 1 may fire within milliseconds and cut a
 * transaction short). We do not run the loop
 * meanwhile, so the pool still holds the dead connection when the second
 * message starts: it must fail there and be retried on a new connection. */
static void
test_retry_after_server_closed_idle(void **state)
{
    const char *const opts[] = {"-t", "2", NULL};
    struct sink s;
    struct msg m;
    struct outcome o1 = {0}, o2 = {0}, o3 = {0};
    int n;
    char *dump;

    sink_start(&s, opts);
    outcome_clear(&o1);
    outcome_clear(&o2);
    outcome_clear(&o3);
    msg_init(&m, &s, simple_text);
    start(&m, &o1);
    assert_true(run_until(1, GUARD_S));
    assert_int_equal(o1.codes[0], 250);
    sleep_ms(2500);
    start(&m, &o2);
    assert_true(run_until(2, GUARD_S));
    for (int i = 0; i < 3; i++)
        assert_int_equal(o2.codes[i], 250);
    assert_int_equal(sink_connects(&s), 2);
    /* this time the loop runs while idle: the close is noticed, not retried */
    run_for(2.5);
    start(&m, &o3);
    assert_true(run_until(3, GUARD_S));
    assert_int_equal(o3.codes[0], 250);
    assert_int_equal(sink_connects(&s), 3);
    dump = sink_dumps(&s, &n);
    assert_int_equal(n, 3);
    free(dump);
    msg_free(&m);
    outcome_clear(&o1);
    outcome_clear(&o2);
    outcome_clear(&o3);
    assert_true(sink_stop(&s));
}

/* A request we refuse ourselves still answers from the loop, never inside
 * fe_reinject_start(). */
static void
test_bad_envelope_answers_later(void **state)
{
    static const struct fe_reinject_rcpt bad[] = {{"x@example.net>\r\nRSET", NULL, NULL}};
    struct msg m;
    struct outcome o = {0};

    outcome_clear(&o);
    msg_init(&m, NULL, simple_text);
    m.req.port = 25;
    m.req.rcpts = bad;
    m.req.n_rcpts = 1;
    start(&m, &o);
    assert_int_equal(o.calls, 0);
    assert_true(run_until(1, GUARD_S));
    assert_false(o.during_start);
    assert_int_equal(o.codes[0], 451);
    msg_free(&m);
    outcome_clear(&o);
}

/* Destroying the reinjector with ops in flight: no callback, no leak (ASan). */
static void
test_destroy_with_pending(void **state)
{
    const char *const opts[] = {"-w", "2", NULL};
    struct sink s;
    struct msg m;
    struct outcome o[3] = {{0}};

    sink_start(&s, opts);
    msg_init(&m, &s, simple_text);
    m.req.max_conns = 1;
    for (int i = 0; i < 3; i++) {
        outcome_clear(&o[i]);
        start(&m, &o[i]);
    }
    run_for(0.3);
    fe_reinjector_destroy(&H.r);
    run_for(0.3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].calls, 0);
        outcome_clear(&o[i]);
    }
    msg_free(&m);
    assert_true(sink_stop(&s));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_recipients_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dot_stuffing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_body_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_body_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edits_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_421_at_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smtputf8_required_not_offered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ehlo_rejected_helo_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xforward_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_wanted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_conns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_connecting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_server_closed_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_envelope_answers_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_pending, setup, teardown),
    };

    if (access(SMTP_SINK, X_OK) != 0) {
        fprintf(stderr, "%s not installed: skipping\n", SMTP_SINK);
        return 77;
    }
    signal(SIGPIPE, SIG_IGN); /* as the frontend does: writes to a closed peer */
    sl_log_open("test_reinject", SL_LOG_STDERR, getenv("SL_TEST_DEBUG") ? LOG_DEBUG : LOG_WARNING);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
