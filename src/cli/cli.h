/*
 * cli: what the subcommands share: usage texts, exit codes, and opening the
 * store, secret and keys service from command-line options.
 */
#ifndef APIKEYD_CLI_CLI_H
#define APIKEYD_CLI_CLI_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "core/digest.h"
#include "core/keys.h"

#define EXIT_USAGE 2

struct store;

struct cli_common {
    const char *db;           /* --db or APIKEYD_DB */
    const char *secret_file;  /* --secret-file, default <db>.secret */
    const char *brand;        /* --brand, default "ml" */
    unsigned max_keys;        /* --max-keys */
    unsigned max_staleness_s; /* --max-staleness (serve, PostgreSQL) */
};

/* The environment pieces a subcommand works with, opened together. */
struct cli_env {
    struct store *store;
    struct keys *keys;
};

/* Top-level usage. */
void cli_usage_main(FILE *out);

/*
 * Command-line arguments for the options of `opts` (a getopt_long table)
 * that are set in the environment: APIKEYD_ and the long name in upper case
 * with '-' as '_' (--max-keys: APIKEYD_MAX_KEYS), as "--name=value"; a
 * switch (no_argument) is given for 1/true/yes/on and left out for
 * 0/false/no/off or empty. They go before argv[1..] so that a flag given
 * wins (the later value is kept). *ret_argv (malloc'd, NULL-terminated,
 * freed by cli_env_args_free) starts with argv[0]; *ret_nenv of its entries
 * after it came from the environment. Returns 0, or -1 after printing one
 * line (`cmd`: "apikeyd serve") for a switch with another value, or out of
 * memory.
 */
struct option;
int cli_env_args(const char *cmd, const struct option *opts, int argc, char **argv, int *ret_argc, char ***ret_argv, int *ret_nenv);
void cli_env_args_free(char **argv, int nenv);

/* The environment variable of long option `name` (as cli_env_args names it) into `buf`. */
void cli_env_name(const char *name, char *buf, size_t size);

/*
 * Parses the options of a command that takes --db (or APIKEYD_DB) and --help only:
 * 0 with *ret_db set and optind at the first operand; 1 after printing the
 * usage on stdout (--help: exit 0); EXIT_USAGE after one line and the usage on stderr.
 */
int cli_db_options(const char *cmd, int argc, char **argv, void (*usage)(FILE *), const char **ret_db);

/* Parses a decimal unsigned option value in [min, max]. Returns 0 or -1. */
int cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret);

/* Parses a positive id in canonical decimal. Returns it, or 0 if it is not one. */
int64_t cli_parse_id(const char *s);

/*
 * Prints `o` (a reference the call takes; NULL is an error) as indented
 * JSON and a newline on stdout, and wipes the text after. Returns 0, or -1
 * when `o` is NULL or the text cannot be written.
 */
int cli_print_json(json_t *o);

/*
 * Prints `o` as cli_print_json does, then wipes the string member
 * `field` (a key or token shown once) in the tree before releasing it.
 */
int cli_print_secret(json_t *o, const char *field);

/*
 * Opens the store (creating and migrating it), the secret and the keys
 * service. On failure prints one line on stderr and returns -1.
 */
int cli_env_open(const struct cli_common *c, struct cli_env *env);

/* Closes what cli_env_open opened. */
void cli_env_close(struct cli_env *env);

/* Subcommands: each returns the process exit code. */
int cli_serve(int argc, char **argv);
int cli_account(int argc, char **argv);
int cli_admin_token(int argc, char **argv);
int cli_backup(int argc, char **argv);
int cli_check(int argc, char **argv);

#endif
