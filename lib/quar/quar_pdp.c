/* quar_pdp.c - amavisd-new's AM.PDP protocol, the part amavisd-release and
 * the web front ends use: a release request, and the answer amavis'
 * dispatch_from_quarantine gives (sl_quar.h).
 *
 *   request=release
 *   mail_id=V-8xC7F0abJk
 *   secret_id=...               (required: quarantine.release_requires_secret,
 *                                amavis' $auth_required_release)
 *   quar_type=Q                 (F, Z: file; Q: SQL; the one store serves both)
 *   mail_file=V/virus-V-8x...   (names the type of a local: entry)
 *   partition_tag=0, recipient=<...>... (optional), requested_by=<...>
 *   <empty line>
 * answered with one "setreply=CODE X.Y.Z text" per recipient and an empty
 * line; a request that fails as a whole gets amavis' "450 4.5.0 Failure:
 * ...", return_value=tempfail and exit_code=75. */
#include "quar_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "conf/sl_config.h"
#include "util/sl_log.h"

static int
hexval(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

/* amavis' proto_decode: %XX -> the byte */
static char *
pdp_decode(const char *s, size_t len)
{
    char *out = sl_malloc(len + 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

int
sl_pdp_feed_line(struct sl_pdp_request *req, const char *line, size_t len, const char **error_r)
{
    size_t i;

    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (len == 0)
        return 1;
    /* "name=value" or "name: value", name without '=', NUL or LF */
    for (i = 0; i < len && line[i] != '=' && line[i] != ':' && line[i] != '\0'; i++)
        ;
    if (i == len || line[i] == '\0') {
        *error_r = "not an attribute line (name=value)";
        return -1;
    }
    size_t vstart = i + 1;
    if (line[i] == ':')
        while (vstart < len && (line[vstart] == ' ' || line[vstart] == '\t'))
            vstart++;
    req->attrs = sl_realloc(req->attrs, (req->n + 1) * sizeof(*req->attrs));
    req->attrs[req->n].name = pdp_decode(line, i);
    req->attrs[req->n].value = pdp_decode(line + vstart, len - vstart);
    req->n++;
    return 0;
}

const char *
sl_pdp_get(const struct sl_pdp_request *req, const char *name)
{
    for (size_t i = 0; i < req->n; i++)
        if (strcmp(req->attrs[i].name, name) == 0)
            return req->attrs[i].value;
    return NULL;
}

size_t
sl_pdp_all(const struct sl_pdp_request *req, const char *name, const char **out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < req->n && n < max; i++)
        if (strcmp(req->attrs[i].name, name) == 0)
            out[n++] = req->attrs[i].value;
    return n;
}

void
sl_pdp_request_clear(struct sl_pdp_request *req)
{
    for (size_t i = 0; i < req->n; i++) {
        free(req->attrs[i].name);
        free(req->attrs[i].value);
    }
    free(req->attrs);
    memset(req, 0, sizeof(*req));
}

/* amavis' proto_encode: the name keeps letters, digits, '_' and '-'; the
 * value everything printable but '%' (so a space is %20). */
void
sl_pdp_encode(struct sl_buf *out, const char *name, const char *value)
{
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if (isalnum(*p) || *p == '_' || *p == '-')
            sl_buf_append(out, p, 1);
        else
            sl_buf_printf(out, "%%%02x", *p);
    }
    sl_buf_append(out, "=", 1);
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        if (*p >= 0x21 && *p <= 0x7e && *p != '%')
            sl_buf_append(out, p, 1);
        else
            sl_buf_printf(out, "%%%02x", *p);
    }
    sl_buf_append(out, "\r\n", 2);
}

/* amavis' answer to a request that fails as a whole. */
static void
pdp_failure(struct sl_buf *out, const char *why)
{
    char *v = sl_asprintf("450 4.5.0 Failure: %s", why);
    sl_pdp_encode(out, "setreply", v);
    sl_pdp_encode(out, "return_value", "tempfail");
    sl_pdp_encode(out, "exit_code", "75");
    free(v);
}

/* "<a@b>" -> "a@b" */
static char *
unbracket(const char *s)
{
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '<' && s[len - 1] == '>')
        return sl_strndup(s + 1, len - 2);
    return sl_strdup(s);
}

#define PDP_MAX_RCPTS 1000

void
sl_pdp_answer(struct sl_quar_store *store, const struct sl_config *config, const char *hostname,
              const struct sl_pdp_request *req, struct sl_buf *out)
{
    const char *request = sl_pdp_get(req, "request");
    const char *mail_id = sl_pdp_get(req, "mail_id");
    const char *secret = sl_pdp_get(req, "secret_id");
    const char *file = sl_pdp_get(req, "mail_file");
    const char *given[PDP_MAX_RCPTS];
    char type[SL_QUAR_TYPE_MAX + 1], id[SL_ID_LEN + 1], qid[SL_QUAR_ID_MAX + 1];
    char *error = NULL, *by = NULL;
    char **rcpts;
    size_t n;

    if (request == NULL) {
        pdp_failure(out, "Missing 'request' field");
        goto end;
    }
    if (strcasecmp(request, "release") != 0) {
        char *why = sl_asprintf("request=%s is not supported by sluice (only release)", request);
        pdp_failure(out, why);
        free(why);
        goto end;
    }
    if (mail_id == NULL || sl_quar_id_parse(mail_id, type, id) < 0 || type[0] != '\0') {
        char *why = sl_asprintf("Invalid mail_id '%s'", mail_id != NULL ? mail_id : "");
        pdp_failure(out, why);
        free(why);
        goto end;
    }
    if ((secret == NULL || secret[0] == '\0') && config->quarantine.release_requires_secret) {
        pdp_failure(out, "Secret_id is required, but missing");
        goto end;
    }
    /* the type, when the local: file name says it ("virus-<id>") */
    char t2[SL_QUAR_TYPE_MAX + 1], id2[SL_ID_LEN + 1];
    if (file != NULL && sl_quar_id_parse(file, t2, id2) == 0 && strcmp(id2, id) == 0)
        snprintf(qid, sizeof(qid), "%s%s%s", t2, t2[0] ? "-" : "", id);
    else
        snprintf(qid, sizeof(qid), "%s", id);
    n = sl_pdp_all(req, "recipient", given, PDP_MAX_RCPTS);
    rcpts = sl_calloc(n + 1, sizeof(*rcpts));
    for (size_t i = 0; i < n; i++)
        rcpts[i] = unbracket(given[i]);
    if (sl_pdp_get(req, "requested_by") != NULL)
        by = unbracket(sl_pdp_get(req, "requested_by"));

    struct sl_quar_release_req rr = {
        .id = qid,
        .secret_id = secret != NULL && secret[0] != '\0' ? secret : NULL,
        .rcpts = (const char *const *)rcpts,
        .n_rcpts = n,
        .requested_by = by,
        .hostname = hostname,
    };
    struct sl_quar_release_result res;
    int r = sl_quar_release(store, config, &rr, &res, &error);
    if (r <= 0) {
        pdp_failure(out, error != NULL ? error : "release failed");
    } else if (res.n == 0) {
        sl_pdp_encode(out, "setreply", "250 2.5.0 No recipients, nothing to do");
    } else {
        for (size_t i = 0; i < res.n; i++) {
            /* the enhanced code of the MTA's reply, as amavis passes it on */
            const char *mta = strstr(res.replies[i], "): ");
            char enh[16] = "";
            int code = res.codes[i];
            if (mta != NULL && sscanf(mta + 3, "%*d %15[0-9.]", enh) != 1)
                enh[0] = '\0';
            if (enh[0] == '\0')
                snprintf(enh, sizeof(enh), "%d.0.0", code / 100);
            char *v = sl_asprintf("%d %s %s", code, enh, res.replies[i]);
            sl_pdp_encode(out, "setreply", v);
            free(v);
        }
    }
    sl_quar_release_result_clear(&res);
    sl_strv_free(rcpts, n);
    free(by);
    free(error);
end:
    sl_buf_append(out, "\r\n", 2);
}
