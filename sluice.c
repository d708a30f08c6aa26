/* sluice.c - the one binary: parses the command line and configuration,
 * then wires up the roles asked for. No protocol logic lives here.
 *
 * SYNOPSIS
 *   sluice [-c file] [-o key=value]... [-v] [-F] all|frontend|broker|worker
 *   sluice [-c file] [-o key=value]... config [-n]
 *   sluice [-c file] [-o key=value]... status [--json]
 *   sluice keygen NAME
 *   sluice version | help
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
#include <zmq.h>
#include "broker.h"
#include "frontend.h"
#include "conf/sl_config.h"
#include "net/sl_keys.h"
#include "net/sl_redis.h"
#include "net/sl_registry.h"
#include "net/sl_status.h"
#include "util/sl_listen.h"
#include "util/sl_log.h"
#include "util/sl_master.h"
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
    "               1 degraded, 69 Redis unreachable\n"
    "  keygen NAME  write a CURVE key pair for one node: NAME.key (the secret\n"
    "               key, created mode 0600, never overwritten, never logged) and\n"
    "               NAME.pub (the public key, Z85 text). Give the broker's\n"
    "               NAME.pub to frontends and workers (security.broker_public_key\n"
    "               or _file) and put theirs in the broker's security.allow_dir\n"
    "               (frontend/NAME.pub, worker/NAME.pub); see docs/cluster.md\n"
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
    "the master starts a new one (1 s, doubling while it keeps dying, up to\n"
    "30 s); connections meanwhile wait in the listen backlog, never refused.\n"
    "\n"
    "Signals (to the master, which passes them on): SIGTERM or SIGINT stop\n"
    "gracefully (messages in flight finish; a second signal stops at once,\n"
    "Postfix retries what was not answered). Signalling the process group\n"
    "(pkill) is one request, not two.\n"
    "SIGHUP makes a broker re-read security.allow_dir: a key added is admitted\n"
    "at its next connect, a key removed is refused at its next connect.\n"
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

struct cli {
    const char *config_path;
    char **overrides;
    size_t n_overrides;
    bool verbose;
    bool only_changed;
    bool json;
    bool no_master;
    const char *command;
    const char *argument;       /* keygen NAME */
};

static int
cli_parse(int argc, char **argv, struct cli *cli)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"json", no_argument, NULL, 'J'},
        {"no-master", no_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    int c;
    cli->overrides = calloc((size_t)argc, sizeof(char *));
    /* options may come before and after the command ("sluice config -n") */
    while (optind < argc) {
        if ((c = getopt_long(argc, argv, "+c:o:vnhF", longopts, NULL)) != -1) {
            switch (c) {
            case 'c':
                cli->config_path = optarg;
                break;
            case 'o':
                if (strchr(optarg, '=') == NULL) {
                    fprintf(stderr, "sluice: -o %s: expected KEY=VALUE\n", optarg);
                    return EX_USAGE;
                }
                cli->overrides[cli->n_overrides++] = optarg;
                break;
            case 'v':
                cli->verbose = true;
                break;
            case 'n':
                cli->only_changed = true;
                break;
            case 'h':
                cli->command = "help";
                return 0;
            case 'V':
                cli->command = "version";
                return 0;
            case 'J':
                cli->json = true;
                break;
            case 'F':
                cli->no_master = true;
                break;
            default:
                fprintf(stderr, "Try 'sluice --help'.\n");
                return EX_USAGE;
            }
        } else if (cli->command == NULL) {
            cli->command = argv[optind++];
        } else if (strcmp(cli->command, "keygen") == 0 && cli->argument == NULL) {
            cli->argument = argv[optind++];
        } else {
            fprintf(stderr, "sluice: unexpected argument '%s'\nTry 'sluice --help'.\n",
                    argv[optind]);
            return EX_USAGE;
        }
    }
    if (cli->command == NULL) {
        fputs(usage_text, stderr);
        return EX_USAGE;
    }
    return 0;
}

/* ------------------------------------------------------------- roles */

struct run {
    struct sl_config *config;
    struct event_base *base;
    void *zctx;
    struct broker *broker;
    struct worker_pool *workers;
    struct frontend *frontend;
    struct sl_registry *registry;
    unsigned n_workers;
    char host[256];
    struct sl_stop_count stops; /* SIGTERM, SIGINT and the master's copies */
    int *listen_fds;            /* frontend.listen or systemd's, made in main() */
    size_t n_listen_fds;
    bool want_broker, want_workers, want_frontend;
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
         * seed's single node): beside named origins it is for stray
         * clients, and counting it would report a shortfall nobody has. */
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
registry_start(struct run *run, bool want_broker, bool want_workers, bool want_frontend)
{
    const struct sl_config *cfg = run->config;
    struct sl_redis_url url;
    char *error = NULL, *id, *addr;

    if (cfg->redis.url == NULL || cfg->redis.url[0] == '\0')
        return;
    if (sl_redis_url_from_config(cfg, &url, &error) < 0) {
        /* checked at start-up (main); cannot fail here */
        sl_error("%s", error);
        free(error);
        return;
    }
    if (gethostname(run->host, sizeof(run->host)) != 0)
        snprintf(run->host, sizeof(run->host), "localhost");
    run->host[sizeof(run->host) - 1] = '\0';
    run->registry = sl_registry_new(run->base, &url);
    sl_redis_url_free(&url);
    if (want_frontend) {
        id = sl_registry_node_id("frontend");
        sl_registry_add_node(run->registry, "frontend", id, cfg->frontend.listen,
                             registry_fill_frontend, run);
        free(id);
    }
    if (want_broker) {
        id = sl_registry_node_id("broker");
        sl_registry_add_node(run->registry, "broker", id, cfg->broker.listen,
                             registry_fill_broker, run);
        free(id);
    }
    if (want_workers) {
        id = sl_registry_node_id("worker");
        addr = sl_asprintf("%s pid %ld", run->host, (long)getpid());
        sl_registry_add_node(run->registry, "worker", id, addr, registry_fill_worker, run);
        free(addr);
        free(id);
    }
}

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
        char *error = NULL;
        bool allow_list = run->broker != NULL && run->config->security.curve;
        if (allow_list && broker_reload(run->broker, &error) < 0) {
            sl_error("SIGHUP: allow-list not reloaded, the previous one stays: %s", error);
            free(error);
            allow_list = false;
        }
        sl_notice("SIGHUP: %sother configuration changes take effect at the next restart",
                  allow_list ? "allow-list reloaded; " : "");
        return;
    }
    const char *name = sig == SL_MASTER_STOP_SIGNAL ? "stop passed on by the master"
                                                    : strsignal((int)sig);
    unsigned requests = sl_stop_count_add(&run->stops, (int)sig);
    if (requests == 0) {
        /* the sender signalled the process group (or pkill): this is the
         * other copy of a request already under way */
        sl_info("%s: the same stop request again (the process group's and the master's "
                "copies), not a second one", name);
        return;
    }
    if (requests > 1 || run->frontend == NULL) {
        /* no frontend: nothing is held for Postfix (a worker's jobs go back
         * to the queue, a broker's are resubmitted by the frontends), so the
         * first one stops at once too */
        sl_notice("%s%s: stopping now", name, requests > 1 ? " again" : "");
        event_base_loopbreak(run->base);
        return;
    }
    sl_notice("%s: stopping after the messages in flight", name);
    frontend_shutdown(run->frontend, on_shutdown_done, run);
}

static int
run_roles(struct run *run, bool want_broker, bool want_workers, bool want_frontend)
{
    const struct sl_config *cfg = run->config;
    char *error = NULL;
    int rc = 0;

    run->zctx = zmq_ctx_new();
    if (run->zctx == NULL) {
        sl_fatal("zmq_ctx_new: %s", zmq_strerror(errno));
        return EX_SOFTWARE;
    }
    if (want_broker) {
        run->broker = broker_start(run->zctx, cfg, cfg->broker.listen, &error);
        if (run->broker == NULL) {
            sl_fatal("broker: %s", error);
            rc = EX_OSERR;
            goto out;
        }
    }
    if (want_workers) {
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
    if (want_frontend) {
        run->frontend = frontend_new(run->base, run->zctx, cfg, run->listen_fds,
                                     run->n_listen_fds, cfg->broker.endpoints,
                                     cfg->broker.n_endpoints, &error);
        run->n_listen_fds = 0;      /* the frontend owns them now */
        if (run->frontend == NULL) {
            sl_fatal("frontend: %s", error);
            rc = EX_OSERR;
            goto out;
        }
    }
    /* everything privileged is done: sockets bound, keys read */
    if (sl_privs_drop(cfg->security.user, &error) < 0) {
        sl_fatal("%s", error);
        rc = EX_NOPERM;
        goto out;
    }
    registry_start(run, want_broker, want_workers, want_frontend);
    struct event *sigs[4];
    const int signums[4] = {SIGTERM, SIGINT, SL_MASTER_STOP_SIGNAL, SIGHUP};
    for (int i = 0; i < 4; i++) {
        sigs[i] = evsignal_new(run->base, signums[i], on_signal, run);
        evsignal_add(sigs[i], NULL);
    }
    sl_master_child_ready();    /* a stop asked for during start-up is handled now */
    sl_notice("sluice %s started: %s%s%s", SLUICE_VERSION, want_frontend ? "frontend " : "",
              want_broker ? "broker " : "", want_workers ? "workers" : "");
    event_base_dispatch(run->base);
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
out:
    free(error);
    sl_registry_destroy(&run->registry);
    frontend_destroy(&run->frontend);
    worker_pool_stop(&run->workers);
    broker_stop(&run->broker);
    if (run->base)
        event_base_free(run->base);
    zmq_ctx_term(run->zctx);
    return rc;
}

/* Each LMTP session holds a descriptor, and so does each connection to
 * :10025 and each ZeroMQ socket. Distributions start services with a soft
 * limit of 1024 and a far higher hard limit (systemd: 1024:524288), so the
 * soft limit goes up to the hard one, as nginx's worker_rlimit_nofile
 * would; the frontend also survives reaching it (frontend.c pauses
 * accepting). */
static void
raise_fd_limit(void)
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
}

/* The frontend's sockets are made here, before any role starts, so that
 * the master can hold them while its child comes and goes: systemd's if it
 * passed any (socket activation), else frontend.listen bound here. */
static int
listen_sockets_open(struct run *run)
{
    char *error = NULL, where[96];
    int n = sl_listen_fds_systemd(&run->listen_fds, &error);

    if (n < 0) {
        sl_fatal("%s", error);
        free(error);
        return EX_OSERR;
    }
    if (n > 0) {
        run->n_listen_fds = (size_t)n;
        sl_listen_describe(run->listen_fds[0], where, sizeof(where), NULL);
        sl_info("socket activation: %d listening socket(s) from systemd (first %s); "
                "frontend.listen is not used", n, where);
        return 0;
    }
    int fd = sl_listen_tcp(run->config->frontend.listen, SL_LISTEN_BACKLOG, &error);
    if (fd < 0) {
        sl_fatal("frontend.listen: %s", error);
        free(error);
        return EX_OSERR;
    }
    run->listen_fds = sl_calloc(1, sizeof(*run->listen_fds));
    run->listen_fds[0] = fd;
    run->n_listen_fds = 1;
    return 0;
}

/* The process that does the work: the master's child, or main() itself
 * with -F and for the roles that take no connections from Postfix. */
static int
run_child(void *ctx)
{
    struct run *run = ctx;
    return run_roles(run, run->want_broker, run->want_workers, run->want_frontend);
}

static void
print_version(void)
{
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    printf("sluice %s (libzmq %d.%d.%d, libevent %s)\n", SLUICE_VERSION, major, minor, patch,
           event_get_version());
}

/* sluice keygen NAME: no configuration needed, nothing logged. */
static int
keygen(const char *name)
{
    char *error = NULL;

    if (name == NULL || name[0] == '\0') {
        fprintf(stderr, "sluice: keygen needs a NAME (writes NAME.key and NAME.pub)\n");
        return EX_USAGE;
    }
    if (sl_keys_generate(name, &error) < 0) {
        fprintf(stderr, "sluice: keygen: %s\n", error);
        free(error);
        return EX_CANTCREAT;
    }
    printf("%s.key: secret key (mode 0600, keep it on this node only)\n"
           "%s.pub: public key\n", name, name);
    return 0;
}

int
main(int argc, char **argv)
{
    struct cli cli = {0};
    int rc = cli_parse(argc, argv, &cli);
    if (rc != 0)
        return rc;

    const char *cmd = cli.command;
    if (strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0) {
        print_version();
        return 0;
    }
    if (strcmp(cmd, "keygen") == 0) {
        free(cli.overrides);    /* keygen reads no configuration */
        return keygen(cli.argument);
    }
    bool is_all = strcmp(cmd, "all") == 0, is_fe = strcmp(cmd, "frontend") == 0,
         is_broker = strcmp(cmd, "broker") == 0, is_worker = strcmp(cmd, "worker") == 0,
         is_config = strcmp(cmd, "config") == 0, is_status = strcmp(cmd, "status") == 0;
    if (!is_all && !is_fe && !is_broker && !is_worker && !is_config && !is_status) {
        fprintf(stderr, "sluice: unknown command '%s'\nTry 'sluice --help'.\n", cmd);
        return EX_USAGE;
    }

    char *error = NULL;
    struct run run = {0};
    run.config = sl_config_load(cli.config_path, cli.overrides, cli.n_overrides, &error);
    if (run.config == NULL) {
        fprintf(stderr, "sluice: fatal: %s\n", error);
        free(error);
        return EX_CONFIG;
    }
    if (is_config) {
        sl_config_print(run.config, stdout, cli.only_changed);
        sl_config_destroy(&run.config);
        free(cli.overrides);
        return 0;
    }
    if (run.config->redis.url != NULL && run.config->redis.url[0] != '\0') {
        struct sl_redis_url url;
        if (sl_redis_url_from_config(run.config, &url, &error) < 0) {
            fprintf(stderr, "sluice: fatal: %s\n", error);
            free(error);
            sl_config_destroy(&run.config);
            free(cli.overrides);
            return EX_CONFIG;
        }
        if (is_status) {
            char *desc = sl_redis_url_describe(&url);     /* no password in the output */
            rc = sl_status_run(&url, desc, cli.json, stdout);
            free(desc);
        }
        sl_redis_url_free(&url);
    } else if (is_status) {
        fprintf(stderr, "sluice: status reads the cluster registry in Redis: set redis.url "
                        "(e.g. -o redis.url=redis://127.0.0.1:6379)\n");
        rc = EX_CONFIG;
    }
    if (is_status) {
        sl_config_destroy(&run.config);
        free(cli.overrides);
        return rc;
    }

    int level = sl_log_level_from_name(run.config->log.level);
    if (cli.verbose)
        level = LOG_DEBUG;
    sl_log_open("sluice", strcmp(run.config->log.target, "syslog") == 0 ? SL_LOG_SYSLOG
                                                                         : SL_LOG_STDERR,
                level < 0 ? LOG_INFO : level);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    raise_fd_limit();
    if (run.config->path)
        sl_info("configuration from %s", run.config->path);
    else
        sl_info("no configuration file: built-in defaults (the seed's single node)");

    if (sl_privs_check(run.config->security.user, &error) < 0) {
        sl_fatal("%s", error);
        free(error);
        sl_config_destroy(&run.config);
        free(cli.overrides);
        sl_log_close();
        return EX_NOPERM;
    }
    if (sl_keys_resolve(run.config, is_all || is_broker, is_all || is_worker || is_fe,
                        &error) < 0) {
        sl_fatal("%s", error);
        free(error);
        sl_config_destroy(&run.config);
        free(cli.overrides);
        sl_log_close();
        return EX_CONFIG;
    }
    run.want_broker = is_all || is_broker;
    run.want_workers = is_all || is_worker;
    run.want_frontend = is_all || is_fe;
    if (run.want_frontend && (rc = listen_sockets_open(&run)) != 0) {
        /* nothing to clean up but what follows */
    } else if (run.want_frontend && !cli.no_master) {
        /* The master's privileged work is done (sockets bound, keys read):
         * it and every child it starts run as security.user. */
        if (sl_privs_drop(run.config->security.user, &error) < 0) {
            sl_fatal("%s", error);
            free(error);
            rc = EX_NOPERM;
        } else {
            rc = sl_master_run(&(struct sl_master_params){
                .label = is_all ? "sluice all" : "frontend", .child_main = run_child,
                .ctx = &run});
        }
    } else {
        rc = run_child(&run);
    }
    for (size_t i = 0; i < run.n_listen_fds; i++)
        close(run.listen_fds[i]);
    free(run.listen_fds);
    sl_config_destroy(&run.config);
    free(cli.overrides);
    sl_log_close();
    return rc;
}
