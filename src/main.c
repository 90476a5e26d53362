/*
 * main: command dispatch. Each subcommand lives in src/cli/.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (cmd == NULL) {
        cli_usage_main(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        cli_usage_main(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("apikeyd %s\n", APIKEYD_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return cli_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "account") == 0)
        return cli_account(argc - 1, argv + 1);
    if (strcmp(cmd, "admin-token") == 0)
        return cli_admin_token(argc - 1, argv + 1);
    if (strcmp(cmd, "backup") == 0)
        return cli_backup(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cli_check(argc - 1, argv + 1);
    fprintf(stderr, "apikeyd: unknown command: %s\n", cmd);
    cli_usage_main(stderr);
    return EXIT_USAGE;
}
