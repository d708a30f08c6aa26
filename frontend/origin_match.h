/* origin_match.h - which origin a connecting client belongs to.
 *
 * An origin is one Postfix (or group of them) that hands mail to this
 * frontend: origins.<name>.match lists its client addresses, in file
 * order; the first origin whose list holds the client wins, and a client
 * that no named origin matches belongs to "default" (which has no match
 * list). The origin decides the concurrency limit and where accepted mail
 * is reinjected (docs/configuration.md, "origins"). */
#ifndef SLUICE_FRONTEND_ORIGIN_MATCH_H
#define SLUICE_FRONTEND_ORIGIN_MATCH_H

#include "conf/sl_config.h"

/* The origin of config whose match list holds ip (IPv4, IPv6 or
 * IPv4-mapped text), else the default origin; also the default when ip is
 * NULL or not an address. Never NULL; points into config. */
const struct sl_origin_config *fe_origin_config_for(const struct sl_config *config, const char *ip);

#endif
