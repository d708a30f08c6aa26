/* sl_idmap.h - a table from job ids (SL_ID_LEN characters, util/sl_id.h)
 * to pointers: the broker's jobs, a frontend's jobs in flight.
 *
 * Open addressing with linear probing over a power-of-two array of slots
 * that hold the ids themselves, so an entry costs no allocation. Ids are
 * hashed with SipHash under a random key per table: ids come from other
 * nodes, and a peer that picked colliding ones must not make lookups
 * linear. The table grows (doubles) before more than 3/4 of its slots are
 * taken, so it does not degrade with any number of jobs in flight.
 *
 * Removing an entry leaves a marker and moves nothing, so an iteration may
 * remove any entry, the current one included, and still visits every
 * other entry once. Inserting during an iteration is not allowed: growth
 * reorders the slots.
 *
 * Ownership: the table owns its slots and its copies of the ids, never
 * the values. */
#ifndef SL_IDMAP_H
#define SL_IDMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "util/sl_id.h"
#include "util/sl_util.h"

struct sl_idmap;

struct sl_idmap *sl_idmap_new(void);
/* Frees the table (not the values) and clears *mapp; *mapp may be NULL. */
void sl_idmap_destroy(struct sl_idmap **mapp);

/* Adds id -> value: 0, or -1 if id is already there (nothing changes).
 * id must be SL_ID_LEN characters and value not NULL: both are checked as
 * programming errors, so check ids from the wire first
 * (sl_wire_job_id_valid). */
SL_WARN_UNUSED int sl_idmap_insert(struct sl_idmap *map, const char *id, void *value);
/* The value of id, or NULL (also for any string that is not an id). */
void *sl_idmap_find(const struct sl_idmap *map, const char *id);
/* Removes id and returns its value, or NULL if it was not there. */
void *sl_idmap_remove(struct sl_idmap *map, const char *id);
size_t sl_idmap_count(const struct sl_idmap *map);

/* Visits every entry once, in no particular order:
 *
 *     size_t it = 0;
 *     const char *id;
 *     void *value;
 *     while (sl_idmap_next(map, &it, &id, &value))
 *         ...
 *
 * *id_r points into the table and stays valid until the next insert;
 * id_r and value_r may be NULL. */
bool sl_idmap_next(const struct sl_idmap *map, size_t *iter, const char **id_r, void **value_r);

#endif
