/*
 * backup: `apikeyd backup --db PATH OUT`: a consistent copy of a SQLite
 * database while a server serves and writes it (store/sqlite_backup.c).
 * Never copies, reads or prints the secret: that file is backed up apart.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/error.h"
#include "store/store.h"

/* `apikeyd backup --help`: on stdout for --help, on stderr after a usage error. */
static void usage(FILE *out)
{
    fputs("usage: apikeyd backup --db PATH OUT\n"
          "\n"
          "Copies the SQLite database PATH into the new file OUT while a server serves and writes\n"
          "it: one consistent snapshot (SQLite's online backup API; writes go on meanwhile), written\n"
          "to OUT.tmp, synced and renamed, so that OUT is the whole copy or absent. OUT must not\n"
          "exist. Prints one line (bytes, pages). Serve the copy as any database: apikeyd serve\n"
          "--db OUT (with the same secret).\n"
          "\n"
          "The secret file (<db>.secret, or serve's --secret-file) is not copied: back it up\n"
          "separately and keep it apart from the database's copies. Without it no key in a copy\n"
          "verifies; a leaked secret lets whoever holds it and a copy test keys offline.\n"
          "\n"
          "PostgreSQL is backed up with pg_dump -Fc and restored with pg_restore (README, Backups).\n"
          "\n"
          "  --db PATH            the database to copy (env APIKEYD_DB)\n"
          "  --help               this text\n"
          "\n"
          "Exit 0 when OUT is written, 1 when the copy failed (nothing at OUT), 2 on a usage error\n"
          "(OUT exists, a PostgreSQL URI).\n",
          out);
}

int cli_backup(int argc, char **argv)
{
    const char *db, *out;
    struct store_backup_stats stats;
    char err[512];
    struct stat st;
    int r;

    if ((r = cli_db_options("apikeyd backup", argc, argv, usage, &db)) != 0)
        return r == 1 ? 0 : r;
    if (optind + 1 != argc || *argv[optind] == '\0') {
        fprintf(stderr, "apikeyd backup: takes one OUT file, after the options\n");
        return EXIT_USAGE;
    }
    out = argv[optind];
    if (store_is_postgres(db)) {
        fprintf(stderr, "apikeyd backup: PostgreSQL is backed up with its own tools: pg_dump -Fc, restored with pg_restore "
                        "(README, Backups)\n");
        return EXIT_USAGE;
    }
    if (lstat(out, &st) == 0) {
        fprintf(stderr, "apikeyd backup: %s exists already: give a new file\n", out);
        return EXIT_USAGE;
    }
    if ((r = store_sqlite_backup(db, out, &stats, err, sizeof(err))) != 0) {
        fprintf(stderr, "apikeyd backup: %s\n", err);
        return r == AK_ERR_ARG ? EXIT_USAGE : 1;
    }
    printf("apikeyd backup: wrote %s: %lld bytes, %d pages\n", out, (long long)stats.bytes, stats.pages);
    return 0;
}
