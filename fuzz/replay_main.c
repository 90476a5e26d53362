/*
 * replay_main: main() for a fuzz target without libFuzzer, so that any
 * compiler (gcc in the release build, the ASan build) can run the committed
 * corpus through it as a regression test (fuzz/replay.sh).
 *
 * Usage: replay_<name> PATH...: every regular file under each PATH (a file
 * or a directory, recursively, in name order) is one input. Arguments that
 * start with '-' are ignored, as libFuzzer flags. Prints the number of
 * inputs run; exits 0, or 1 when a path cannot be read. A broken invariant
 * aborts inside the target.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Inputs larger than this are a mistake in the corpus, not a test. */
#define REPLAY_INPUT_MAX (16 * 1024 * 1024)

static int run_path(const char *path, size_t *count);

static int run_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf = NULL;
    size_t size;
    int r = 1;

    if (f == NULL || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (st.st_size > REPLAY_INPUT_MAX) {
        fprintf(stderr, "replay: %s: larger than %d bytes\n", path, REPLAY_INPUT_MAX);
        goto out;
    }
    size = (size_t)st.st_size;
    /* Exactly `size` bytes, so that ASan sees a read past the input even when the target forgets to copy it. */
    if ((buf = malloc(size > 0 ? size : 1)) == NULL || (size > 0 && fread(buf, 1, size, f) != size)) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        goto out;
    }
    LLVMFuzzerTestOneInput(buf, size);
    (*count)++;
    r = 0;
out:
    free(buf);
    if (f != NULL)
        fclose(f);
    return r;
}

static int skip_dots(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static int run_dir(const char *path, size_t *count)
{
    struct dirent **list;
    int n, r = 0;

    if ((n = scandir(path, &list, skip_dots, alphasort)) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(list[i]->d_name) + 2;
        char *child = malloc(len);
        if (child == NULL) {
            r = 1;
        } else {
            snprintf(child, len, "%s/%s", path, list[i]->d_name);
            r |= run_path(child, count);
        }
        free(child);
        free(list[i]);
    }
    free(list);
    return r;
}

static int run_path(const char *path, size_t *count)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (S_ISDIR(st.st_mode))
        return run_dir(path, count);
    if (S_ISREG(st.st_mode))
        return run_file(path, count);
    return 0;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int r = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-')
            r |= run_path(argv[i], &count);
    printf("%zu inputs\n", count);
    return r;
}
