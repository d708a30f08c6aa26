/* sl_id.c - random job ids from libsodium's CSPRNG. */
#include "util/sl_id.h"

#include <sodium.h>

void
sl_id_new(char buf[SL_ID_LEN + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[9];   /* 72 bits -> 12 x 6 bits */
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
