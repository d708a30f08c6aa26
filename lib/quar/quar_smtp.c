/* quar_smtp.c - the blocking SMTP client a release sends with (quar_int.h):
 * EHLO, MAIL FROM, RCPT TO per recipient, DATA, the message with header
 * fields added on top, LF line ends made CRLF and dot-stuffed (RFC 5321
 * 4.5.2), QUIT. Every step waits at most the timeout. It runs on a store
 * thread or in the sluice quarantine command, never on an event loop. */
#include "quar_int.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "mail/sl_smtp_reply.h"

struct smtp {
    int fd;
    unsigned timeout_ms;
    struct sl_smtp_reply_parser *parser;
    char *error;
};

static int
smtp_connect(struct smtp *c, const char *host, unsigned port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    char service[16];
    int rc;

    snprintf(service, sizeof(service), "%u", port);
    if ((rc = getaddrinfo(host, service, &hints, &res)) != 0)
        return quar_fail(&c->error, "%s: %s", host, gai_strerror(rc));
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t len = sizeof(err);
            if (poll(&p, 1, (int)c->timeout_ms) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                c->fd = fd;
                freeaddrinfo(res);
                return 0;
            }
            quar_fail(&c->error, "connect [%s]:%u: %s", host, port,
                      err ? strerror(err) : "timed out");
        } else {
            quar_fail(&c->error, "connect [%s]:%u: %s", host, port, strerror(errno));
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (c->error == NULL)
        quar_fail(&c->error, "connect [%s]:%u: no address", host, port);
    return -1;
}

static int
smtp_write(struct smtp *c, const char *p, size_t len)
{
    while (len > 0) {
        struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
        if (poll(&pf, 1, (int)c->timeout_ms) != 1)
            return quar_fail(&c->error, "write: timed out");
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return quar_fail(&c->error, "write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The next reply: 0 and *reply_r, or -1. */
static int
smtp_read(struct smtp *c, struct sl_smtp_reply *reply_r)
{
    const char *why;
    char buf[4096];

    for (;;) {
        int r = sl_smtp_reply_parser_next(c->parser, reply_r, &why);
        if (r == 1)
            return 0;
        if (r < 0)
            return quar_fail(&c->error, "bad reply: %s", why);
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        if (poll(&pf, 1, (int)c->timeout_ms) != 1)
            return quar_fail(&c->error, "read: timed out");
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return quar_fail(&c->error, "read: %s", n == 0 ? "connection closed" : strerror(errno));
        sl_smtp_reply_parser_feed(c->parser, buf, (size_t)n);
    }
}

/* Sends line (CRLF added) and reads the reply into *line_r (its first
 * line, malloc'ed); the code, or -1. */
static int
smtp_cmd(struct smtp *c, const char *line, char **line_r, struct sl_smtp_reply *keep_r)
{
    struct sl_smtp_reply reply;
    char *cmd = sl_asprintf("%s\r\n", line);
    int r = smtp_write(c, cmd, strlen(cmd));

    free(cmd);
    if (r < 0 || smtp_read(c, &reply) < 0)
        return -1;
    int code = reply.code;
    if (line_r != NULL)
        *line_r = sl_smtp_reply_first_line(&reply);
    if (keep_r != NULL)
        *keep_r = reply;
    else
        sl_smtp_reply_free(&reply);
    return code;
}

static bool
ehlo_has(const struct sl_smtp_reply *r, const char *keyword)
{
    size_t kl = strlen(keyword);

    for (size_t i = 1; i < r->n_lines; i++)
        if (strncasecmp(r->lines[i], keyword, kl) == 0 &&
            (r->lines[i][kl] == '\0' || r->lines[i][kl] == ' '))
            return true;
    return false;
}

/* The message: head (CRLF lines) and body (LF or CRLF lines), every line
 * CRLF-terminated and dot-stuffed, then ".". */
static void
data_build(const char *head, const char *msg, size_t len, struct sl_buf *out)
{
    bool bol = true;

    sl_buf_append_str(out, head);
    for (size_t i = 0; i < len; i++) {
        char ch = msg[i];
        if (bol && ch == '.')
            sl_buf_append(out, ".", 1);
        bol = false;
        if (ch == '\r' && i + 1 < len && msg[i + 1] == '\n')
            continue;
        if (ch == '\n') {
            sl_buf_append(out, "\r\n", 2);
            bol = true;
            continue;
        }
        sl_buf_append(out, &ch, 1);
    }
    if (!bol)
        sl_buf_append(out, "\r\n", 2);
    sl_buf_append(out, ".\r\n", 3);
}

static bool
eight_bit(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] >= 0x80)
            return true;
    return false;
}

int
quar_smtp_send(const struct quar_smtp_msg *m, struct quar_smtp_reply *replies_r, char **error_r)
{
    struct smtp c = {.fd = -1, .timeout_ms = m->timeout_s * 1000};
    struct sl_smtp_reply ehlo = {0};
    char *line = NULL, *cmd;
    size_t accepted = 0;
    int code, rc = -1;

    c.parser = sl_smtp_reply_parser_new();
    for (size_t i = 0; i < m->n_rcpts; i++)
        replies_r[i] = (struct quar_smtp_reply){0};
    if (smtp_connect(&c, m->host, m->port) < 0 || smtp_read(&c, &ehlo) < 0)
        goto out;
    code = ehlo.code;
    sl_smtp_reply_free(&ehlo);
    if (code != 220) {
        quar_fail(&c.error, "greeting %d", code);
        goto out;
    }
    cmd = sl_asprintf("EHLO %s", m->helo);
    code = smtp_cmd(&c, cmd, &line, &ehlo);
    free(cmd);
    if (code != 250) {
        if (code >= 0)
            quar_fail(&c.error, "EHLO: %s", line);
        goto out;
    }
    free(line);
    line = NULL;
    bool body8 = eight_bit(m->msg, m->msg_len) && ehlo_has(&ehlo, "8BITMIME");
    cmd = sl_asprintf("MAIL FROM:<%s>%s", m->sender, body8 ? " BODY=8BITMIME" : "");
    code = smtp_cmd(&c, cmd, &line, NULL);
    free(cmd);
    if (code / 100 != 2) {
        if (code >= 0)
            quar_fail(&c.error, "MAIL FROM: %s", line);
        goto out;
    }
    for (size_t i = 0; i < m->n_rcpts; i++) {
        free(line);
        line = NULL;
        cmd = sl_asprintf("RCPT TO:<%s>", m->rcpts[i]);
        code = smtp_cmd(&c, cmd, &line, NULL);
        free(cmd);
        if (code < 0)
            goto out;
        replies_r[i].code = code;
        replies_r[i].reply = line;
        line = NULL;
        accepted += code / 100 == 2;
    }
    if (accepted == 0) {
        rc = 0; /* every recipient has the server's answer */
        goto out;
    }
    code = smtp_cmd(&c, "DATA", &line, NULL);
    if (code != 354) {
        if (code >= 0)
            quar_fail(&c.error, "DATA: %s", line);
        goto out;
    }
    struct sl_buf data;
    sl_buf_init(&data);
    data_build(m->head, m->msg, m->msg_len, &data);
    code = smtp_write(&c, data.data, data.len);
    sl_buf_free(&data);
    free(line);
    line = NULL;
    struct sl_smtp_reply fin;
    if (code < 0 || smtp_read(&c, &fin) < 0)
        goto out;
    line = sl_smtp_reply_first_line(&fin);
    code = fin.code;
    sl_smtp_reply_free(&fin);
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if (replies_r[i].code / 100 != 2)
            continue;
        free(replies_r[i].reply);
        replies_r[i].code = code;
        replies_r[i].reply = sl_strdup(line);
    }
    rc = 0;
    (void)smtp_cmd(&c, "QUIT", NULL, NULL);
out:
    sl_smtp_reply_free(&ehlo);
    free(line);
    if (rc < 0) {
        for (size_t i = 0; i < m->n_rcpts; i++)
            sl_free_and_clear(&replies_r[i].reply);
        quar_fail(error_r, "%s", c.error != NULL ? c.error : "SMTP failure");
    }
    free(c.error);
    sl_smtp_reply_parser_destroy(&c.parser);
    if (c.fd >= 0)
        close(c.fd);
    return rc;
}
