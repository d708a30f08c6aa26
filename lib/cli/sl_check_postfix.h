/* sl_check_postfix.h - `sluice check-postfix`: does this Postfix instance
 * feed sluice the way sluice's configuration expects? (docs/operations.md,
 * "Checking the Postfix side")
 *
 * SYNOPSIS
 *   Two steps, so that the second can be tested without Postfix:
 *   1. read the instance through postconf (cli/sl_postconf.h);
 *   2. sl_check_postfix(): a pure function of that and sluice's
 *      configuration, one finding per mismatch, each with its fix (the
 *      exact postconf command, or what to change in sluice.yaml).
 *   sl_cli_check_postfix() (cli/sl_cli.h) runs both and prints, as
 *   `postfix check` does, one "sluice: warning: ..." line per finding.
 *
 *   What is compared (docs/postfix.md explains every line):
 *   - content_filter (main.cf, else a -o on some service): its transport
 *     and next hop against frontend.listen;
 *   - the transport's master.cf service: there, and lmtp (smtp works,
 *     LMTP is preferred); its maxproc and
 *     <transport>_destination_concurrency_limit (default_destination_
 *     concurrency_limit when not set) against the origin's concurrency;
 *     <lmtp|smtp>_data_done_timeout above job.timeout;
 *     <lmtp|smtp>_send_xforward_command = yes;
 *   - the origin: the one whose match holds the transport's
 *     <lmtp|smtp>_bind_address (127.0.0.1 when unset and the filter is on
 *     loopback), else default, or the one named; frontend.acl holds that
 *     address;
 *   - the reinjection smtpd the origin's reinject names (client:10025: the
 *     same address, port 10025): there, an smtpd, content_filter empty,
 *     receive_override_options with no_header_body_checks,
 *     no_unknown_recipient_checks and no_milters,
 *     smtpd_authorized_xforward_hosts and mynetworks holding sluice's
 *     address (127.0.0.1 on loopback);
 *   - message_size_limit not above frontend.max_message_size.
 *
 * OWNERSHIP
 *   A struct sl_check_postfix is the caller's; sl_check_postfix_free()
 *   frees what sl_check_postfix() put in it. */
#ifndef SL_CHECK_POSTFIX_H
#define SL_CHECK_POSTFIX_H

#include <stddef.h>
#include "cli/sl_postconf.h"
#include "conf/sl_config.h"
#include "util/sl_util.h"

struct sl_check_finding {
    char *problem; /* "amavisfeed_destination_concurrency_limit is 4, ..." */
    char *fix;     /* "postconf -e 'amavisfeed_destination_concurrency_limit = 2'" */
};

struct sl_check_postfix {
    const struct sl_origin_config *origin; /* the origin compared against */
    char *origin_why;                      /* how it was chosen, for the summary */
    char *transport;                       /* from content_filter, NULL if none */
    struct sl_check_finding *findings;
    size_t n_findings;
};

/* origin_name: --origin, or NULL to find it. 0 and *result_r filled (no
 * findings: all right), or -1 when origin_name is no origin of config
 * (*error_r says so). */
SL_WARN_UNUSED int sl_check_postfix(const struct sl_config *config, const struct sl_postconf *pc,
                                    const char *origin_name, struct sl_check_postfix *result_r,
                                    char **error_r);
void sl_check_postfix_free(struct sl_check_postfix *result);

#endif
