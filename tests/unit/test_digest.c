/*
 * Unit tests for core/digest: the secret file (created 0600 with 64 hex
 * characters and a newline, loaded identically twice, refused when group or
 * others may read it or when its content is not a 32-byte hex secret) and
 * HMAC-SHA-256 against OpenSSL's HMAC() and a hardcoded vector.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/digest.h"
#include "core/error.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_digest.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/secret", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int r = nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);

    free(f);
    return r;
}

/* Writes `len` bytes of `text` to a fresh file `path` with mode `mode` (set explicitly, whatever the umask). */
static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    write_file(path, text, strlen(text), mode);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static const char HEX_0_TO_31[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void test_creates_secret_file(void **state)
{
    struct fixture *f = *state;
    struct digest_secret s;
    char err[256] = "", text[80];
    struct stat st;
    ssize_t n;
    int fd;

    memset(&s, 0, sizeof(s));
    assert_int_equal(digest_secret_load(f->path, &s, err, sizeof(err)), 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, DIGEST_SECRET_LEN * 2 + 1);
    fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, text, sizeof(text));
    close(fd);
    assert_int_equal(n, DIGEST_SECRET_LEN * 2 + 1);
    assert_int_equal(text[DIGEST_SECRET_LEN * 2], '\n');
    /* The file's hex is exactly the secret handed back. */
    for (size_t i = 0; i < DIGEST_SECRET_LEN; i++) {
        int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
        assert_true(hi >= 0 && lo >= 0);
        assert_int_equal(s.bytes[i], hi << 4 | lo);
    }
}

static void test_loads_same_secret_twice(void **state)
{
    struct fixture *f = *state;
    struct digest_secret a, b;
    uint8_t da[DIGEST_LEN], db[DIGEST_LEN];
    char err[256] = "";

    memset(&a, 0, sizeof(a));
    memset(&b, 0xff, sizeof(b));
    assert_int_equal(digest_secret_load(f->path, &a, err, sizeof(err)), 0);
    assert_int_equal(digest_secret_load(f->path, &b, err, sizeof(err)), 0);
    assert_memory_equal(a.bytes, b.bytes, DIGEST_SECRET_LEN);
    assert_int_equal(digest_compute(&a, "ml_prod_x", 9, da), 0);
    assert_int_equal(digest_compute(&b, "ml_prod_x", 9, db), 0);
    assert_memory_equal(da, db, DIGEST_LEN);
}

static void test_fresh_secrets_differ(void **state)
{
    struct fixture *f = *state;
    struct digest_secret a, b;
    char other[160], err[256] = "";
    static const uint8_t zero[DIGEST_SECRET_LEN];

    snprintf(other, sizeof(other), "%s/other", f->dir);
    assert_int_equal(digest_secret_load(f->path, &a, err, sizeof(err)), 0);
    assert_int_equal(digest_secret_load(other, &b, err, sizeof(err)), 0);
    assert_memory_not_equal(a.bytes, b.bytes, DIGEST_SECRET_LEN);
    assert_memory_not_equal(a.bytes, zero, DIGEST_SECRET_LEN);
}

static void test_reads_given_secret(void **state)
{
    struct fixture *f = *state;
    struct digest_secret s;
    char text[80], err[256] = "";

    snprintf(text, sizeof(text), "%s\n", HEX_0_TO_31);
    write_text(f->path, text, 0600);
    assert_int_equal(digest_secret_load(f->path, &s, err, sizeof(err)), 0);
    for (int i = 0; i < DIGEST_SECRET_LEN; i++)
        assert_int_equal(s.bytes[i], i);
    /* A read-only file for the owner is fine too. */
    write_text(f->path, text, 0400);
    memset(&s, 0, sizeof(s));
    assert_int_equal(digest_secret_load(f->path, &s, err, sizeof(err)), 0);
    assert_int_equal(s.bytes[31], 31);
}

static void test_refuses_open_modes(void **state)
{
    static const mode_t modes[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601, 0666};
    struct fixture *f = *state;
    struct digest_secret s;
    char text[80], err[256];

    snprintf(text, sizeof(text), "%s\n", HEX_0_TO_31);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        write_text(f->path, text, modes[i]);
        memset(&s, 0xaa, sizeof(s));
        err[0] = '\0';
        assert_int_equal(digest_secret_load(f->path, &s, err, sizeof(err)), AK_ERR_SECRET);
        assert_non_null(strstr(err, "chmod"));
        assert_non_null(strstr(err, f->path));
        assert_int_equal(s.bytes[0], 0xaa); /* untouched on failure */
        assert_int_equal(s.bytes[31], 0xaa);
    }
}

static void expect_garbage_refused(const char *path, const char *text, size_t len)
{
    struct digest_secret s;
    char err[256] = "";

    write_file(path, text, len, 0600);
    memset(&s, 0xaa, sizeof(s));
    if (digest_secret_load(path, &s, err, sizeof(err)) != AK_ERR_SECRET)
        fail_msg("secret file content \"%.*s\" was not refused with AK_ERR_SECRET", (int)len, text);
    assert_true(strlen(err) > 0);
    assert_int_equal(s.bytes[0], 0xaa);
}

static void test_refuses_garbage(void **state)
{
    struct fixture *f = *state;
    char text[160];

    expect_garbage_refused(f->path, "", 0);
    expect_garbage_refused(f->path, "\n", 1);
    expect_garbage_refused(f->path, "hello\n", 6);
    expect_garbage_refused(f->path, "000102\n", 7);
    /* 63 hex characters. */
    snprintf(text, sizeof(text), "%.63s\n", HEX_0_TO_31);
    expect_garbage_refused(f->path, text, strlen(text));
    /* A non-hex character at the start, in the middle, at the end. */
    snprintf(text, sizeof(text), "g%s\n", HEX_0_TO_31 + 1);
    expect_garbage_refused(f->path, text, strlen(text));
    snprintf(text, sizeof(text), "%s\n", HEX_0_TO_31);
    text[31] = ' ';
    expect_garbage_refused(f->path, text, strlen(text));
    snprintf(text, sizeof(text), "%s\n", HEX_0_TO_31);
    text[63] = 'x';
    expect_garbage_refused(f->path, text, strlen(text));
    /* NUL bytes. */
    memset(text, 0, 65);
    expect_garbage_refused(f->path, text, 65);
    /* Leading whitespace shifts the hex. */
    snprintf(text, sizeof(text), " %s\n", HEX_0_TO_31);
    expect_garbage_refused(f->path, text, strlen(text));
    /* A 64-byte (128 hex characters) secret is not a 32-byte one. */
    snprintf(text, sizeof(text), "%s%s\n", HEX_0_TO_31, HEX_0_TO_31);
    expect_garbage_refused(f->path, text, strlen(text));
    /* The 64 hex characters followed by more lines. */
    snprintf(text, sizeof(text), "%s\nextra\n", HEX_0_TO_31);
    expect_garbage_refused(f->path, text, strlen(text));
}

/* The file must be 64 hex characters and a newline: one more character is not a 32-byte secret. */
static void test_refuses_one_trailing_character(void **state)
{
    struct fixture *f = *state;
    char text[160];

    snprintf(text, sizeof(text), "%s0\n", HEX_0_TO_31); /* 65 hex digits */
    expect_garbage_refused(f->path, text, strlen(text));
    snprintf(text, sizeof(text), "%sx", HEX_0_TO_31); /* junk instead of the newline */
    expect_garbage_refused(f->path, text, strlen(text));
    snprintf(text, sizeof(text), "%sz\n", HEX_0_TO_31);
    expect_garbage_refused(f->path, text, strlen(text));
}

static void test_missing_directory_is_io_error(void **state)
{
    struct fixture *f = *state;
    struct digest_secret s;
    char path[200], err[256] = "";

    snprintf(path, sizeof(path), "%s/no/such/dir/secret", f->dir);
    assert_int_equal(digest_secret_load(path, &s, err, sizeof(err)), AK_ERR_IO);
    assert_non_null(strstr(err, path));
}

static void test_directory_is_refused(void **state)
{
    struct fixture *f = *state;
    struct digest_secret s;
    char err[256] = "";

    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_not_equal(digest_secret_load(f->path, &s, err, sizeof(err)), 0);
    assert_true(strlen(err) > 0);
}

static void test_compute_matches_openssl_hmac(void **state)
{
    static const char *const keys[] = {"", "a", "ml_prod_abc", "ml_sand_0123456789ABCDEFGHIJKLMNOPQRSTUV3vj976",
                                       "acme_prod_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ1zcZV7"};
    struct fixture *f = *state;
    struct digest_secret s;
    char err[256] = "";

    assert_int_equal(digest_secret_load(f->path, &s, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        uint8_t got[DIGEST_LEN], want[EVP_MAX_MD_SIZE];
        unsigned int wlen = 0;

        memset(got, 0, sizeof(got));
        assert_non_null(
            HMAC(EVP_sha256(), s.bytes, DIGEST_SECRET_LEN, (const unsigned char *)keys[i], strlen(keys[i]), want, &wlen));
        assert_int_equal(wlen, DIGEST_LEN);
        assert_int_equal(digest_compute(&s, keys[i], strlen(keys[i]), got), 0);
        assert_memory_equal(got, want, DIGEST_LEN);
    }
}

/*
 * Computed outside the code under test:
 *   printf %s ml_prod_abc | openssl dgst -sha256 -mac HMAC \
 *     -macopt hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
 */
static const uint8_t VECTOR[DIGEST_LEN] = {0x5c, 0xa0, 0xb0, 0xa4, 0xdb, 0x67, 0x84, 0x60, 0xa3, 0x9b, 0xb2,
                                           0x23, 0xb1, 0x34, 0xc9, 0xc2, 0xd4, 0xfb, 0xea, 0xae, 0xcd, 0x5a,
                                           0xc4, 0xb4, 0x3a, 0x21, 0x04, 0xd5, 0x10, 0x92, 0xb2, 0xc8};

static void test_compute_known_vector(void **state)
{
    struct digest_secret s;
    uint8_t out[DIGEST_LEN];

    (void)state;
    for (int i = 0; i < DIGEST_SECRET_LEN; i++)
        s.bytes[i] = (unsigned char)i;
    assert_int_equal(digest_compute(&s, "ml_prod_abc", 11, out), 0);
    assert_memory_equal(out, VECTOR, DIGEST_LEN);
    /* Only `len` bytes count. */
    assert_int_equal(digest_compute(&s, "ml_prod_abcdef", 11, out), 0);
    assert_memory_equal(out, VECTOR, DIGEST_LEN);
}

static void test_known_vector_through_file(void **state)
{
    struct fixture *f = *state;
    struct digest_secret s;
    char text[80], err[256] = "";
    uint8_t out[DIGEST_LEN];

    snprintf(text, sizeof(text), "%s\n", HEX_0_TO_31);
    write_text(f->path, text, 0600);
    assert_int_equal(digest_secret_load(f->path, &s, err, sizeof(err)), 0);
    assert_int_equal(digest_compute(&s, "ml_prod_abc", 11, out), 0);
    assert_memory_equal(out, VECTOR, DIGEST_LEN);
}

static void test_different_inputs_differ(void **state)
{
    struct digest_secret a, b;
    uint8_t d1[DIGEST_LEN], d2[DIGEST_LEN], d3[DIGEST_LEN], d4[DIGEST_LEN];

    (void)state;
    for (int i = 0; i < DIGEST_SECRET_LEN; i++) {
        a.bytes[i] = (unsigned char)i;
        b.bytes[i] = (unsigned char)i;
    }
    b.bytes[31] ^= 1; /* one bit of secret */
    assert_int_equal(digest_compute(&a, "ml_prod_abc", 11, d1), 0);
    assert_int_equal(digest_compute(&b, "ml_prod_abc", 11, d2), 0);
    assert_int_equal(digest_compute(&a, "ml_prod_abd", 11, d3), 0);
    assert_int_equal(digest_compute(&a, "ml_prod_ab", 10, d4), 0);
    assert_memory_not_equal(d1, d2, DIGEST_LEN);
    assert_memory_not_equal(d1, d3, DIGEST_LEN);
    assert_memory_not_equal(d1, d4, DIGEST_LEN);
    assert_memory_not_equal(d3, d4, DIGEST_LEN);
}

static void test_wipe(void **state)
{
    struct digest_secret s;
    static const uint8_t zero[DIGEST_SECRET_LEN];

    (void)state;
    memset(&s, 0x5a, sizeof(s));
    digest_secret_wipe(&s);
    assert_memory_equal(s.bytes, zero, DIGEST_SECRET_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_creates_secret_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loads_same_secret_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_secrets_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_given_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_open_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_one_trailing_character, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory_is_io_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compute_matches_openssl_hmac, setup, teardown),
        cmocka_unit_test(test_compute_known_vector),
        cmocka_unit_test_setup_teardown(test_known_vector_through_file, setup, teardown),
        cmocka_unit_test(test_different_inputs_differ),
        cmocka_unit_test(test_wipe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
