/* lmtp_latency.c - per-message latency over one LMTP (or SMTP) session.
 *
 * usage: lmtp_latency HOST PORT COUNT SIZE [smtp]
 *
 * Opens one connection, says LHLO (EHLO with "smtp"), then sends COUNT
 * messages of about SIZE bytes one after another, as Postfix's LMTP client
 * does over a cached connection to a filter that offers XFORWARD: XFORWARD
 * (the original client's name, address, protocol and HELO), MAIL, RCPT and
 * DATA pipelined, the body after the 354. The latency of a message is the
 * time from that write to the final reply. Prints p50, p90, p99 and mean in
 * microseconds. No I/O beyond the socket, so the figure is the filter's and
 * not the client's. */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fd;
static char rbuf[65536];
static size_t rlen;

static double
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void
die(const char *what)
{
    fprintf(stderr, "lmtp_latency: %s\n", what);
    exit(1);
}

static void
send_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            die("write failed");
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one complete reply (multi-line aware); returns its code. */
static int
read_reply(void)
{
    for (;;) {
        char *line = rbuf, *nl;
        while ((nl = memchr(line, '\n', rlen - (size_t)(line - rbuf))) != NULL) {
            if (nl - line >= 4 && line[3] == ' ') {
                int code = atoi(line);
                size_t used = (size_t)(nl + 1 - rbuf);
                memmove(rbuf, nl + 1, rlen - used);
                rlen -= used;
                return code;
            }
            line = nl + 1;
        }
        if (rlen == sizeof(rbuf))
            die("reply too long");
        ssize_t r = read(fd, rbuf + rlen, sizeof(rbuf) - rlen);
        if (r <= 0)
            die("connection closed");
        rlen += (size_t)r;
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    if (argc < 5)
        die("usage: lmtp_latency HOST PORT COUNT SIZE [smtp]");
    int count = atoi(argv[3]), size = atoi(argv[4]);
    int smtp = argc > 5 && strcmp(argv[5], "smtp") == 0;
    if (count <= 0 || count > 1000000 || size < 0 || size > 10000000)
        die("bad COUNT or SIZE");

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(argv[1], argv[2], &hints, &res) != 0)
        die("cannot resolve");
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
        die("cannot connect");
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (read_reply() != 220)
        die("no 220 greeting");
    const char *hello = smtp ? "EHLO bench.test\r\n" : "LHLO bench.test\r\n";
    send_all(hello, strlen(hello));
    if (read_reply() != 250)
        die("LHLO/EHLO refused");

    /* body: headers + lines of 76 'x' up to size */
    size_t cap = (size_t)size + 512;
    char *body = malloc(cap);
    /* a Message-ID of its own per message (rewritten in place below, same
     * width): identical messages would be one message to the ledger */
    size_t blen = (size_t)snprintf(body, cap, "Message-ID: <%010ld.%010d@bench.test>\r\n"
                                              "From: <b@bench.test>\r\nTo: <r@bench.test>\r\n"
                                              "Subject: latency\r\n\r\n",
                                   (long)getpid(), 0);
    while (blen + 78 < (size_t)size + 200 && blen + 78 < cap - 8) {
        memset(body + blen, 'x', 76);
        memcpy(body + blen + 76, "\r\n", 2);
        blen += 78;
    }
    memcpy(body + blen, ".\r\n", 3);
    blen += 3;

    double *lat = calloc((size_t)count, sizeof(double));
    double start = now_us();
    /* SIZE= as Postfix's client sends it to a server that offers SIZE */
    char env[512];
    int env_len = snprintf(env, sizeof(env),
                           "XFORWARD NAME=client.bench.test ADDR=192.0.2.1 PROTO=ESMTP "
                           "HELO=client.bench.test\r\n"
                           "MAIL FROM:<b@bench.test> SIZE=%zu\r\nRCPT TO:<r@bench.test>\r\n"
                           "DATA\r\n",
                           blen - 3);
    for (int i = 0; i < count; i++) {
        double t0 = now_us();
        send_all(env, (size_t)env_len);
        if (read_reply() / 100 != 2 || read_reply() / 100 != 2 || read_reply() / 100 != 2 ||
            read_reply() != 354)
            die("envelope refused");
        char mid[40];
        snprintf(mid, sizeof(mid), "<%010ld.%010d@bench.test>", (long)getpid(), i);
        memcpy(body + 12, mid, strlen(mid));
        send_all(body, blen);
        int code = read_reply();
        if (code / 100 != 2) {
            fprintf(stderr, "lmtp_latency: message %d answered %d\n", i, code);
            free(lat);
            free(body);
            return 1;
        }
        lat[i] = now_us() - t0;
    }
    double total = now_us() - start;
    send_all("QUIT\r\n", 6);
    qsort(lat, (size_t)count, sizeof(double), cmp_double);
    double sum = 0;
    for (int i = 0; i < count; i++)
        sum += lat[i];
    printf("count=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f mean_us=%.0f rate=%.0f\n", count,
           lat[count / 2], lat[count * 9 / 10], lat[count * 99 / 100], sum / count,
           count * 1e6 / total);
    free(lat);
    free(body);
    return 0;
}
