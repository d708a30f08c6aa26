/* sl_id.c - random job ids from libsodium's CSPRNG. */
#include "util/sl_id.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <sodium.h>

/* One getrandom(2) for many ids, not one per id (a job's id is drawn for
 * every message): each thread keeps a block of the CSPRNG's output and
 * hands it out once. A fork's child drops the block it inherited (the
 * handler runs in the one thread the child has), or parent and child would
 * draw the same ids. */
#define ID_POOL 504 /* 56 draws */

static __thread unsigned char pool[ID_POOL];
static __thread size_t pool_left;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void
pool_forget(void)
{
    sodium_memzero(pool, sizeof(pool));
    pool_left = 0;
}

static void
pool_init(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

static void
random_take(unsigned char *out, size_t n)
{
    pthread_once(&pool_once, pool_init);
    if (pool_left < n) {
        randombytes_buf(pool, sizeof(pool));
        pool_left = sizeof(pool);
    }
    memcpy(out, pool + sizeof(pool) - pool_left, n);
    sodium_memzero(pool + sizeof(pool) - pool_left, n);
    pool_left -= n;
}

static void
id_fill(char buf[SL_ID_LEN + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[9]; /* 72 bits -> 12 x 6 bits */
    random_take(raw, sizeof(raw));
    for (int i = 0; i < 3; i++) {
        unsigned v = (unsigned)raw[3 * i] << 16 | (unsigned)raw[3 * i + 1] << 8 | raw[3 * i + 2];
        buf[4 * i + 0] = alphabet[(v >> 18) & 63];
        buf[4 * i + 1] = alphabet[(v >> 12) & 63];
        buf[4 * i + 2] = alphabet[(v >> 6) & 63];
        buf[4 * i + 3] = alphabet[v & 63];
    }
    buf[SL_ID_LEN] = '\0';
}

void
sl_id_new(char buf[SL_ID_LEN + 1])
{
    /* As amavisd-new's generate_mail_id: an id that starts or ends with
     * '-' or '_' is drawn again (about 6% of draws), so that a quarantine
     * name "virus-<id>" splits unambiguously where amavisd-release and
     * the tools written for amavis' ids split it. */
    do
        id_fill(buf);
    while (!isalnum((unsigned char)buf[0]) || !isalnum((unsigned char)buf[SL_ID_LEN - 1]));
}
