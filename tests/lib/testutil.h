/* Helpers shared by the tests. */
#ifndef OFE_TESTUTIL_H
#define OFE_TESTUTIL_H
#include <stddef.h>

/* Source tree root (OFE_SOURCE_DIR from ctest, else the compile-time path). */
const char *tu_source_dir(void);
/* Build tree root. */
const char *tu_build_dir(void);
/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL on error. */
char *tu_read_file(const char *path, size_t *len);
#endif
