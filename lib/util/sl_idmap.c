/* sl_idmap.c - job id -> pointer table (sl_idmap.h). */
#include "util/sl_idmap.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IDMAP_MIN_SLOTS 16 /* power of two */

enum slot_state {
    SLOT_EMPTY = 0, /* never used since the last growth: ends a probe */
    SLOT_USED,
    SLOT_REMOVED, /* was used: a probe goes on past it, an insert may reuse it */
};

struct slot {
    void *value;
    char id[SL_ID_LEN + 1];
    unsigned char state;
};

struct sl_idmap {
    struct slot *slots;
    size_t n_slots; /* power of two */
    size_t n_used;
    size_t n_removed;
    unsigned char key[crypto_shorthash_KEYBYTES];
};

static bool
is_id(const char *id)
{
    return id != NULL && strnlen(id, SL_ID_LEN + 1) == SL_ID_LEN;
}

static size_t
slot_of(const struct sl_idmap *map, const char *id)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t v;

    crypto_shorthash(h, (const unsigned char *)id, SL_ID_LEN, map->key);
    memcpy(&v, h, sizeof(v));
    return (size_t)v & (map->n_slots - 1);
}

struct sl_idmap *
sl_idmap_new(void)
{
    struct sl_idmap *map = sl_calloc(1, sizeof(*map));

    map->n_slots = IDMAP_MIN_SLOTS;
    map->slots = sl_calloc(map->n_slots, sizeof(*map->slots));
    crypto_shorthash_keygen(map->key);
    return map;
}

void
sl_idmap_destroy(struct sl_idmap **mapp)
{
    struct sl_idmap *map = *mapp;

    if (map == NULL)
        return;
    free(map->slots);
    free(map);
    *mapp = NULL;
}

/* The slot holding id, or NULL. */
static struct slot *
lookup(const struct sl_idmap *map, const char *id)
{
    if (!is_id(id))
        return NULL;
    /* The load factor stays below 3/4, so an empty slot ends every probe. */
    for (size_t i = slot_of(map, id);; i = (i + 1) & (map->n_slots - 1)) {
        struct slot *s = &map->slots[i];
        if (s->state == SLOT_EMPTY)
            return NULL;
        if (s->state == SLOT_USED && memcmp(s->id, id, SL_ID_LEN) == 0)
            return s;
    }
}

/* Re-places every entry in a table sized for n_used + 1 at a load of at
 * most 1/2, which also drops the removal markers. */
static void
rehash(struct sl_idmap *map)
{
    struct slot *old = map->slots;
    size_t n_old = map->n_slots;
    size_t n = IDMAP_MIN_SLOTS;

    while (n < 2 * (map->n_used + 1)) {
        SL_BUG_ON(n * 2 < n);
        n *= 2;
    }
    map->slots = sl_calloc(n, sizeof(*map->slots));
    map->n_slots = n;
    map->n_removed = 0;
    for (size_t k = 0; k < n_old; k++) {
        if (old[k].state != SLOT_USED)
            continue;
        size_t i = slot_of(map, old[k].id);
        while (map->slots[i].state != SLOT_EMPTY)
            i = (i + 1) & (n - 1);
        map->slots[i] = old[k];
    }
    free(old);
}

int
sl_idmap_insert(struct sl_idmap *map, const char *id, void *value)
{
    SL_BUG_ON(!is_id(id));
    SL_BUG_ON(value == NULL);
    if (lookup(map, id) != NULL)
        return -1;
    /* Removal markers count as taken: they lengthen probes as entries do. */
    if ((map->n_used + map->n_removed + 1) * 4 > map->n_slots * 3)
        rehash(map);
    size_t i = slot_of(map, id);
    while (map->slots[i].state == SLOT_USED)
        i = (i + 1) & (map->n_slots - 1);
    struct slot *s = &map->slots[i];
    if (s->state == SLOT_REMOVED)
        map->n_removed--;
    memcpy(s->id, id, SL_ID_LEN + 1);
    s->value = value;
    s->state = SLOT_USED;
    map->n_used++;
    return 0;
}

void *
sl_idmap_find(const struct sl_idmap *map, const char *id)
{
    struct slot *s = lookup(map, id);

    return s != NULL ? s->value : NULL;
}

void *
sl_idmap_remove(struct sl_idmap *map, const char *id)
{
    struct slot *s = lookup(map, id);

    if (s == NULL)
        return NULL;
    void *value = s->value;
    /* The id stays in the slot: an iteration may still be reading it. */
    s->value = NULL;
    s->state = SLOT_REMOVED;
    map->n_used--;
    map->n_removed++;
    return value;
}

size_t
sl_idmap_count(const struct sl_idmap *map)
{
    return map->n_used;
}

bool
sl_idmap_next(const struct sl_idmap *map, size_t *iter, const char **id_r, void **value_r)
{
    for (size_t i = *iter; i < map->n_slots; i++) {
        const struct slot *s = &map->slots[i];
        if (s->state != SLOT_USED)
            continue;
        *iter = i + 1;
        if (id_r != NULL)
            *id_r = s->id;
        if (value_r != NULL)
            *value_r = s->value;
        return true;
    }
    *iter = map->n_slots;
    return false;
}
