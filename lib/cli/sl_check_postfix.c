/* sl_check_postfix.c - a Postfix instance's filter settings against
 * sluice's configuration (sl_check_postfix.h), and the command around it.
 *
 * Every check knows why its setting matters and says so in its finding:
 * an operator reads one line and knows what breaks and which command
 * mends it. Fixes are postconf commands (postconf -e for main.cf, -P for
 * a service's -o, -F for a master.cf column, -M for a whole entry) with
 * the instance's -c DIR, so they can be pasted as they are. */
#include "cli/sl_check_postfix.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <sys/stat.h>

#include "cli/sl_cli.h"
#include "util/sl_addr.h"
#include "util/sl_buf.h"

/* The reinjection smtpd's receive_override_options (docs/postfix.md): the
 * first pass did these already. */
static const char *const override_options[] = {
    "no_header_body_checks",
    "no_unknown_recipient_checks",
    "no_milters",
};

/* docs/postfix.md's reinjection listener, the options that matter to sluice */
#define REINJECT_OPTIONS                                                                           \
    "-o content_filter= -o mynetworks=127.0.0.0/8 "                                                \
    "-o smtpd_client_restrictions=permit_mynetworks,reject "                                       \
    "-o smtpd_recipient_restrictions=permit_mynetworks,reject "                                    \
    "-o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_milters "    \
    "-o smtpd_authorized_xforward_hosts=127.0.0.0/8"

struct check {
    const struct sl_config *cfg;
    const struct sl_postconf *pc;
    struct sl_check_postfix *r;
    char *postconf; /* "postconf" or "postconf -c DIR", to begin each fix */
    /* learned along the way */
    char *filter_host;                      /* content_filter's next hop, NULL if none */
    const struct sl_postconf_service *feed; /* the transport's master.cf entry */
    const char *proto;                      /* "lmtp" or "smtp": its parameters' prefix */
    char client_ip[INET6_ADDRSTRLEN];       /* where this Postfix connects from, "" unknown */
};

/* ------------------------------------------------------------ helpers */

static void finding(struct check *c, char *fix, const char *fmt, ...) SL_PRINTF(3, 4);
static char *postconf_fix(const struct check *c, const char *flag, const char *fmt, ...)
    SL_PRINTF(3, 4);

/* One mismatch; takes fix over. */
static void
finding(struct check *c, char *fix, const char *fmt, ...)
{
    struct sl_check_postfix *r = c->r;
    va_list ap;

    r->findings = sl_realloc(r->findings, (r->n_findings + 1) * sizeof(*r->findings));
    va_start(ap, fmt);
    r->findings[r->n_findings].problem = sl_vasprintf(fmt, ap);
    va_end(ap);
    r->findings[r->n_findings].fix = fix;
    r->n_findings++;
}

/* s quoted for a POSIX shell when it needs it. */
static char *
shell_quote(const char *s)
{
    struct sl_buf b;

    if (s[0] != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789_-./:=,@+") == strlen(s))
        return sl_strdup(s);
    sl_buf_init(&b);
    sl_buf_append_str(&b, "'");
    for (; *s; s++)
        sl_buf_append_str(&b, *s == '\'' ? "'\\''" : (char[]){*s, '\0'});
    sl_buf_append_str(&b, "'");
    return sl_buf_steal(&b, NULL);
}

/* "postconf [-c DIR] FLAG 'SETTING'", SETTING quoted for the shell. */
static char *
postconf_fix(const struct check *c, const char *flag, const char *fmt, ...)
{
    va_list ap;
    char *setting, *quoted, *fix;

    va_start(ap, fmt);
    setting = sl_vasprintf(fmt, ap);
    va_end(ap);
    quoted = shell_quote(setting);
    fix = sl_asprintf("%s %s %s", c->postconf, flag, quoted);
    free(quoted);
    free(setting);
    return fix;
}

static bool
host_same(const char *a, const char *b)
{
    unsigned char x[16], y[16];

    if (inet_pton(AF_INET, a, x) == 1 && inet_pton(AF_INET, b, y) == 1)
        return memcmp(x, y, 4) == 0;
    if (inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1)
        return memcmp(x, y, 16) == 0;
    return strcasecmp(a, b) == 0;
}

static bool
host_wildcard(const char *h)
{
    return h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "*") == 0;
}

static bool
host_loopback(const char *h)
{
    unsigned char a[16];

    if (inet_pton(AF_INET, h, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, h, a) == 1)
        return memcmp(a, (const unsigned char[16]){[15] = 1}, 16) == 0;
    return strcasecmp(h, "localhost") == 0;
}

/* Does the Postfix address list hold ip? -1: it cannot be told (host
 * names, tables, $names postconf did not expand). */
static int
list_holds(const char *list, const char *ip)
{
    struct sl_cidr_list l;
    char *error = NULL;
    int holds;

    if (sl_cidr_list_parse(list, &l, &error) < 0) {
        free(error);
        return -1;
    }
    holds = sl_cidr_list_match_text(&l, ip) ? 1 : 0;
    sl_cidr_list_free(&l);
    return holds;
}

/* "[host]:port" for a fix (brackets: a literal address, no MX lookup). */
static char *
bracketed(const char *host, unsigned port)
{
    return sl_asprintf("[%s]:%u", host, port);
}

/* Postfix's "[host]:port", "[host]", "host:port" or "host" (a next hop,
 * a service name): *host_r without brackets (caller frees), *port_r 0 when
 * there is none. -1 on a port that is not one. */
static int
nexthop_parse(const char *text, char **host_r, unsigned *port_r)
{
    const char *end, *colon;
    char *stop;
    unsigned long port = 0;

    if (text[0] == '[' && (end = strchr(text, ']')) != NULL) {
        *host_r = sl_strndup(text + 1, (size_t)(end - text - 1));
        colon = end[1] == ':' ? end + 1 : NULL;
        if (end[1] != '\0' && colon == NULL)
            goto bad;
    } else if ((colon = strrchr(text, ':')) != NULL &&
               memchr(text, ':', (size_t)(colon - text)) == NULL) {
        *host_r = sl_strndup(text, (size_t)(colon - text));
    } else {
        *host_r = sl_strdup(text); /* a bare IPv6 address has no port */
        colon = NULL;
    }
    if (colon) {
        port = strtoul(colon + 1, &stop, 10);
        if (colon[1] < '0' || colon[1] > '9' || *stop != '\0' || port == 0 || port > 65535)
            goto bad;
    }
    *port_r = (unsigned)port;
    return 0;
bad:
    sl_free_and_clear(host_r);
    *port_r = 0;
    return -1;
}

static const struct sl_origin_config *
origin_named(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_origins; i++)
        if (strcmp(cfg->origins[i].name, name) == 0)
            return &cfg->origins[i];
    return NULL;
}

/* ------------------------------------------------------------- checks */

/* content_filter: main.cf's, else the first -o content_filter=... that is
 * not empty (a filter set per smtpd service, docs/postfix.md). Learns the
 * transport and the next hop. */
static void
check_filter(struct check *c)
{
    const struct sl_config *cfg = c->cfg;
    const char *value = sl_postconf_get(c->pc, "content_filter");
    char *where = NULL, *listen_host = NULL, *host = NULL, *want = NULL, *nexthop;
    unsigned listen_port = 0, port = 0;
    bool unix_socket;

    if (value == NULL || value[0] == '\0') {
        for (size_t i = 0; i < c->pc->n_svc_params; i++) {
            const struct sl_postconf_param *p = &c->pc->svc_params[i];
            size_t n = strlen(p->name);
            if (n > 15 && strcmp(p->name + n - 15, "/content_filter") == 0 && p->value[0]) {
                where = sl_strndup(p->name, n - 15);
                value = p->value;
                break;
            }
        }
    }
    if (sl_hostport_parse(cfg->frontend.listen, &listen_host, &listen_port) < 0)
        listen_host = sl_strdup("127.0.0.1"); /* the loader checked it: not reached */
    if (value == NULL || value[0] == '\0') {
        want = bracketed(host_wildcard(listen_host) ? "127.0.0.1" : listen_host, listen_port);
        finding(c, postconf_fix(c, "-e", "content_filter = amavisfeed:%s", want),
                "content_filter is not set, in main.cf or on any service: Postfix sends no "
                "mail to sluice");
        goto out;
    }
    const char *colon = strchr(value, ':');
    c->r->transport = colon ? sl_strndup(value, (size_t)(colon - value)) : sl_strdup(value);
    nexthop = colon ? sl_strdup(colon + 1) : sl_strdup("");
    unix_socket = strncmp(nexthop, "unix:", 5) == 0;
    if (!unix_socket &&
        nexthop_parse(strncmp(nexthop, "inet:", 5) == 0 ? nexthop + 5 : nexthop, &host, &port) < 0)
        host = sl_strdup(""); /* no usable next hop */
    free(nexthop);
    c->filter_host = host ? sl_strdup(host) : NULL;
    if (!unix_socket && host && port == listen_port &&
        (host_wildcard(listen_host) || host_same(host, listen_host)))
        goto out; /* where sluice listens */
    want =
        bracketed(host_wildcard(listen_host) ? (host && host[0] ? host : "127.0.0.1") : listen_host,
                  listen_port);
    char *fix =
        where ? postconf_fix(c, "-P", "%s/content_filter = %s:%s", where, c->r->transport, want)
              : postconf_fix(c, "-e", "content_filter = %s:%s", c->r->transport, want);
    char *on = where ? sl_asprintf(" on service %s", where) : sl_strdup("");
    if (unix_socket) {
        finding(c, fix,
                "content_filter = %s%s is a UNIX socket, but sluice listens on TCP "
                "(frontend.listen %s)",
                value, on, cfg->frontend.listen);
    } else if (host == NULL || host[0] == '\0') {
        finding(c, fix,
                "content_filter = %s%s names no usable next hop: Postfix would not deliver to "
                "sluice (frontend.listen %s)",
                value, on, cfg->frontend.listen);
    } else {
        char *dest = port ? sl_asprintf("%s:%u", host, port)
                          : sl_asprintf("%s (the protocol's default port)", host);
        finding(c, fix,
                "content_filter = %s%s sends mail to %s, but sluice listens on "
                "frontend.listen %s",
                value, on, dest, cfg->frontend.listen);
        free(dest);
    }
    free(on);
out:
    free(where);
    free(listen_host);
    free(host);
    free(want);
}

/* The transport's master.cf entry: there, and Postfix's LMTP client. */
static void
check_feed(struct check *c)
{
    const char *t = c->r->transport;
    const struct sl_postconf_service *svc;

    if (t == NULL)
        return;
    svc = sl_postconf_service(c->pc, t, "unix");
    if (svc == NULL) {
        finding(c,
                postconf_fix(c, "-M",
                             "%s/unix = %s unix - - n - %u lmtp -o lmtp_data_done_timeout=1200 "
                             "-o lmtp_send_xforward_command=yes",
                             t, t, c->r->origin ? c->r->origin->concurrency : 2),
                "content_filter's transport %s is not a service in master.cf: Postfix defers "
                "every filtered message",
                t);
        return;
    }
    c->feed = svc;
    if (strcmp(svc->command, "lmtp") == 0) {
        c->proto = "lmtp";
    } else if (strcmp(svc->command, "smtp") == 0) {
        /* the same entry with LMTP's command and parameter names */
        struct sl_buf cmd;
        const char *p = svc->line;

        c->proto = "smtp";
        for (int col = 0; col < 8; col++) {
            p += strcspn(p, " ");
            p += strspn(p, " ");
        }
        sl_buf_init(&cmd);
        sl_buf_append_str(&cmd, "lmtp");
        for (const char *arg = p; *arg;) {
            size_t n = strcspn(arg, " ");
            bool renamed = strncmp(arg, "smtp_", 5) == 0; /* an -o smtp_* parameter */
            sl_buf_append_str(&cmd, renamed ? " lmtp_" : " ");
            sl_buf_append(&cmd, renamed ? arg + 5 : arg, renamed ? n - 5 : n);
            arg += n;
            arg += strspn(arg, " ");
        }
        finding(c, postconf_fix(c, "-F", "%s/unix/command = %s", t, cmd.data),
                "transport %s runs Postfix's SMTP client: sluice then gives one reply for all "
                "recipients, and a recipient that :10025 refuses makes Postfix retry the "
                "others (a duplicate without the ledger); LMTP gives one reply per recipient",
                t);
        sl_buf_free(&cmd);
    } else {
        finding(c, postconf_fix(c, "-F", "%s/unix/command = lmtp", t),
                "transport %s runs \"%s\", not Postfix's LMTP client (lmtp): sluice speaks "
                "LMTP (or SMTP)",
                t, svc->command);
    }
}

/* Which origin this Postfix is to sluice: the one whose match holds the
 * address it connects from, as the frontend decides. */
static int
choose_origin(struct check *c, const char *name, char **error_r)
{
    const struct sl_config *cfg = c->cfg;
    const char *bind;
    char *param = sl_asprintf("%s_bind_address", c->proto ? c->proto : "lmtp");
    const struct sl_origin_config *by_ip = NULL;

    bind = c->feed ? sl_postconf_effective(c->pc, c->feed, param) : sl_postconf_get(c->pc, param);
    if (bind && bind[0]) {
        snprintf(c->client_ip, sizeof(c->client_ip), "%s", bind);
        c->r->origin_why = sl_asprintf("%s %s", param, bind);
    } else if (c->filter_host == NULL || host_loopback(c->filter_host)) {
        /* a local Postfix reaches a loopback filter from 127.0.0.1 */
        snprintf(c->client_ip, sizeof(c->client_ip), "127.0.0.1");
        c->r->origin_why = sl_asprintf("%s not set: 127.0.0.1", param);
    } else {
        c->r->origin_why = sl_asprintf("%s not set, the filter is not on loopback: the address "
                                       "is unknown",
                                       param);
    }
    if (c->client_ip[0])
        by_ip = sl_config_origin_for(cfg, c->client_ip);
    if (name) {
        c->r->origin = origin_named(cfg, name);
        if (c->r->origin == NULL) {
            *error_r = sl_asprintf("--origin %s: no such origin in the configuration", name);
            free(param);
            return -1;
        }
        free(c->r->origin_why);
        c->r->origin_why = sl_asprintf("--origin %s", name);
        if (by_ip && by_ip != c->r->origin)
            finding(c,
                    strcmp(name, "default") == 0
                        ? sl_asprintf("take %s out of origins.%s.match in sluice's "
                                      "configuration, or check against --origin %s",
                                      c->client_ip, by_ip->name, by_ip->name)
                        : sl_asprintf("origins.%s.match: %s in sluice's configuration, or "
                                      "%s on the Postfix side",
                                      name, c->client_ip, param),
                    "this Postfix connects from %s (%s), which sluice counts as origins.%s, "
                    "not origins.%s: origins.%s's concurrency and reinjection apply to it",
                    c->client_ip, bind && bind[0] ? param : "not set", by_ip->name, name,
                    by_ip->name);
    } else {
        c->r->origin = by_ip ? by_ip : origin_named(cfg, "default");
    }
    if (c->client_ip[0] && !sl_cidr_list_match_text(&cfg->frontend.acl, c->client_ip))
        finding(c, sl_asprintf("add %s to frontend.acl in sluice's configuration", c->client_ip),
                "frontend.acl (%s) does not hold %s, the address this Postfix connects from: "
                "sluice refuses its connections",
                cfg->frontend.acl_text, c->client_ip);
    free(param);
    return 0;
}

/* maxproc and <transport>_destination_concurrency_limit against the
 * origin's concurrency: the most sessions Postfix opens is the smaller of
 * the two, the most sluice serves is the concurrency. */
static void
check_concurrency(struct check *c)
{
    const struct sl_origin_config *o = c->r->origin;
    const char *t = c->r->transport, *v;
    char *limit_name;
    unsigned long n;
    char *end;

    if (c->feed == NULL)
        return;
    v = strcmp(c->feed->maxproc, "-") == 0 ? sl_postconf_get(c->pc, "default_process_limit")
                                           : c->feed->maxproc;
    n = v ? strtoul(v, &end, 10) : 0;
    if (v == NULL || *end != '\0' || n != o->concurrency)
        finding(c, postconf_fix(c, "-F", "%s/unix/process_limit = %u", t, o->concurrency),
                "%s's maxproc in master.cf is %s%s%s, not origins.%s.concurrency (%u): %s", t,
                c->feed->maxproc,
                strcmp(c->feed->maxproc, "-") == 0 ? ", default_process_limit " : "",
                strcmp(c->feed->maxproc, "-") == 0 && v ? v : "", o->name, o->concurrency,
                n > o->concurrency || n == 0
                    ? "Postfix may open more sessions than sluice serves, and the extra ones "
                      "get 451 4.3.2"
                    : "Postfix never uses all of sluice's slots");
    limit_name = sl_asprintf("%s_destination_concurrency_limit", t);
    v = sl_postconf_get(c->pc, limit_name);
    if (v == NULL)
        v = sl_postconf_get(c->pc, "default_destination_concurrency_limit");
    n = v ? strtoul(v, &end, 10) : 0;
    if (v == NULL || *end != '\0' || n != o->concurrency) {
        char *fix = postconf_fix(c, "-e", "%s = %u", limit_name, o->concurrency);
        const char *why = n > o->concurrency || n == 0
                              ? "Postfix may run more deliveries at once than sluice serves, and "
                                "the extra ones get 451 4.3.2"
                              : "Postfix never uses all of sluice's slots";
        if (sl_postconf_is_set(c->pc, limit_name))
            finding(c, fix, "%s is %s, not origins.%s.concurrency (%u): %s", limit_name,
                    v ? v : "?", o->name, o->concurrency, why);
        else
            finding(c, fix,
                    "%s is not set: Postfix uses default_destination_concurrency_limit (%s), "
                    "not origins.%s.concurrency (%u): %s",
                    limit_name, v ? v : "?", o->name, o->concurrency, why);
    }
    free(limit_name);
}

/* <proto>_data_done_timeout above job.timeout: sluice answers the final
 * "." only after the scan and the reinjection. */
static void
check_timeout(struct check *c)
{
    const struct sl_config *cfg = c->cfg;
    char *name;
    const char *v;
    long secs;

    if (c->proto == NULL)
        return;
    name = sl_asprintf("%s_data_done_timeout", c->proto);
    v = sl_postconf_effective(c->pc, c->feed, name);
    secs = sl_postconf_time(v);
    if (secs < 0 || secs <= (long)cfg->job.timeout_s)
        finding(c,
                postconf_fix(c, "-P", "%s/unix/%s = %u", c->feed->name, name,
                             cfg->job.timeout_s < 1200 ? 1200 : 2 * cfg->job.timeout_s),
                "%s's %s is %s, not above job.timeout (%u s): Postfix stops waiting before "
                "sluice answers, and sends the message again (a duplicate)",
                c->feed->name, name, v ? v : "unknown", cfg->job.timeout_s);
    free(name);
}

static void
check_xforward(struct check *c)
{
    char *name;
    const char *v;

    if (c->proto == NULL)
        return;
    name = sl_asprintf("%s_send_xforward_command", c->proto);
    v = sl_postconf_effective(c->pc, c->feed, name);
    if (v == NULL || strcasecmp(v, "yes") != 0)
        finding(c, postconf_fix(c, "-P", "%s/unix/%s = yes", c->feed->name, name),
                "%s's %s is %s: sluice does not learn the original client and Postfix's "
                "queue id (logs, policy banks, the exactly-once ledger)",
                c->feed->name, name, v ? v : "unknown");
    free(name);
}

/* The master.cf inet service called [host:]port that the origin's reinject
 * reaches (host NULL: any). */
static const struct sl_postconf_service *
reinject_service(const struct check *c, const char *host, unsigned port)
{
    for (size_t i = 0; i < c->pc->n_services; i++) {
        const struct sl_postconf_service *svc = &c->pc->services[i];
        char *h = NULL;
        unsigned p;
        bool match;

        if (strcmp(svc->type, "inet") != 0)
            continue;
        if (strchr(svc->name, ':') == NULL) /* "10025": every inet_interfaces address */
            match = strtoul(svc->name, NULL, 10) == port;
        else
            match = nexthop_parse(svc->name, &h, &p) == 0 && p == port &&
                    (host == NULL || host_wildcard(h) || host_same(h, host));
        free(h);
        if (match)
            return svc;
    }
    return NULL;
}

/* The reinjection smtpd: there, and with the -o options that keep mail
 * sluice returns from going round again or being refused. */
static void
check_reinject(struct check *c)
{
    const struct sl_origin_config *o = c->r->origin;
    const char *host, *v, *svc_host;
    const struct sl_postconf_service *svc;
    char *h = NULL, *sluice_ip = NULL, *name;
    unsigned p;

    host = o->reinject_to_client ? (c->client_ip[0] ? c->client_ip : NULL) : o->reinject_host;
    svc = reinject_service(c, host, o->reinject_port);
    if (svc == NULL) {
        name = sl_asprintf("%s:%u", host ? host : "127.0.0.1", o->reinject_port);
        finding(c,
                postconf_fix(c, "-M", "%s/inet = %s inet n - n - - smtpd " REINJECT_OPTIONS, name,
                             name),
                "no smtpd in master.cf listens on %s, where origins.%s.reinject (%s) returns "
                "the mail: every message gets 451 and stays in the queue",
                name, o->name, o->reinject);
        free(name);
        return;
    }
    if (strcmp(svc->command, "smtpd") != 0) {
        finding(c, postconf_fix(c, "-F", "%s/inet/command = smtpd", svc->name),
                "the reinjection service %s runs \"%s\", not smtpd", svc->name, svc->command);
        return;
    }
    /* sluice reaches a loopback listener from 127.0.0.1 */
    svc_host = strchr(svc->name, ':') && nexthop_parse(svc->name, &h, &p) == 0 ? h : host;
    if (svc_host && host_loopback(svc_host))
        sluice_ip = sl_strdup("127.0.0.1");

    v = sl_postconf_effective(c->pc, svc, "content_filter");
    if (v && v[0])
        finding(c, postconf_fix(c, "-P", "%s/inet/content_filter =", svc->name),
                "the reinjection smtpd %s has content_filter = %s (%s): mail sluice returns "
                "goes to the filter again, in a loop",
                svc->name, v,
                sl_postconf_service_param(c->pc, svc->name, "inet", "content_filter")
                    ? "its -o"
                    : "from main.cf: it needs -o content_filter=");

    v = sl_postconf_effective(c->pc, svc, "receive_override_options");
    struct sl_buf missing, want;
    sl_buf_init(&missing);
    sl_buf_init(&want);
    sl_buf_append_str(&want, v ? v : "");
    for (size_t i = 0; i < SL_N_ELEMENTS(override_options); i++) {
        bool have = false;
        char *copy = sl_strdup(v ? v : ""), *save = NULL;
        for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
            have |= strcmp(t, override_options[i]) == 0;
        free(copy);
        if (have)
            continue;
        sl_buf_printf(&missing, "%s%s", missing.len ? ", " : "", override_options[i]);
        sl_buf_printf(&want, "%s%s", want.len ? "," : "", override_options[i]);
    }
    if (missing.len)
        finding(
            c, postconf_fix(c, "-P", "%s/inet/receive_override_options = %s", svc->name, want.data),
            "the reinjection smtpd %s's receive_override_options (%s) lacks %s: the "
            "first pass's checks run again on mail sluice returns, and what they refuse "
            "now bounces",
            svc->name, v && v[0] ? v : "empty", missing.data);
    sl_buf_free(&missing);
    sl_buf_free(&want);

    v = sl_postconf_effective(c->pc, svc, "smtpd_authorized_xforward_hosts");
    if (v == NULL || v[0] == '\0')
        finding(c,
                postconf_fix(c, "-P", "%s/inet/smtpd_authorized_xforward_hosts = %s", svc->name,
                             sluice_ip ? "127.0.0.0/8" : "<the frontends' addresses>"),
                "the reinjection smtpd %s's smtpd_authorized_xforward_hosts is empty: it does "
                "not take XFORWARD, so the copy loses the original client and queue id",
                svc->name);
    else if (sluice_ip && list_holds(v, sluice_ip) == 0)
        finding(c,
                postconf_fix(c, "-P", "%s/inet/smtpd_authorized_xforward_hosts = 127.0.0.0/8",
                             svc->name),
                "the reinjection smtpd %s's smtpd_authorized_xforward_hosts (%s) does not hold "
                "%s, sluice's address: it does not take XFORWARD from sluice, so the copy "
                "loses the original client and queue id",
                svc->name, v, sluice_ip);

    v = sl_postconf_effective(c->pc, svc, "mynetworks");
    if (sluice_ip && v && list_holds(v, sluice_ip) == 0)
        finding(c, postconf_fix(c, "-P", "%s/inet/mynetworks = 127.0.0.0/8", svc->name),
                "the reinjection smtpd %s's mynetworks (%s) does not hold %s, sluice's "
                "address: with permit_mynetworks,reject it refuses the mail sluice returns",
                svc->name, v, sluice_ip);
    free(h);
    free(sluice_ip);
}

/* A message Postfix accepts must fit through sluice. */
static void
check_size(struct check *c)
{
    const struct sl_config *cfg = c->cfg;
    const char *v = sl_postconf_get(c->pc, "message_size_limit");
    unsigned long long n;
    char *end;

    if (v == NULL)
        return;
    n = strtoull(v, &end, 10);
    if (*end != '\0' || (n != 0 && n <= cfg->frontend.max_message_size))
        return;
    char *setting = sl_asprintf("message_size_limit = %zu", cfg->frontend.max_message_size);
    char *quoted = shell_quote(setting);
    finding(c,
            n ? sl_asprintf("frontend.max_message_size: %s in sluice's configuration, or %s -e %s",
                            v, c->postconf, quoted)
              : sl_asprintf("%s -e %s", c->postconf, quoted),
            "message_size_limit is %s, above frontend.max_message_size (%zu): sluice refuses "
            "(552 5.3.4) larger mail that Postfix accepted, and Postfix bounces it",
            n ? v : "0 (no limit; sluice has none)", cfg->frontend.max_message_size);
    free(quoted);
    free(setting);
}

int
sl_check_postfix(const struct sl_config *cfg, const struct sl_postconf *pc, const char *origin_name,
                 struct sl_check_postfix *result_r, char **error_r)
{
    struct check c = {.cfg = cfg, .pc = pc, .r = result_r};
    char *dir = pc->dir ? shell_quote(pc->dir) : NULL;
    int rc;

    memset(result_r, 0, sizeof(*result_r));
    c.postconf = dir ? sl_asprintf("postconf -c %s", dir) : sl_strdup("postconf");
    free(dir);
    check_filter(&c);
    /* the feed's maxproc in a -M fix needs the origin; the origin needs the
     * feed's bind address: look the feed up, choose, then check it */
    if (c.r->transport)
        c.feed = sl_postconf_service(pc, c.r->transport, "unix");
    c.proto = c.feed && strcmp(c.feed->command, "smtp") == 0 ? "smtp" : "lmtp";
    rc = choose_origin(&c, origin_name, error_r);
    if (rc == 0) {
        c.feed = NULL;
        c.proto = NULL;
        check_feed(&c);
        check_concurrency(&c);
        check_timeout(&c);
        check_xforward(&c);
        check_reinject(&c);
        check_size(&c);
    }
    free(c.postconf);
    free(c.filter_host);
    if (rc < 0)
        sl_check_postfix_free(result_r);
    return rc;
}

void
sl_check_postfix_free(struct sl_check_postfix *r)
{
    for (size_t i = 0; i < r->n_findings; i++) {
        free(r->findings[i].problem);
        free(r->findings[i].fix);
    }
    sl_free_and_clear(&r->findings);
    r->n_findings = 0;
    sl_free_and_clear(&r->origin_why);
    sl_free_and_clear(&r->transport);
    r->origin = NULL;
}

/* ------------------------------------------------------- the command */

int
sl_cli_check_postfix(struct sl_cli *cli)
{
    static const struct option longopts[] = {
        {"origin", required_argument, NULL, 'O'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *origin = NULL;
    struct sl_postconf pc;
    struct sl_check_postfix r;
    struct stat st;
    char *error = NULL;
    int c, rc;

    optind = 0; /* GNU getopt: start afresh on the command's own argv */
    opterr = 0;
    while ((c = getopt_long(cli->argc, cli->argv, "+:c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            dir = optarg;
            break;
        case 'O':
            origin = optarg;
            break;
        case 'h':
            fputs(cli->usage, stdout);
            return 0;
        default:
            return sl_cli_bad_option(cli, c);
        }
    }
    if ((rc = sl_cli_no_operands(cli)) != 0)
        return rc;
    if (dir && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        /* the commonest slip: sluice's file given after the command */
        fprintf(stderr,
                "sluice: check-postfix -c %s: not a directory: -c after check-postfix names "
                "Postfix's configuration directory (postconf -c); sluice's own file goes "
                "before it: sluice -c FILE check-postfix\n",
                dir);
        return EX_USAGE;
    }
    if ((rc = sl_postconf_read(&pc, dir, &error)) != 0) {
        fprintf(stderr, "sluice: check-postfix: %s\n", error);
        free(error);
        sl_postconf_free(&pc);
        return rc;
    }
    if (sl_check_postfix(cli->config, &pc, origin, &r, &error) < 0) {
        fprintf(stderr, "sluice: check-postfix: %s\n", error);
        free(error);
        sl_postconf_free(&pc);
        return EX_USAGE;
    }
    const char *where = sl_postconf_get(&pc, "config_directory");
    for (size_t i = 0; i < r.n_findings; i++)
        printf("sluice: warning: %s; fix: %s\n", r.findings[i].problem, r.findings[i].fix);
    if (r.n_findings == 0)
        printf("sluice: check-postfix: Postfix %s feeds sluice as configured: transport %s, "
               "origins.%s (%s), concurrency %u\n",
               where ? where : "", r.transport ? r.transport : "?", r.origin->name, r.origin_why,
               r.origin->concurrency);
    else
        printf("sluice: check-postfix: %zu mismatch%s between Postfix %s and origins.%s (%s); "
               "after the fixes: postfix%s%s reload\n",
               r.n_findings, r.n_findings == 1 ? "" : "es", where ? where : "", r.origin->name,
               r.origin_why, dir ? " -c " : "", dir ? dir : "");
    rc = r.n_findings ? 1 : 0;
    sl_check_postfix_free(&r);
    sl_postconf_free(&pc);
    return rc;
}
