/*
 * cli: shared command-line plumbing.
 */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "store/store.h"

void cli_usage_main(FILE *out)
{
    fputs("usage: apikeyd COMMAND [OPTIONS]\n"
          "\n"
          "apikeyd creates, lists, rotates and revokes API keys, and verifies them.\n"
          "\n"
          "commands:\n"
          "  serve                serve the HTTP API (apikeyd serve --help)\n"
          "  account create       create an account and print its primary key once\n"
          "  account list|show    list accounts, show one (the operator API's JSON)\n"
          "  account suspend|reactivate|set-max-keys|delete\n"
          "                       change or delete an account (apikeyd account --help)\n"
          "  account issue-key    issue a key for an account and print it once\n"
          "  admin-token          create, list and revoke operators' admin tokens\n"
          "  backup               copy a SQLite database while it serves (apikeyd backup --help)\n"
          "  check                verify a database: integrity, schema version, invariants\n"
          "\n"
          "  apikeyd --help     this text\n"
          "  apikeyd --version  the version\n",
          out);
}

void cli_env_name(const char *name, char *buf, size_t size)
{
    size_t n = 0;

    for (const char *p = "APIKEYD_"; *p != '\0' && n + 1 < size; p++)
        buf[n++] = *p;
    for (; *name != '\0' && n + 1 < size; name++)
        buf[n++] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    buf[n] = '\0';
}

static bool word_in(const char *v, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcasecmp(v, *words) == 0)
            return true;
    return false;
}

int cli_env_args(const char *cmd, const struct option *opts, int argc, char **argv, int *ret_argc, char ***ret_argv, int *ret_nenv)
{
    static const char *const on[] = {"1", "true", "yes", "on", NULL}, *const off[] = {"0", "false", "no", "off", "", NULL};
    size_t nopts = 0;
    char **v, name[96];
    int n = 1, nenv = 0;

    while (opts[nopts].name != NULL)
        nopts++;
    if ((v = calloc(nopts + (size_t)argc + 1, sizeof(*v))) == NULL) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        return -1;
    }
    v[0] = argv[0];
    for (size_t i = 0; i < nopts; i++) {
        const char *val;
        if (strcmp(opts[i].name, "help") == 0)
            continue;
        cli_env_name(opts[i].name, name, sizeof(name));
        if ((val = getenv(name)) == NULL)
            continue;
        if (opts[i].has_arg == no_argument) {
            if (word_in(val, off))
                continue;
            if (!word_in(val, on)) {
                fprintf(stderr, "%s: %s takes 1, true, yes or on (or 0, false, no, off), got \"%s\"\n", cmd, name, val);
                cli_env_args_free(v, nenv);
                return -1;
            }
        }
        size_t len = strlen(opts[i].name) + strlen(val) + 4;
        if ((v[n] = malloc(len)) == NULL) {
            fprintf(stderr, "%s: out of memory\n", cmd);
            cli_env_args_free(v, nenv);
            return -1;
        }
        if (opts[i].has_arg == no_argument)
            snprintf(v[n], len, "--%s", opts[i].name);
        else
            snprintf(v[n], len, "--%s=%s", opts[i].name, val);
        n++;
        nenv++;
    }
    for (int i = 1; i < argc; i++)
        v[n++] = argv[i];
    v[n] = NULL;
    *ret_argv = v;
    *ret_argc = n;
    *ret_nenv = nenv;
    return 0;
}

void cli_env_args_free(char **argv, int nenv)
{
    if (argv == NULL)
        return;
    for (int i = 1; i <= nenv; i++)
        free(argv[i]);
    free(argv);
}

int cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *ret = (unsigned)v;
    return 0;
}

int64_t cli_parse_id(const char *s)
{
    char *end;
    long long v;

    if (s == NULL || *s < '1' || *s > '9')
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0' && v > 0 ? (int64_t)v : 0;
}

int cli_print_json(json_t *o)
{
    /* Sized first, then dumped in one piece: no reallocation leaves a copy of a secret behind. */
    size_t n = o != NULL ? json_dumpb(o, NULL, 0, JSON_INDENT(2)) : 0;
    char *text = n != 0 ? malloc(n) : NULL;
    int r = -1;

    if (text != NULL && json_dumpb(o, text, n, JSON_INDENT(2)) == n)
        r = fwrite(text, 1, n, stdout) == n && putchar('\n') != EOF && fflush(stdout) == 0 ? 0 : -1;
    if (text != NULL)
        OPENSSL_cleanse(text, n);
    free(text);
    json_decref(o);
    return r;
}

int cli_print_secret(json_t *o, const char *field)
{
    json_t *s = json_object_get(o, field);
    int r = cli_print_json(json_incref(o));

    if (s != NULL)
        OPENSSL_cleanse((char *)json_string_value(s), json_string_length(s));
    json_decref(o);
    return r;
}

int cli_env_open(const struct cli_common *c, struct cli_env *env)
{
    struct keys_config kc = {
        .brand = c->brand != NULL ? c->brand : "ml", .max_keys = c->max_keys, .max_staleness_s = c->max_staleness_s};
    struct digest_secret secret;
    char err[512], *secret_path = NULL;
    int r;

    env->store = NULL;
    env->keys = NULL;
    /*
     * The key cap of accounts without one of their own: --max-keys (serve),
     * else APIKEYD_MAX_KEYS, which the operator commands read too, so that
     * they count keys as the server does (set it in the unit's
     * EnvironmentFile).
     */
    if (kc.max_keys == 0 && getenv("APIKEYD_MAX_KEYS") != NULL &&
        cli_parse_uint(getenv("APIKEYD_MAX_KEYS"), 1, ACCOUNT_MAX_KEYS_MAX, &kc.max_keys) != 0) {
        fprintf(stderr, "apikeyd: APIKEYD_MAX_KEYS takes a number from 1 to %d\n", ACCOUNT_MAX_KEYS_MAX);
        return -1;
    }
    if (kc.max_keys == 0)
        kc.max_keys = KEYS_DEFAULT_MAX;
    if (keyfmt_brand_check(kc.brand) != 0) {
        fprintf(stderr, "apikeyd: --brand must be 1 to %d characters of a-z and 0-9\n", KEYFMT_BRAND_MAX);
        return -1;
    }
    if (c->db != NULL && store_is_postgres(c->db) && c->secret_file == NULL) {
        fprintf(stderr, "apikeyd: --secret-file is required with PostgreSQL: every instance must use the same secret\n");
        return -1;
    }
    if ((r = store_open(c->db, &env->store, err, sizeof(err))) != 0) {
        fprintf(stderr, "apikeyd: %s\n", err);
        return -1;
    }
    if (c->secret_file == NULL) {
        size_t n = strlen(c->db) + sizeof(".secret");
        if ((secret_path = malloc(n)) == NULL)
            goto fail;
        snprintf(secret_path, n, "%s.secret", c->db);
    }
    if ((r = digest_secret_load(c->secret_file != NULL ? c->secret_file : secret_path, &secret, err, sizeof(err))) != 0) {
        fprintf(stderr, "apikeyd: %s\n", err);
        goto fail;
    }
    r = keys_new(env->store, &secret, &kc, &env->keys);
    digest_secret_wipe(&secret);
    if (r != 0) {
        fprintf(stderr, "apikeyd: %s\n", ak_strerror(r));
        goto fail;
    }
    free(secret_path);
    return 0;
fail:
    free(secret_path);
    store_free(env->store);
    env->store = NULL;
    return -1;
}

void cli_env_close(struct cli_env *env)
{
    /* The store first: it stops its watcher thread, which calls into the keys service. */
    store_free(env->store);
    keys_free(env->keys);
    env->keys = NULL;
    env->store = NULL;
}

int cli_db_options(const char *cmd, int argc, char **argv, void (*usage)(FILE *), const char **ret_db)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    *ret_db = getenv("APIKEYD_DB");
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            *ret_db = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            fprintf(stderr, "%s: unknown option or missing value: %s\n", cmd, argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (*ret_db == NULL || **ret_db == '\0') {
        fprintf(stderr, "%s: --db is required (or set APIKEYD_DB)\n", cmd);
        return EXIT_USAGE;
    }
    return 0;
}
