/* libFuzzer harness: recovery of ofe-eventbus storage. The input becomes a
 * stream directory (a segment file and a group journal, split by the first
 * two bytes) that bus_store_load recovers: framing, checksums, record
 * payloads, truncation of torn tails, journal snapshots. Every recovered
 * entry is then read back. Nothing may crash or leak. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ofe/log.h"
#include "store.h"

static char root[256];

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n)
        fwrite(p, 1, n, f);
    fclose(f);
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static struct bus_stream *loaded[8];
static size_t nloaded;

static int add(void *arg, struct bus_stream *s)
{
    (void)arg;
    if (nloaded == 8)
        return -1;
    loaded[nloaded++] = s;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root[0]) {
        ofe_log_set_level(OFE_LOG_ERROR + 0);
        const char *shm = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(root, sizeof(root), "%s/fuzz-segment-%d", shm, (int)getpid());
    }
    size_t split = size >= 2 ? ((size_t)data[0] << 8 | data[1]) : 0;
    const uint8_t *seg = size >= 2 ? data + 2 : data;
    size_t seglen = size >= 2 ? size - 2 : size;
    if (split > seglen)
        split = seglen;
    rm_tree(root);
    char dir[512], path[600];
    mkdir(root, 0755);
    snprintf(dir, sizeof(dir), "%s/streams", root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof(dir), "%s/streams/0000000000000001", root);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/seg-0000000000000001.log", dir);
    write_file(path, seg, seglen - split);
    if (split) {
        snprintf(path, sizeof(path), "%s/groups-0000000000000001.log", dir);
        write_file(path, seg + (seglen - split), split);
    }
    struct bus_store_opts o = {.dir = root, .fsync = BUS_FSYNC_NO, .notify_fd = -1};
    struct bus_store *st = NULL;
    char err[256];
    if (bus_store_open(&o, &st, err, sizeof(err)) != 0)
        abort();
    nloaded = 0;
    bus_store_load(st, add, NULL, err, sizeof(err));
    struct bus_reader rd;
    bus_reader_init(&rd);
    for (size_t k = 0; k < nloaded; k++) {
        struct bus_stream *s = loaded[k];
        for (size_t i = 0; i < s->n; i++) {
            const char *f;
            size_t fl;
            uint32_t nf;
            struct bus_slot *sl = bus_slot_at(s, i);
            if (!(sl->seg & BUS_SLOT_DELETED) && bus_log_read(s->log, sl, &rd, &f, &fl, &nf) != 0)
                abort(); /* recovery accepted what cannot be read */
        }
        /* A write after recovery goes to a consistent place. */
        const char *fv[2] = {"f", "v"};
        size_t fl[2] = {1, 1};
        uint32_t segn, off;
        struct bus_id id = s->last_id;
        if (bus_id_incr(&id) && bus_log_entry(s->log, &id, true, 1, fv, fl, &segn, &off) == 0)
            bus_stream_apply_entry(s, &id, true, segn, off);
        bus_log_free(s->log);
        bus_stream_free(s);
    }
    bus_reader_fini(&rd);
    bus_store_close(st);
    rm_tree(root);
    return 0;
}
