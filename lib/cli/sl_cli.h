/* sl_cli.h - the commands of the sluice binary, and the ones that are not
 * roles (status, config, keygen, version, check-postfix, drill, quarantine).
 *
 * SYNOPSIS
 *   sluice.c holds the command table, as git.c and Postfix's front ends
 *   do: one struct sl_cli_command per command, naming its run function
 *   and what it needs. main() parses the command line once into a
 *   struct sl_cli, prepares what the flags ask for (loads the
 *   configuration, opens the log, checks the user, reads the keys, binds
 *   the listening sockets, starts the master), runs the command, and
 *   cleans up once. A new command is one table row and one run function.
 *
 *   The run functions here may use every library under lib/, never a
 *   role: the roles' run functions (all, frontend, broker, worker) are in
 *   sluice.c, the only code that links the roles.
 *
 * OWNERSHIP
 *   struct sl_cli belongs to main(). A run function may take the listening
 *   sockets (it then sets n_listen_fds to 0); main() closes what is left,
 *   frees the configuration and the overrides. */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdbool.h>
#include <stddef.h>

struct sl_config;
struct sl_cli;

/* What a command needs main() to do before its run function. */
enum sl_cli_needs {
    /* -c and -o: loads the configuration, exit 78 if it is wrong */
    SL_CLI_CONFIG = 1 << 0,
    /* takes one operand after its name (keygen NAME) */
    SL_CLI_OPERAND = 1 << 1,
    /* runs until stopped: checks redis.url, opens the log (log.target,
     * log.level, -v), raises the descriptor limit */
    SL_CLI_SERVICE = 1 << 2,
    /* started as root, runs as security.user: checked first (exit 77),
     * dropped once sockets are bound and keys read */
    SL_CLI_PRIVS = 1 << 3,
    /* CURVE keys of a broker (its secret key, security.allow_dir) */
    SL_CLI_KEYS_BROKER = 1 << 4,
    /* CURVE keys of a broker's client (frontend, worker) */
    SL_CLI_KEYS_CLIENT = 1 << 5,
    /* takes frontend.listen or systemd's sockets before anything starts
     * (exit 71 if it cannot) */
    SL_CLI_LISTEN = 1 << 6,
    /* runs as the child of a master that holds the sockets and restarts
     * it (sl_master.h), unless -F */
    SL_CLI_MASTER = 1 << 7,
    /* has options of its own: everything after the command's name is its
     * (argc, argv), as git's subcommands have theirs; -c and -o before
     * the name stay sluice's. check-postfix's -c is Postfix's directory. */
    SL_CLI_ARGS = 1 << 8,
};

/* Returns the exit status (sysexits(3)). */
typedef int sl_cli_run_fn(struct sl_cli *cli);

struct sl_cli_command {
    const char *name;
    sl_cli_run_fn *run;
    unsigned needs;    /* enum sl_cli_needs */
    const char *label; /* SL_CLI_MASTER: the child's name in the master's log lines */
};

struct sl_cli {
    /* the command line */
    const struct sl_cli_command *command;
    const char *operand;     /* SL_CLI_OPERAND: keygen NAME */
    const char *config_path; /* -c */
    char **overrides;        /* -o KEY=VALUE, in order */
    size_t n_overrides;
    bool verbose;      /* -v */
    bool only_changed; /* config -n */
    bool json;         /* status --json */
    bool no_master;    /* -F */
    int argc;          /* SL_CLI_ARGS: argv[0] is the command's name */
    char **argv;
    const char *usage; /* the --help text, for a command's own -h */
    /* what main() prepared for the command's needs */
    struct sl_config *config; /* SL_CLI_CONFIG */
    int *listen_fds;          /* SL_CLI_LISTEN */
    size_t n_listen_fds;
    int metrics_fd;           /* SL_CLI_LISTEN: metrics.listen, bound; -1: none */
};

/* sluice config [-n]: the effective configuration as YAML. */
int sl_cli_config(struct sl_cli *cli);
/* sluice status [--json]: the cluster as the registry in Redis sees it
 * (cli/sl_status.h); 78 without redis.url. */
int sl_cli_status(struct sl_cli *cli);
/* sluice keygen NAME: NAME.key and NAME.pub; no configuration, no log. */
int sl_cli_keygen(struct sl_cli *cli);
/* sluice version */
int sl_cli_version(struct sl_cli *cli);
/* For commands with options of their own (SL_CLI_ARGS), after getopt_long
 * on (argc, argv): c being ':' (a value missing) or '?' (an unknown
 * option), says so and returns EX_USAGE. */
int sl_cli_bad_option(const struct sl_cli *cli, int c);
/* Words left after the options: says so and returns EX_USAGE; else 0. */
int sl_cli_no_operands(const struct sl_cli *cli);

/* sluice check-postfix [-c DIR] [--origin NAME]: the Postfix instance's
 * filter settings against this configuration (cli/sl_check_postfix.h);
 * 0 all right, 1 mismatches, 69/78 Postfix's configuration unreadable. */
int sl_cli_check_postfix(struct sl_cli *cli);
/* sluice drill --via HOST:PORT[,...] --sink HOST:PORT ...: the failover
 * drill (cli/sl_drill.h); 0 nothing lost, 1 loss, 2 not all accepted. */
int sl_cli_drill(struct sl_cli *cli);
/* sluice quarantine list|show ID|release ID|delete ID|expire: the
 * quarantine (quarantine.store, docs/quarantine.md); 0 done, 1 no such
 * entry, 69 the store or Postfix unavailable, 78 no store configured. */
int sl_cli_quarantine(struct sl_cli *cli);
/* sluice lookup RECIPIENT [--sender ADDR]...: the recipient's policy as
 * lookup.sql or lookup.ldap.* give it (docs/lookups.md); 0 answered, 75
 * the source unavailable, 78 no source configured. */
int sl_cli_lookup(struct sl_cli *cli);

#endif
