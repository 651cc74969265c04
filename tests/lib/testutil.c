#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

const char *tu_source_dir(void)
{
    const char *s = getenv("OFE_SOURCE_DIR");
    return s ? s : ".";
}

const char *tu_build_dir(void)
{
    const char *s = getenv("OFE_BUILD_DIR");
    return s ? s : ".";
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)(n < 0 ? 0 : n) + 1);
    size_t got = p ? fread(p, 1, (size_t)(n < 0 ? 0 : n), f) : 0;
    fclose(f);
    if (!p)
        return NULL;
    p[got] = '\0';
    if (len)
        *len = got;
    return p;
}

char *tu_read_lines(const char *path, size_t *len)
{
    size_t n;
    char *p = tu_read_file(path, &n);
    if (!p)
        return NULL;
    while (n > 0 && p[n - 1] != '\n')
        n--;
    p[n] = '\0';
    if (len)
        *len = n;
    return p;
}
