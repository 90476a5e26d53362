/*
 * account: `apikeyd account create`: makes an account and its primary key
 * and prints the key once, as JSON on stdout. Nothing else ever shows it.
 */
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/accounts.h"
#include "core/error.h"
#include "core/timefmt.h"

static void usage(FILE *out)
{
    fputs("usage: apikeyd account create --db PATH --name NAME [OPTIONS]\n"
          "\n"
          "Creates an account and its primary production key, and prints them as one JSON\n"
          "object. This is the only time the key is shown.\n"
          "\n"
          "  --db PATH            database (env APIKEYD_DB)\n"
          "  --name NAME          account name\n"
          "  --secret-file PATH   HMAC secret (default: <db>.secret)\n"
          "  --brand NAME         key brand (default ml)\n"
          "  --help               this text\n",
          out);
}

static int print_account(int64_t account_id, const char *account_name, const struct key_rec *rec, const char *key)
{
    char created[TIMEFMT_LEN + 1];
    json_t *o;
    char *text;
    int r = 0;

    if (timefmt_format(rec->created_at, created, sizeof(created)) != 0)
        return -1;
    o = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s,s:b,s:b,s:s,s:n,s:s}", "account_id", (json_int_t)account_id, "account_name",
                  account_name, "id", (json_int_t)rec->id, "name", rec->name, "key_type", key_type_name(rec->type), "key_prefix",
                  rec->prefix, "is_active", rec->active, "is_primary", rec->primary, "created_at", created, "last_used", "api_key",
                  key);
    if (o == NULL || (text = json_dumps(o, JSON_INDENT(2))) == NULL) {
        json_decref(o);
        return -1;
    }
    if (puts(text) == EOF || fflush(stdout) != 0)
        r = -1;
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    json_t *k = json_object_get(o, "api_key");
    OPENSSL_cleanse((char *)json_string_value(k), json_string_length(k));
    json_decref(o);
    return r;
}

static int account_create(int argc, char **argv)
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
    const char *name = NULL;
    char key[KEYFMT_MAX_LEN + 1], msg[VALIDATE_MSG_MAX];
    struct account_create_req *req;
    struct account_rec *acct;
    struct audit_origin origin;
    struct key_rec *rec;
    struct cli_env env;
    int opt, r;

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
            fprintf(stderr, "apikeyd account create: unknown option or missing value: %s\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc || c.db == NULL || *c.db == '\0' || name == NULL) {
        fprintf(stderr, "apikeyd account create: --db and --name are required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (validate_name(name, strlen(name), msg, sizeof(msg)) != 0) {
        fprintf(stderr, "apikeyd account create: --name: %s\n", msg);
        return EXIT_USAGE;
    }
    if (cli_env_open(&c, &env) != 0)
        return 1;
    rec = malloc(sizeof(*rec));
    acct = malloc(sizeof(*acct));
    req = calloc(1, sizeof(*req));
    if (rec == NULL || acct == NULL || req == NULL) {
        r = AK_ERR_NOMEM;
        fprintf(stderr, "apikeyd: cannot create account: %s\n", ak_strerror(r));
        goto out;
    }
    strcpy(req->name, name);
    audit_origin_cli(&origin);
    if ((r = accounts_create(env.keys, &origin, req, acct, rec, key, sizeof(key))) != 0) {
        fprintf(stderr, "apikeyd: cannot create account: %s\n", ak_strerror(r));
    } else if (print_account(acct->id, name, rec, key) != 0) {
        fprintf(stderr, "apikeyd: cannot print the new account\n");
        r = -1;
    }
out:
    OPENSSL_cleanse(key, sizeof(key));
    free(rec);
    free(acct);
    free(req);
    cli_env_close(&env);
    return r == 0 ? 0 : 1;
}

int cli_account(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "create") == 0)
        return account_create(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "apikeyd account: unknown or missing subcommand\n");
    usage(stderr);
    return EXIT_USAGE;
}
