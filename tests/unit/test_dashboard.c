/*
 * Unit tests for http/dashboard: the title is HTML-escaped into the page
 * (never markup), refused when it is not a name's kind of text, the
 * assets are named by their content's hash and referenced by those names,
 * and only /dashboard and below is the dashboard's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/error.h"
#include "http/dashboard.h"
#include "http/dashboard_assets.h"

static void test_title_is_escaped(void **state)
{
    const char *page;
    size_t len;

    (void)state;
    assert_int_equal(dashboard_init("Acme <script>alert(1)</script> & \"Co\" 'x'"), 0);
    page = dashboard_index(&len);
    assert_non_null(page);
    assert_int_equal(strlen(page), len);
    assert_null(strstr(page, "<script>alert"));
    assert_non_null(strstr(page, "<title>Acme &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot; &#39;x&#39;</title>"));
    assert_null(strstr(page, "{{"));
    assert_int_equal(dashboard_init(NULL), 0);
    page = dashboard_index(&len);
    assert_non_null(strstr(page, "<title>apikeyd</title>"));
}

static void test_bad_titles_are_refused(void **state)
{
    char longest[DASHBOARD_TITLE_MAX + 2];

    (void)state;
    assert_int_equal(dashboard_init(""), AK_ERR_ARG);
    assert_int_equal(dashboard_init("   "), AK_ERR_ARG);
    assert_int_equal(dashboard_init("a\nb"), AK_ERR_ARG);
    assert_int_equal(dashboard_init("\xff\xfe"), AK_ERR_ARG);
    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    assert_int_equal(dashboard_init(longest), AK_ERR_ARG);
    longest[DASHBOARD_TITLE_MAX] = '\0';
    assert_int_equal(dashboard_init(longest), 0);
}

static void test_assets_are_named_by_their_hash(void **state)
{
    const char *page;
    size_t len;

    (void)state;
    assert_int_equal(dashboard_init(NULL), 0);
    page = dashboard_index(&len);
    assert_true(DASHBOARD_ASSET_COUNT >= 2);
    for (unsigned i = 0; i < DASHBOARD_ASSET_COUNT; i++) {
        const struct dashboard_asset *a = &DASHBOARD_ASSETS[i];
        const char *dot = strchr(a->served, '.');
        assert_non_null(dot);
        assert_int_equal(strcspn(dot + 1, "."), 12); /* 12 hex digits of SHA-256 */
        assert_true(a->len > 0);
        assert_non_null(strstr(page, a->served)); /* the page asks for the hashed name */
    }
}

static void test_paths(void **state)
{
    (void)state;
    assert_true(dashboard_path("/dashboard", 10));
    assert_true(dashboard_path("/dashboard/", 11));
    assert_true(dashboard_path("/dashboard/assets/x", 19));
    assert_false(dashboard_path("/dashboards", 11));
    assert_false(dashboard_path("/dashboar", 9));
    assert_false(dashboard_path("/v1/dashboard/", 14));
    assert_false(dashboard_path(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_title_is_escaped),
        cmocka_unit_test(test_bad_titles_are_refused),
        cmocka_unit_test(test_assets_are_named_by_their_hash),
        cmocka_unit_test(test_paths),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
