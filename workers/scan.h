/* scan.h - clients of the scanner daemons (clamd, spamd, rspamd) and the
 * plumbing they share: connecting to "unix:/path" or "host:port" with a
 * connect timeout, I/O against a deadline, trying a list of servers in
 * turn, and running a message's scans concurrently.
 *
 * Each scanner call is blocking and meant to run on its own thread
 * (scan_parallel); the worker thread meanwhile keeps heartbeating, since
 * the broker declares a silent worker dead after 3 s.
 *
 * A scanner never reports "clean" or "infected" because it broke: when
 * every server of a scanner fails (connect, timeout, protocol error,
 * error reply) the result is SCAN_FAILED with the reasons, and the policy
 * makes the message UNCHECKED. Results the daemon gave but that are not a
 * verdict on the content ("INSTREAM size limit exceeded", clamd's
 * Heuristics.Limits.Exceeded.*) are SCAN_OK with `unchecked` set.
 *
 * Ownership: a struct scan_result owns its strings; scan_result_free(). */
#ifndef SLUICE_WORKERS_SCAN_H
#define SLUICE_WORKERS_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sl_scanner_config;

/* What the scanners need to know about the message. Not owned. */
struct scan_input {
    const char *job_id; /* for log lines */
    const char *data;   /* the message, CRLF line ends */
    size_t len;
    const char *client_addr; /* XFORWARD ADDR (may be "" or "[UNAVAILABLE]") */
    const char *client_name; /* XFORWARD NAME */
    const char *helo;        /* XFORWARD HELO */
    const char *mail_from;   /* "" = null sender */
    const char *queue_id;    /* XFORWARD IDENT or the job id */
    const char *const *rcpts;
    size_t n_rcpts;
    unsigned long long deadline_ms; /* monotonic; no scanner call runs past it (0: none) */
};

enum scan_status {
    SCAN_OFF = 0, /* not configured or bypassed: no result */
    SCAN_OK,      /* a server answered */
    SCAN_FAILED,  /* every server failed: error says why */
};

enum scan_unchecked {
    SCAN_UNCHECKED_NONE = 0,
    SCAN_UNCHECKED_OVERLIMIT, /* size or scan limits: retrying will not help */
    SCAN_UNCHECKED_ENCRYPTED, /* the daemon saw encrypted content */
};

struct scan_result {
    const char *scanner; /* "clamd", "spamd", "rspamd" (static) */
    enum scan_status status;
    char *error;           /* SCAN_FAILED: every server's failure, "; "-separated */
    char *server;          /* SCAN_OK: the server that answered */
    unsigned long long ms; /* time spent, all servers */

    /* virus scanners */
    char **viruses; /* names as reported ("Eicar-Test-Signature.UNOFFICIAL") */
    size_t n_viruses;
    enum scan_unchecked unchecked;
    char *unchecked_reason; /* when unchecked != NONE */

    /* spam scanners */
    bool spam_scanned;
    bool truncated; /* only the first max_size bytes were scanned */
    double score;
    double threshold; /* the scanner's own (informational) */
    char **tests;     /* "GTUBE=1000" */
    size_t n_tests;
    char *action; /* rspamd's action, NULL otherwise */
};

/* Frees what r owns and clears it (but for ->scanner). */
void scan_result_free(struct scan_result *r);

/* The scanners. cfg->n_servers == 0 gives SCAN_OFF. Blocking; bounded by
 * cfg's timeouts per server and in->deadline_ms. */
void scan_clamd(const struct sl_scanner_config *cfg, const struct scan_input *in,
                struct scan_result *res);
void scan_spamd(const struct sl_scanner_config *cfg, const struct scan_input *in,
                struct scan_result *res);
void scan_rspamd(const struct sl_scanner_config *cfg, const struct scan_input *in,
                 struct scan_result *res);

/* ---- parsers, exposed for unit tests (no I/O) ------------------------- */

/* clamd's reply to zINSTREAM (NUL or newline separated lines). 0 with
 * res filled (viruses / unchecked), or -1 with *error_r (malloc'ed): an
 * error reply or garbage, worth trying another server. */
int scan_clamd_parse(const char *reply, size_t len, struct scan_result *res, char **error_r);
/* spamd's reply to REPORT/SYMBOLS ("SPAMD/1.1 0 EX_OK" ...). */
int scan_spamd_parse(const char *reply, size_t len, struct scan_result *res, char **error_r);
/* rspamd's HTTP response to /checkv2 (status line, headers, JSON body). */
int scan_rspamd_parse(const char *reply, size_t len, struct scan_result *res, char **error_r);

/* ---- plumbing (scan_net.c) -------------------------------------------- */

/* Connects to "unix:/path" or "host:port" (each address of host in turn)
 * within timeout_ms. The fd is blocking-free (O_NONBLOCK) and CLOEXEC. */
int scan_connect(const char *server, unsigned timeout_ms, int *fd_r, char **error_r);
/* Sends all of buf before deadline (monotonic ms). No SIGPIPE. */
int scan_send_all(int fd, const void *buf, size_t len, unsigned long long deadline_ms,
                  char **error_r);
/* One read before deadline: bytes read, 0 at EOF, -1 with *error_r. */
ssize_t scan_recv(int fd, void *buf, size_t len, unsigned long long deadline_ms, char **error_r);
/* Reads until EOF (or max bytes: error) into a malloc'ed, NUL-terminated
 * buffer; *len_r without the NUL. */
int scan_recv_all(int fd, size_t max, unsigned long long deadline_ms, char **buf_r, size_t *len_r,
                  char **error_r);

/* The earlier of now + timeout_s and in->deadline_ms. */
unsigned long long scan_deadline(const struct scan_input *in, unsigned timeout_s);
/* How many bytes of the message a spam scanner gets: all of it, or, when
 * it is longer than max_size (0: no limit), the head cut after the last
 * LF within max_size (at max_size itself if there is none). Sets
 * *truncated_r to whether it cut. */
size_t scan_spam_len(const struct scan_input *in, size_t max_size, bool *truncated_r);

/* One try against one server: 0 with res filled, -1 with *error_r. */
typedef int scan_try_fn(const char *server, const struct sl_scanner_config *cfg,
                        const struct scan_input *in, struct scan_result *res, char **error_r);
/* Tries cfg's servers in turn until one succeeds; fills res->status,
 * ->server or ->error, ->ms; logs each failure with the job id. */
void scan_with_failover(const char *scanner, const struct sl_scanner_config *cfg,
                        const struct scan_input *in, scan_try_fn *try_fn, struct scan_result *res);

/* Appends a copy of s to a string vector. */
void scan_strv_add(char ***v, size_t *n, const char *s);

/* Runs the n (at most SCAN_MAX_TASKS) functions concurrently, one helper
 * thread each, and returns when all are done; meanwhile calls
 * keepalive(ctx) at least every 100 ms from the calling thread. The helper
 * threads belong to h, are started on first need and reused by later calls
 * (one call at a time per h: one scan_helpers per worker thread). A task
 * whose thread cannot be created runs inline. */
#define SCAN_MAX_TASKS 4
struct scan_task {
    void (*fn)(void *arg);
    void *arg;
};
struct scan_helpers;
struct scan_helpers *scan_helpers_new(void);
/* Stops and joins the helpers (none may be running a task); clears *hp. */
void scan_helpers_destroy(struct scan_helpers **hp);
void scan_parallel(struct scan_helpers *h, const struct scan_task *tasks, size_t n,
                   void (*keepalive)(void *ctx), void *ctx);

#endif
