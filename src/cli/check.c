/*
 * check: `apikeyd check --db PATH|URI`: verifies a database without
 * changing it (store/check.c) and prints the report as JSON. Never opens
 * the secret, never migrates.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/error.h"
#include "store/store.h"

/* `apikeyd check --help`: on stdout for --help, on stderr after a usage error. */
static void usage(FILE *out)
{
    fputs("usage: apikeyd check --db PATH|URI\n"
          "\n"
          "Verifies a database, SQLite or PostgreSQL, read-only (it never creates or migrates one,\n"
          "and may run while servers serve it): SQLite's integrity_check; that the schema version is\n"
          "the one this apikeyd migrates to; and the invariants: every account has exactly one\n"
          "primary key (production, no expiry, no scopes, active unless reported leaked), key_count\n"
          "is the number of the account's keys, every key's account and quota exist, every quota\n"
          "belongs to keys of one account. Prints one JSON object:\n"
          "  {\"ok\": true|false, \"schema_version\": N, \"problems\": [{\"check\": NAME, \"message\": TEXT}]}\n"
          "(at most 100 problems of each kind; schema_version null when a damaged file hides it). A\n"
          "file that integrity_check finds damaged is reported as such, without the invariants.\n"
          "\n"
          "  --db PATH|URI        SQLite database file, or a postgresql:// URI (env APIKEYD_DB)\n"
          "  --help               this text\n"
          "\n"
          "Exit 0 when ok, 1 when there are problems (or the database cannot be read: one line on\n"
          "stderr), 2 on a usage error.\n",
          out);
}

/* Appends one problem to the report's array. */
static int add_problem(void *arg, const char *check, const char *message)
{
    return json_array_append_new(arg, json_pack("{s:s,s:s}", "check", check, "message", message)) == 0 ? 0 : AK_ERR_NOMEM;
}

int cli_check(int argc, char **argv)
{
    const char *db;
    json_t *problems;
    char err[512];
    int version = 0, r;
    bool ok;

    if ((r = cli_db_options("apikeyd check", argc, argv, usage, &db)) != 0)
        return r == 1 ? 0 : r;
    if (optind < argc) {
        fprintf(stderr, "apikeyd check: unexpected argument: %s\n", argv[optind]);
        return EXIT_USAGE;
    }
    if ((problems = json_array()) == NULL) {
        fprintf(stderr, "apikeyd check: out of memory\n");
        return 1;
    }
    if ((r = store_check(db, add_problem, problems, &version, err, sizeof(err))) != 0) {
        fprintf(stderr, "apikeyd check: %s\n", r == AK_ERR_NOMEM ? "out of memory" : err);
        json_decref(problems);
        return 1;
    }
    ok = json_array_size(problems) == 0;
    if (cli_print_json(json_pack("{s:b,s:o,s:o}", "ok", ok, "schema_version", version >= 0 ? json_integer(version) : json_null(),
                                 "problems", problems)) != 0) {
        fprintf(stderr, "apikeyd check: cannot print the report\n");
        return 1;
    }
    return ok ? 0 : 1;
}
