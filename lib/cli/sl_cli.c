/* sl_cli.c - the commands of the sluice binary that are not roles and fit
 * in a few lines: config, status (the command line around sl_status.h),
 * keygen, version (sl_cli.h), and the command line of the commands with
 * options of their own. None of them opens the log: what they have to say
 * goes to stdout, errors to stderr as "sluice: ...". */
#include "cli/sl_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <event2/event.h>
#include <zmq.h>

#include "cli/sl_status.h"
#include "net/sl_keys.h"
#include "net/sl_redis.h"
#include "conf/sl_config.h"

int
sl_cli_config(struct sl_cli *cli)
{
    sl_config_print(cli->config, stdout, cli->only_changed);
    return 0;
}

int
sl_cli_status(struct sl_cli *cli)
{
    struct sl_redis_url url;
    char *error = NULL, *desc;
    int rc;

    if (cli->config->redis.url == NULL || cli->config->redis.url[0] == '\0') {
        /* a single node: it answers for itself */
        if (cli->config->metrics.listen[0] != '\0')
            return sl_status_run_node(cli->config->metrics.listen, cli->json, stdout);
        fprintf(stderr, "sluice: status reads the cluster registry in Redis: set redis.url "
                        "(e.g. -o redis.url=redis://127.0.0.1:6379), or for a single node "
                        "without Redis the node's metrics.listen, where it answers for itself "
                        "(e.g. -o metrics.listen=127.0.0.1:9100)\n");
        return EX_CONFIG;
    }
    if (sl_redis_url_from_config(cli->config, &url, &error) < 0) {
        fprintf(stderr, "sluice: fatal: %s\n", error);
        free(error);
        return EX_CONFIG;
    }
    desc = sl_redis_url_describe(&url); /* no password in the output */
    rc = sl_status_run(&url, desc, cli->json, stdout);
    free(desc);
    sl_redis_url_free(&url);
    return rc;
}

int
sl_cli_keygen(struct sl_cli *cli)
{
    const char *name = cli->operand;
    char *error = NULL;

    if (name == NULL || name[0] == '\0') {
        fprintf(stderr, "sluice: keygen needs a NAME (writes NAME.key and NAME.pub)\n");
        return EX_USAGE;
    }
    if (sl_keys_generate(name, &error) < 0) {
        fprintf(stderr, "sluice: keygen: %s\n", error);
        free(error);
        return EX_CANTCREAT;
    }
    printf("%s.key: secret key (mode 0600, keep it on this node only)\n"
           "%s.pub: public key\n",
           name, name);
    return 0;
}

int
sl_cli_version(struct sl_cli *cli)
{
    int major, minor, patch;

    (void)cli;
    zmq_version(&major, &minor, &patch);
    printf("sluice %s (libzmq %d.%d.%d, libevent %s)\n", SLUICE_VERSION, major, minor, patch,
           event_get_version());
    return 0;
}

int
sl_cli_bad_option(const struct sl_cli *cli, int c)
{
    fprintf(stderr, "sluice: %s: %s '%s'\nTry 'sluice --help'.\n", cli->argv[0],
            c == ':' ? "a value is missing after" : "bad option", cli->argv[optind - 1]);
    return EX_USAGE;
}

int
sl_cli_no_operands(const struct sl_cli *cli)
{
    if (optind >= cli->argc)
        return 0;
    fprintf(stderr, "sluice: unexpected argument '%s'\nTry 'sluice --help'.\n", cli->argv[optind]);
    return EX_USAGE;
}
