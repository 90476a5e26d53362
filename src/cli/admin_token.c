/*
 * admin_token: `apikeyd admin-token create|list|revoke`: the operator's
 * tokens for /v1/admin/.... A token is printed once, by create; the store
 * keeps only its digest.
 */
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/admin.h"
#include "core/error.h"
#include "core/timefmt.h"

static void usage(FILE *out)
{
    fputs("usage: apikeyd admin-token create --db PATH --name NAME [OPTIONS]\n"
          "       apikeyd admin-token list   --db PATH [OPTIONS]\n"
          "       apikeyd admin-token revoke --db PATH [OPTIONS] ID\n"
          "\n"
          "Admin tokens authenticate the operator API (/v1/admin/...) and nothing else.\n"
          "create prints one JSON object with the token, the only time it is shown; list\n"
          "prints the tokens (never the tokens themselves); revoke ends one on every instance.\n"
          "\n"
          "  --db PATH            database (env APIKEYD_DB)\n"
          "  --name NAME          the token's name (create)\n"
          "  --secret-file PATH   HMAC secret (default: <db>.secret)\n"
          "  --brand NAME         key brand (default ml)\n"
          "  --help               this text\n",
          out);
}

static json_t *token_json(const struct token_rec *rec)
{
    char created[TIMEFMT_LEN + 1];

    if (timefmt_format(rec->created_at, created, sizeof(created)) != 0)
        return NULL;
    return json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)rec->id, "name", rec->name, "prefix", rec->prefix, "created_at",
                     created);
}

static int list_one(void *arg, const struct token_rec *rec)
{
    return json_array_append_new(arg, token_json(rec)) == 0 ? 0 : AK_ERR_NOMEM;
}

static int create(struct keys *k, const char *name)
{
    char token[KEYFMT_MAX_LEN + 1], created[TIMEFMT_LEN + 1];
    struct audit_origin origin;
    struct token_rec rec;
    json_t *o;
    int r;

    audit_origin_cli(&origin);
    if ((r = admin_token_create(k, &origin, name, &rec, token, sizeof(token))) != 0) {
        fprintf(stderr, "apikeyd: cannot create admin token: %s\n", ak_strerror(r));
        return 1;
    }
    r = timefmt_format(rec.created_at, created, sizeof(created));
    o = r == 0 ? json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)rec.id, "name", rec.name, "created_at", created, "token", token)
               : NULL;
    OPENSSL_cleanse(token, sizeof(token));
    if (cli_print_secret(o, "token") != 0) {
        fprintf(stderr, "apikeyd: cannot print the new admin token\n");
        return 1;
    }
    return 0;
}

static int list(struct keys *k)
{
    json_t *v = json_array();
    int r;

    if (v == NULL || (r = admin_token_list(k, list_one, v)) != 0) {
        fprintf(stderr, "apikeyd: cannot list admin tokens: %s\n", ak_strerror(v == NULL ? AK_ERR_NOMEM : r));
        json_decref(v);
        return 1;
    }
    return cli_print_json(json_pack("{s:o}", "admin_tokens", v)) == 0 ? 0 : 1;
}

static int revoke(struct keys *k, int64_t id)
{
    struct audit_origin origin;
    int r;

    audit_origin_cli(&origin);
    if ((r = admin_token_revoke(k, &origin, id)) != 0) {
        fprintf(stderr, "apikeyd: cannot revoke admin token %lld: %s\n", (long long)id,
                r == AK_ERR_NOT_FOUND ? "no such admin token" : ak_strerror(r));
        return 1;
    }
    return 0;
}

int cli_admin_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {"secret-file", required_argument, NULL, 's'},
        {"brand", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cli_common c = {.db = getenv("APIKEYD_DB")};
    const char *sub = argc >= 2 ? argv[1] : NULL, *name = NULL;
    char msg[VALIDATE_MSG_MAX];
    struct cli_env env;
    int64_t id = 0;
    int opt, r;

    if (sub != NULL && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (sub == NULL || (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0)) {
        fprintf(stderr, "apikeyd admin-token: unknown or missing subcommand\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    argc--;
    argv++;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            c.db = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 's':
            c.secret_file = optarg;
            break;
        case 'b':
            c.brand = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "apikeyd admin-token %s: unknown option or missing value: %s\n", sub, argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (c.db == NULL || *c.db == '\0') {
        fprintf(stderr, "apikeyd admin-token %s: --db is required (or set APIKEYD_DB)\n", sub);
        return EXIT_USAGE;
    }
    if (strcmp(sub, "create") == 0) {
        if (optind < argc || name == NULL) {
            fprintf(stderr, "apikeyd admin-token create: --name is required, and nothing else\n");
            return EXIT_USAGE;
        }
        if (validate_name(name, strlen(name), msg, sizeof(msg)) != 0) {
            fprintf(stderr, "apikeyd admin-token create: --name: %s\n", msg);
            return EXIT_USAGE;
        }
    } else if (strcmp(sub, "revoke") == 0) {
        if (optind + 1 != argc || (id = cli_parse_id(argv[optind])) == 0) {
            fprintf(stderr, "apikeyd admin-token revoke: takes one admin token id (a positive integer)\n");
            return EXIT_USAGE;
        }
    } else if (optind < argc) {
        fprintf(stderr, "apikeyd admin-token list: unexpected argument: %s\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (cli_env_open(&c, &env) != 0)
        return 1;
    /* The tokens in memory are what create checks new digests against, and what revoke reloads. */
    if ((r = keys_load(env.keys)) != 0) {
        fprintf(stderr, "apikeyd: cannot load the database: %s\n", ak_strerror(r));
        cli_env_close(&env);
        return 1;
    }
    r = strcmp(sub, "create") == 0 ? create(env.keys, name) : strcmp(sub, "list") == 0 ? list(env.keys) : revoke(env.keys, id);
    cli_env_close(&env);
    return r;
}
