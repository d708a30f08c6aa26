/* sl_id.c - random job ids from libsodium's CSPRNG. */
#include "util/sl_id.h"

#include <ctype.h>
#include <sodium.h>

static void
id_fill(char buf[SL_ID_LEN + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[9]; /* 72 bits -> 12 x 6 bits */
    randombytes_buf(raw, sizeof(raw));
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
