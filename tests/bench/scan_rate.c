/* scan_rate.c - a scanner daemon's own rate, for tests/bench/bench.sh:
 * the same message scanned N times by C concurrent clients, with the
 * scanner clients sluice's workers use (workers/scan_*.c), so "the daemon
 * alone" and "through sluice" differ only by sluice.
 *
 *   scan_rate clamd|spamd|rspamd SERVER N CONCURRENCY MESSAGE-FILE
 *
 * Prints "rate=<msg/s> errors=<n> ms=<total>" on stdout. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/sl_config.h"
#include "util/sl_util.h"
#include "workers/scan.h"

static struct sl_scanner_config cfg;
static struct scan_input input;
static void (*scan_fn)(const struct sl_scanner_config *, const struct scan_input *,
                       struct scan_result *);
static atomic_long left;
static atomic_long errors;

static void *
client(void *arg)
{
    (void)arg;
    while (atomic_fetch_sub(&left, 1) > 0) {
        struct scan_result r;
        scan_fn(&cfg, &input, &r);
        if (r.status != SCAN_OK)
            atomic_fetch_add(&errors, 1);
        scan_result_free(&r);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    static const char *const rcpts[] = {"rcpt@bench.test"};
    char *servers[1];
    FILE *fp;
    char *data;
    long n, conc, size;

    if (argc != 6) {
        fprintf(stderr, "usage: %s clamd|spamd|rspamd SERVER N CONCURRENCY MESSAGE-FILE\n",
                argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "clamd") == 0)
        scan_fn = scan_clamd;
    else if (strcmp(argv[1], "spamd") == 0)
        scan_fn = scan_spamd;
    else if (strcmp(argv[1], "rspamd") == 0)
        scan_fn = scan_rspamd;
    else
        return 2;
    n = atol(argv[3]);
    conc = atol(argv[4]);
    if (n < 1 || conc < 1 || conc > 1000 || (fp = fopen(argv[5], "rb")) == NULL)
        return 2;
    fseek(fp, 0, SEEK_END);
    size = ftell(fp);
    rewind(fp);
    data = sl_malloc((size_t)size + 1);
    if (fread(data, 1, (size_t)size, fp) != (size_t)size)
        return 2;
    fclose(fp);
    servers[0] = argv[2];
    cfg = (struct sl_scanner_config){.servers = servers,
                                     .n_servers = 1,
                                     .timeout_s = 120,
                                     .connect_timeout_s = 10,
                                     .on_failure = "unchecked"};
    /* what sluice sends for smtp-source's mail: no XFORWARD, so no client
     * address or HELO (with one, rspamd would do its DNS checks) */
    input = (struct scan_input){.job_id = "benchbenchbe",
                                .data = data,
                                .len = (size_t)size,
                                .mail_from = "bench@bench.test",
                                .queue_id = "benchbenchbe",
                                .rcpts = rcpts,
                                .n_rcpts = 1};
    atomic_init(&left, n);
    atomic_init(&errors, 0);
    pthread_t *t = sl_calloc((size_t)conc, sizeof(*t));
    unsigned long long t0 = sl_now_mono_ms();
    for (long i = 0; i < conc; i++)
        pthread_create(&t[i], NULL, client, NULL);
    for (long i = 0; i < conc; i++)
        pthread_join(t[i], NULL);
    unsigned long long ms = sl_now_mono_ms() - t0;
    printf("rate=%.1f errors=%ld ms=%llu\n", ms > 0 ? (double)n * 1000.0 / (double)ms : 0.0,
           atomic_load(&errors), ms);
    free(t);
    free(data);
    return 0;
}
