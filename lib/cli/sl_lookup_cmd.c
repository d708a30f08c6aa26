/* sl_lookup_cmd.c - sluice lookup RECIPIENT [--sender ADDR]...: what the
 * configured source (lookup.sql or lookup.ldap.*) says about a recipient,
 * as a worker would see it, without the cache: for the administrator
 * checking a control panel's rows (as postmap -q checks a Postfix table),
 * and for the tests. */
#include "cli/sl_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf/sl_config.h"
#include "lookup/sl_lookup.h"
#include "util/sl_addr.h"

#define SENDERS_MAX 16

static void
print_answer(const char *rcpt, const char *source, const struct sl_lookup_answer *a)
{
    printf("recipient: %s\nsource: %s\nfound: %s\n", rcpt, source, a->found ? "yes" : "no");
    if (a->matched_key != NULL)
        printf("key: %s\n", a->matched_key);
    if (a->policy_name != NULL)
        printf("policy: %s\n", a->policy_name);
    for (size_t f = 0; f < SL_LF_COUNT; f++)
        if (a->value[f] != NULL)
            printf("%s: %s\n", sl_lookup_field_names[f].sql, a->value[f]);
}

static void
print_sender(const struct sl_config *c, const struct sl_lookup_answer *a, const char *sender)
{
    struct sl_lookup_wb_result r;
    const char *senders[1] = {sender};
    char boost[32];

    sl_lookup_senders(a, senders, 1, c->policy.local_domains, c->policy.n_local_domains,
                      c->lookup.recipient_delimiter, &r);
    sl_format_score(r.score_boost, boost, sizeof(boost));
    printf("sender <%s>: %s, boost %s\n", sender,
           r.whitelisted && r.blacklisted ? "whitelisted+blacklisted"
           : r.whitelisted                ? "whitelisted"
           : r.blacklisted                ? "blacklisted"
                                          : "none",
           boost);
}

int
sl_cli_lookup(struct sl_cli *cli)
{
    static const struct option longopts[] = {
        {"sender", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *senders[SENDERS_MAX];
    size_t n_senders = 0;
    struct sl_lookup_answer a = {0};
    char *error = NULL;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(cli->argc, cli->argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (n_senders == SENDERS_MAX) {
                fprintf(stderr, "sluice: lookup: at most %d --sender\n", SENDERS_MAX);
                return EX_USAGE;
            }
            senders[n_senders++] = optarg;
            break;
        case 'h':
            fputs(cli->usage, stdout);
            return 0;
        default:
            return sl_cli_bad_option(cli, c);
        }
    }
    if (optind >= cli->argc) {
        fprintf(stderr, "sluice: lookup: which recipient?\nTry 'sluice --help'.\n");
        return EX_USAGE;
    }
    const char *rcpt = cli->argv[optind++];
    int rc = sl_cli_no_operands(cli);
    if (rc != 0)
        return rc;

    struct sl_lookup *lk = sl_lookup_new(cli->config, &error);
    if (lk == NULL) {
        fprintf(stderr, "sluice: lookup: %s\n",
                error != NULL ? error : "no lookup source (lookup.sql or lookup.ldap.uri)");
        free(error);
        return EX_CONFIG;
    }
    struct sl_lookup_session *s = sl_lookup_session_new(lk);
    bool local = sl_addr_domain_listed(cli->config->policy.local_domains,
                                       cli->config->policy.n_local_domains, rcpt);
    if (sl_lookup_rcpt(s, rcpt, local, &a, &error) < 0) {
        fprintf(stderr, "sluice: lookup: %s: %s\n", rcpt, error);
        free(error);
        rc = EX_TEMPFAIL;
    } else {
        print_answer(rcpt, sl_lookup_source(lk), &a);
        for (size_t i = 0; i < n_senders; i++)
            print_sender(cli->config, &a, senders[i]);
    }
    sl_lookup_answer_clear(&a);
    sl_lookup_session_destroy(&s);
    sl_lookup_destroy(&lk);
    return rc;
}
