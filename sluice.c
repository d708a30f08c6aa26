/* sluice.c - the one binary: finds the command in a table, prepares what
 * the command needs, runs it. No protocol logic lives here.
 *
 * SYNOPSIS
 *   sluice [-c file] [-o key=value]... [-v] [-F] all|frontend|broker|worker
 *   sluice [-c file] [-o key=value]... config [-n]
 *   sluice [-c file] [-o key=value]... status [--json]
 *   sluice keygen NAME
 *   sluice [-c file] [-o key=value]... check-postfix [-c dir] [--origin name]
 *   sluice drill --via host:port[,...] --sink host:port [options]
 *   sluice [-c file] [-o key=value]... quarantine list|show|release|delete|expire ...
 *   sluice [-c file] [-o key=value]... lookup RECIPIENT [--sender ADDR]...
 *   sluice version | help
 *
 * DESIGN
 *   One row of commands[] per command: its name, its run function and
 *   what it needs (cli/sl_cli.h: loads the configuration, runs as a
 *   service, checks and drops privileges, needs keys, takes the listening
 *   sockets, runs under the master). main() parses the command line once,
 *   prepares those needs in a fixed order, runs the command (as the
 *   master's child when it needs a master) and cleans up once. A new
 *   command is a row and a run function.
 *
 *   The roles' run functions (all, frontend, broker, worker) are here
 *   because this file is the only code that may link the roles; the
 *   other commands (config, status, keygen, version, check-postfix,
 *   drill, quarantine, lookup) are in lib/cli. help is here with the text it
 *   prints. A command with options of its own (SL_CLI_ARGS) gets the
 *   words after its name: before the name -c is sluice's file, after it
 *   check-postfix's -c is Postfix's directory, as postconf -c.
 *
 * DIAGNOSTICS
 *   Exit status follows sysexits(3): 0 after a clean stop, 64 (EX_USAGE)
 *   for a bad command line, 78 (EX_CONFIG) for a configuration error
 *   (the message names file, line and key), 71 (EX_OSERR) when a socket
 *   cannot be bound, 70 (EX_SOFTWARE) for an internal failure. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/resource.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <sodium.h>
#include <zmq.h>
#include "broker.h"
#include "cli/sl_cli.h"
#include "frontend.h"
#include "conf/sl_config.h"
#include "net/sl_keys.h"
#include "net/sl_http.h"
#include "net/sl_redis.h"
#include "net/sl_registry.h"
#include "net/sl_zsock.h"
#include "node_http.h"
#include "util/sl_buf.h"
#include "util/sl_listen.h"
#include "util/sl_log.h"
#include "util/sl_master.h"
#include "util/sl_notify.h"
#include "util/sl_privs.h"
#include "worker.h"

static const char usage_text[] =
    "Usage: sluice [-c FILE] [-o KEY=VALUE]... [-v] [-F] COMMAND\n"
    "\n"
    "sluice is a clustered content filter for Postfix that replaces amavisd-new.\n"
    "Postfix hands it mail over LMTP (or SMTP) on port 10024; sluice holds the\n"
    "connection while the message is scanned and returned to Postfix's :10025,\n"
    "and only then answers, one reply per recipient. Nothing is lost: any failure\n"
    "is a 4xx and the mail stays in Postfix's queue.\n"
    "\n"
    "Commands:\n"
    "  all          run every role in one process (frontend, broker, workers,\n"
    "               reinjector). With no configuration this serves the standard\n"
    "               Postfix/amavisd-new setup: listen 127.0.0.1:10024, reinject to\n"
    "               the connecting Postfix's port 10025, 2 concurrent messages.\n"
    "  frontend     run the LMTP/SMTP frontend and reinjector only\n"
    "  broker       run a broker only (binds broker.listen)\n"
    "  worker       run scanner workers only (connect to broker.endpoints)\n"
    "  config [-n]  print the effective configuration as YAML; -n prints only\n"
    "               the values that differ from the defaults (like postconf -n)\n"
    "  status [--json]\n"
    "               the cluster as registered in Redis (redis.url): nodes alive\n"
    "               or gone, queue depth and oldest age, sessions per origin,\n"
    "               worker slots and any provisioning shortfall; exit 0 ok,\n"
    "               1 degraded, 69 Redis unreachable. Without redis.url, one\n"
    "               node asked on its metrics.listen (69: it does not answer)\n"
    "  keygen NAME  write a CURVE key pair for one node: NAME.key (the secret\n"
    "               key, created mode 0600, never overwritten, never logged) and\n"
    "               NAME.pub (the public key, Z85 text). Give the broker's\n"
    "               NAME.pub to frontends and workers (security.broker_public_key\n"
    "               or _file) and put theirs in the broker's security.allow_dir\n"
    "               (frontend/NAME.pub, worker/NAME.pub); see docs/cluster.md\n"
    "  check-postfix [-c DIR] [--origin NAME]\n"
    "               compare a Postfix instance's filter settings with this\n"
    "               configuration, as postfix check does: content_filter against\n"
    "               frontend.listen; the transport's maxproc and\n"
    "               <transport>_destination_concurrency_limit against the\n"
    "               origin's concurrency; lmtp_data_done_timeout above\n"
    "               job.timeout; lmtp_send_xforward_command = yes; the\n"
    "               reinjection smtpd's content_filter=, receive_override_options,\n"
    "               smtpd_authorized_xforward_hosts and mynetworks. Prints one\n"
    "               \"sluice: warning: ...; fix: ...\" line per mismatch, the fix\n"
    "               being the postconf command that mends it. -c DIR: the\n"
    "               instance's configuration directory (postconf -c; sluice's own\n"
    "               -c FILE goes before the command). --origin NAME: compare with\n"
    "               that origin, not the one whose match holds the instance's\n"
    "               lmtp_bind_address (127.0.0.1 when unset). Exit 0 all right,\n"
    "               1 mismatches, 69 postconf cannot be run, 78 Postfix's\n"
    "               configuration cannot be read\n"
    "  drill --via HOST:PORT[,HOST:PORT]... --sink HOST:PORT [--count N]\n"
    "        [--rate R] [--sessions S] [--rcpts K] [--size BYTES] [--bind ADDR]\n"
    "        [--timeout SECONDS] [--grace SECONDS] [--attempts N]\n"
    "        [--reply-timeout SECONDS] [--json] [-q, --quiet] [--fail-on-duplicates]\n"
    "               the failover drill, run while nodes are killed or restarted:\n"
    "               plays an origin Postfix. Sends N messages (default 100), R a\n"
    "               second (10; 0: as fast as the sessions go), each with K\n"
    "               recipients (1) and BYTES bytes (1024), over S LMTP sessions\n"
    "               (2) kept open and reused, round-robin over the frontends of\n"
    "               --via, as Postfix's lmtp client does: a 4xx, a lost\n"
    "               connection or a timeout (--reply-timeout, 600 s) defers the\n"
    "               message, tried again after 1, 2, 4, 8, then every 10 s, at\n"
    "               most --attempts times (20) and until --timeout (default:\n"
    "               the time the rate needs plus 120 s). --sink listens as the\n"
    "               origin's reinjection smtpd (the origin's reinject must point\n"
    "               there) and counts every copy by Message-ID and recipient;\n"
    "               --bind connects from ADDR, as lmtp_bind_address does, so that\n"
    "               origins.NAME.match picks the origin. A progress line each\n"
    "               second on stderr (not with -q), then the figures on stdout:\n"
    "               sent, accepted, delivered, lost (accepted, and no copy within\n"
    "               --grace, 30 s, after the last reply), duplicates, tempfails\n"
    "               (attempts deferred), latency p50 and p99 (first attempt to\n"
    "               acceptance); --json prints them as one object with the keys\n"
    "               sent accepted delivered lost duplicates tempfails p50_ms\n"
    "               p99_ms. SIGINT stops sending and reports. Exit 0 nothing lost\n"
    "               and every message accepted, 1 a message lost (or with\n"
    "               --fail-on-duplicates a duplicate), 2 nothing lost but not\n"
    "               every message accepted, 68 a --via name unknown, 71 --sink\n"
    "               cannot listen\n"
    "  quarantine list [--recipient ADDR] [--since WHEN] [--json]\n"
    "  quarantine show ID [--json]\n"
    "  quarantine release ID [--rcpt ADDR]... [--to HOST:PORT]\n"
    "  quarantine delete ID\n"
    "  quarantine expire [--max-age DURATION]\n"
    "               the quarantine (quarantine.store: local:/dir in amavisd-new's\n"
    "               layout, or sql: PostgreSQL with amavisd-new's schema; see\n"
    "               docs/quarantine.md). ID is amavis' virus-<mail_id> (banned-,\n"
    "               spam-, badh-), the mail_id alone, or a file name V/virus-...\n"
    "               list: the entries, oldest first, of one recipient, since\n"
    "               WHEN (7d, 12h, or a date 2024-05-01[T12:00] in UTC); show:\n"
    "               one entry with its secret_id and the message; release: back\n"
    "               to the recipients it was kept for (or --rcpt) through the\n"
    "               reinjection listener of the Postfix it came from (or --to),\n"
    "               with amavis' X-Quarantine-ID, logged as amavisd-new logs a\n"
    "               release; delete: removed; expire: what is older than\n"
    "               quarantine.max_age (or --max-age) removed, unless another\n"
    "               node is at it. Exit 0 done, 1 no such entry, 69 the store\n"
    "               or Postfix unavailable, 78 no quarantine.store\n"
    "  lookup RECIPIENT [--sender ADDR]...\n"
    "               the recipient's policy as lookup.sql (amavisd-new's users,\n"
    "               policy, mailaddr and wblist tables) or lookup.ldap.*\n"
    "               (amavisAccount entries) give it, uncached: the record\n"
    "               matched, each field it sets, and for each --sender the\n"
    "               verdict of the recipient's sender lists (docs/lookups.md).\n"
    "               Exit 0 answered, 75 the source unavailable, 78 no source\n"
    "               configured\n"
    "  version      print the version and exit\n"
    "  help         print this text and exit\n"
    "\n"
    "Options:\n"
    "  -c FILE      configuration file (default " SL_CONFIG_DEFAULT_PATH " if it\n"
    "               exists, else $SLUICE_CONFIG, else built-in defaults)\n"
    "  -o KEY=VALUE override one setting, like Postfix's -o; repeatable, e.g.\n"
    "               -o origins.default.concurrency=10\n"
    "  -v           verbose: log at level debug\n"
    "  -F, --no-master\n"
    "               all, frontend: run in this one process, without the master\n"
    "               that holds the listening socket and restarts the process if\n"
    "               it dies (for a debugger or valgrind)\n"
    "  -h, --help   print this text\n"
    "\n"
    "Process model: all and frontend run as two processes: a master that binds\n"
    "frontend.listen (or takes systemd's sockets, LISTEN_FDS) and does nothing\n"
    "else, and a child that does the work. If the child dies, even by SIGKILL,\n"
    "or stops answering for 10 s (stopped, deadlocked), the master starts a new\n"
    "one at once (a child that keeps failing before it is ready: after 1 s,\n"
    "doubling up to 30 s); connections meanwhile wait in the listen backlog,\n"
    "never refused. Under systemd (Type=notify) the master reports readiness\n"
    "and status, and feeds WatchdogSec only while its child answers.\n"
    "\n"
    "Signals (to the master, which passes them on): SIGTERM or SIGINT stop\n"
    "gracefully (messages in flight finish; a second signal stops at once,\n"
    "Postfix retries what was not answered). Signalling the process group\n"
    "(pkill) is one request, not two.\n"
    "SIGHUP reloads the configuration file (same -c and -o): what is in\n"
    "flight finishes with the settings it started with, the next connection\n"
    "or message gets the new ones; a file that does not load is logged (file,\n"
    "line, key) and changes nothing; a changed key that needs a restart\n"
    "(frontend.listen, broker.*, security.*, redis.*, ...) is logged and keeps\n"
    "its value. A broker also re-reads security.allow_dir: a key added is\n"
    "admitted at its next connect, a key removed is refused at its next connect.\n"
    "\n"
    "Security: every ZeroMQ link that is not inproc:// (sluice all) is CURVE-\n"
    "encrypted and authenticated; a node with tcp:// links and no keys does not\n"
    "start unless security.mode is plain (which logs a warning at every start).\n"
    "Started as root, sluice drops to security.user (default nobody) after\n"
    "binding its sockets and reading its keys (-o security.user=root runs as\n"
    "root on purpose, with a warning).\n"
    "\n"
    "Exactly once: with redis.url set, frontends record every reinjection in a\n"
    "ledger in Redis, so a message Postfix retries (after a timeout or a dead\n"
    "frontend) is answered with the stored reply, not delivered twice; if Redis\n"
    "is down, dedup.on_unavailable decides (deliver, the default, or tempfail).\n"
    "See docs/exactly-once.md.\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 70 internal error, 71 cannot bind, 73 keygen\n"
    "cannot create a key file, 77 security.user does not exist or cannot be\n"
    "switched to, 78 configuration error.\n"
    "\n"
    "See docs/configuration.md for every key and docs/architecture.md for the design.\n";

/* ------------------------------------------------------------- roles */

enum role {
    ROLE_FRONTEND = 1 << 0,
    ROLE_BROKER = 1 << 1,
    ROLE_WORKERS = 1 << 2,
};

/* The roles of one process, while they run. */
struct run {
    struct sl_cli *cli; /* the sockets main() bound are in it */
    struct sl_config *config; /* the current one (a reference); SIGHUP swaps it */
    struct event_base *base;
    void *zctx;
    struct broker *broker;
    struct worker_pool *workers;
    struct frontend *frontend;
    struct sl_registry *registry;
    struct node_http *node; /* metrics.listen; NULL: off */
    unsigned n_workers;
    char host[256];
    struct sl_stop_count stops; /* SIGTERM, SIGINT and the master's copies */
    bool stopping;
    struct event *notify_timer; /* liveness and STATUS= to the master or systemd */
};

/* ------------------------------------------------------------ registry */

static void
registry_fill_frontend(void *ctx, struct sl_registry_rec *rec)
{
    struct run *run = ctx;
    struct frontend_stats st;

    if (run->frontend == NULL)
        return;
    frontend_stats(run->frontend, &st);
    sl_registry_put(rec, "sessions", "%u", st.n_sessions);
    sl_registry_put(rec, "jobs_waiting", "%u", st.n_jobs);
    sl_registry_put(rec, "brokers", "%u", st.link.n_brokers);
    sl_registry_put(rec, "brokers_alive", "%u", st.link.n_alive);
    sl_registry_put(rec, "jobs_held", "%u", st.link.held);
    sl_registry_put(rec, "jobs_pending", "%u", st.link.pending);
    sl_registry_put(rec, "jobs", "%llu", st.link.n_jobs);
    sl_registry_put(rec, "resubmitted", "%llu", st.link.n_resubmitted);
    sl_registry_put(rec, "duplicate_verdicts", "%llu", st.link.n_duplicate_verdicts);
    for (size_t i = 0; i < st.n_origins; i++) {
        char key[160];
        snprintf(key, sizeof(key), "origin.%s.sessions", st.origins[i].name);
        sl_registry_put(rec, key, "%u", st.origins[i].active);
        /* The provisioning sum counts the named origins (one per Postfix);
         * the catch-all "default" counts only when it is the only one (the
         * standard single-node Postfix setup): beside named origins it is
         * for stray clients, and counting it would report a shortfall
         * nobody has. */
        if (strcmp(st.origins[i].name, "default") == 0 && st.n_origins > 1)
            continue;
        snprintf(key, sizeof(key), "origin.%s.concurrency", st.origins[i].name);
        sl_registry_put(rec, key, "%u", st.origins[i].concurrency);
    }
}

static void
registry_fill_broker(void *ctx, struct sl_registry_rec *rec)
{
    struct run *run = ctx;
    struct broker_stats st;

    if (run->broker == NULL)
        return;
    broker_stats(run->broker, &st);
    sl_registry_put(rec, "instance", "%s", st.instance);
    sl_registry_put(rec, "queue_depth", "%zu", st.depth);
    sl_registry_put(rec, "oldest_age_ms", "%llu", st.oldest_age_ms);
    sl_registry_put(rec, "inflight", "%zu", st.inflight);
    sl_registry_put(rec, "workers", "%u", st.n_workers);
    sl_registry_put(rec, "slots_free", "%u", st.slots_free);
    sl_registry_put(rec, "frontends", "%u", st.n_clients);
    sl_registry_put(rec, "origins", "%u", st.n_origins);
    sl_registry_put(rec, "jobs", "%llu", st.n_jobs);
    sl_registry_put(rec, "verdicts", "%llu", st.n_verdicts);
    sl_registry_put(rec, "requeued", "%llu", st.n_requeued);
    sl_registry_put(rec, "expired", "%llu", st.n_expired);
    sl_registry_put(rec, "failed", "%llu", st.n_failed);
    sl_registry_put(rec, "resubmitted_duplicates", "%llu", st.n_duplicates);
}

static void
registry_fill_worker(void *ctx, struct sl_registry_rec *rec)
{
    struct run *run = ctx;

    sl_registry_put(rec, "slots", "%u", run->n_workers);
    sl_registry_put(rec, "brokers", "%zu", run->config->broker.n_endpoints);
}

/* Nodes are "role:host:pid": unique on a host, and readable in status.
 * Under a master the pid is the master's, which outlives its children. */
static void
registry_start(struct run *run, unsigned roles)
{
    const struct sl_config *cfg = run->config;
    struct sl_redis_url url;
    char *error = NULL, *id, *addr;
    bool redis = cfg->redis.url != NULL && cfg->redis.url[0] != '\0';

    /* without Redis the records still answer /status (metrics.listen) */
    if (!redis && run->node == NULL)
        return;
    if (redis && sl_redis_url_from_config(cfg, &url, &error) < 0) {
        /* checked at start-up (service_open); cannot fail here */
        sl_error("%s", error);
        free(error);
        return;
    }
    if (gethostname(run->host, sizeof(run->host)) != 0)
        snprintf(run->host, sizeof(run->host), "localhost");
    run->host[sizeof(run->host) - 1] = '\0';
    run->registry = sl_registry_new(run->base, redis ? &url : NULL);
    if (redis)
        sl_redis_url_free(&url);
    if (roles & ROLE_FRONTEND) {
        id = sl_registry_node_id("frontend");
        sl_registry_add_node(run->registry, "frontend", id, cfg->frontend.listen,
                             registry_fill_frontend, run);
        free(id);
    }
    if (roles & ROLE_BROKER) {
        id = sl_registry_node_id("broker");
        sl_registry_add_node(run->registry, "broker", id, cfg->broker.listen, registry_fill_broker,
                             run);
        free(id);
    }
    if (roles & ROLE_WORKERS) {
        id = sl_registry_node_id("worker");
        addr = sl_asprintf("%s pid %ld", run->host, (long)getpid());
        sl_registry_add_node(run->registry, "worker", id, addr, registry_fill_worker, run);
        free(addr);
        free(id);
    }
}

/* ------------------------------------------------------ running roles */

static unsigned
workers_wanted(const struct sl_config *config)
{
    if (config->workers.count)
        return config->workers.count;
    /* Auto: one worker slot per message Postfix may send at once, so the
     * operator never hand-matches maxproc and $max_servers again. */
    unsigned sum = 0;
    for (size_t i = 0; i < config->n_origins; i++)
        sum += config->origins[i].concurrency;
    return sum ? sum : 2;
}

/* STATUS= for the master or systemd: what `systemctl status` shows. */
static void
notify_status(struct run *run)
{
    char buf[256];
    size_t off = 0;

    buf[0] = '\0';
    if (run->frontend != NULL) {
        struct frontend_stats st;
        frontend_stats(run->frontend, &st);
        off += (size_t)snprintf(buf + off, sizeof(buf) - off,
                                "%u session(s), %u message(s) in flight", st.n_sessions, st.n_jobs);
    }
    if (run->broker != NULL && off < sizeof(buf)) {
        struct broker_stats st;
        broker_stats(run->broker, &st);
        off += (size_t)snprintf(buf + off, sizeof(buf) - off,
                                "%squeue %zu, %zu scanning, %u worker(s) connected",
                                off ? "; " : "", st.depth, st.inflight, st.n_workers);
    }
    if (run->workers != NULL && off < sizeof(buf))
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%u worker slot(s)",
                                off ? "; " : "", run->n_workers);
    sl_notify_status("%s%s", run->stopping ? "stopping: " : "", buf);
}

/* Every sl_notify_interval_ms(), from the loop that does the work: if the
 * loop is stuck, the pings stop, and the master (or systemd's watchdog)
 * kills this process. */
static void
on_notify_timer(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd;
    (void)what;
    sl_notify_alive();
    notify_status(ctx);
}

/* ---------------------------------------------------------- reloading */

/* Logs what a reload changes; the keys only a restart can change each get
 * a warning with both values (the running one stays). */
struct reload_notes {
    const char *why;
    const struct sl_config *running, *next;
    struct sl_buf changed; /* "policy.spam_kill_level, origins.o2" */
};

static void
reload_note(void *ctx, const char *key)
{
    struct reload_notes *rn = ctx;

    if (!sl_config_key_needs_restart(key)) {
        sl_buf_printf(&rn->changed, "%s%s", rn->changed.len > 0 ? ", " : "", key);
        return;
    }
    char *was = sl_config_value_text(rn->running, key);
    char *now = sl_config_value_text(rn->next, key);
    sl_warn("%s: %s changed (%s -> %s) and needs a restart; the running value stays", rn->why, key,
            was != NULL ? was : "?", now != NULL ? now : "?");
    free(was);
    free(now);
}

/* The configuration file again, with the same -c and -o as at start,
 * compared with running: NULL after logging why it does not load (the
 * running configuration stays), or the new configuration, in which every
 * key that needs a restart has its running value. */
static struct sl_config *
config_reread(const struct sl_cli *cli, const struct sl_config *running, const char *why)
{
    char *error = NULL;
    struct sl_config *next =
        sl_config_load(cli->config_path, cli->overrides, cli->n_overrides, &error);

    if (next == NULL) {
        sl_error("%s: configuration not reloaded, the running one stays: %s", why, error);
        free(error);
        return NULL;
    }
    struct reload_notes rn = {.why = why, .running = running, .next = next};
    sl_buf_init(&rn.changed);
    sl_config_diff(running, next, reload_note, &rn);
    sl_config_keep_restart_keys(next, running);
    if (rn.changed.len > 0 || strcmp(why, "SIGHUP") == 0)
        sl_notice("%s: configuration reloaded from %s: %s%s", why,
                  next->path ? next->path : "(no file: built-in defaults)",
                  rn.changed.len > 0 ? "changed " : "no change that takes effect without a restart",
                  rn.changed.len > 0 ? rn.changed.data : "");
    sl_buf_free(&rn.changed);
    return next;
}

/* log.target, log.level, log.ident (and -v) take effect at once. */
static void
log_apply(const struct sl_cli *cli, const struct sl_config *cfg)
{
    int level = cli->verbose ? LOG_DEBUG : sl_log_level_from_name(cfg->log.level);

    sl_log_open(cfg->log.ident,
                strcmp(cfg->log.target, "syslog") == 0 ? SL_LOG_SYSLOG : SL_LOG_STDERR,
                level < 0 ? LOG_INFO : level);
}

static unsigned workers_wanted(const struct sl_config *config);

/* SIGHUP: the broker's allow-list, then the whole configuration (docs/
 * operations.md, "Reloading"). Whatever fails, the process goes on with
 * what it runs. */
static void
run_reload(struct run *run)
{
    char *error = NULL;
    struct sl_config *next;

    if (run->broker != NULL && run->config->security.curve) {
        if (broker_reload(run->broker, &error) < 0) {
            sl_error("SIGHUP: allow-list not reloaded, the previous one stays: %s", error);
            free(error);
        } else {
            sl_notice("SIGHUP: allow-list reloaded (%s)", run->config->security.allow_dir);
        }
    }
    if ((next = config_reread(run->cli, run->config, "SIGHUP")) == NULL)
        return;
    log_apply(run->cli, next);
    if (run->workers != NULL) {
        worker_pool_reconfigure(run->workers, next);
        if (next->workers.count == 0 && workers_wanted(next) != run->n_workers)
            sl_warn("SIGHUP: the origins' concurrency now adds up to %u; the %u worker "
                    "thread(s) started for it stay until a restart (workers.count: 0)",
                    workers_wanted(next), run->n_workers);
    }
    if (run->frontend != NULL)
        frontend_reconfigure(run->frontend, next);
    sl_config_unref(&run->config);
    run->config = next;
}

static void
on_shutdown_done(void *ctx)
{
    struct run *run = ctx;
    event_base_loopexit(run->base, NULL);
}

static void
on_signal(evutil_socket_t sig, short what, void *ctx)
{
    struct run *run = ctx;
    (void)what;
    if (sig == SIGHUP) {
        run_reload(run);
        return;
    }
    const char *name =
        sig == SL_MASTER_STOP_SIGNAL ? "stop passed on by the master" : strsignal((int)sig);
    unsigned requests = sl_stop_count_add(&run->stops, (int)sig);
    if (requests == 0) {
        /* the sender signalled the process group (or pkill): this is the
         * other copy of a request already under way */
        sl_info("%s: the same stop request again (the process group's and the master's "
                "copies), not a second one",
                name);
        return;
    }
    if (requests > 1 || run->frontend == NULL) {
        /* no frontend: nothing is held for Postfix (a worker's jobs go back
         * to the queue, a broker's are resubmitted by the frontends), so the
         * first one stops at once too */
        sl_notice("%s%s: stopping now", name, requests > 1 ? " again" : "");
        sl_notify_stopping();
        event_base_loopbreak(run->base);
        return;
    }
    sl_notice("%s: stopping after the messages in flight", name);
    run->stopping = true;
    sl_notify_stopping();
    frontend_shutdown(run->frontend, on_shutdown_done, run);
    notify_status(run);
}

/* Starts the roles' threads and the frontend, then gives up root: after
 * this nothing binds a socket or reads a key. */
static int
roles_start(struct run *run, unsigned roles)
{
    const struct sl_config *cfg = run->config;
    struct sl_cli *cli = run->cli;
    char *error = NULL;
    int rc = 0;

    /* the metrics' families before any role's thread counts */
    run->node = node_http_new(cfg, roles & ROLE_FRONTEND, roles & ROLE_BROKER,
                              (roles & ROLE_WORKERS) ? workers_wanted(cfg) : 0);
    if (roles & ROLE_BROKER) {
        run->broker = broker_start(run->zctx, cfg, cfg->broker.listen, &error);
        if (run->broker == NULL) {
            sl_fatal("broker: %s", error);
            rc = EX_OSERR;
            goto out;
        }
    }
    if (roles & ROLE_WORKERS) {
        unsigned n = workers_wanted(cfg);
        run->n_workers = n;
        run->workers = worker_pool_start(run->zctx, cfg, cfg->broker.endpoints,
                                         cfg->broker.n_endpoints, n, &error);
        if (run->workers == NULL) {
            sl_fatal("workers: %s", error);
            rc = EX_SOFTWARE;
            goto out;
        }
    }

    run->base = event_base_new();
    if (roles & ROLE_FRONTEND) {
        run->frontend = frontend_new(run->base, run->zctx, cfg, cli->listen_fds, cli->n_listen_fds,
                                     cfg->broker.endpoints, cfg->broker.n_endpoints, &error);
        cli->n_listen_fds = 0; /* the frontend owns them now */
        if (run->frontend == NULL) {
            sl_fatal("frontend: %s", error);
            rc = EX_OSERR;
            goto out;
        }
    }
    if (run->node != NULL && node_http_serve(run->node, run->base, run->frontend, run->broker,
                                             &run->registry, cli->metrics_fd, &error) < 0) {
        sl_fatal("%s", error);
        rc = EX_OSERR;
        goto out;
    }
    cli->metrics_fd = -1; /* the server owns it now (or there is none) */
    /* everything privileged is done: sockets bound, keys read */
    if ((cli->command->needs & SL_CLI_PRIVS) && sl_privs_drop(cfg->security.user, &error) < 0) {
        sl_fatal("%s", error);
        rc = EX_NOPERM;
    }
out:
    free(error);
    return rc;
}

/* Runs the loop until a stop signal has been dealt with. */
static void
roles_serve(struct run *run, unsigned roles)
{
    struct event *sigs[4];
    const int signums[4] = {SIGTERM, SIGINT, SL_MASTER_STOP_SIGNAL, SIGHUP};

    registry_start(run, roles);
    for (int i = 0; i < 4; i++) {
        sigs[i] = evsignal_new(run->base, signums[i], on_signal, run);
        evsignal_add(sigs[i], NULL);
    }
    sl_master_child_ready(); /* a stop asked for during start-up is handled now */
    sl_notice("sluice %s started: %s%s%s", SLUICE_VERSION,
              (roles & ROLE_FRONTEND) ? "frontend " : "", (roles & ROLE_BROKER) ? "broker " : "",
              (roles & ROLE_WORKERS) ? "workers" : "");
    /* bound, connected (ZeroMQ connects in the background and queues
     * meanwhile), loop about to turn: ready */
    sl_notify_ready();
    notify_status(run);
    unsigned interval_ms = sl_notify_interval_ms();
    if (interval_ms > 0) {
        struct timeval tv = {.tv_sec = interval_ms / 1000,
                             .tv_usec = (suseconds_t)(interval_ms % 1000) * 1000};
        run->notify_timer = event_new(run->base, -1, EV_PERSIST, on_notify_timer, run);
        event_add(run->notify_timer, &tv);
    }
    event_base_dispatch(run->base);
    if (run->notify_timer != NULL)
        event_free(run->notify_timer);
    run->notify_timer = NULL;
    for (int i = 0; i < 4; i++)
        event_free(sigs[i]);
    /* A late copy of the stop signal (a process group signalled, the master
     * passing its own on) must not end the bounded teardown below by the
     * default action: the exit status would say "killed by a signal" after
     * an orderly stop, and a sanitizer build's exit checks would not run. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SL_MASTER_STOP_SIGNAL, SIG_IGN);
    sl_notice("sluice stopped");
}

/* The process that does the work: the master's child, or main() itself
 * with -F and for the roles that take no connections from Postfix. */
static int
roles_run(struct sl_cli *cli, unsigned roles)
{
    struct run run = {.cli = cli, .config = sl_config_ref(cli->config)};
    int rc;

    run.zctx = sl_zsock_ctx_new();
    if (run.zctx == NULL) {
        sl_fatal("zmq_ctx_new: %s", zmq_strerror(errno));
        sl_config_unref(&run.config);
        return EX_SOFTWARE;
    }
    if ((rc = roles_start(&run, roles)) == 0)
        roles_serve(&run, roles);
    sl_registry_destroy(&run.registry);
    frontend_destroy(&run.frontend);
    worker_pool_stop(&run.workers);
    broker_stop(&run.broker);
    node_http_destroy(&run.node); /* every thread that counts has stopped */
    if (run.base)
        event_base_free(run.base);
    zmq_ctx_term(run.zctx);
    sl_config_unref(&run.config);
    return rc;
}

static int
run_all(struct sl_cli *cli)
{
    return roles_run(cli, ROLE_FRONTEND | ROLE_BROKER | ROLE_WORKERS);
}

static int
run_frontend(struct sl_cli *cli)
{
    return roles_run(cli, ROLE_FRONTEND);
}

static int
run_broker(struct sl_cli *cli)
{
    return roles_run(cli, ROLE_BROKER);
}

static int
run_worker(struct sl_cli *cli)
{
    return roles_run(cli, ROLE_WORKERS);
}

static int
run_help(struct sl_cli *cli)
{
    (void)cli;
    fputs(usage_text, stdout);
    return 0;
}

/* ------------------------------------------------------- the commands */

/* Every role: a service, configured, started as root and run as
 * security.user. */
#define ROLE_NEEDS (SL_CLI_CONFIG | SL_CLI_SERVICE | SL_CLI_PRIVS)

static const struct sl_cli_command commands[] = {
    {"all", run_all,
     ROLE_NEEDS | SL_CLI_KEYS_BROKER | SL_CLI_KEYS_CLIENT | SL_CLI_LISTEN | SL_CLI_MASTER,
     "sluice all"},
    {"frontend", run_frontend, ROLE_NEEDS | SL_CLI_KEYS_CLIENT | SL_CLI_LISTEN | SL_CLI_MASTER,
     "frontend"},
    {"broker", run_broker, ROLE_NEEDS | SL_CLI_KEYS_BROKER, NULL},
    {"worker", run_worker, ROLE_NEEDS | SL_CLI_KEYS_CLIENT, NULL},
    {"config", sl_cli_config, SL_CLI_CONFIG, NULL},
    {"status", sl_cli_status, SL_CLI_CONFIG, NULL},
    {"keygen", sl_cli_keygen, SL_CLI_OPERAND, NULL},
    {"check-postfix", sl_cli_check_postfix, SL_CLI_CONFIG | SL_CLI_ARGS, NULL},
    {"drill", sl_cli_drill, SL_CLI_ARGS, NULL},
    {"quarantine", sl_cli_quarantine, SL_CLI_CONFIG | SL_CLI_ARGS, NULL},
    {"lookup", sl_cli_lookup, SL_CLI_CONFIG | SL_CLI_ARGS, NULL},
    {"version", sl_cli_version, 0, NULL},
    {"help", run_help, 0, NULL},
};

static const struct sl_cli_command *
command_find(const char *name)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* ---------------------------------------------------- the command line */

/* One option. 0: go on; -1: stop, *name_r is the command (-h, --version:
 * whatever else was given); else the exit status of a usage error. */
static int
cli_option(struct sl_cli *cli, int c, const char **name_r)
{
    switch (c) {
    case 'c':
        cli->config_path = optarg;
        return 0;
    case 'o':
        if (strchr(optarg, '=') == NULL) {
            fprintf(stderr, "sluice: -o %s: expected KEY=VALUE\n", optarg);
            return EX_USAGE;
        }
        cli->overrides[cli->n_overrides++] = optarg;
        return 0;
    case 'v':
        cli->verbose = true;
        return 0;
    case 'n':
        cli->only_changed = true;
        return 0;
    case 'J':
        cli->json = true;
        return 0;
    case 'F':
        cli->no_master = true;
        return 0;
    case 'h':
        *name_r = "help";
        return -1;
    case 'V':
        *name_r = "version";
        return -1;
    default:
        fprintf(stderr, "Try 'sluice --help'.\n");
        return EX_USAGE;
    }
}

/* 0 and cli->command found, or the exit status of a usage error (the
 * message printed). */
static int
cli_parse(int argc, char **argv, struct sl_cli *cli)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"json", no_argument, NULL, 'J'},
        {"no-master", no_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    const struct sl_cli_command *cmd;
    const char *name = NULL;
    int c, rc;

    cli->overrides = sl_calloc((size_t)argc, sizeof(char *));
    /* options may come before and after the command ("sluice config -n") */
    while (optind < argc) {
        if ((c = getopt_long(argc, argv, "+c:o:vnhF", longopts, NULL)) != -1) {
            if ((rc = cli_option(cli, c, &name)) < 0)
                break;
            if (rc > 0)
                return rc;
        } else if (name == NULL) {
            name = argv[optind++];
            if ((cmd = command_find(name)) != NULL && (cmd->needs & SL_CLI_ARGS)) {
                /* the rest is the command's own (argv[0] its name) */
                cli->argc = argc - optind + 1;
                cli->argv = &argv[optind - 1];
                break;
            }
        } else if ((cmd = command_find(name)) != NULL && (cmd->needs & SL_CLI_OPERAND) &&
                   cli->operand == NULL) {
            cli->operand = argv[optind++];
        } else {
            fprintf(stderr, "sluice: unexpected argument '%s'\nTry 'sluice --help'.\n",
                    argv[optind]);
            return EX_USAGE;
        }
    }
    if (name == NULL) {
        fputs(usage_text, stderr);
        return EX_USAGE;
    }
    if ((cli->command = command_find(name)) == NULL) {
        fprintf(stderr, "sluice: unknown command '%s'\nTry 'sluice --help'.\n", name);
        return EX_USAGE;
    }
    return 0;
}

/* ------------------------------------------------- what commands need */

/* Each LMTP session holds a descriptor, and so does each connection to
 * :10025 and each ZeroMQ socket. Distributions start services with a soft
 * limit of 1024 and a far higher hard limit (systemd: 1024:524288), so the
 * soft limit goes up to the hard one, as nginx's worker_rlimit_nofile
 * would; the frontend also survives reaching it (frontend.c pauses
 * accepting). */
#define FD_SPARE 64U    /* listeners, ZeroMQ's own, Redis, logs, scanners */

/* The descriptors the configured concurrency can hold at once: each
 * session one, and its reinjection connection another. */
static unsigned long long
fd_need(const struct sl_config *cfg)
{
    unsigned long long need = FD_SPARE;

    for (size_t i = 0; i < cfg->n_origins; i++)
        need += 2ULL * cfg->origins[i].concurrency;
    return need;
}

static void
raise_fd_limit(const struct sl_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        sl_info("file descriptor limit: unlimited");
    else if (rl.rlim_cur != was)
        sl_info("file descriptor limit raised from %llu to %llu (the hard limit)",
                (unsigned long long)was, (unsigned long long)rl.rlim_cur);
    else
        sl_info("file descriptor limit: %llu", (unsigned long long)rl.rlim_cur);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < fd_need(cfg))
        sl_warn("file descriptor limit %llu is below the %llu that the origins' concurrency "
                "may hold (two a session, and %u spare): raise the hard limit "
                "(LimitNOFILE= in the systemd unit)",
                (unsigned long long)rl.rlim_cur, fd_need(cfg), FD_SPARE);
}

/* SL_CLI_SERVICE. redis.url is checked here, while a mistake still goes
 * to the terminal and stops the start: the registry and the ledger parse
 * it again later, on threads that could only log it. Errors after this
 * go to the log. */
static int
service_open(struct sl_cli *cli)
{
    const struct sl_config *cfg = cli->config;
    char *error = NULL;

    if (cfg->redis.url != NULL && cfg->redis.url[0] != '\0') {
        struct sl_redis_url url;
        if (sl_redis_url_from_config(cfg, &url, &error) < 0) {
            fprintf(stderr, "sluice: fatal: %s\n", error);
            free(error);
            return EX_CONFIG;
        }
        sl_redis_url_free(&url);
    }
    log_apply(cli, cfg);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    raise_fd_limit(cfg);
    if (cfg->path)
        sl_info("configuration from %s", cfg->path);
    else
        sl_info("no configuration file: built-in defaults (the standard single-node Postfix "
                "setup)");
    return 0;
}

/* SL_CLI_PRIVS (the user exists and can be switched to) and SL_CLI_KEYS_*,
 * before anything is bound or started. */
static int
service_check(struct sl_cli *cli)
{
    unsigned needs = cli->command->needs;
    char *error = NULL;
    int rc = 0;

    if ((needs & SL_CLI_PRIVS) && sl_privs_check(cli->config->security.user, &error) < 0)
        rc = EX_NOPERM;
    else if ((needs & (SL_CLI_KEYS_BROKER | SL_CLI_KEYS_CLIENT)) &&
             sl_keys_resolve(cli->config, (needs & SL_CLI_KEYS_BROKER) != 0,
                             (needs & SL_CLI_KEYS_CLIENT) != 0, &error) < 0)
        rc = EX_CONFIG;
    if (rc != 0) {
        sl_fatal("%s", error);
        free(error);
    }
    return rc;
}

/* SL_CLI_LISTEN. The frontend's sockets are made here, before any role
 * starts, so that the master can hold them while its child comes and
 * goes: systemd's if it passed any (socket activation), else
 * frontend.listen bound here. */
static int
listen_sockets_open(struct sl_cli *cli)
{
    char *error = NULL, where[96];
    int n = sl_listen_fds_systemd(&cli->listen_fds, &error);

    if (n < 0) {
        sl_fatal("%s", error);
        free(error);
        return EX_OSERR;
    }
    if (n > 0) {
        cli->n_listen_fds = (size_t)n;
        sl_listen_describe(cli->listen_fds[0], where, sizeof(where), NULL);
        sl_info("socket activation: %d listening socket(s) from systemd (first %s); "
                "frontend.listen is not used",
                n, where);
    } else {
        int fd = sl_listen_tcp(cli->config->frontend.listen, SL_LISTEN_BACKLOG, &error);
        if (fd < 0) {
            sl_fatal("frontend.listen: %s", error);
            free(error);
            return EX_OSERR;
        }
        cli->listen_fds = sl_calloc(1, sizeof(*cli->listen_fds));
        cli->listen_fds[0] = fd;
        cli->n_listen_fds = 1;
    }
    /* held by the master too: a child that cannot bind it would be
     * restarted for ever, and scrapes wait while a child restarts */
    if (cli->config->metrics.listen[0] != '\0' &&
        (cli->metrics_fd = sl_listen_tcp(cli->config->metrics.listen, SL_HTTP_BACKLOG, &error)) <
            0) {
        sl_fatal("metrics.listen: %s", error);
        free(error);
        return EX_OSERR;
    }
    return 0;
}

/* 0, or the exit status of what could not be prepared (the message
 * printed or logged). The order matters: a wrong configuration is told on
 * the terminal before the log opens; users and keys are checked before a
 * port is taken. */
static int
cli_prepare(struct sl_cli *cli)
{
    unsigned needs = cli->command->needs;
    char *error = NULL;
    int rc;

    /* a service's needs log, and a service is configured */
    SL_BUG_ON((needs & (SL_CLI_PRIVS | SL_CLI_KEYS_BROKER | SL_CLI_KEYS_CLIENT | SL_CLI_LISTEN |
                        SL_CLI_MASTER)) != 0 &&
              (needs & SL_CLI_SERVICE) == 0);
    SL_BUG_ON((needs & SL_CLI_SERVICE) != 0 && (needs & SL_CLI_CONFIG) == 0);
    if (needs & SL_CLI_CONFIG) {
        cli->config = sl_config_load(cli->config_path, cli->overrides, cli->n_overrides, &error);
        if (cli->config == NULL) {
            fprintf(stderr, "sluice: fatal: %s\n", error);
            free(error);
            return EX_CONFIG;
        }
    }
    if ((needs & SL_CLI_SERVICE) &&
        ((rc = service_open(cli)) != 0 || (rc = service_check(cli)) != 0))
        return rc;
    if (needs & SL_CLI_LISTEN)
        return listen_sockets_open(cli);
    return 0;
}

/* The master's child: the command's own run function, with the
 * configuration file as it is now: the master loaded it once, at start,
 * and a child started after a reload (SIGHUP) or after its predecessor
 * died must run with what the file says, not with the master's copy.
 * What needs a restart stays as the master has it (its sockets, keys,
 * user). */
static int
command_child(void *ctx)
{
    struct sl_cli *cli = ctx;
    struct sl_config *now = config_reread(cli, cli->config, "child start");

    if (now != NULL) {
        log_apply(cli, now);
        sl_config_unref(&cli->config);
        cli->config = now;
    }
    return cli->command->run(cli);
}

static int
cli_run(struct sl_cli *cli)
{
    const struct sl_cli_command *cmd = cli->command;
    char *error = NULL;

    if ((cmd->needs & SL_CLI_MASTER) == 0 || cli->no_master)
        return cmd->run(cli);
    /* The master's privileged work is done (sockets bound, keys read):
     * it and every child it starts run as security.user. */
    if ((cmd->needs & SL_CLI_PRIVS) && sl_privs_drop(cli->config->security.user, &error) < 0) {
        sl_fatal("%s", error);
        free(error);
        return EX_NOPERM;
    }
    return sl_master_run(
        &(struct sl_master_params){.label = cmd->label, .child_main = command_child, .ctx = cli});
}

static void
cli_cleanup(struct sl_cli *cli)
{
    for (size_t i = 0; i < cli->n_listen_fds; i++)
        close(cli->listen_fds[i]);
    free(cli->listen_fds);
    if (cli->metrics_fd >= 0)
        close(cli->metrics_fd);
    sl_config_destroy(&cli->config);
    free(cli->overrides);
    sl_log_close();
}

int
main(int argc, char **argv)
{
    struct sl_cli cli = {.usage = usage_text, .metrics_fd = -1};
    int rc;

    /* before any other libsodium call, as its documentation asks: it picks
     * the code for this CPU and readies the random source of job ids */
    if (sodium_init() < 0) {
        fprintf(stderr, "sluice: fatal: libsodium cannot be initialised\n");
        return EX_SOFTWARE;
    }
    if ((rc = cli_parse(argc, argv, &cli)) == 0 && (rc = cli_prepare(&cli)) == 0)
        rc = cli_run(&cli);
    cli_cleanup(&cli);
    return rc;
}
