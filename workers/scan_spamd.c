/* scan_spamd.c - SpamAssassin's spamd, SPAMC/1.5 protocol (spamd(1p),
 * Mail::SpamAssassin::Spamd's PROTOCOL document).
 *
 *   C: REPORT SPAMC/1.5\r\n  Content-length: N\r\n  User: u\r\n  \r\n  <N bytes>
 *   S: SPAMD/1.1 0 EX_OK\r\n  Content-length: M\r\n
 *      Spam: True ; 1000.0 / 5.0\r\n  \r\n  <report>
 *
 * REPORT rather than SYMBOLS: the report's table gives each rule's score,
 * which amavisd-new puts in X-Spam-Status (tests=[GTUBE=1000, ...]).
 * A message longer than scanners.spamd.max_size is cut at a line end and
 * the head is scanned, as amavisd-new >= 2.7 does and spamc's -s limit
 * intends: spam scoring is about the text, not about large attachments. */
#include "scan.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/sl_config.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define SPAMD_MAX_REPLY (1024 * 1024)
#define SPAMD_MAX_TESTS 200

/* Next line of [p, end): returns its start and length without CR/LF. */
static const char *
next_line(const char **pp, const char *end, size_t *len_r)
{
    const char *p = *pp, *eol = p;

    if (p >= end)
        return NULL;
    while (eol < end && *eol != '\n')
        eol++;
    *pp = eol < end ? eol + 1 : end;
    *len_r = (size_t)(eol - p);
    if (*len_r > 0 && p[*len_r - 1] == '\r')
        (*len_r)--;
    return p;
}

/* " 1000 GTUBE   BODY: Generic Test ..." -> "GTUBE=1000" */
static void
parse_report_line(const char *line, size_t n, struct scan_result *res)
{
    char buf[256], score[32], name[128];

    if (n >= sizeof(buf) || res->n_tests >= SPAMD_MAX_TESTS)
        return;
    memcpy(buf, line, n);
    buf[n] = '\0';
    if (sscanf(buf, " %31s %127s", score, name) != 2)
        return;
    char *end;
    (void)strtod(score, &end);
    if (*end != '\0' || !(isdigit((unsigned char)score[0]) || score[0] == '-'))
        return;
    for (const char *q = name; *q != '\0'; q++)
        if (!(isalnum((unsigned char)*q) || *q == '_'))
            return;
    if (strcmp(score, "-0.0") == 0 || strcmp(score, "0.0") == 0)
        strcpy(score, "0"); /* rounded away; amavis shows the raw -0.001 */
    char *t = sl_asprintf("%s=%s", name, score);
    scan_strv_add(&res->tests, &res->n_tests, t);
    free(t);
}

int
scan_spamd_parse(const char *reply, size_t len, struct scan_result *res, char **error_r)
{
    const char *p = reply, *end = reply + len, *line;
    size_t n;
    bool have_spam = false, in_table = false;
    char buf[256];

    line = next_line(&p, end, &n);
    if (line == NULL || n < 9 || strncmp(line, "SPAMD/", 6) != 0) {
        *error_r = sl_strdup("spamd: no SPAMD/ status line");
        return -1;
    }
    snprintf(buf, sizeof(buf), "%.*s", (int)(n < 200 ? n : 200), line);
    const char *code = strchr(buf, ' ');
    if (code == NULL || strtol(code + 1, NULL, 10) != 0 || !isdigit((unsigned char)code[1])) {
        *error_r = sl_asprintf("spamd said: %s", buf);
        return -1;
    }
    while ((line = next_line(&p, end, &n)) != NULL && n > 0) {
        const char *v;
        snprintf(buf, sizeof(buf), "%.*s", (int)(n < 255 ? n : 255), line);
        if ((v = sl_strcase_prefix(buf, "Spam:")) != NULL) {
            char flag[16];
            double score, thr;
            /* "True ; 1000.0 / 5.0" */
            if (sscanf(v, " %15s ; %lf / %lf", flag, &score, &thr) != 3) {
                *error_r = sl_asprintf("spamd: bad Spam header: %s", buf);
                return -1;
            }
            res->score = score;
            res->threshold = thr;
            have_spam = true;
        }
    }
    if (!have_spam) {
        *error_r = sl_strdup("spamd: reply without a Spam header");
        return -1;
    }
    /* The report: the rule table follows a "---- ----" line. */
    while ((line = next_line(&p, end, &n)) != NULL) {
        if (n >= 4 && strncmp(line, "----", 4) == 0) {
            in_table = true;
            continue;
        }
        if (in_table)
            parse_report_line(line, n, res);
    }
    res->spam_scanned = true;
    return 0;
}

static int
spamd_try(const char *server, const struct sl_scanner_config *cfg, const struct scan_input *in,
          struct scan_result *res, char **error_r)
{
    unsigned long long deadline = scan_deadline(in, cfg->timeout_s);
    size_t len = scan_spam_len(in, cfg->max_size, &res->truncated);
    char *head, *reply = NULL;
    size_t reply_len;
    int fd, ret = -1;

    if (scan_connect(server, cfg->connect_timeout_s * 1000, &fd, error_r) < 0)
        return -1;
    if (cfg->user != NULL && cfg->user[0] != '\0')
        head = sl_asprintf("REPORT SPAMC/1.5\r\nContent-length: %zu\r\nUser: %s\r\n\r\n", len,
                           cfg->user);
    else
        head = sl_asprintf("REPORT SPAMC/1.5\r\nContent-length: %zu\r\n\r\n", len);
    if (scan_send_all(fd, head, strlen(head), deadline, error_r) < 0 ||
        scan_send_all(fd, in->data, len, deadline, error_r) < 0)
        goto out;
    /* spamd reads Content-length bytes, answers and closes. */
    if (scan_recv_all(fd, SPAMD_MAX_REPLY, deadline, &reply, &reply_len, error_r) < 0)
        goto out;
    ret = scan_spamd_parse(reply, reply_len, res, error_r);
out:
    free(reply);
    free(head);
    close(fd);
    return ret;
}

void
scan_spamd(const struct sl_scanner_config *cfg, const struct scan_input *in,
           struct scan_result *res)
{
    memset(res, 0, sizeof(*res));
    res->scanner = "spamd";
    scan_with_failover("spamd", cfg, in, spamd_try, res);
}
