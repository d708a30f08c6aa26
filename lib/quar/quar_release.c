/* quar_release.c - giving a quarantined message back (sl_quar.h), as
 * amavisd-new's release with $release_format 'resend': to the recipients
 * it was blocked for (or those the request names), from its original
 * sender, through the reinjection listener of the Postfix it came from. */
#include "quar_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conf/sl_config.h"
#include "util/sl_log.h"

void
sl_quar_release_result_clear(struct sl_quar_release_result *r)
{
    sl_strv_free(r->rcpts, r->n);
    sl_strv_free(r->replies, r->n);
    free(r->codes);
    free(r->target);
    memset(r, 0, sizeof(*r));
}

const char *
sl_quar_notify_from(const struct sl_config *config, const char *hostname, char *buf, size_t len)
{
    if (config->quarantine.notify.from[0] != '\0')
        return config->quarantine.notify.from;
    snprintf(buf, len, "virusalert@%s", hostname);
    return buf;
}

/* Where the entry goes back to: req's --to, else its origin's reinject
 * (the default origin if that name is gone). 0, or -1 (permanent). */
static int
release_target(const struct sl_config *config, const struct sl_quar_entry *e,
               const struct sl_quar_release_req *req, const char **host_r, unsigned *port_r,
               char **error_r)
{
    const struct sl_origin_config *o = NULL;

    if (req->to_host != NULL) {
        *host_r = req->to_host;
        *port_r = req->to_port;
        return 0;
    }
    for (size_t i = 0; i < config->n_origins && o == NULL; i++)
        if (e->origin != NULL && strcmp(config->origins[i].name, e->origin) == 0)
            o = &config->origins[i];
    if (o == NULL)
        o = sl_config_origin_for(config, NULL); /* the default origin */
    *port_r = o->reinject_port;
    if (!o->reinject_to_client) {
        *host_r = o->reinject_host;
        return 0;
    }
    if (e->client == NULL || e->client[0] == '\0')
        return quar_fail(error_r,
                         "the entry does not say which Postfix it came from (origins.%s."
                         "reinject is client:%u): give the address to send to",
                         o->name, o->reinject_port);
    *host_r = e->client;
    return 0;
}

/* amavis: "Secret_id ... does not match mail_id" unless they match; a
 * comparison in constant time. */
static bool
secret_matches(const struct sl_quar_entry *e, const char *given)
{
    size_t len = strlen(e->secret_id);

    return len > 0 && strlen(given) == len && sodium_memcmp(e->secret_id, given, len) == 0;
}

static char *
release_head(const struct sl_config *config, const struct sl_quar_entry *e,
             const struct sl_quar_release_req *req, const char *rel_id, const char *const *rcpts,
             size_t n)
{
    struct sl_buf b;
    char date[64], from[300];

    sl_rfc5322_date(sl_now_wall_ms(), date, sizeof(date));
    sl_buf_init(&b);
    if (req->requested_by != NULL && req->requested_by[0] != '\0')
        sl_buf_printf(&b, "Resent-From: <%s>\r\n", req->requested_by);
    else
        sl_buf_printf(&b, "Resent-From: <%s>\r\n",
                      sl_quar_notify_from(config, req->hostname, from, sizeof(from)));
    if (n == 1)
        sl_buf_printf(&b, "Resent-To: <%s>\r\n", rcpts[0]);
    else
        sl_buf_append_str(&b, "Resent-To: undisclosed-recipients:;\r\n");
    sl_buf_printf(&b, "Resent-Date: %s\r\nResent-Message-ID: <%s-%s@%s>\r\n", date, e->mail_id,
                  rel_id, req->hostname);
    sl_buf_printf(&b, "X-Quarantine-ID: <%s>\r\n", e->mail_id);
    return sl_buf_steal(&b, NULL);
}

int
sl_quar_release(struct sl_quar_store *store, const struct sl_config *config,
                const struct sl_quar_release_req *req, struct sl_quar_release_result *res,
                char **error_r)
{
    struct sl_quar_entry e;
    const char **rcpts;
    size_t n = 0;
    const char *host = NULL;
    unsigned port = 0;
    char qid[SL_QUAR_ID_MAX + 1];
    int r;

    memset(res, 0, sizeof(*res));
    sl_id_new(res->rel_id);
    r = sl_quar_get(store, req->id, &e, error_r);
    if (r <= 0) {
        if (r == 0)
            quar_fail(error_r, "no quarantined message %s", req->id);
        return r;
    }
    sl_quar_entry_id(&e, qid);
    if (req->secret_id != NULL && !secret_matches(&e, req->secret_id)) {
        sl_warn("(rel-%s) release of %s refused: secret_id does not match", res->rel_id, qid);
        quar_fail(error_r, "Secret_id %s does not match mail_id %s", req->secret_id, e.mail_id);
        sl_quar_entry_clear(&e);
        return 0;
    }
    rcpts = sl_calloc(e.n_rcpts + req->n_rcpts + 1, sizeof(*rcpts));
    for (size_t i = 0; i < req->n_rcpts; i++)
        rcpts[n++] = req->rcpts[i];
    for (size_t i = 0; req->n_rcpts == 0 && i < e.n_rcpts; i++)
        if (e.rcpts[i].blocked)
            rcpts[n++] = e.rcpts[i].address;
    if (n == 0 || release_target(config, &e, req, &host, &port, error_r) < 0) {
        if (n == 0)
            quar_fail(error_r, "%s has no recipient to release to", qid);
        free(rcpts);
        sl_quar_entry_clear(&e);
        return 0;
    }
    {
        struct sl_buf who;
        sl_buf_init(&who);
        for (size_t i = 0; i < n; i++)
            sl_buf_printf(&who, "%s<%s>", i ? "," : "", rcpts[i]);
        /* amavisd-new's own words (msg_from_quarantine) */
        sl_info("(rel-%s) Quarantined message release (miscategorized): %s <%s> -> %s", res->rel_id,
                e.mail_id, e.sender, who.data);
        sl_buf_free(&who);
    }
    char *head = release_head(config, &e, req, res->rel_id, rcpts, n);
    struct quar_smtp_msg m = {
        .host = host,
        .port = port,
        .timeout_s = config->reinject.timeout_s,
        .helo = req->hostname,
        .sender = e.sender,
        .rcpts = rcpts,
        .n_rcpts = n,
        .head = head,
        .msg = e.message,
        .msg_len = e.message_len,
    };
    struct quar_smtp_reply *replies = sl_calloc(n, sizeof(*replies));
    res->target = sl_asprintf("smtp:[%s]:%u", host, port);
    if (quar_smtp_send(&m, replies, error_r) < 0) {
        sl_warn("(rel-%s) release of %s to %s failed: %s", res->rel_id, qid, res->target, *error_r);
        r = -1;
        goto out;
    }
    res->n = n;
    res->rcpts = sl_calloc(n, sizeof(char *));
    res->replies = sl_calloc(n, sizeof(char *));
    res->codes = sl_calloc(n, sizeof(int));
    const char **released = sl_calloc(n, sizeof(*released));
    size_t n_released = 0;
    for (size_t i = 0; i < n; i++) {
        res->rcpts[i] = sl_strdup(rcpts[i]);
        res->codes[i] = replies[i].code;
        res->replies[i] = sl_asprintf("%s, id=rel-%s, from MTA(%s): %s",
                                      replies[i].code / 100 == 2 ? "Ok" : "Failed", res->rel_id,
                                      res->target, replies[i].reply ? replies[i].reply : "");
        if (replies[i].code / 100 == 2)
            released[n_released++] = rcpts[i];
        sl_info("(rel-%s) released %s to <%s>: %s", res->rel_id, qid, rcpts[i],
                replies[i].reply ? replies[i].reply : "");
    }
    if (n_released > 0 &&
        sl_quar_mark_released(store, e.mail_id, released, n_released, error_r) < 0) {
        sl_warn("(rel-%s) %s released, but its release status not recorded: %s", res->rel_id, qid,
                *error_r);
        sl_free_and_clear(error_r);
    }
    free(released);
    r = 1;
out:
    for (size_t i = 0; i < n; i++)
        free(replies[i].reply);
    free(replies);
    free(head);
    free(rcpts);
    sl_quar_entry_clear(&e);
    return r;
}
