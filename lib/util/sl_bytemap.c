/* sl_bytemap.c - byte-string -> pointer table (sl_bytemap.h). */
#include "util/sl_bytemap.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BYTEMAP_MIN_BUCKETS 64 /* power of two */

struct entry {
    struct entry *next;
    uint64_t hash;
    void *value;
    unsigned char len;
    unsigned char key[]; /* len bytes */
};

struct sl_bytemap {
    struct entry **buckets;
    size_t n_buckets; /* power of two */
    size_t count;
    unsigned char key[crypto_shorthash_KEYBYTES];
};

static uint64_t
hash_of(const struct sl_bytemap *map, const void *key, size_t len)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t v;

    crypto_shorthash(h, key, len, map->key);
    memcpy(&v, h, sizeof(v));
    return v;
}

struct sl_bytemap *
sl_bytemap_new(void)
{
    struct sl_bytemap *map = sl_calloc(1, sizeof(*map));

    map->n_buckets = BYTEMAP_MIN_BUCKETS;
    map->buckets = sl_calloc(map->n_buckets, sizeof(*map->buckets));
    crypto_shorthash_keygen(map->key);
    return map;
}

void
sl_bytemap_destroy(struct sl_bytemap **mapp)
{
    struct sl_bytemap *map = *mapp;

    if (map == NULL)
        return;
    *mapp = NULL;
    for (size_t i = 0; i < map->n_buckets; i++) {
        struct entry *e = map->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(map->buckets);
    free(map);
}

/* The link that points at key's entry, or at the NULL ending its chain. */
static struct entry **
link_of(const struct sl_bytemap *map, const void *key, size_t len, uint64_t hash)
{
    struct entry **pe = &map->buckets[hash & (map->n_buckets - 1)];

    for (; *pe != NULL; pe = &(*pe)->next)
        if ((*pe)->hash == hash && (*pe)->len == len && memcmp((*pe)->key, key, len) == 0)
            break;
    return pe;
}

/* Twice the buckets; every entry moves to its chain in the new array. */
static void
grow(struct sl_bytemap *map)
{
    size_t n = map->n_buckets * 2;
    struct entry **b = sl_calloc(n, sizeof(*b));

    for (size_t i = 0; i < map->n_buckets; i++) {
        struct entry *e = map->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(map->buckets);
    map->buckets = b;
    map->n_buckets = n;
}

int
sl_bytemap_insert(struct sl_bytemap *map, const void *key, size_t len, void *value)
{
    SL_BUG_ON(len == 0 || len > SL_BYTEMAP_KEY_MAX || value == NULL);
    uint64_t hash = hash_of(map, key, len);
    struct entry **pe = link_of(map, key, len, hash);

    if (*pe != NULL)
        return -1;
    struct entry *e = sl_malloc(sizeof(*e) + len);
    e->next = NULL;
    e->hash = hash;
    e->value = value;
    e->len = (unsigned char)len;
    memcpy(e->key, key, len);
    *pe = e;
    if (++map->count > map->n_buckets)
        grow(map);
    return 0;
}

void *
sl_bytemap_find(const struct sl_bytemap *map, const void *key, size_t len)
{
    if (len == 0 || len > SL_BYTEMAP_KEY_MAX)
        return NULL;
    struct entry *e = *link_of(map, key, len, hash_of(map, key, len));
    return e != NULL ? e->value : NULL;
}

void *
sl_bytemap_remove(struct sl_bytemap *map, const void *key, size_t len)
{
    if (len == 0 || len > SL_BYTEMAP_KEY_MAX)
        return NULL;
    struct entry **pe = link_of(map, key, len, hash_of(map, key, len));
    struct entry *e = *pe;

    if (e == NULL)
        return NULL;
    *pe = e->next;
    void *value = e->value;
    free(e);
    map->count--;
    return value;
}

size_t
sl_bytemap_count(const struct sl_bytemap *map)
{
    return map->count;
}
