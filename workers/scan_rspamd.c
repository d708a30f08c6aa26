/* scan_rspamd.c - rspamd's normal worker, HTTP POST /checkv2 (rspamd's
 * "Protocol" documentation). The envelope travels as request headers:
 * IP, Helo, Hostname, From, one Rcpt per recipient, Queue-Id. The reply is
 * JSON: {"score": 15.0, "required_score": 15.0, "action": "reject",
 * "symbols": {"GTUBE": {"name": "GTUBE", "score": 0.0, ...}, ...}}.
 *
 * JSON goes through jansson (docs/architecture.md, dependencies): strict
 * RFC 8259 parsing of a length-delimited buffer, a depth limit, no
 * global state, so it is safe on the scanner threads. */
#include "scan.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/sl_config.h"
#include "util/sl_buf.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define RSPAMD_MAX_REPLY (4 * 1024 * 1024)
#define RSPAMD_MAX_TESTS 200

struct sym {
    const char *name;
    double score;
};

static int
sym_cmp(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;

    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The body of an HTTP/1.1 response: Content-Length, chunked or to EOF. */
static int
http_body(const char *reply, size_t len, const char **body_r, size_t *body_len_r, char **owned_r,
          char **error_r)
{
    const char *hdr_end = memmem(reply, len, "\r\n\r\n", 4);
    char status_line[128];
    long long clen = -1;
    bool chunked = false;

    *owned_r = NULL;
    if (hdr_end == NULL) {
        *error_r = sl_strdup("rspamd: no end of HTTP headers");
        return -1;
    }
    const char *eol = memmem(reply, (size_t)(hdr_end - reply) + 2, "\r\n", 2);
    snprintf(status_line, sizeof(status_line), "%.*s", (int)(eol - reply), reply);
    int code = 0;
    if (sscanf(status_line, "HTTP/%*d.%*d %d", &code) != 1) {
        *error_r = sl_asprintf("rspamd: bad status line: %s", status_line);
        return -1;
    }
    if (code != 200) {
        *error_r = sl_asprintf("rspamd said: %s", status_line);
        return -1;
    }
    for (const char *p = eol + 2; p < hdr_end;) {
        const char *e = memmem(p, (size_t)(hdr_end + 2 - p), "\r\n", 2);
        char h[256];
        const char *v;
        snprintf(h, sizeof(h), "%.*s", (int)(e - p), p);
        if ((v = sl_strcase_prefix(h, "Content-Length:")) != NULL)
            clen = strtoll(v, NULL, 10);
        else if ((v = sl_strcase_prefix(h, "Transfer-Encoding:")) != NULL &&
                 strcasestr(v, "chunked") != NULL)
            chunked = true;
        p = e + 2;
    }
    const char *body = hdr_end + 4;
    size_t avail = len - (size_t)(body - reply);
    if (chunked) {
        struct sl_buf out;
        const char *p = body, *end = body + avail;
        sl_buf_init(&out);
        for (;;) {
            char *stop;
            const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
            unsigned long long n;
            if (crlf == NULL)
                break;
            n = strtoull(p, &stop, 16);
            if (stop == p || n > (unsigned long long)(end - crlf - 2)) {
                sl_buf_free(&out);
                *error_r = sl_strdup("rspamd: bad chunked body");
                return -1;
            }
            if (n == 0) {
                *owned_r = sl_buf_steal(&out, body_len_r);
                *body_r = *owned_r;
                return 0;
            }
            sl_buf_append(&out, crlf + 2, (size_t)n);
            p = crlf + 2 + n + 2;
            if (p > end)
                break;
        }
        sl_buf_free(&out);
        *error_r = sl_strdup("rspamd: truncated chunked body");
        return -1;
    }
    if (clen >= 0) {
        if ((unsigned long long)clen > avail) {
            *error_r = sl_strdup("rspamd: body shorter than Content-Length");
            return -1;
        }
        avail = (size_t)clen;
    }
    *body_r = body;
    *body_len_r = avail;
    return 0;
}

int
scan_rspamd_parse(const char *reply, size_t len, struct scan_result *res, char **error_r)
{
    const char *body;
    size_t body_len;
    char *owned;
    json_error_t jerr;
    json_t *root, *v;
    int ret = -1;

    if (http_body(reply, len, &body, &body_len, &owned, error_r) < 0)
        return -1;
    root = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
    free(owned);
    if (root == NULL) {
        *error_r = sl_asprintf("rspamd: bad JSON at line %d: %s", jerr.line, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        *error_r = sl_strdup("rspamd: JSON reply is not an object");
        goto out;
    }
    v = json_object_get(root, "score");
    if (!json_is_number(v)) {
        *error_r = sl_strdup("rspamd: reply without a score");
        goto out;
    }
    res->score = json_number_value(v);
    if (!(res->score > -1e6 && res->score < 1e6)) {
        *error_r = sl_strdup("rspamd: score out of range");
        goto out;
    }
    v = json_object_get(root, "required_score");
    if (json_is_number(v))
        res->threshold = json_number_value(v);
    v = json_object_get(root, "action");
    if (json_is_string(v)) {
        const char *a = json_string_value(v);
        size_t n = strlen(a);
        bool ok = n > 0 && n < 64;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)a[i]) || a[i] == ' ' || a[i] == '_' || a[i] == '-';
        if (ok)
            res->action = sl_strdup(a);
    }
    v = json_object_get(root, "symbols");
    if (json_is_object(v)) {
        size_t n = json_object_size(v), k = 0;
        struct sym *syms = sl_calloc(n > 0 ? n : 1, sizeof(*syms));
        const char *key;
        json_t *sv;
        json_object_foreach(v, key, sv)
        {
            json_t *sc = json_is_object(sv) ? json_object_get(sv, "score") : NULL;
            bool ok = key[0] != '\0' && strlen(key) < 128;
            for (const char *q = key; ok && *q != '\0'; q++)
                ok = isalnum((unsigned char)*q) || *q == '_';
            if (!ok || k >= n)
                continue;
            syms[k].name = key;
            syms[k].score = json_is_number(sc) ? json_number_value(sc) : 0.0;
            k++;
        }
        qsort(syms, k, sizeof(*syms), sym_cmp);
        for (size_t i = 0; i < k && i < RSPAMD_MAX_TESTS; i++) {
            char num[64];
            sl_format_score(syms[i].score, num, sizeof(num));
            char *t = sl_asprintf("%s=%s", syms[i].name, num);
            scan_strv_add(&res->tests, &res->n_tests, t);
            free(t);
        }
        free(syms);
    }
    res->spam_scanned = true;
    ret = 0;
out:
    json_decref(root);
    return ret;
}

/* True once buf holds a whole response: headers and Content-Length
 * bytes, or a chunked body's last chunk. Without either, EOF ends it. */
static bool
http_complete(const char *buf, size_t len)
{
    const char *hdr_end = memmem(buf, len, "\r\n\r\n", 4);
    size_t hlen;

    if (hdr_end == NULL)
        return false;
    hlen = (size_t)(hdr_end - buf) + 4;
    for (const char *p = buf; p < hdr_end;) {
        const char *e = memmem(p, (size_t)(hdr_end + 2 - p), "\r\n", 2);
        const char *v;
        char h[256];
        snprintf(h, sizeof(h), "%.*s", (int)(e - p), p);
        if ((v = sl_strcase_prefix(h, "Content-Length:")) != NULL)
            return len - hlen >= strtoull(v, NULL, 10);
        if ((v = sl_strcase_prefix(h, "Transfer-Encoding:")) != NULL &&
            strcasestr(v, "chunked") != NULL)
            return len - hlen >= 5 && memcmp(buf + len - 5, "0\r\n\r\n", 5) == 0;
        p = e + 2;
    }
    return false;
}

/* rspamd may keep the connection open despite "Connection: close": stop
 * reading once the response is complete. */
static int
http_recv(int fd, unsigned long long deadline, char **buf_r, size_t *len_r, char **error_r)
{
    struct sl_buf b;

    sl_buf_init(&b);
    for (;;) {
        sl_buf_reserve(&b, 16384);
        ssize_t n = scan_recv(fd, b.data + b.len, b.cap - b.len - 1, deadline, error_r);
        if (n < 0) {
            sl_buf_free(&b);
            return -1;
        }
        b.len += (size_t)n;
        b.data[b.len] = '\0';
        if (n == 0 || http_complete(b.data, b.len))
            break;
        if (b.len > RSPAMD_MAX_REPLY) {
            sl_buf_free(&b);
            *error_r = sl_strdup("rspamd: reply too large");
            return -1;
        }
    }
    *buf_r = sl_buf_steal(&b, len_r);
    return 0;
}

/* The client address as rspamd wants it: a bare IP, or nothing. */
static bool
ip_literal(const char *s, char *out, size_t len)
{
    unsigned char tmp[16];

    if (s == NULL)
        return false;
    if (strncasecmp(s, "IPv6:", 5) == 0)
        s += 5;
    if (strlen(s) >= len)
        return false;
    if (inet_pton(AF_INET, s, tmp) != 1 && inet_pton(AF_INET6, s, tmp) != 1)
        return false;
    strcpy(out, s);
    return true;
}

static bool
usable(const char *s)
{
    return s != NULL && s[0] != '\0' && strcmp(s, "[UNAVAILABLE]") != 0 &&
           strcmp(s, "[TEMPUNAVAIL]") != 0 && strcasecmp(s, "unknown") != 0;
}

static int
rspamd_try(const char *server, const struct sl_scanner_config *cfg, const struct scan_input *in,
           struct scan_result *res, char **error_r)
{
    unsigned long long deadline = scan_deadline(in, cfg->timeout_s);
    size_t len = scan_spam_len(in, cfg->max_size, &res->truncated);
    struct sl_buf head;
    char ip[64], *reply = NULL;
    size_t reply_len;
    int fd, ret = -1;

    if (scan_connect(server, cfg->connect_timeout_s * 1000, &fd, error_r) < 0)
        return -1;
    sl_buf_init(&head);
    sl_buf_printf(&head,
                  "POST /checkv2 HTTP/1.1\r\nHost: rspamd\r\nConnection: close\r\n"
                  "Content-Length: %zu\r\n",
                  len);
    if (ip_literal(in->client_addr, ip, sizeof(ip)))
        sl_buf_printf(&head, "IP: %s\r\n", ip);
    if (usable(in->helo))
        sl_buf_printf(&head, "Helo: %s\r\n", in->helo);
    if (usable(in->client_name))
        sl_buf_printf(&head, "Hostname: %s\r\n", in->client_name);
    if (in->mail_from != NULL && in->mail_from[0] != '\0')
        sl_buf_printf(&head, "From: %s\r\n", in->mail_from);
    for (size_t i = 0; i < in->n_rcpts; i++)
        sl_buf_printf(&head, "Rcpt: %s\r\n", in->rcpts[i]);
    if (usable(in->queue_id))
        sl_buf_printf(&head, "Queue-Id: %s\r\n", in->queue_id);
    sl_buf_append(&head, "\r\n", 2);
    if (scan_send_all(fd, head.data, head.len, deadline, error_r) < 0 ||
        scan_send_all(fd, in->data, len, deadline, error_r) < 0)
        goto out;
    if (http_recv(fd, deadline, &reply, &reply_len, error_r) < 0)
        goto out;
    ret = scan_rspamd_parse(reply, reply_len, res, error_r);
out:
    free(reply);
    sl_buf_free(&head);
    close(fd);
    return ret;
}

void
scan_rspamd(const struct sl_scanner_config *cfg, const struct scan_input *in,
            struct scan_result *res)
{
    memset(res, 0, sizeof(*res));
    res->scanner = "rspamd";
    scan_with_failover("rspamd", cfg, in, rspamd_try, res);
}
