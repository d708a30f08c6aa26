/* scan_clamd.c - clamd client: zINSTREAM over a unix socket or TCP
 * (clamd(8), "INSTREAM"), so the worker need not share a disk with clamd.
 *
 *   C: "zINSTREAM\0" then chunks <4-byte big-endian length><bytes>, then
 *      a zero-length chunk
 *   S: "stream: OK\0" | "stream: <name> FOUND\0" (one per match with
 *      AllMatchScanning) | "<text> ERROR\0"; then clamd closes.
 *
 * clamd refuses a stream longer than its StreamMaxLength with "INSTREAM
 * size limit exceeded. ERROR" and closes, possibly while we are still
 * sending: a send error is therefore followed by a read of whatever clamd
 * said. Messages longer than scanners.clamd.max_size (set it to clamd's
 * StreamMaxLength) are not sent at all. Both are UNCHECKED-OVERLIMIT, as
 * are clamd's Heuristics.Limits.Exceeded.* alerts (AlertExceedsMax):
 * "limits exceeded" is never clean, and never INFECTED either. Encrypted
 * content alerts (Heuristics.Encrypted.*, AlertEncrypted) give
 * UNCHECKED-ENCRYPTED. */
#include "scan.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/sl_config.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define CLAMD_CHUNK (64 * 1024) /* clamd's own StreamMaxLength granularity is bytes */
#define CLAMD_MAX_REPLY (64 * 1024)
#define CLAMD_MAX_NAME 256

static bool
has_suffix(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Names fit for a header and a log line: printable ASCII, bounded. */
static char *
clean_name(const char *s, size_t len)
{
    if (len > CLAMD_MAX_NAME)
        len = CLAMD_MAX_NAME;
    char *out = sl_strndup(s, len);
    for (char *p = out; *p != '\0'; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            *p = '_';
    return out;
}

int
scan_clamd_parse(const char *reply, size_t len, struct scan_result *res, char **error_r)
{
    const char *p = reply, *end = reply + len;
    bool any = false;

    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\0' && *eol != '\n')
            eol++;
        size_t n = (size_t)(eol - p);
        const char *line = p;
        p = eol < end ? eol + 1 : end;
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
            n--;
        if (n == 0)
            continue;
        /* "stream: " (or "<id>: stream: " in IDSESSION mode) */
        const char *colon = NULL;
        for (size_t i = n; i > 0; i--)
            if (line[i - 1] == ':' && i < n && line[i] == ' ') {
                colon = line + i - 1;
                break;
            }
        if (has_suffix(line, n, " ERROR") || colon == NULL) {
            if (memmem(line, n, "size limit exceeded", 19) != NULL) {
                res->unchecked = SCAN_UNCHECKED_OVERLIMIT;
                free(res->unchecked_reason);
                res->unchecked_reason = sl_asprintf("clamd: %.*s", (int)(n > 200 ? 200 : n), line);
                any = true;
                continue;
            }
            *error_r = sl_asprintf("clamd said: %.*s", (int)(n > 200 ? 200 : n), line);
            return -1;
        }
        const char *what = colon + 2;
        size_t wlen = (size_t)(line + n - what);
        if (wlen == 2 && memcmp(what, "OK", 2) == 0) {
            any = true;
            continue;
        }
        if (has_suffix(what, wlen, " FOUND")) {
            char *name = clean_name(what, wlen - 6);
            any = true;
            if (strncmp(name, "Heuristics.Limits.Exceeded", 26) == 0) {
                res->unchecked = SCAN_UNCHECKED_OVERLIMIT;
                free(res->unchecked_reason);
                res->unchecked_reason = sl_asprintf("clamd: %s", name);
            } else if (strncmp(name, "Heuristics.Encrypted", 20) == 0) {
                if (res->unchecked == SCAN_UNCHECKED_NONE) {
                    res->unchecked = SCAN_UNCHECKED_ENCRYPTED;
                    res->unchecked_reason = sl_asprintf("clamd: %s", name);
                }
            } else {
                scan_strv_add(&res->viruses, &res->n_viruses, name);
            }
            free(name);
            continue;
        }
        *error_r = sl_asprintf("clamd: unexpected reply: %.*s", (int)(n > 200 ? 200 : n), line);
        return -1;
    }
    if (!any) {
        *error_r = sl_strdup("clamd: empty reply");
        return -1;
    }
    return 0;
}

static int
clamd_try(const char *server, const struct sl_scanner_config *cfg, const struct scan_input *in,
          struct scan_result *res, char **error_r)
{
    unsigned long long deadline = scan_deadline(in, cfg->timeout_s);
    char *reply = NULL, *send_error = NULL;
    size_t reply_len = 0;
    int fd, ret = -1;

    if (scan_connect(server, cfg->connect_timeout_s * 1000, &fd, error_r) < 0)
        return -1;
    if (scan_send_all(fd, "zINSTREAM", 10, deadline, &send_error) == 0) {
        size_t off = 0;
        uint32_t be;
        while (off < in->len) {
            size_t n = in->len - off < CLAMD_CHUNK ? in->len - off : CLAMD_CHUNK;
            be = htonl((uint32_t)n);
            if (scan_send_all(fd, &be, 4, deadline, &send_error) < 0 ||
                scan_send_all(fd, in->data + off, n, deadline, &send_error) < 0)
                break;
            off += n;
        }
        be = 0; /* end of stream */
        if (off == in->len)
            (void)scan_send_all(fd, &be, 4, deadline, &send_error);
    }
    /* Even after a send error clamd may have explained itself (size limit). */
    if (scan_recv_all(fd, CLAMD_MAX_REPLY, deadline, &reply, &reply_len, error_r) < 0) {
        if (send_error != NULL) {
            char *both = sl_asprintf("%s, then %s", send_error, *error_r);
            free(*error_r);
            *error_r = both;
        }
        goto out;
    }
    if (reply_len == 0 && send_error != NULL) {
        *error_r = send_error;
        send_error = NULL;
        goto out;
    }
    ret = scan_clamd_parse(reply, reply_len, res, error_r);
out:
    free(send_error);
    free(reply);
    close(fd);
    return ret;
}

void
scan_clamd(const struct sl_scanner_config *cfg, const struct scan_input *in,
           struct scan_result *res)
{
    memset(res, 0, sizeof(*res));
    res->scanner = "clamd";
    if (cfg->n_servers == 0)
        return;
    if (cfg->max_size > 0 && in->len > cfg->max_size) {
        /* clamd would refuse it after reading max_size bytes: say so now. */
        res->status = SCAN_OK;
        res->server = sl_strdup("-");
        res->unchecked = SCAN_UNCHECKED_OVERLIMIT;
        res->unchecked_reason =
            sl_asprintf("clamd: message of %zu bytes exceeds scanners.clamd.max_size (%zu)",
                        in->len, cfg->max_size);
        return;
    }
    scan_with_failover("clamd", cfg, in, clamd_try, res);
}
