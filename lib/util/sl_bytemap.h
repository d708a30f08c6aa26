/* sl_bytemap.h - a table from short byte strings to pointers: the
 * broker's workers by their ZeroMQ routing id (1 to 255 bytes, chosen by
 * the peer or by libzmq), so that a frame from one of a thousand workers
 * finds its worker without walking them all.
 *
 * Separate chaining over a power-of-two array of buckets that doubles when
 * there are more entries than buckets. Keys are hashed with SipHash under
 * a random key per table: routing ids come from other nodes, and a peer
 * that picked colliding ones must not make lookups linear.
 *
 * Ownership: the table owns its copies of the keys, never the values. */
#ifndef SL_BYTEMAP_H
#define SL_BYTEMAP_H

#include <stddef.h>

#include "util/sl_util.h"

#define SL_BYTEMAP_KEY_MAX 255

struct sl_bytemap;

struct sl_bytemap *sl_bytemap_new(void);
/* Frees the table (not the values) and clears *mapp; *mapp may be NULL. */
void sl_bytemap_destroy(struct sl_bytemap **mapp);

/* Adds key -> value: 0, or -1 if key is already there (nothing changes).
 * len is 1 to SL_BYTEMAP_KEY_MAX and value not NULL (programming errors
 * otherwise: check lengths from the wire first). */
SL_WARN_UNUSED int sl_bytemap_insert(struct sl_bytemap *map, const void *key, size_t len,
                                     void *value);
/* The value of key, or NULL. */
void *sl_bytemap_find(const struct sl_bytemap *map, const void *key, size_t len);
/* Removes key and returns its value, or NULL if it was not there. */
void *sl_bytemap_remove(struct sl_bytemap *map, const void *key, size_t len);
size_t sl_bytemap_count(const struct sl_bytemap *map);

#endif
