/*
 * serve: `apikeyd serve`: load every key into memory and serve the API.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/error.h"
#include "core/leakreport.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/ratesync.h"
#include "core/usage.h"
#include "http/dashboard.h"
#include "http/respond.h"
#include "http/routes.h"
#include "http/server.h"

static void usage(FILE *out)
{
    fputs("usage: apikeyd serve --db PATH --listen HOST:PORT [OPTIONS]\n"
          "\n"
          "  --db PATH            SQLite database file, created on first use (env APIKEYD_DB)\n"
          "  --listen HOST:PORT   address to serve on (env APIKEYD_LISTEN, default 127.0.0.1:8080)\n"
          "  --threads N          event loops, default: one per core\n"
          "  --secret-file PATH   HMAC secret, created 0600 on first use (default: <db>.secret)\n"
          "  --max-keys N         keys per account (default 100)\n"
          "  --max-staleness S    PostgreSQL: refuse to verify keys (503) when the database has not been\n"
          "                       heard from for S seconds (default 10; 0: keep verifying, fail open)\n"
          "  --rate-sync-ms MS    PostgreSQL: how often instances exchange rate-limit counts (default 100,\n"
          "                       10..10000); shorter holds limits closer under uneven load, at more writes\n"
          "  --brand NAME         key brand, the \"ml\" of ml_prod_... (default ml)\n"
          "  --verify-token TOKEN require this token in X-Verify-Token on /v1/auth/verify\n"
          "                       (env APIKEYD_VERIFY_TOKEN)\n"
          "  --tls-cert PATH      PEM certificate chain: serve HTTPS (with --tls-key)\n"
          "  --tls-key PATH       PEM private key for --tls-cert\n"
          "  --header-timeout S   seconds for a request's headers and body to arrive (default 10)\n"
          "  --idle-timeout S     seconds an idle keep-alive connection stays open (default 60;\n"
          "                       h2o 2.2 applies the shorter of the two timeouts to both)\n"
          "  --max-connections N  open connections at most; past it new ones are closed (default 10000)\n"
          "  --auth-failures N    invalid keys allowed per client address a minute before 429 (default 100, 0: off)\n"
          "  --trusted-proxies CIDR,...  peers trusted to name the client: from them, the client address (for\n"
          "                       allowed_ips, --auth-failures and the audit log) is the right-most hop of\n"
          "                       X-Forwarded-For that is not itself trusted; from others, the peer\n"
          "  --client-ip-header H read that hop from header H instead of X-Forwarded-For (with it alone,\n"
          "                       --trusted-proxies defaults to " NETADDR_DEFAULT_TRUSTED ")\n"
          "  --reuse-port         share --listen with other processes (SO_REUSEPORT); without it a second\n"
          "                       apikeyd on the same address fails to start\n"
          "  --audit-retention-days N  keep audit events N days, then delete them (default 365, 1..36500)\n"
          "  --usage-retention-days N  keep usage per key N days, then delete it (default 90, 1..3660)\n"
          "  --expired-retention-days N  delete keys expired for longer than N days (default 30, 0..36500);\n"
          "                       until then they are listed (and refused)\n"
          "  --deactivate-idle-after DAYS  deactivate keys not used for DAYS days (or never used and created\n"
          "                       that long ago), never the primary (default: off; 1..36500)\n"
          "  --leak-report-keys FILE  GitHub's secret-scanning public keys (JSON, as GitHub publishes them):\n"
          "                       enables POST /v1/leaks/github; reread on SIGHUP\n"
          "  --dashboard on|off   serve the web dashboard at /dashboard/ (default on)\n"
          "  --dashboard-title TEXT  the dashboard's title, e.g. your API's name (default apikeyd)\n"
          "  --log-format text|json  stderr lines as text (default) or one JSON object per line (time, level,\n"
          "                       msg; requests also request_id, method, path, status, key_prefix,\n"
          "                       duration_ms, client_ip)\n"
          "  --metrics-listen HOST:PORT  serve Prometheus metrics at GET /metrics on this address, apart from\n"
          "                       the API (default: off)\n"
          "  --route PREFIX=http://HOST:PORT[/PATH][;scopes=a,b][;public][;keep-authorization][;cost=N]\n"
          "                       gateway mode: authenticate requests under PREFIX as /v1/auth/verify would and\n"
          "                       proxy them to the upstream (PREFIX replaced by PATH), with X-Account-Id,\n"
          "                       X-Key-Id, X-Key-Type, X-Key-Prefix and X-Request-Id set; repeatable, up to 64\n"
          "                       (env APIKEYD_ROUTE: one route per line)\n"
          "  --upstream-connect-timeout S     seconds to connect to an upstream (default 5, 1..3600)\n"
          "  --upstream-first-byte-timeout S  seconds for an upstream's response head, and the longest silence\n"
          "                       in the middle of its body (default 60, 1..3600)\n"
          "  --upstream-idle-timeout S        seconds an unused upstream connection is kept open (default 2,\n"
          "                       1..3600)\n"
          "  --max-body-bytes N   with routes: the largest request body, spooled to $TMPDIR past 4 MiB (default\n"
          "                       104857600, 1024..17179869184)\n"
          "  --no-access-log      do not write one line per request to stderr\n"
          "  --help               this text\n",
          out);
}

/* The environment variable the option being parsed came from ("" for the command line), for serve_error. */
static char opt_env[96];

/* One line on stderr for a bad option value, naming its environment variable when it came from there. */
static void serve_error(const char *fmt, ...)
{
    va_list ap;

    fputs("apikeyd serve: ", stderr);
    if (opt_env[0] != '\0')
        fprintf(stderr, "%s: ", opt_env);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void block_stop_signals(void)
{
    sigset_t sigs;

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
}

/* APIKEYD_TEST_CLOCK_FILE, in builds with the test hooks (CMake APIKEYD_TEST_HOOKS); NULL when unset or not built in. */
static const char *test_clock_file(void)
{
    const char *path = getenv("APIKEYD_TEST_CLOCK_FILE");

    if (path == NULL || *path == '\0')
        return NULL;
#ifdef APIKEYD_TEST_HOOKS
    return path;
#else
    fprintf(stderr, "apikeyd serve: APIKEYD_TEST_CLOCK_FILE is ignored: this build has no test hooks\n");
    return NULL;
#endif
}

/* serve's options, for getopt_long and for their APIKEYD_* variables (cli_env_args). */
static const struct option OPTS[] = {
    {"db", required_argument, NULL, 'd'},
    {"listen", required_argument, NULL, 'l'},
    {"threads", required_argument, NULL, 't'},
    {"secret-file", required_argument, NULL, 's'},
    {"max-keys", required_argument, NULL, 'm'},
    {"brand", required_argument, NULL, 'b'},
    {"no-access-log", no_argument, NULL, 'q'},
    {"verify-token", required_argument, NULL, 'v'},
    {"tls-cert", required_argument, NULL, 'C'},
    {"tls-key", required_argument, NULL, 'K'},
    {"header-timeout", required_argument, NULL, 'H'},
    {"idle-timeout", required_argument, NULL, 'I'},
    {"max-connections", required_argument, NULL, 'M'},
    {"auth-failures", required_argument, NULL, 'F'},
    {"client-ip-header", required_argument, NULL, 'P'},
    {"max-staleness", required_argument, NULL, 'S'},
    {"trusted-proxies", required_argument, NULL, 'T'},
    {"reuse-port", no_argument, NULL, 'R'},
    {"audit-retention-days", required_argument, NULL, 'A'},
    {"usage-retention-days", required_argument, NULL, 'U'},
    {"expired-retention-days", required_argument, NULL, 'E'},
    {"deactivate-idle-after", required_argument, NULL, 'i'},
    {"leak-report-keys", required_argument, NULL, 'L'},
    {"dashboard", required_argument, NULL, 'D'},
    {"dashboard-title", required_argument, NULL, 'N'},
    {"rate-sync-ms", required_argument, NULL, 'r'},
    {"log-format", required_argument, NULL, 'o'},
    {"metrics-listen", required_argument, NULL, 'x'},
    {"route", required_argument, NULL, 'g'},
    {"upstream-connect-timeout", required_argument, NULL, 'c'},
    {"upstream-first-byte-timeout", required_argument, NULL, 'f'},
    {"upstream-idle-timeout", required_argument, NULL, 'y'},
    {"max-body-bytes", required_argument, NULL, 'B'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int serve(int argc, char **argv, int nenv);

/* The index in OPTS of the option `val`, for its name in an error. */
static size_t li_opt(int val)
{
    size_t i = 0;

    while (OPTS[i].name != NULL && OPTS[i].val != val)
        i++;
    return i;
}

int cli_serve(int argc, char **argv)
{
    int nenv = 0, r;

    /* The environment's flags first: they and the command line's go through one parser (cli_env_args). */
    if (cli_env_args("apikeyd serve", OPTS, argc, argv, &argc, &argv, &nenv) != 0)
        return EXIT_USAGE;
    r = serve(argc, argv, nenv);
    cli_env_args_free(argv, nenv);
    return r;
}

static int serve(int argc, char **argv, int nenv)
{
    struct cli_common c = {.db = getenv("APIKEYD_DB"), .max_staleness_s = 10};
    struct server_config sc = {.listen = getenv("APIKEYD_LISTEN"),
                               .verify_token = getenv("APIKEYD_VERIFY_TOKEN"),
                               .header_timeout_s = 10,
                               .idle_timeout_s = 60,
                               .max_connections = 10000,
                               .auth_failures = 100,
                               .audit_retention_days = 365,
                               .usage_retention_days = USAGE_RETENTION_DEFAULT_DAYS,
                               .lifecycle = {.idle_days = 0, .expired_retention_days = 30},
                               .test_clock_file = NULL,
                               .dashboard = true,
                               .rate_sync_ms = RATESYNC_INTERVAL_MS_DEFAULT,
                               .upstream = {.connect_ms = 5000, .first_byte_ms = 60000, .idle_ms = 2000},
                               .max_body_bytes = 100 * 1024 * 1024};
    static struct gw_routes routes; /* 64 routes of a few KiB each: not on the stack */
    bool routes_from_env = false;
    unsigned secs;
    struct netaddr_cidrs trusted;
    const char *trusted_text = NULL, *dashboard_title = NULL;
    struct cli_env env;
    char err[512] = "";
    int opt, r, li = -1;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", OPTS, &li)) != -1) {
        /* an option from the environment is named so in its error */
        if (opt != '?' && opt != ':' && optind - 1 <= nenv && li >= 0)
            cli_env_name(OPTS[li].name, opt_env, sizeof(opt_env));
        else
            opt_env[0] = '\0';
        li = -1;
        switch (opt) {
        case 'd':
            c.db = optarg;
            break;
        case 'l':
            sc.listen = optarg;
            break;
        case 't':
            if (cli_parse_uint(optarg, 1, 256, &sc.threads) != 0) {
                serve_error("--threads takes a number from 1 to 256\n");
                return EXIT_USAGE;
            }
            break;
        case 's':
            c.secret_file = optarg;
            break;
        case 'm':
            if (cli_parse_uint(optarg, 1, 1000000, &c.max_keys) != 0) {
                serve_error("--max-keys takes a number from 1 to 1000000\n");
                return EXIT_USAGE;
            }
            break;
        case 'b':
            c.brand = optarg;
            break;
        case 'q':
            respond_set_access_log(0);
            break;
        case 'v':
            sc.verify_token = optarg;
            break;
        case 'C':
            sc.tls_cert = optarg;
            break;
        case 'K':
            sc.tls_key = optarg;
            break;
        case 'H':
        case 'I':
            if (cli_parse_uint(optarg, 1, 3600, opt == 'H' ? &sc.header_timeout_s : &sc.idle_timeout_s) != 0) {
                serve_error("--%s takes seconds from 1 to 3600\n", opt == 'H' ? "header-timeout" : "idle-timeout");
                return EXIT_USAGE;
            }
            break;
        case 'M':
            if (cli_parse_uint(optarg, 1, 1000000, &sc.max_connections) != 0) {
                serve_error("--max-connections takes a number from 1 to 1000000\n");
                return EXIT_USAGE;
            }
            break;
        case 'F':
            if (cli_parse_uint(optarg, 0, 1000000, &sc.auth_failures) != 0) {
                serve_error("--auth-failures takes a number from 0 to 1000000\n");
                return EXIT_USAGE;
            }
            break;
        case 'P':
            sc.client_ip_header = optarg;
            break;
        case 'S':
            if (cli_parse_uint(optarg, 0, 3600, &c.max_staleness_s) != 0) {
                serve_error("--max-staleness takes seconds from 0 to 3600\n");
                return EXIT_USAGE;
            }
            break;
        case 'T':
            trusted_text = optarg;
            break;
        case 'R':
            sc.reuse_port = 1;
            break;
        case 'A':
            if (cli_parse_uint(optarg, 1, 36500, &sc.audit_retention_days) != 0) {
                serve_error("--audit-retention-days takes days from 1 to 36500\n");
                return EXIT_USAGE;
            }
            break;
        case 'U':
            if (cli_parse_uint(optarg, 1, USAGE_RETENTION_MAX_DAYS, &sc.usage_retention_days) != 0) {
                serve_error("--usage-retention-days takes days from 1 to %d\n", USAGE_RETENTION_MAX_DAYS);
                return EXIT_USAGE;
            }
            break;
        case 'E':
            if (cli_parse_uint(optarg, 0, 36500, &sc.lifecycle.expired_retention_days) != 0) {
                serve_error("--expired-retention-days takes days from 0 to 36500\n");
                return EXIT_USAGE;
            }
            break;
        case 'i':
            if (cli_parse_uint(optarg, 1, 36500, &sc.lifecycle.idle_days) != 0) {
                serve_error("--deactivate-idle-after takes days from 1 to 36500\n");
                return EXIT_USAGE;
            }
            break;
        case 'L':
            sc.leak_report_keys = optarg;
            break;
        case 'D':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
                serve_error("--dashboard takes on or off\n");
                return EXIT_USAGE;
            }
            sc.dashboard = optarg[1] == 'n';
            break;
        case 'N':
            dashboard_title = optarg;
            break;
        case 'r':
            if (cli_parse_uint(optarg, RATESYNC_INTERVAL_MS_MIN, RATESYNC_INTERVAL_MS_MAX, &sc.rate_sync_ms) != 0) {
                serve_error("--rate-sync-ms takes milliseconds from %d to %d\n", RATESYNC_INTERVAL_MS_MIN,
                            RATESYNC_INTERVAL_MS_MAX);
                return EXIT_USAGE;
            }
            break;
        case 'o': {
            enum log_format f;
            if (log_format_parse(optarg, &f) != 0) {
                serve_error("--log-format takes text or json\n");
                return EXIT_USAGE;
            }
            log_set_format(f);
            break;
        }
        case 'x':
            if (*optarg == '\0' || strchr(optarg, ':') == NULL) {
                serve_error("--metrics-listen takes HOST:PORT\n");
                return EXIT_USAGE;
            }
            sc.metrics_listen = optarg;
            break;
        case 'g':
            /* Flags win over the environment: the command line's routes replace APIKEYD_ROUTE's. */
            if (opt_env[0] == '\0' && routes_from_env) {
                memset(&routes, 0, sizeof(routes));
                routes_from_env = false;
            } else if (opt_env[0] != '\0') {
                routes_from_env = true;
            }
            if (routes_add(&routes, optarg, err, sizeof(err)) != 0) {
                serve_error("--route: %s\n", err);
                return EXIT_USAGE;
            }
            break;
        case 'c':
        case 'f':
        case 'y':
            if (cli_parse_uint(optarg, 1, 3600, &secs) != 0) {
                serve_error("--%s takes seconds from 1 to 3600\n", OPTS[li_opt(opt)].name);
                return EXIT_USAGE;
            }
            *(opt == 'c' ? &sc.upstream.connect_ms : opt == 'f' ? &sc.upstream.first_byte_ms : &sc.upstream.idle_ms) = 1000u * secs;
            break;
        case 'B': {
            char *end;
            unsigned long long v;
            errno = 0;
            v = optarg[0] >= '0' && optarg[0] <= '9' ? strtoull(optarg, &end, 10) : 0;
            if (v < 1024 || v > (16ULL << 30) || errno != 0 || *end != '\0') {
                serve_error("--max-body-bytes takes a number of bytes from 1024 to 17179869184\n");
                return EXIT_USAGE;
            }
            sc.max_body_bytes = (size_t)v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "apikeyd serve: unknown option or missing value: %s\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "apikeyd serve: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (c.db == NULL || *c.db == '\0') {
        fprintf(stderr, "apikeyd serve: --db is required (or set APIKEYD_DB)\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if ((sc.tls_cert == NULL) != (sc.tls_key == NULL)) {
        fprintf(stderr, "apikeyd serve: --tls-cert and --tls-key go together\n");
        return EXIT_USAGE;
    }
    if (sc.client_ip_header != NULL && *sc.client_ip_header == '\0') {
        fprintf(stderr, "apikeyd serve: --client-ip-header takes a header name\n");
        return EXIT_USAGE;
    }
    if (trusted_text != NULL && sc.client_ip_header == NULL)
        sc.client_ip_header = "X-Forwarded-For";
    if (sc.client_ip_header != NULL) {
        if (trusted_text == NULL)
            trusted_text = NETADDR_DEFAULT_TRUSTED;
        if (netaddr_cidrs_parse(trusted_text, strlen(trusted_text), &trusted) != 0) {
            fprintf(stderr,
                    "apikeyd serve: --trusted-proxies takes a comma-separated list of up to %d addresses or CIDR blocks"
                    " (e.g. 10.0.0.0/8,::1), got \"%s\"\n",
                    NETADDR_CIDRS_MAX, trusted_text);
            return EXIT_USAGE;
        }
        sc.trusted_proxies = &trusted;
    }
    /* The page is filled in once, here: a bad title is a usage error, found before anything is opened. */
    if ((sc.dashboard || dashboard_title != NULL) && (r = dashboard_init(dashboard_title)) != 0) {
        if (r == AK_ERR_ARG)
            fprintf(stderr, "apikeyd serve: --dashboard-title must be 1 to %d characters of text\n", DASHBOARD_TITLE_MAX);
        return r == AK_ERR_ARG ? EXIT_USAGE : 1;
    }
    /* Loaded once, here: a bad file is a usage error; the server takes what was loaded (and rereads the file on SIGHUP). */
    if (sc.leak_report_keys != NULL && leak_keyring_load(sc.leak_report_keys, &sc.leak_keyring, err, sizeof(err)) != 0) {
        fprintf(stderr, "apikeyd serve: --leak-report-keys: %s\n", err);
        return EXIT_USAGE;
    }
    if (routes.n != 0) {
        routes_sort(&routes);
        sc.routes = &routes;
    }
    sc.test_clock_file = test_clock_file();
    if (sc.verify_token != NULL && *sc.verify_token == '\0')
        sc.verify_token = NULL;
    if (sc.listen == NULL || *sc.listen == '\0')
        sc.listen = "127.0.0.1:8080";
    /*
     * SIGTERM and SIGINT are taken by server_run's sigwait, never by another
     * thread: block them before the first thread starts (the store's
     * watcher, below), since threads inherit the mask. A thread that left
     * them unblocked could take SIGTERM with its default action and kill
     * the process without its shutdown.
     */
    block_stop_signals();
    /*
     * A fixed mmap threshold: glibc otherwise raises it to the size of the
     * largest block freed (a flush's batch of a second's uses, megabytes
     * under load), after which such batches come from the heap and their
     * pages stay resident when freed. Measured with a million keys under
     * random verification: 63 MB retained without it, 28 MB with it.
     */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if (cli_env_open(&c, &env) != 0) {
        leak_keyring_free(sc.leak_keyring);
        return 1;
    }
    /* A shared store is followed (LISTEN) before it is loaded, so that no change in between is missed. */
    if ((r = keys_watched(env.keys) ? keys_watch(env.keys, 30000) : keys_load(env.keys)) != 0) {
        fprintf(stderr, "apikeyd: cannot load keys: %s\n", ak_strerror(r));
        leak_keyring_free(sc.leak_keyring);
        cli_env_close(&env);
        return 1;
    }
    sc.keys = env.keys;
    r = server_run(&sc, err, sizeof(err));
    if (err[0] != '\0')
        fprintf(stderr, "apikeyd: %s\n", err);
    cli_env_close(&env);
    return r == 0 ? 0 : 1;
}
