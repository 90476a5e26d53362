/*
 * account: `apikeyd account create|list|show|suspend|reactivate|set-max-keys|
 * delete|issue-key`: the operator API (/v1/admin/accounts...) for an operator
 * on the server's own machine. Accounts and pages are printed as the HTTP API
 * prints them (core/accounts_json.h), and every change goes through core's
 * accounts service, which audits it with actor cli. A new key is printed
 * once, on stdout, and wiped from memory right after: never anywhere else.
 */
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/accounts.h"
#include "core/accounts_json.h"
#include "core/error.h"
#include "core/timefmt.h"

/* The options of every subcommand, each a bit in a command's set (getopt_long returns them). */
enum opt {
    OPT_DB = 1,
    OPT_SECRET_FILE,
    OPT_BRAND,
    OPT_NAME,
    OPT_EXTERNAL_ID,
    OPT_MAX_KEYS,
    OPT_LIMIT,
    OPT_AFTER,
    OPT_SANDBOX,
    OPT_MAKE_PRIMARY,
    OPT_HELP,
    OPT_COUNT
};

#define BIT(o) (1u << (o))
#define COMMON (BIT(OPT_DB) | BIT(OPT_SECRET_FILE) | BIT(OPT_BRAND) | BIT(OPT_HELP))
#define GO_ON (-1) /* parse_args: nothing printed, run the command */

/* In enum opt's order: OPTS[o - 1] is option o. */
static const struct option OPTS[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"brand", required_argument, NULL, OPT_BRAND},
    {"name", required_argument, NULL, OPT_NAME},
    {"external-id", required_argument, NULL, OPT_EXTERNAL_ID},
    {"max-keys", required_argument, NULL, OPT_MAX_KEYS},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"after", required_argument, NULL, OPT_AFTER},
    {"sandbox", no_argument, NULL, OPT_SANDBOX},
    {"make-primary", no_argument, NULL, OPT_MAKE_PRIMARY},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const OPT_TEXT[OPT_COUNT] = {
    [OPT_DB] = "  --db PATH            database (env APIKEYD_DB)\n",
    [OPT_SECRET_FILE] = "  --secret-file PATH   HMAC secret (default: <db>.secret)\n",
    [OPT_BRAND] = "  --brand NAME         key brand (default ml)\n",
    [OPT_NAME] = "  --name NAME          the account's name (create), the new key's name (issue-key)\n",
    [OPT_EXTERNAL_ID] = "  --external-id ID     the platform's own customer id: unique (create), a filter (list)\n",
    [OPT_MAX_KEYS] = "  --max-keys N         the account's own cap on keys, 1..1000000 (default: the server's)\n",
    [OPT_LIMIT] = "  --limit N            accounts on the page, 1..1000 (default 100)\n",
    [OPT_AFTER] = "  --after CURSOR       the previous page's next_cursor (from here or from the HTTP API)\n",
    [OPT_SANDBOX] = "  --sandbox            a sandbox key (default: production)\n",
    [OPT_MAKE_PRIMARY] = "  --make-primary       the new key becomes the primary; the old one stays active\n",
    [OPT_HELP] = "  --help               this text\n",
};

/* One run's options and operands, checked. */
struct args {
    struct cli_common c;
    unsigned given; /* BIT() of each option given */
    const char *name, *external_id, *after;
    unsigned max_keys, limit;
    int64_t id;   /* the ID operand */
    unsigned cap; /* set-max-keys' N; 0: "default" */
};

struct command {
    const char *name;
    const char *synopsis; /* after "apikeyd account NAME " */
    const char *about;
    unsigned opts;     /* BIT()s it takes besides COMMON */
    unsigned required; /* BIT()s it must have */
    int operands;      /* 0, 1 (ID) or 2 (ID N) */
    int (*run)(struct keys *k, const struct args *a);
};

/* ---- output ---- */

/* One line on stderr for a failure `r` about account `id` (0: none in particular). Returns the exit code, 1. */
static int fail(int64_t id, int r)
{
    const char *why = r == AK_ERR_NOT_FOUND     ? "no such account"
                      : r == AK_ERR_BELOW_COUNT ? "max_keys would be below the account's key count: delete keys first"
                      : r == AK_ERR_LIMIT       ? "key limit reached: the account has max_keys keys"
                                                : ak_strerror(r);

    if (id != 0)
        fprintf(stderr, "apikeyd: account %lld: %s\n", (long long)id, why);
    else
        fprintf(stderr, "apikeyd: %s\n", why);
    return 1;
}

static int print_account(struct keys *k, const struct account_rec *acct)
{
    if (cli_print_json(accounts_json_account(k, acct)) != 0) {
        fprintf(stderr, "apikeyd: cannot print the account\n");
        return 1;
    }
    return 0;
}

/* Adds `more`'s members (a reference it takes) to `o`, in order. On failure releases `o` and returns NULL. */
static json_t *join(json_t *o, json_t *more)
{
    if (json_object_update_new(o, more) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The key object's first fields (id, name, key_type). */
static json_t *key_head(const struct key_rec *rec)
{
    return json_pack("{s:I,s:s,s:s}", "id", (json_int_t)rec->id, "name", rec->name, "key_type", key_type_name(rec->type));
}

/* The key object's other fields (key_prefix ... leaked_at) of a new key: never used, never rotated or reported. */
static json_t *key_tail(const struct key_rec *rec)
{
    char created[TIMEFMT_LEN + 1], expires[TIMEFMT_LEN + 1];

    if (timefmt_format(rec->created_at, created, sizeof(created)) != 0 ||
        (rec->expires_at != 0 && timefmt_format(rec->expires_at, expires, sizeof(expires)) != 0))
        return NULL;
    /* The command line gives no restrictions: a key it makes is unrestricted. */
    return json_pack("{s:s,s:b,s:b,s:s,s:n,s:o,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}", "key_prefix", rec->prefix, "is_active",
                     rec->active, "is_primary", rec->primary, "created_at", created, "last_used", "expires_at",
                     rec->expires_at != 0 ? json_string(expires) : json_null(), "rotated_from", "rotated_to", "leaked_at", "scopes",
                     "allowed_ips", "rate_limit", "remaining", "refill");
}

/* Prints `o` (taken), a new key's object, and wipes its api_key after. */
static int print_new_key(json_t *o, const char *what)
{
    if (cli_print_secret(o, "api_key") != 0) {
        fprintf(stderr, "apikeyd: cannot print the new %s\n", what);
        return 1;
    }
    return 0;
}

/* ---- the commands ---- */

static int run_create(struct keys *k, const struct args *a)
{
    char key[KEYFMT_MAX_LEN + 1];
    struct account_create_req req = {.max_keys = a->max_keys};
    struct audit_origin origin;
    struct account_rec acct;
    struct key_rec rec;
    json_t *o;
    int r;

    strcpy(req.name, a->name);
    if (a->external_id != NULL)
        strcpy(req.external_id, a->external_id);
    audit_origin_cli(&origin);
    if ((r = accounts_create(k, &origin, &req, &acct, &rec, key, sizeof(key))) == AK_ERR_EXISTS) {
        fprintf(stderr, "apikeyd: cannot create account: account %lld has this external_id already\n", (long long)acct.id);
        return 1;
    }
    if (r != 0)
        return fail(0, r);
    /* The seed's shape: the account, then the key object, then the key. */
    o = join(join(json_pack("{s:I,s:s}", "account_id", (json_int_t)acct.id, "account_name", acct.name), key_head(&rec)),
             key_tail(&rec));
    o = join(o, json_pack("{s:s}", "api_key", key));
    OPENSSL_cleanse(key, sizeof(key));
    return print_new_key(o, "account");
}

static int run_list(struct keys *k, const struct args *a)
{
    char listing[ACCOUNTS_LISTING_MAX];
    int64_t after = 0;
    json_t *page;
    int r;

    accounts_listing_name(a->external_id, NULL, listing);
    if (a->after != NULL && accounts_cursor_decode(k, listing, a->after, strlen(a->after), &after) != 0) {
        fprintf(stderr, "apikeyd: --after must be a next_cursor of this same listing, with the same --external-id\n");
        return 1;
    }
    if ((r = accounts_json_list(k, listing, after, a->limit, a->external_id, NULL, &page)) != 0)
        return fail(0, r);
    if (cli_print_json(page) != 0) {
        fprintf(stderr, "apikeyd: cannot print the accounts\n");
        return 1;
    }
    return 0;
}

static int run_show(struct keys *k, const struct args *a)
{
    struct account_rec acct;
    int r;

    if ((r = accounts_get(k, a->id, &acct)) != 0)
        return fail(a->id, r);
    return print_account(k, &acct);
}

/* Applies `req` to the account and prints it. */
static int change(struct keys *k, int64_t id, const struct account_patch_req *req)
{
    struct audit_origin origin;
    struct account_rec acct;
    int r;

    audit_origin_cli(&origin);
    if ((r = accounts_update(k, &origin, id, req, &acct)) != 0)
        return fail(id, r);
    return print_account(k, &acct);
}

static int run_suspend(struct keys *k, const struct args *a)
{
    struct account_patch_req req = {.has_status = true, .suspended = true};

    return change(k, a->id, &req);
}

static int run_reactivate(struct keys *k, const struct args *a)
{
    struct account_patch_req req = {.has_status = true, .suspended = false};

    return change(k, a->id, &req);
}

static int run_set_max_keys(struct keys *k, const struct args *a)
{
    struct account_patch_req req = {.has_max_keys = true, .max_keys = a->cap};

    return change(k, a->id, &req);
}

static int run_delete(struct keys *k, const struct args *a)
{
    struct audit_origin origin;
    int r;

    audit_origin_cli(&origin);
    return (r = accounts_delete(k, &origin, a->id)) != 0 ? fail(a->id, r) : 0;
}

static int run_issue_key(struct keys *k, const struct args *a)
{
    char key[KEYFMT_MAX_LEN + 1];
    struct issue_req req = {.key.type = (a->given & BIT(OPT_SANDBOX)) ? KEY_TYPE_SANDBOX : KEY_TYPE_PRODUCTION,
                            .make_primary = (a->given & BIT(OPT_MAKE_PRIMARY)) != 0};
    struct audit_origin origin;
    struct key_rec rec;
    json_t *o;
    int r;

    strcpy(req.key.name, a->name);
    audit_origin_cli(&origin);
    if ((r = accounts_issue_key(k, &origin, a->id, &req, &rec, key, sizeof(key))) != 0)
        return fail(a->id, r);
    /* As POST /v1/admin/accounts/{id}/keys answers: the key and its message right after key_type. */
    o = join(join(key_head(&rec), json_pack("{s:s,s:s}", "api_key", key, "message", KEY_SHOWN_ONCE)), key_tail(&rec));
    OPENSSL_cleanse(key, sizeof(key));
    return print_new_key(o, "key");
}

static const struct command COMMANDS[] = {
    {"create", "--db PATH --name NAME [--external-id ID] [--max-keys N] [OPTIONS]",
     "Creates an account and its primary production key, and prints them as one JSON\n"
     "object. This is the only time the key is shown. An --external-id that another\n"
     "account has: one line naming that account, exit 1, nothing created.",
     BIT(OPT_NAME) | BIT(OPT_EXTERNAL_ID) | BIT(OPT_MAX_KEYS), BIT(OPT_NAME), 0, run_create},
    {"list", "--db PATH [--limit N] [--after CURSOR] [--external-id ID] [OPTIONS]",
     "Prints a page of accounts, ascending id, as GET /v1/admin/accounts does:\n"
     "{\"accounts\":[...],\"next_cursor\":...}. Pass next_cursor to --after (with the same\n"
     "--external-id) for the next page; cursors of the HTTP API work here and back.",
     BIT(OPT_LIMIT) | BIT(OPT_AFTER) | BIT(OPT_EXTERNAL_ID), 0, 0, run_list},
    {"show", "--db PATH [OPTIONS] ID", "Prints the account object, as GET /v1/admin/accounts/ID does.", 0, 0, 1, run_show},
    {"suspend", "--db PATH [OPTIONS] ID",
     "Suspends the account: every instance refuses its keys (403 account_suspended).\n"
     "Prints the account object.",
     0, 0, 1, run_suspend},
    {"reactivate", "--db PATH [OPTIONS] ID",
     "Reactivates a suspended account: its keys work again as they were. Prints the\n"
     "account object.",
     0, 0, 1, run_reactivate},
    {"set-max-keys", "--db PATH [OPTIONS] ID N|default",
     "Sets the account's own cap on keys (N from 1 to 1000000; \"default\": the server's\n"
     "--max-keys again). A cap below the account's key count is refused. Prints the\n"
     "account object.",
     0, 0, 2, run_set_max_keys},
    {"delete", "--db PATH [OPTIONS] ID",
     "Deletes the account and all its keys: every instance refuses them from then on.\n"
     "Prints nothing.",
     0, 0, 1, run_delete},
    {"issue-key", "--db PATH --name NAME [--sandbox | --make-primary] [OPTIONS] ID",
     "Issues a key for the account and prints it (the key object, api_key, message), the\n"
     "only time it is shown. With --make-primary it becomes the primary, and the old\n"
     "primary stays active. The account's cap applies.",
     BIT(OPT_NAME) | BIT(OPT_SANDBOX) | BIT(OPT_MAKE_PRIMARY), BIT(OPT_NAME), 1, run_issue_key},
    {NULL, NULL, NULL, 0, 0, 0, NULL},
};

/* ---- usage ---- */

/* The usage of `cmd`, or of the whole family when NULL. */
static void usage(FILE *out, const struct command *cmd)
{
    unsigned opts = cmd != NULL ? COMMON | cmd->opts : ~0u;

    for (const struct command *c = COMMANDS; c->name != NULL; c++)
        if (cmd == NULL || c == cmd)
            fprintf(out, "%s apikeyd account %s %s\n", c == COMMANDS || c == cmd ? "usage:" : "      ", c->name, c->synopsis);
    if (cmd != NULL)
        fprintf(out, "\n%s\n", cmd->about);
    else
        fputs("\nThe operator API (/v1/admin/accounts) on the server's machine: JSON on stdout, as the\n"
              "HTTP API answers; an error is one line on stderr, exit 1; a usage error exits 2.\n"
              "Changes are audited with actor cli, and may be made while a server is serving.\n"
              "apikeyd account COMMAND --help tells more.\n",
              out);
    fputc('\n', out);
    for (int o = OPT_DB; o < OPT_COUNT; o++)
        if (opts & BIT(o))
            fputs(OPT_TEXT[o], out);
}

/* A usage error: one line naming it, then the usage, on stderr. Returns EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) static int usage_error(const struct command *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "apikeyd account %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr, cmd);
    return EXIT_USAGE;
}

/* ---- arguments ---- */

/* Takes option `opt`'s value `val` into `a`. Returns 0 or EXIT_USAGE. */
static int take_option(const struct command *cmd, int opt, const char *val, struct args *a)
{
    char msg[VALIDATE_MSG_MAX];

    switch (opt) {
    case OPT_DB:
        a->c.db = val;
        break;
    case OPT_SECRET_FILE:
        a->c.secret_file = val;
        break;
    case OPT_BRAND:
        a->c.brand = val;
        break;
    case OPT_NAME:
        if (validate_name(val, strlen(val), msg, sizeof(msg)) != 0)
            return usage_error(cmd, "--name: %s", msg);
        a->name = val;
        break;
    case OPT_EXTERNAL_ID:
        if (validate_external_id(val, strlen(val), msg, sizeof(msg)) != 0)
            return usage_error(cmd, "--external-id: %s", msg);
        a->external_id = val;
        break;
    case OPT_MAX_KEYS:
        if (cli_parse_uint(val, 1, ACCOUNT_MAX_KEYS_MAX, &a->max_keys) != 0)
            return usage_error(cmd, "--max-keys takes a number from 1 to %d", ACCOUNT_MAX_KEYS_MAX);
        break;
    case OPT_LIMIT:
        if (cli_parse_uint(val, 1, ACCOUNTS_LIST_MAX, &a->limit) != 0)
            return usage_error(cmd, "--limit takes a number from 1 to %d", ACCOUNTS_LIST_MAX);
        break;
    case OPT_AFTER:
        a->after = val;
        break;
    default: /* flags: `given` says it all */
        break;
    }
    return 0;
}

/* The operands (ID, and set-max-keys' N) and what no single option can check. Returns 0 or EXIT_USAGE. */
static int take_operands(const struct command *cmd, int n, char **v, struct args *a)
{
    unsigned missing = cmd->required & ~a->given;

    if (a->c.db == NULL || *a->c.db == '\0')
        return usage_error(cmd, "--db is required (or set APIKEYD_DB)");
    if (missing != 0)
        return usage_error(cmd, "--%s is required", OPTS[__builtin_ctz(missing) - 1].name);
    if (n != cmd->operands)
        return usage_error(cmd, n > cmd->operands ? "unexpected argument: %s" : "missing argument: %s",
                           n > cmd->operands ? v[cmd->operands] : cmd->synopsis);
    if (n >= 1 && (a->id = cli_parse_id(v[0])) == 0)
        return usage_error(cmd, "ID must be an account id (a positive integer), not %s", v[0]);
    if (n == 2 && strcmp(v[1], "default") != 0 && cli_parse_uint(v[1], 1, ACCOUNT_MAX_KEYS_MAX, &a->cap) != 0)
        return usage_error(cmd, "N must be a number from 1 to %d, or \"default\", not %s", ACCOUNT_MAX_KEYS_MAX, v[1]);
    if ((a->given & BIT(OPT_SANDBOX)) && (a->given & BIT(OPT_MAKE_PRIMARY)))
        return usage_error(cmd, "--make-primary is for production keys: not with --sandbox");
    return 0;
}

/* Reads argv (argv[0] is the subcommand) into `a`. Returns GO_ON, or the exit code when done (help, usage error). */
static int parse_args(const struct command *cmd, int argc, char **argv, struct args *a)
{
    int opt, r;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        if (opt == OPT_HELP) {
            usage(stdout, cmd);
            return 0;
        }
        if (opt <= 0 || opt >= OPT_COUNT)
            return usage_error(cmd, "unknown option or missing value: %s", argv[optind - 1]);
        if (!((COMMON | cmd->opts) & BIT(opt)))
            return usage_error(cmd, "--%s is not an option of this command", OPTS[opt - 1].name);
        a->given |= BIT(opt);
        if ((r = take_option(cmd, opt, optarg, a)) != 0)
            return r;
    }
    r = take_operands(cmd, argc - optind, argv + optind, a);
    return r != 0 ? r : GO_ON;
}

int cli_account(int argc, char **argv)
{
    struct args a = {.c = {.db = getenv("APIKEYD_DB")}, .limit = ACCOUNTS_LIST_DEFAULT};
    const struct command *cmd = COMMANDS;
    struct cli_env env;
    int r;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout, NULL);
        return 0;
    }
    while (argc >= 2 && cmd->name != NULL && strcmp(cmd->name, argv[1]) != 0)
        cmd++;
    if (argc < 2 || cmd->name == NULL) {
        fprintf(stderr, "apikeyd account: unknown or missing command\n");
        usage(stderr, NULL);
        return EXIT_USAGE;
    }
    if ((r = parse_args(cmd, argc - 1, argv + 1, &a)) != GO_ON)
        return r;
    if (cli_env_open(&a.c, &env) != 0)
        return 1;
    r = cmd->run(env.keys, &a);
    cli_env_close(&env);
    return r;
}
