/*
 * fuzz_leakkeys: GitHub's key document through leak_keyring_parse, and
 * signature header values through leak_keyring_verify.
 *
 * Every input is used twice. As a key document: refused with a one-line
 * message, or a ring of 1..LEAK_KEYRING_MAX keys, which then checks a
 * fixed signature (SIG by the key in fuzz/corpus/leakkeys/valid, over BODY)
 * under the id "fuzz-key" (it may verify, when the document holds that key
 * under that id) and refuses it over another body, cut, empty, or under an
 * id no document can hold. As a Github-Public-Key-Signature value:
 * checked over BODY against a ring of that one key, where it verifies only
 * when it is SIG, give or take white space around it (ECDSA's (r, n - s)
 * twin would verify too, but no fuzzer finds one without the private key).
 */
#include "core/error.h"
#include "core/leakreport.h"
#include "fuzz.h"

/* fuzz/corpus/leakkeys/valid: the key that made SIG, under ID. */
static const char DOC[] = "{\"public_keys\": [{\"key_identifier\": \"fuzz-key\", \"is_current\": true, \"key\": \""
                          "-----BEGIN PUBLIC KEY-----\\n"
                          "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfk1FcwxLs8it7oz9NjYISv5IEfot\\n"
                          "Cg9fTAb/gRE/Uct8Wp/W/Ni1/qSG+OPXmnDDLASnn7UHecaA7mjcPxU3DA==\\n"
                          "-----END PUBLIC KEY-----\\n"
                          "\"}]}";
static const char BODY[] =
    "[{\"token\":\"NMIfyYncKcRALEXAMPLE\",\"type\":\"mycompany_api_token\",\"url\":\"https://github.com/octocat/Hello-World/blob/"
    "12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt\",\"source\":\"content\"}]";
static const char SIG[] = "MEQCIEA7l1DOsFOIl28dHwF2hA5vNsNbbVqBOZx8xxA72nbQAiBPfBfPhacdM/QDqOOSYSF8rd52BKa2rckYYipWSyF/0Q==";
static const char ID[] = "fuzz-key";

/* The ring of DOC, built once: it never changes, so no input sees another's state. */
static struct leak_keyring *fixed_ring(void)
{
    static struct leak_keyring *kr;
    char err[LEAK_MSG_MAX];

    if (kr == NULL && leak_keyring_parse(DOC, strlen(DOC), &kr, err, sizeof(err)) != 0)
        fuzz_fail(err, __FILE__, __LINE__);
    return kr;
}

/* Whether `s`, without the white space a header value may carry around it, is SIG. */
static int is_sig(const char *s, size_t len)
{
    while (len > 0 && strchr(" \t\r\n", s[0]) != NULL && s[0] != '\0')
        s++, len--;
    while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL && s[len - 1] != '\0')
        len--;
    return len == strlen(SIG) && memcmp(s, SIG, len) == 0;
}

static void check_doc(const char *text, size_t size)
{
    struct leak_keyring *kr = NULL;
    char err[LEAK_MSG_MAX], longid[LEAK_KEY_ID_MAX + 1];
    int r;

    err[0] = '\0';
    r = leak_keyring_parse(text, size, &kr, err, sizeof(err));
    FUZZ_CHECK(r == 0 || r == AK_ERR_INVALID);
    if (r != 0) {
        fuzz_check_msg(err, sizeof(err));
        FUZZ_CHECK(kr == NULL);
        return;
    }
    FUZZ_CHECK(leak_keyring_size(kr) >= 1 && leak_keyring_size(kr) <= LEAK_KEYRING_MAX);
    r = leak_keyring_verify(kr, ID, strlen(ID), SIG, strlen(SIG), BODY, strlen(BODY));
    FUZZ_CHECK(r == 0 || r == AK_ERR_SIGNATURE);
    FUZZ_CHECK(leak_keyring_verify(kr, ID, strlen(ID), SIG, strlen(SIG), BODY, strlen(BODY) - 1) == AK_ERR_SIGNATURE);
    FUZZ_CHECK(leak_keyring_verify(kr, ID, strlen(ID), SIG, strlen(SIG) - 4, BODY, strlen(BODY)) == AK_ERR_SIGNATURE);
    FUZZ_CHECK(leak_keyring_verify(kr, ID, strlen(ID), "", 0, BODY, strlen(BODY)) == AK_ERR_SIGNATURE);
    FUZZ_CHECK(leak_keyring_verify(kr, ID, strlen(ID), SIG, strlen(SIG), NULL, 0) == AK_ERR_SIGNATURE);
    /* No document holds an id that long, and its key would not have made SIG anyway. */
    memset(longid, 'k', sizeof(longid));
    FUZZ_CHECK(leak_keyring_verify(kr, longid, sizeof(longid), SIG, strlen(SIG), BODY, strlen(BODY)) == AK_ERR_SIGNATURE);
    leak_keyring_free(kr);
}

static void check_sig(const char *text, size_t size)
{
    int r = leak_keyring_verify(fixed_ring(), ID, strlen(ID), text, size, BODY, strlen(BODY));

    FUZZ_CHECK(r == 0 || r == AK_ERR_SIGNATURE);
    FUZZ_CHECK(r == 0 || !is_sig(text, size));
    FUZZ_CHECK(r != 0 || is_sig(text, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_dup(data, size);

    check_doc(text, size);
    check_sig(text, size);
    free(text);
    return 0;
}
