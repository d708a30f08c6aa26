/* sl_status.h - `sluice status`: the cluster as the registry in Redis sees
 * it (docs/cluster.md, "Status"). Reads Redis with a blocking client and
 * 2 s timeouts; writes a table, or JSON for scripts. */
#ifndef SL_STATUS_H
#define SL_STATUS_H

#include <stdbool.h>
#include <stdio.h>
#include "net/sl_redis.h"

/* Exit status for the command: 0 ok, 1 degraded (reasons printed), 69
 * (EX_UNAVAILABLE) when Redis cannot be read (also printed, as degraded). */
int sl_status_run(const struct sl_redis_url *url, const char *url_text, bool json, FILE *out);

#endif
