/* sl_quarantine.c - sluice quarantine: the quarantine seen and handled
 * from the command line (docs/quarantine.md).
 *
 * SYNOPSIS
 *   sluice quarantine list [--recipient ADDR] [--since WHEN] [--json]
 *   sluice quarantine show ID [--json]
 *   sluice quarantine release ID [--rcpt ADDR]... [--to HOST:PORT]
 *   sluice quarantine delete ID
 *   sluice quarantine expire [--max-age DURATION]
 *
 * DESCRIPTION
 *   The store is quarantine.store, as the frontends use it. ID is amavis'
 *   "virus-<mail_id>", the mail_id alone or a file name "V/virus-...".
 *   WHEN is a duration back from now (30m, 12h, 7d) or a date in UTC
 *   (2024-05-01, 2024-05-01T12:00). release sends the message back to
 *   the recipients it was kept for (or --rcpt) through the reinjection
 *   listener of the Postfix it came from (or --to), and logs it as
 *   amavisd-new does; no secret_id is asked (the command reads the store
 *   itself). expire removes what is older than quarantine.max_age (or
 *   --max-age), unless another process is at it.
 *
 * DIAGNOSTICS
 *   Exit 0 done, 1 no such entry (or release refused), 64 usage, 69 the
 *   store or Postfix unavailable, 78 no quarantine.store. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include "cli/sl_cli.h"
#include "conf/sl_config.h"
#include "quar/sl_quar.h"
#include "util/sl_addr.h"
#include "util/sl_util.h"

#define RCPTS_MAX 1000

struct qcmd {
    struct sl_cli *cli;
    struct sl_quar_store *store;
    bool json;
    const char *recipient;
    unsigned long long since_ms;
    const char *rcpts[RCPTS_MAX];
    size_t n_rcpts;
    char *to_host;
    unsigned to_port;
    long long max_age_s; /* -1: quarantine.max_age */
    json_t *list;        /* list --json */
};

/* "7d", "12h", "30m", "90s", "3600": so long ago; "2024-05-01[THH:MM[:SS]]":
 * that time in UTC. 0, or -1. */
static int
parse_when(const char *s, unsigned long long *ms_r)
{
    struct tm tm;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    const char *formats[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"};

    if (end != s && (*end == '\0' || end[1] == '\0') && strchr("smhdw", *end) != NULL) {
        unsigned long long mul = *end == 'm'   ? 60
                                 : *end == 'h' ? 3600
                                 : *end == 'd' ? 86400
                                 : *end == 'w' ? 7 * 86400
                                               : 1;
        unsigned long long back = n * mul * 1000, now = sl_now_wall_ms();
        *ms_r = back < now ? now - back : 0;
        return 0;
    }
    for (size_t i = 0; i < SL_N_ELEMENTS(formats); i++) {
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, formats[i], &tm);
        if (end != NULL && *end == '\0') {
            *ms_r = (unsigned long long)timegm(&tm) * 1000;
            return 0;
        }
    }
    return -1;
}

static void
time_text(unsigned long long ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
entry_id(const struct sl_quar_entry *e, char buf[SL_QUAR_ID_MAX + 1])
{
    if (e->type[0] != '\0')
        sl_quar_entry_id(e, buf);
    else
        snprintf(buf, SL_QUAR_ID_MAX + 1, "%s", e->mail_id);
}

static json_t *
entry_json(const struct sl_quar_entry *e, bool full)
{
    char id[SL_QUAR_ID_MAX + 1], when[32];
    json_t *o = json_object(), *rcpts = json_array(), *blocked = json_array();

    entry_id(e, id);
    time_text(e->time_ms, when, sizeof(when));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "mail_id", json_string(e->mail_id));
    json_object_set_new(o, "type", json_string(e->type));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "sender", json_string(e->sender ? e->sender : ""));
    for (size_t i = 0; i < e->n_rcpts; i++) {
        json_array_append_new(rcpts, json_string(e->rcpts[i].address));
        if (e->rcpts[i].blocked)
            json_array_append_new(blocked, json_string(e->rcpts[i].address));
    }
    json_object_set_new(o, "recipients", rcpts);
    json_object_set_new(o, "blocked", blocked);
    json_object_set_new(o, "subject", e->subject ? json_string(e->subject) : json_null());
    json_object_set_new(o, "size", json_integer((json_int_t)e->size));
    if (full) {
        json_object_set_new(o, "secret_id", json_string(e->secret_id));
        json_object_set_new(o, "category", json_string(e->category ? e->category : ""));
        json_object_set_new(o, "origin", json_string(e->origin ? e->origin : ""));
        json_object_set_new(o, "client", json_string(e->client ? e->client : ""));
        json_object_set_new(o, "message_id", json_string(e->message_id ? e->message_id : ""));
    }
    return o;
}

static void
print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    puts(s);
    free(s);
}

static void
on_list_entry(void *ctx, const struct sl_quar_entry *e)
{
    struct qcmd *q = ctx;
    char id[SL_QUAR_ID_MAX + 1], when[32];

    if (q->json) {
        json_array_append_new(q->list, entry_json(e, false));
        return;
    }
    entry_id(e, id);
    time_text(e->time_ms, when, sizeof(when));
    printf("%-19s %s <%s> ->", id, when, e->sender ? e->sender : "");
    for (size_t i = 0, k = 0; i < e->n_rcpts; i++)
        if (e->rcpts[i].blocked)
            printf("%s<%s>", k++ ? "," : " ", e->rcpts[i].address);
    printf(", %zu bytes%s%.60s%s\n", e->size, e->subject ? ", Subject: \"" : "",
           e->subject ? e->subject : "", e->subject ? "\"" : "");
}

static int
cmd_list(struct qcmd *q)
{
    struct sl_quar_filter f = {.recipient = q->recipient, .since_ms = q->since_ms};
    char *error = NULL;

    q->list = json_array();
    if (sl_quar_list(q->store, &f, on_list_entry, q, &error) < 0) {
        fprintf(stderr, "sluice: quarantine list: %s\n", error);
        free(error);
        json_decref(q->list);
        return EX_UNAVAILABLE;
    }
    if (q->json)
        print_json(q->list);
    json_decref(q->list);
    return 0;
}

static int
cmd_show(struct qcmd *q, const char *id)
{
    struct sl_quar_entry e;
    char *error = NULL, qid[SL_QUAR_ID_MAX + 1], when[32];
    int r = sl_quar_get(q->store, id, &e, &error);

    if (r <= 0) {
        fprintf(stderr, "sluice: quarantine show %s: %s\n", id, r == 0 ? "no such entry" : error);
        free(error);
        return r == 0 ? 1 : EX_UNAVAILABLE;
    }
    if (q->json) {
        json_t *o = entry_json(&e, true);
        json_object_set_new(o, "message", json_stringn(e.message, e.message_len));
        print_json(o);
        json_decref(o);
        sl_quar_entry_clear(&e);
        return 0;
    }
    entry_id(&e, qid);
    time_text(e.time_ms, when, sizeof(when));
    printf("Quarantine-ID: %s\nMail-ID: %s\nSecret-ID: %s\nTime: %s\nCategory: %s\n"
           "Origin: %s [%s]\nSender: <%s>\n",
           qid, e.mail_id, e.secret_id, when, e.category ? e.category : "-",
           e.origin ? e.origin : "-", e.client ? e.client : "-", e.sender);
    for (size_t i = 0; i < e.n_rcpts; i++)
        printf("Recipient: <%s>%s\n", e.rcpts[i].address, e.rcpts[i].blocked ? " (blocked)" : "");
    for (size_t i = 0; i < e.n_alerts; i++)
        printf("Alert: %s\n", e.alerts[i]);
    printf("\n");
    fwrite(e.message, 1, e.message_len, stdout);
    sl_quar_entry_clear(&e);
    return 0;
}

static void
our_hostname(const struct sl_config *config, char *buf, size_t len)
{
    if (config->frontend.hostname[0] != '\0') {
        snprintf(buf, len, "%s", config->frontend.hostname);
        return;
    }
    if (gethostname(buf, len) != 0)
        snprintf(buf, len, "localhost");
    buf[len - 1] = '\0';
}

static int
cmd_release(struct qcmd *q, const char *id)
{
    char host[256], *error = NULL;
    struct sl_quar_release_result res;
    int r, rc = 0;

    our_hostname(q->cli->config, host, sizeof(host));
    struct sl_quar_release_req req = {
        .id = id,
        .rcpts = q->rcpts,
        .n_rcpts = q->n_rcpts,
        .to_host = q->to_host,
        .to_port = q->to_port,
        .hostname = host,
    };
    r = sl_quar_release(q->store, q->cli->config, &req, &res, &error);
    if (r <= 0) {
        fprintf(stderr, "sluice: quarantine release %s: %s\n", id, error);
        free(error);
        sl_quar_release_result_clear(&res);
        return r == 0 ? 1 : EX_UNAVAILABLE;
    }
    for (size_t i = 0; i < res.n; i++) {
        printf("<%s>: %d %s\n", res.rcpts[i], res.codes[i], res.replies[i]);
        if (res.codes[i] / 100 != 2)
            rc = res.codes[i] / 100 == 4 ? EX_UNAVAILABLE : 1;
    }
    sl_quar_release_result_clear(&res);
    return rc;
}

static int
cmd_delete(struct qcmd *q, const char *id)
{
    char *error = NULL;
    int r = sl_quar_delete(q->store, id, &error);

    if (r < 0) {
        fprintf(stderr, "sluice: quarantine delete %s: %s\n", id, error);
        free(error);
        return EX_UNAVAILABLE;
    }
    if (r == 0) {
        fprintf(stderr, "sluice: quarantine delete %s: no such entry\n", id);
        return 1;
    }
    printf("%s deleted\n", id);
    return 0;
}

static int
cmd_expire(struct qcmd *q)
{
    unsigned long long age =
        q->max_age_s >= 0 ? (unsigned long long)q->max_age_s : q->cli->config->quarantine.max_age_s;
    unsigned long n = 0;
    char *error = NULL;
    int r;

    if (age == 0) {
        fprintf(stderr, "sluice: quarantine expire: quarantine.max_age is 0 (kept for ever); "
                        "give --max-age\n");
        return EX_USAGE;
    }
    r = sl_quar_expire(q->store, sl_now_wall_ms() - age * 1000, &n, &error);
    if (r < 0) {
        fprintf(stderr, "sluice: quarantine expire: %s\n", error);
        free(error);
        return EX_UNAVAILABLE;
    }
    if (r == 0)
        printf("expire: another process is expiring %s now; nothing done\n",
               sl_quar_store_name(q->store));
    else
        printf("expire: %lu entries older than %llu s removed from %s\n", n, age,
               sl_quar_store_name(q->store));
    return 0;
}

int
sl_cli_quarantine(struct sl_cli *cli)
{
    static const struct option longopts[] = {
        {"recipient", required_argument, NULL, 'r'},
        {"since", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"rcpt", required_argument, NULL, 'R'},
        {"to", required_argument, NULL, 't'},
        {"max-age", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct qcmd q = {.cli = cli, .max_age_s = -1};
    unsigned long long ms;
    char *error = NULL;
    int c, rc;

    optind = 0; /* GNU getopt: start afresh on the command's own argv, and
                 * with no "+": options after the subcommand and its ID too */
    opterr = 0;
    while ((c = getopt_long(cli->argc, cli->argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            q.recipient = optarg;
            break;
        case 's':
            if (parse_when(optarg, &q.since_ms) < 0) {
                fprintf(stderr,
                        "sluice: quarantine: --since %s: not a duration (7d, 12h) or a "
                        "date (2024-05-01, 2024-05-01T12:00)\n",
                        optarg);
                return EX_USAGE;
            }
            break;
        case 'j':
            q.json = true;
            break;
        case 'R':
            if (q.n_rcpts == RCPTS_MAX)
                return EX_USAGE;
            q.rcpts[q.n_rcpts++] = optarg;
            break;
        case 't':
            free(q.to_host);
            if (sl_hostport_parse(optarg, &q.to_host, &q.to_port) < 0) {
                fprintf(stderr, "sluice: quarantine: --to %s: expected host:port\n", optarg);
                return EX_USAGE;
            }
            break;
        case 'a':
            if (parse_when(optarg, &ms) < 0 || strchr(optarg, '-') != NULL) {
                fprintf(stderr, "sluice: quarantine: --max-age %s: not a duration (30d)\n", optarg);
                return EX_USAGE;
            }
            q.max_age_s = (long long)((sl_now_wall_ms() - ms) / 1000);
            break;
        case 'h':
            fputs(cli->usage, stdout);
            return 0;
        default:
            return sl_cli_bad_option(cli, c);
        }
    }
    const char *sub = optind < cli->argc ? cli->argv[optind++] : NULL;
    const char *id = NULL;
    bool needs_id = sub != NULL && (strcmp(sub, "show") == 0 || strcmp(sub, "release") == 0 ||
                                    strcmp(sub, "delete") == 0);
    if (sub == NULL || (!needs_id && strcmp(sub, "list") != 0 && strcmp(sub, "expire") != 0)) {
        fprintf(stderr, "sluice: quarantine: expected list, show ID, release ID, delete ID or "
                        "expire\nTry 'sluice --help'.\n");
        free(q.to_host);
        return EX_USAGE;
    }
    if (needs_id) {
        if (optind >= cli->argc) {
            fprintf(stderr, "sluice: quarantine %s: which ID?\n", sub);
            free(q.to_host);
            return EX_USAGE;
        }
        id = cli->argv[optind++];
    }
    if ((rc = sl_cli_no_operands(cli)) != 0) {
        free(q.to_host);
        return rc;
    }
    if ((q.store = sl_quar_store_open(cli->config, &error)) == NULL) {
        fprintf(stderr, "sluice: quarantine: %s\n", error);
        free(error);
        free(q.to_host);
        return EX_CONFIG;
    }
    if (strcmp(sub, "list") == 0)
        rc = cmd_list(&q);
    else if (strcmp(sub, "show") == 0)
        rc = cmd_show(&q, id);
    else if (strcmp(sub, "release") == 0)
        rc = cmd_release(&q, id);
    else if (strcmp(sub, "delete") == 0)
        rc = cmd_delete(&q, id);
    else
        rc = cmd_expire(&q);
    sl_quar_store_close(&q.store);
    free(q.to_host);
    return rc;
}
