/*
 * fuzz_name: raw bytes through validate_name, the key and account name
 * rule. Through HTTP, jansson hands it valid UTF-8 (fuzz_validate covers that
 * path); `apikeyd account create --name` hands it argv bytes as they come.
 *
 * So: it accepts only strictly valid UTF-8 (else a name reaches the store
 * that jansson then refuses to print or encode), and on valid UTF-8 its
 * answer is exactly the contract's rule (fuzz_name_ok in fuzz.h). An
 * accepted name fits struct key_rec's name; a refusal has a message.
 */
#include "core/error.h"
#include "core/validate.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name = fuzz_dup(data, size);
    char msg[VALIDATE_MSG_MAX];
    int r;

    memset(msg, 0x55, sizeof(msg));
    r = validate_name(name, size, msg, sizeof(msg));
    FUZZ_CHECK(r == 0 || r == AK_ERR_INVALID);
    if (r != 0) {
        fuzz_check_msg(msg, sizeof(msg));
    } else {
        FUZZ_CHECK(fuzz_utf8_valid(data, size));
        FUZZ_CHECK(size <= KEY_NAME_MAX_BYTES);
    }
    if (fuzz_utf8_valid(data, size))
        FUZZ_CHECK((r == 0) == fuzz_name_ok(data, size, KEY_NAME_MAX_CHARS));
    free(name);
    return 0;
}
