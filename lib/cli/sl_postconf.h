/* sl_postconf.h - a Postfix instance's configuration, read through
 * postconf(1), the interface Postfix supports for it (main.cf and
 * master.cf are never parsed here: postconf knows the defaults, the
 * $name expansions, the continuation lines and the per-service names).
 *
 * SYNOPSIS
 *   sl_postconf_read() runs, for the instance of DIR (postconf -c DIR) or
 *   the default one:
 *     postconf -x     every parameter with its effective value, defaults
 *                     included and $names expanded; this also names the
 *                     per-transport parameters of every master.cf service
 *                     (amavisfeed_destination_concurrency_limit)
 *     postconf -n     the parameters main.cf sets (to tell "set to 20"
 *                     from "not set, the default is 20")
 *     postconf -M     master.cf's services, one line each
 *     postconf -Px    master.cf's -o parameters, "name/type/param = value"
 *   The parsers are separate and do no I/O, so the unit tests feed them
 *   postconf's text.
 *
 * DIAGNOSTICS
 *   sl_postconf_read() returns 0, EX_UNAVAILABLE (69) when postconf cannot
 *   be run, or EX_CONFIG (78) when it fails (no such directory, main.cf
 *   unreadable), with postconf's own words in *error_r.
 *
 * OWNERSHIP
 *   A struct sl_postconf owns everything in it; sl_postconf_free() frees
 *   it and leaves it empty. Strings returned by the look-ups point into it. */
#ifndef SL_POSTCONF_H
#define SL_POSTCONF_H

#include <stdbool.h>
#include <stddef.h>
#include "util/sl_util.h"

struct sl_postconf_param {
    char *name;  /* "lmtp_data_done_timeout", or "amavisfeed/unix/lmtp_data_done_timeout" */
    char *value; /* "" when empty */
};

/* One master.cf entry (postconf -M): the eight columns, the arguments
 * after the command (the -o options among them) in args. */
struct sl_postconf_service {
    char *name;    /* "amavisfeed", "127.0.0.1:10025" */
    char *type;    /* "unix", "inet", ... */
    char *maxproc; /* as written: a number or "-" (default_process_limit) */
    char *command; /* "lmtp", "smtpd" */
    char *line;    /* the whole entry, as postconf printed it */
};

struct sl_postconf {
    char *dir;                        /* -c DIR, NULL: the default instance */
    struct sl_postconf_param *params; /* postconf -x */
    size_t n_params;
    struct sl_postconf_param *set; /* postconf -n */
    size_t n_set;
    struct sl_postconf_service *services; /* postconf -M */
    size_t n_services;
    struct sl_postconf_param *svc_params; /* postconf -Px */
    size_t n_svc_params;
};

/* Runs postconf as above. dir may be NULL. */
SL_WARN_UNUSED int sl_postconf_read(struct sl_postconf *pc, const char *dir, char **error_r);
void sl_postconf_free(struct sl_postconf *pc);

/* "name = value" lines (postconf, -n, -P) appended to *params_r. A line
 * without " =" is an error: -1 and *error_r names it. */
SL_WARN_UNUSED int sl_postconf_parse_params(const char *text, struct sl_postconf_param **params_r,
                                            size_t *n_r, char **error_r);
/* postconf -M lines appended to *services_r; -1 on a line with fewer than
 * eight columns. */
SL_WARN_UNUSED int sl_postconf_parse_services(const char *text,
                                              struct sl_postconf_service **services_r, size_t *n_r,
                                              char **error_r);

/* The effective value of a main.cf parameter, NULL if postconf does not
 * know it. */
const char *sl_postconf_get(const struct sl_postconf *pc, const char *name);
/* Does main.cf set it (postconf -n)? */
bool sl_postconf_is_set(const struct sl_postconf *pc, const char *name);
/* The master.cf entry name/type, or NULL. */
const struct sl_postconf_service *sl_postconf_service(const struct sl_postconf *pc,
                                                      const char *name, const char *type);
/* The -o value of param on service name/type, NULL if it has none. */
const char *sl_postconf_service_param(const struct sl_postconf *pc, const char *name,
                                      const char *type, const char *param);
/* What the service runs with: its -o value, else main.cf's. */
const char *sl_postconf_effective(const struct sl_postconf *pc,
                                  const struct sl_postconf_service *svc, const char *param);

/* A Postfix time value ("600s", "20m", "1200": default unit seconds) in
 * seconds; -1 if it is not one. */
long sl_postconf_time(const char *value);

#endif
