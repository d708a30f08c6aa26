/* test_scanners.c - the scanner clients (workers/scan_*.c) against the real
 * daemons, started here on loopback and unix sockets in a private
 * directory: clamd with its own EICAR signature (Debian ships none), spamd
 * -L (offline; GTUBE scores 1000) and rspamd with a minimal configuration.
 * Failover, a dead server, a server that never answers (timeouts) and
 * clamd's StreamMaxLength are covered too. A daemon that is not installed
 * skips its tests; every process started here is killed at the end.
 *
 * Start-up takes a while (rspamd ~20 s, spamd ~5 s): the daemons start in
 * parallel once for the whole group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/sl_config.h"
#include "util/sl_buf.h"
#include "util/sl_util.h"
#include "workers/scan.h"

#define EICAR "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
#define GTUBE "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

struct daemon {
    const char *name;
    pid_t pid;
    bool up;
    char server[300]; /* for scanners.<name>.servers */
};

static struct {
    char dir[64];
    struct daemon clamd, spamd, rspamd;
    char clamd_tcp[64];
    struct sl_config *config;
} g;

/* ---- daemons ---------------------------------------------------------- */

static unsigned
free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

static bool
have(const char *path)
{
    return access(path, X_OK) == 0;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Starts argv in its own process group, output to dir/<name>.out. */
static pid_t
spawn(const char *name, char *const argv[])
{
    char out[128];
    pid_t pid;

    snprintf(out, sizeof(out), "%s/%s.out", g.dir, name);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
        setsid();
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (chdir(g.dir) != 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static bool
can_connect(const char *server)
{
    int fd;
    char *error = NULL;

    if (scan_connect(server, 500, &fd, &error) < 0) {
        free(error);
        return false;
    }
    close(fd);
    return true;
}

static void
start_clamd(void)
{
    char path[128], text[1024], hex[256] = "";
    unsigned port = free_port();
    const char *eicar = EICAR;

    if (!have("/usr/sbin/clamd"))
        return;
    for (size_t i = 0; eicar[i] != '\0'; i++)
        sprintf(hex + 2 * i, "%02x", (unsigned char)eicar[i]);
    snprintf(path, sizeof(path), "%s/db", g.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/db/eicar.ndb", g.dir);
    snprintf(text, sizeof(text), "Eicar-Test-Signature:0:*:%s\n", hex);
    write_file(path, text);
    snprintf(text, sizeof(text),
             "Foreground yes\nLocalSocket %s/clamd.sock\nTCPSocket %u\nTCPAddr 127.0.0.1\n"
             "DatabaseDirectory %s/db\nLogFile %s/clamd.log\nStreamMaxLength 1M\n"
             "PidFile %s/clamd.pid\n%s",
             g.dir, port, g.dir, g.dir, g.dir, getuid() == 0 ? "User root\n" : "");
    snprintf(path, sizeof(path), "%s/clamd.conf", g.dir);
    write_file(path, text);
    char *argv[] = {"/usr/sbin/clamd", "-c", path, NULL};
    g.clamd.pid = spawn("clamd", argv);
    snprintf(g.clamd.server, sizeof(g.clamd.server), "unix:%s/clamd.sock", g.dir);
    snprintf(g.clamd_tcp, sizeof(g.clamd_tcp), "127.0.0.1:%u", port);
}

static void
start_spamd(void)
{
    char port[16], pidf[128], logf[128];

    if (!have("/usr/sbin/spamd"))
        return;
    snprintf(port, sizeof(port), "%u", free_port());
    snprintf(pidf, sizeof(pidf), "%s/spamd.pid", g.dir);
    snprintf(logf, sizeof(logf), "%s/spamd.log", g.dir);
    char *argv[] = {"/usr/sbin/spamd",  "-L", "-i", "127.0.0.1", "-p", port, "-A", "127.0.0.1",
                    "--max-children=2", "-r", pidf, "-s",        logf, NULL};
    g.spamd.pid = spawn("spamd", argv);
    snprintf(g.spamd.server, sizeof(g.spamd.server), "127.0.0.1:%s", port);
}

static void
start_rspamd(void)
{
    char path[128], text[1024], vars[4][192];
    unsigned port = free_port();

    if (!have("/usr/bin/rspamd") || getuid() != 0)
        return;
    snprintf(path, sizeof(path), "%s/rspamd-db", g.dir);
    mkdir(path, 0755);
    snprintf(text, sizeof(text),
             ".include \"$CONFDIR/common.conf\"\n"
             "options { pidfile = \"$RUNDIR/rspamd.pid\"; .include \"$CONFDIR/options.inc\"\n"
             "  dns { nameserver = [\"127.0.0.1:53\"]; timeout = 0.5s; retransmits = 1; } }\n"
             "logging { type = \"file\"; filename = \"$LOGDIR/rspamd.log\"; level = \"info\"; }\n"
             "worker \"normal\" { bind_socket = \"127.0.0.1:%u\"; count = 1;\n"
             "  .include \"$CONFDIR/worker-normal.inc\" }\n",
             port);
    snprintf(path, sizeof(path), "%s/rspamd.conf", g.dir);
    write_file(path, text);
    snprintf(vars[0], sizeof(vars[0]), "DBDIR=%s/rspamd-db", g.dir);
    snprintf(vars[1], sizeof(vars[1]), "RUNDIR=%s", g.dir);
    snprintf(vars[2], sizeof(vars[2]), "LOGDIR=%s", g.dir);
    snprintf(vars[3], sizeof(vars[3]), "LOCAL_CONFDIR=%s/rspamd-local", g.dir);
    char *argv[] = {
        "/usr/bin/rspamd", "-f",    "-i",    "-u",    "root",  "-g",    "root",  "-c",    path,
        "--var",           vars[0], "--var", vars[1], "--var", vars[2], "--var", vars[3], NULL};
    g.rspamd.pid = spawn("rspamd", argv);
    snprintf(g.rspamd.server, sizeof(g.rspamd.server), "127.0.0.1:%u", port);
}

static void
stop(struct daemon *d)
{
    if (d->pid <= 0)
        return;
    kill(-d->pid, SIGTERM);
    for (int i = 0; i < 50 && waitpid(d->pid, NULL, WNOHANG) == 0; i++)
        usleep(100000);
    kill(-d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

static int
group_setup(void **state)
{
    char *error = NULL;

    (void)state;
    strcpy(g.dir, "/tmp/sluice-scanners.XXXXXX");
    assert_non_null(mkdtemp(g.dir));
    chmod(g.dir, 0755);
    g.clamd.name = "clamd";
    g.spamd.name = "spamd";
    g.rspamd.name = "rspamd";
    start_rspamd(); /* the slowest first */
    start_spamd();
    start_clamd();
    /* bounded waits, in parallel: 120 s for all */
    for (int i = 0; i < 1200; i++) {
        struct daemon *ds[] = {&g.clamd, &g.spamd, &g.rspamd};
        bool pending = false;
        for (int k = 0; k < 3; k++) {
            if (ds[k]->pid <= 0 || ds[k]->up)
                continue;
            if (waitpid(ds[k]->pid, NULL, WNOHANG) == ds[k]->pid) {
                print_message("%s exited during start-up (see %s/%s.out)\n", ds[k]->name, g.dir,
                              ds[k]->name);
                ds[k]->pid = 0;
                continue;
            }
            ds[k]->up = can_connect(ds[k]->server);
            pending |= !ds[k]->up;
        }
        if (!pending)
            break;
        usleep(100000);
    }
    print_message("daemons up: clamd %d, spamd %d, rspamd %d (dir %s)\n", g.clamd.up, g.spamd.up,
                  g.rspamd.up, g.dir);
    g.config = sl_config_load_buffer("test", "", 0, NULL, 0, &error);
    assert_non_null(g.config);
    return 0;
}

static int
group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    stop(&g.clamd);
    stop(&g.spamd);
    stop(&g.rspamd);
    sl_config_destroy(&g.config);
    if (getenv("SLUICE_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.dir);
        if (system(cmd) != 0)
            print_message("could not remove %s\n", g.dir);
    }
    return 0;
}

/* ---- messages --------------------------------------------------------- */

static const char head[] = "From: a@example.org\r\nTo: b@example.com\r\n"
                           "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
                           "Message-ID: <scan-test@example.org>\r\nSubject: test\r\n";

static char *
msg_plain(const char *body)
{
    return sl_asprintf("%s\r\n%s\r\n", head, body);
}

static char *
msg_attachment(const char *type, const char *name, const char *data, size_t len)
{
    gchar *b64 = g_base64_encode((const guchar *)data, len);
    char *m =
        sl_asprintf("%sMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n"
                    "\r\n--BB\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                    "--BB\r\nContent-Type: %s; name=\"%s\"\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--BB--\r\n",
                    head, type, name, b64);
    g_free(b64);
    return m;
}

static char *
zip_of(const char *name, const char *data, size_t *len_r)
{
    size_t cap = 65536;
    char *buf = sl_malloc(cap);
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();

    archive_write_set_format_zip(a);
    assert_int_equal(archive_write_open_memory(a, buf, cap, len_r), ARCHIVE_OK);
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)strlen(data));
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    archive_write_data(a, data, strlen(data));
    archive_write_close(a);
    archive_write_free(a);
    archive_entry_free(e);
    return buf;
}

static struct sl_scanner_config
scanner(const char *s1, const char *s2, unsigned timeout_s)
{
    static char *servers[2];
    struct sl_scanner_config c = {
        .timeout_s = timeout_s, .connect_timeout_s = 2, .on_failure = "unchecked"};
    servers[0] = (char *)s1;
    servers[1] = (char *)s2;
    c.servers = servers;
    c.n_servers = s2 != NULL ? 2 : 1;
    return c;
}

static void
scan_input_for(const char *msg, struct scan_input *in)
{
    static const char *const rcpts[] = {"b@example.com"};
    *in = (struct scan_input){.job_id = "testtesttest",
                              .data = msg,
                              .len = strlen(msg),
                              .client_addr = "192.0.2.1",
                              .helo = "mx.example.org",
                              .mail_from = "a@example.org",
                              .queue_id = "4ABCDEF",
                              .rcpts = rcpts,
                              .n_rcpts = 1};
}

#define NEED(d)                                                                                    \
    do {                                                                                           \
        if (!g.d.up) {                                                                             \
            print_message(#d " is not available: skipped\n");                                      \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- clamd ------------------------------------------------------------ */

static void
expect_eicar(const char *msg, const char *server)
{
    struct sl_scanner_config cfg = scanner(server, NULL, 30);
    struct scan_input in;
    struct scan_result r;

    scan_input_for(msg, &in);
    scan_clamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_OK);
    assert_int_equal(r.n_viruses, 1);
    assert_string_equal(r.viruses[0], "Eicar-Test-Signature.UNOFFICIAL");
    scan_result_free(&r);
}

static void
test_clamd_eicar(void **state)
{
    (void)state;
    NEED(clamd);
    char *m = msg_plain(EICAR);
    expect_eicar(m, g.clamd.server);
    expect_eicar(m, g.clamd_tcp); /* TCP as well as the unix socket */
    free(m);

    m = msg_attachment("application/octet-stream", "eicar.com", EICAR, strlen(EICAR));
    expect_eicar(m, g.clamd.server);
    free(m);

    size_t zlen;
    char *zip = zip_of("eicar.com", EICAR, &zlen);
    m = msg_attachment("application/zip", "eicar.zip", zip, zlen);
    expect_eicar(m, g.clamd.server);
    free(m);
    free(zip);

    /* inside a forwarded message */
    char *inner = msg_attachment("application/octet-stream", "eicar.com", EICAR, strlen(EICAR));
    m = sl_asprintf("%sMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"OUT\"\r\n"
                    "\r\n--OUT\r\nContent-Type: text/plain\r\n\r\nfwd\r\n--OUT\r\n"
                    "Content-Type: message/rfc822\r\n\r\n%s\r\n--OUT--\r\n",
                    head, inner);
    expect_eicar(m, g.clamd.server);
    free(m);
    free(inner);
}

static void
test_clamd_clean(void **state)
{
    struct sl_scanner_config cfg = scanner(g.clamd.server, NULL, 30);
    struct scan_input in;
    struct scan_result r;
    char *m = msg_plain("Hello, nothing to see here.");

    (void)state;
    NEED(clamd);
    scan_input_for(m, &in);
    scan_clamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_OK);
    assert_int_equal(r.n_viruses, 0);
    assert_int_equal(r.unchecked, SCAN_UNCHECKED_NONE);
    scan_result_free(&r);
    free(m);
}

/* clamd's StreamMaxLength (1M here): past it, not clean, not infected. */
static void
test_clamd_stream_limit(void **state)
{
    struct sl_scanner_config cfg = scanner(g.clamd.server, NULL, 30);
    struct scan_input in;
    struct scan_result r;
    size_t n = 3 * 1024 * 1024;
    char *big = sl_malloc(n + 1);

    (void)state;
    NEED(clamd);
    for (size_t i = 0; i < n; i++)
        big[i] = (i % 78 == 77) ? '\n' : 'a';
    big[n] = '\0';
    scan_input_for(big, &in);
    cfg.max_size = 0; /* send it anyway: clamd refuses */
    scan_clamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_OK);
    assert_int_equal(r.unchecked, SCAN_UNCHECKED_OVERLIMIT);
    assert_int_equal(r.n_viruses, 0);
    print_message("clamd: %s\n", r.unchecked_reason);
    scan_result_free(&r);
    cfg.max_size = 1024 * 1024; /* known limit: not even sent */
    scan_clamd(&cfg, &in, &r);
    assert_int_equal(r.unchecked, SCAN_UNCHECKED_OVERLIMIT);
    assert_non_null(strstr(r.unchecked_reason, "scanners.clamd.max_size"));
    scan_result_free(&r);
    free(big);
}

/* The first server is gone, the second answers; all gone: FAILED. */
static void
test_failover(void **state)
{
    char dead[128];
    struct scan_input in;
    struct scan_result r;
    char *m = msg_plain(EICAR);

    (void)state;
    NEED(clamd);
    snprintf(dead, sizeof(dead), "unix:%s/nobody-here.sock", g.dir);
    struct sl_scanner_config cfg = scanner(dead, g.clamd_tcp, 30);
    scan_input_for(m, &in);
    scan_clamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_OK);
    assert_string_equal(r.server, g.clamd_tcp);
    assert_int_equal(r.n_viruses, 1);
    scan_result_free(&r);

    char dead_tcp[32];
    snprintf(dead_tcp, sizeof(dead_tcp), "127.0.0.1:%u", free_port());
    cfg = scanner(dead, dead_tcp, 30);
    scan_clamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_FAILED);
    assert_int_equal(r.n_viruses, 0); /* never INFECTED because a scanner broke */
    assert_non_null(strstr(r.error, "nobody-here.sock"));
    assert_non_null(strstr(r.error, dead_tcp));
    print_message("all servers failed: %s\n", r.error);
    scan_result_free(&r);
    free(m);
}

/* A server that accepts connections and never answers: the timeout ends
 * it, for each scanner. */
static void
test_timeout(void **state)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char server[32];
    struct scan_input in;
    struct scan_result r;
    char *m = msg_plain("hello");

    (void)state;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 16), 0); /* the kernel completes handshakes; nobody reads */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(sin.sin_port));
    struct sl_scanner_config cfg = scanner(server, NULL, 1);
    scan_input_for(m, &in);
    void (*fns[])(const struct sl_scanner_config *, const struct scan_input *,
                  struct scan_result *) = {scan_clamd, scan_spamd, scan_rspamd};
    for (size_t i = 0; i < 3; i++) {
        unsigned long long t0 = sl_now_mono_ms();
        fns[i](&cfg, &in, &r);
        unsigned long long ms = sl_now_mono_ms() - t0;
        assert_int_equal(r.status, SCAN_FAILED);
        assert_non_null(strstr(r.error, "timed out"));
        assert_true(ms >= 900 && ms < 3000);
        scan_result_free(&r);
    }
    close(fd);
    free(m);
}

/* ---- spamd ------------------------------------------------------------ */

static bool
has_prefix(char *const *v, size_t n, const char *prefix)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(v[i], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

static void
test_spamd(void **state)
{
    struct sl_scanner_config cfg = scanner(g.spamd.server, NULL, 60);
    struct scan_input in;
    struct scan_result r;
    char *m = msg_plain(GTUBE);

    (void)state;
    NEED(spamd);
    cfg.user = "nobody";
    scan_input_for(m, &in);
    scan_spamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_OK);
    assert_true(r.spam_scanned);
    assert_true(r.score >= 1000);
    assert_true(has_prefix(r.tests, r.n_tests, "GTUBE=1000"));
    scan_result_free(&r);
    free(m);

    m = msg_plain("Hi Bob,\r\n\r\nshall we meet for lunch tomorrow at noon?\r\n\r\nAlice");
    scan_input_for(m, &in);
    scan_spamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_OK);
    assert_true(r.score < 5);
    print_message("spamd ham: score %.1f, %zu test(s)\n", r.score, r.n_tests);
    scan_result_free(&r);
    free(m);

    /* larger than max_size: the head is scanned */
    struct sl_buf big;
    sl_buf_init(&big);
    sl_buf_printf(&big, "%s\r\n%s\r\n", head, GTUBE);
    for (int i = 0; i < 20000; i++)
        sl_buf_append_str(&big, "padding padding padding padding padding padding\r\n");
    scan_input_for(big.data, &in);
    cfg.max_size = 64 * 1024;
    scan_spamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_OK);
    assert_true(r.truncated);
    assert_true(r.score >= 1000);
    scan_result_free(&r);
    sl_buf_free(&big);
}

/* ---- rspamd ----------------------------------------------------------- */

static void
test_rspamd(void **state)
{
    struct sl_scanner_config cfg = scanner(g.rspamd.server, NULL, 30);
    struct scan_input in;
    struct scan_result r;
    char *m = msg_plain(GTUBE);

    (void)state;
    NEED(rspamd);
    scan_input_for(m, &in);
    scan_rspamd(&cfg, &in, &r);
    assert_int_equal(r.status, SCAN_OK);
    assert_true(r.spam_scanned);
    assert_true(has_prefix(r.tests, r.n_tests, "GTUBE="));
    assert_non_null(r.action);
    print_message("rspamd GTUBE: score %.1f, action %s, %zu symbol(s)\n", r.score, r.action,
                  r.n_tests);
    scan_result_free(&r);
    free(m);
}

/* ---- concurrency ------------------------------------------------------ */

struct par {
    const struct sl_scanner_config *cfg;
    struct scan_input in;
    struct scan_result r;
};

static void
par_clamd(void *arg)
{
    struct par *p = arg;
    scan_clamd(p->cfg, &p->in, &p->r);
}

static void
count_keepalive(void *ctx)
{
    (*(unsigned *)ctx)++;
}

/* Three scans at once, one of them stuck for a second: keepalive runs
 * meanwhile, every result arrives; then the same helpers again (they are
 * reused, one message after the other). */
static void
test_parallel(void **state)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char stuck[32];
    unsigned keepalives = 0;
    char *m = msg_plain(EICAR);

    (void)state;
    NEED(clamd);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(stuck, sizeof(stuck), "127.0.0.1:%u", ntohs(sin.sin_port));
    struct sl_scanner_config good = scanner(g.clamd.server, NULL, 30);
    struct sl_scanner_config good2 = good;
    char *s2[] = {g.clamd_tcp};
    good2.servers = s2;
    char *s3[] = {stuck};
    struct sl_scanner_config bad = good;
    bad.servers = s3;
    bad.timeout_s = 1;
    struct par p[3] = {{.cfg = &good}, {.cfg = &good2}, {.cfg = &bad}};
    struct scan_task tasks[3];
    for (int i = 0; i < 3; i++) {
        scan_input_for(m, &p[i].in);
        tasks[i] = (struct scan_task){par_clamd, &p[i]};
    }
    struct scan_helpers *helpers = scan_helpers_new();
    for (int round = 0; round < 2; round++) {
        keepalives = 0;
        scan_parallel(helpers, tasks, 3, count_keepalive, &keepalives);
        assert_int_equal(p[0].r.n_viruses, 1);
        assert_int_equal(p[1].r.n_viruses, 1);
        assert_int_equal(p[2].r.status, SCAN_FAILED);
        assert_true(keepalives >= 5); /* every 100 ms during the stuck second */
        for (int i = 0; i < 3; i++) {
            scan_result_free(&p[i].r);
            memset(&p[i].r, 0, sizeof(p[i].r));
        }
    }
    scan_helpers_destroy(&helpers);
    assert_null(helpers);
    close(fd);
    free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clamd_eicar),
        cmocka_unit_test(test_clamd_clean),
        cmocka_unit_test(test_clamd_stream_limit),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_spamd),
        cmocka_unit_test(test_rspamd),
        cmocka_unit_test(test_parallel),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
