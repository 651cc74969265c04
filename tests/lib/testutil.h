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
/* Like tu_read_file, for a file another process is appending lines to:
 * only the complete lines, up to the last newline. A reader can see the
 * first part of a line the writer wrote with one write() (the kernel copies
 * it page by page and the file grows as it does). */
char *tu_read_lines(const char *path, size_t *len);
#endif
