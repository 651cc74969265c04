/* ofe-eventbus storage: recovery of the fixtures in tests/fixtures/eventbus
 * (torn tails, corrupt records in active and sealed segments, torn
 * headers, journal fallbacks, a newer format), a full write/reopen round
 * trip, journal compaction, segment rolling with retention by count,
 * bytes and age, and the data-directory lock. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ofe/err.h"
#include "store.h"
#include "servers.h"
#include "testutil.h"

#define MAXS 8

struct loaded {
    struct bus_stream *v[MAXS];
    size_t n;
};

static int add_cb(void *arg, struct bus_stream *s)
{
    struct loaded *l = arg;
    if (l->n == MAXS)
        return OFE_ENOMEM;
    l->v[l->n++] = s;
    return 0;
}

static void copy_tree(const char *from, const char *to)
{
    char cmd[8400];
    snprintf(cmd, sizeof(cmd), "cp -r '%s/.' '%s/'", from, to);
    assert_int_equal(system(cmd), 0);
}

static bool exists(const char *dir, const char *rel)
{
    char p[8400];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    return stat(p, &st) == 0;
}

static off_t file_size(const char *dir, const char *rel)
{
    char p[8400];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    return stat(p, &st) == 0 ? st.st_size : -1;
}

/* A copy of a fixture in a new directory. */
static char *copy_fixture(const char *name)
{
    char src[4096];
    snprintf(src, sizeof(src), "%s/tests/fixtures/eventbus/%s", tu_source_dir(), name);
    char *dir = tu_mkdtemp("bus-fixture");
    copy_tree(src, dir);
    return dir;
}

/* Recovers the store in dir. */
static struct bus_store *open_copy(char *dir, char **dirp, struct loaded *l, int *rc)
{
    struct bus_store_opts o = {.dir = dir, .fsync = BUS_FSYNC_NO, .notify_fd = -1};
    struct bus_store *st = NULL;
    char err[512];
    assert_int_equal(bus_store_open(&o, &st, err, sizeof(err)), 0);
    memset(l, 0, sizeof(*l));
    *rc = bus_store_load(st, add_cb, l, err, sizeof(err));
    *dirp = dir;
    return st;
}

/* Opens a copy of a fixture and recovers it. */
static struct bus_store *open_fixture(const char *name, char **dirp, struct loaded *l, int *rc)
{
    return open_copy(copy_fixture(name), dirp, l, rc);
}

static void close_all(struct bus_store *st, struct loaded *l, char *dir)
{
    for (size_t i = 0; i < l->n; i++) {
        bus_log_free(l->v[i]->log);
        bus_stream_free(l->v[i]);
    }
    bus_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

/* "1-1 3-1 ..." of the live entries, and checks each reads back with the
 * fields the generator wrote. */
static char *live_ids(struct bus_stream *s)
{
    struct ofe_buf b = OFE_BUF_INIT;
    struct bus_reader rd;
    bus_reader_init(&rd);
    for (size_t i = 0; i < s->n; i++) {
        struct bus_slot *sl = bus_slot_at(s, i);
        if (sl->seg & BUS_SLOT_DELETED)
            continue;
        const char *f;
        size_t fl;
        uint32_t nf;
        assert_int_equal(bus_log_read(s->log, sl, &rd, &f, &fl, &nf), 0);
        char want[128];
        snprintf(want, sizeof(want), "*4\r\n$1\r\nn\r\n$1\r\n%llu\r\n$7\r\npayload\r\n$20\r\n",
                 (unsigned long long)sl->ms);
        assert_int_equal(nf, 2);
        assert_memory_equal(f, want, strlen(want));
        ofe_buf_printf(&b, "%s%llu-%llu", b.len ? " " : "", (unsigned long long)sl->ms,
                       (unsigned long long)sl->seq);
    }
    bus_reader_fini(&rd);
    return ofe_buf_detach(&b, NULL);
}

static void expect_stream(const char *fixture, const char *ids, size_t pending,
                          const char *corrupt_rel, const char *gone_rel)
{
    char *dir;
    struct loaded l;
    int rc;
    struct bus_store *st = open_fixture(fixture, &dir, &l, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(l.n, 1);
    struct bus_stream *s = l.v[0];
    assert_int_equal(s->nlen, 6);
    assert_memory_equal(s->name, "orders", 6);
    char *got = live_ids(s);
    if (strcmp(got, ids))
        fail_msg("%s: entries '%s', want '%s'", fixture, got, ids);
    free(got);
    struct bus_group *g = bus_group_get(s, "g", 1);
    if (pending == (size_t)-1)
        assert_null(g);
    else {
        assert_non_null(g);
        assert_int_equal(g->pel_count, pending);
    }
    if (corrupt_rel)
        assert_true(exists(dir, corrupt_rel));
    if (gone_rel)
        assert_false(exists(dir, gone_rel));
    /* Recovery leaves a log that takes new writes, and a second recovery
     * sees them. */
    const char *fv[2] = {"n", "99"};
    size_t fl[2] = {1, 2};
    uint32_t seg, off;
    struct bus_id id = {99, 1};
    assert_int_equal(bus_log_entry(s->log, &id, false, 1, fv, fl, &seg, &off), 0);
    assert_int_equal(bus_stream_apply_entry(s, &id, false, seg, off), 0);
    uint64_t added = s->entries_added;
    bus_log_free(s->log);
    bus_stream_free(s);
    bus_store_close(st);
    struct bus_store_opts o = {.dir = dir, .fsync = BUS_FSYNC_NO, .notify_fd = -1};
    char err[512];
    assert_int_equal(bus_store_open(&o, &st, err, sizeof(err)), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(bus_store_load(st, add_cb, &l, err, sizeof(err)), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0]->entries_added, added);
    assert_true(bus_stream_find(l.v[0], &id) != SIZE_MAX);
    close_all(st, &l, dir);
}

static const char *S = "streams/0000000000000001/";

static void test_clean(void **state)
{
    (void)state;
    expect_stream("clean", "1-1 2-1 3-1 4-1 5-1", 2, NULL, NULL);
}

static void test_torn_tail(void **state)
{
    (void)state;
    char *dir;
    struct loaded l;
    int rc;
    struct bus_store *st = open_fixture("torn_tail", &dir, &l, &rc);
    assert_int_equal(rc, 0);
    /* Truncated to the last whole record; nothing set aside for a crash. */
    char rel[256];
    snprintf(rel, sizeof(rel), "%sseg-0000000000000001.log", S);
    assert_int_equal(file_size(dir, rel), 438);
    snprintf(rel, sizeof(rel), "%sseg-0000000000000001.log.corrupt", S);
    assert_false(exists(dir, rel));
    close_all(st, &l, dir);
    expect_stream("torn_tail", "1-1 2-1 3-1 4-1", (size_t)-1, NULL, NULL);
}

static void test_corrupt_tail(void **state)
{
    (void)state;
    expect_stream("corrupt_tail", "1-1 2-1 3-1 4-1", (size_t)-1,
                  "streams/0000000000000001/seg-0000000000000001.log.corrupt", NULL);
}

static void test_corrupt_middle(void **state)
{
    (void)state;
    expect_stream("corrupt_middle", "1-1", (size_t)-1,
                  "streams/0000000000000001/seg-0000000000000001.log.corrupt", NULL);
}

static void test_sealed_corrupt(void **state)
{
    (void)state;
    /* Segment 1 is cut after its first record; segment 2 is intact and the
     * counters come from its header. */
    expect_stream("sealed_corrupt", "1-1 4-1 5-1", (size_t)-1,
                  "streams/0000000000000001/seg-0000000000000001.log.corrupt", NULL);
    char *dir;
    struct loaded l;
    int rc;
    struct bus_store *st = open_fixture("sealed_corrupt", &dir, &l, &rc);
    assert_int_equal(l.v[0]->entries_added, 5);
    assert_int_equal(l.v[0]->last_id.ms, 5);
    close_all(st, &l, dir);
}

static void test_torn_header(void **state)
{
    (void)state;
    expect_stream("torn_header", "1-1 2-1 3-1 4-1 5-1", (size_t)-1, NULL,
                  "streams/0000000000000001/seg-0000000000000002.log");
}

static void test_journal_torn(void **state)
{
    (void)state;
    /* The PEL record was cut: the group and consumer stay, the PEL is
     * empty. */
    expect_stream("journal_torn", "1-1 2-1 3-1 4-1 5-1", 0, NULL, NULL);
}

static void test_journal_fallback(void **state)
{
    (void)state;
    expect_stream("journal_fallback", "1-1 2-1 3-1 4-1 5-1", 2, NULL,
                  "streams/0000000000000001/groups-0000000000000002.log");
    char *dir;
    struct loaded l;
    int rc;
    struct bus_store *st = open_fixture("journal_fallback", &dir, &l, &rc);
    assert_null(bus_group_get(l.v[0], "other", 5));
    struct bus_group *g = bus_group_get(l.v[0], "g", 1);
    assert_int_equal(g->last_id.ms, 2);
    assert_int_equal(g->entries_read, 2);
    struct bus_consumer *c = bus_consumer_get(g, "c", 1);
    assert_non_null(c);
    assert_int_equal(c->pel_count, 2);
    close_all(st, &l, dir);
}

static void test_xdel_trim(void **state)
{
    (void)state;
    expect_stream("xdel_trim", "3-1 4-1 5-1", 1, NULL, NULL);
    char *dir;
    struct loaded l;
    int rc;
    struct bus_store *st = open_fixture("xdel_trim", &dir, &l, &rc);
    assert_int_equal(l.v[0]->max_deleted.ms, 2);
    assert_int_equal(l.v[0]->length, 3);
    assert_int_equal(l.v[0]->first_id.ms, 3);
    close_all(st, &l, dir);
}

static void test_bad_magic(void **state)
{
    (void)state;
    char *dir;
    struct loaded l;
    int rc;
    struct bus_store *st = open_fixture("bad_magic", &dir, &l, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(l.n, 0);
    /* Never deleted: moved aside for inspection. */
    assert_true(exists(dir, "streams/0000000000000001.corrupt/seg-0000000000000001.log.corrupt"));
    close_all(st, &l, dir);
}

static void test_newer_version(void **state)
{
    (void)state;
    char *dir;
    struct loaded l;
    int rc;
    struct bus_store *st = open_fixture("newer_version", &dir, &l, &rc);
    assert_int_equal(rc, OFE_EUNSUPP);
    assert_int_equal(file_size(dir, "streams/0000000000000001/seg-0000000000000001.log"),
                     file_size(tu_source_dir(), "tests/fixtures/eventbus/newer_version/streams/"
                                                "0000000000000001/seg-0000000000000001.log"));
    close_all(st, &l, dir);
}

static void test_deleted_dir(void **state)
{
    (void)state;
    expect_stream("deleted_dir", "1-1 2-1 3-1 4-1 5-1", (size_t)-1, NULL,
                  "streams/0000000000000002.del");
}

/* A stream directory with no file yet (the broker was killed while it
 * created the stream) is removed at recovery; the other streams load. */
static void test_empty_stream_dir(void **state)
{
    (void)state;
    char *dir = copy_fixture("clean");
    char p[8400];
    snprintf(p, sizeof(p), "%s/streams/0000000000000002", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    struct loaded l;
    int rc;
    struct bus_store *st = open_copy(dir, &dir, &l, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(l.n, 1);
    assert_memory_equal(l.v[0]->name, "orders", 6);
    assert_false(exists(dir, "streams/0000000000000002"));
    close_all(st, &l, dir);
}

/* ---- writing ------------------------------------------------------------- */

static struct bus_store *open_dir(const char *dir, enum bus_fsync fs, uint64_t seg)
{
    struct bus_store_opts o = {.dir = dir, .fsync = fs, .notify_fd = -1, .segment_bytes = seg};
    struct bus_store *st = NULL;
    char err[512];
    assert_int_equal(bus_store_open(&o, &st, err, sizeof(err)), 0);
    return st;
}

static void append(struct bus_stream *s, uint64_t ms, size_t vlen)
{
    char *v = malloc(vlen + 1);
    memset(v, 'v', vlen);
    const char *fv[2] = {"f", v};
    size_t fl[2] = {1, vlen};
    struct bus_id id = {ms, 0};
    uint32_t seg, off;
    bool node = bus_stream_node_start(s);
    assert_int_equal(bus_log_entry(s->log, &id, node, 1, fv, fl, &seg, &off), 0);
    assert_int_equal(bus_stream_apply_entry(s, &id, node, seg, off), 0);
    free(v);
}

static void test_roundtrip_and_lock(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("bus-store");
    struct bus_store *st = open_dir(dir, BUS_FSYNC_ALWAYS, 0);
    /* A second store on the same directory is refused. */
    struct bus_store_opts o = {.dir = dir, .fsync = BUS_FSYNC_NO, .notify_fd = -1};
    struct bus_store *st2 = NULL;
    char err[512];
    assert_int_equal(bus_store_open(&o, &st2, err, sizeof(err)), OFE_EEXIST);
    assert_non_null(strstr(err, "in use by another ofe-eventbus"));

    struct bus_stream *s = bus_stream_new("rt", 2);
    assert_int_equal(bus_log_create(st, s, err, sizeof(err)), 0);
    for (uint64_t i = 1; i <= 300; i++)
        append(s, i, 10);
    struct bus_id del = {7, 0};
    assert_true(bus_stream_apply_delete(s, &del));
    assert_int_equal(bus_log_delete(s->log, &del, 1), 0);
    struct bus_trim t = {
        .strategy = BUS_TRIM_MAXLEN, .approx = true, .maxlen = 150, .limit = 10000};
    struct bus_trim_plan plan;
    bus_stream_plan_trim(s, &t, &plan);
    assert_int_equal(plan.deleted, 99); /* node 1 held 99 live entries after the XDEL */
    assert_int_equal(bus_log_trim(s->log, &plan), 0);
    bus_stream_apply_trim(s, &plan);
    struct bus_group *g = bus_group_create(s, "g", 1, &(struct bus_id){150, 0}, 150, 0);
    bus_log_group_create(s->log, g);
    struct bus_consumer *c = bus_consumer_create(g, "c", 1, 1000, 0);
    bus_log_consumer_create(s->log, c);
    struct bus_nack *v[3];
    for (int i = 0; i < 3; i++)
        v[i] = bus_pel_set(g, &(struct bus_id){148 + (uint64_t)i, 0}, c, 5000 + (uint64_t)i,
                           (uint64_t)i + 1);
    bus_log_pel_set(s->log, c, v, 3);
    bus_pel_del(g, &(struct bus_id){149, 0});
    bus_log_pel_del(s->log, g, &(struct bus_id){149, 0}, 1);
    /* Under fsync always, flush hands the batch to the fsync thread and
     * its sequence becomes durable. */
    uint64_t seq = bus_store_flush(st);
    assert_true(seq > 0);
    for (int i = 0; i < 500 && bus_store_durable(st) < seq; i++)
        usleep(2000);
    assert_true(bus_store_durable(st) >= seq);
    uint64_t length = s->length, added = s->entries_added;
    bus_log_free(s->log);
    bus_stream_free(s);
    bus_store_close(st);

    st = open_dir(dir, BUS_FSYNC_NO, 0);
    struct loaded l = {0};
    assert_int_equal(bus_store_load(st, add_cb, &l, err, sizeof(err)), 0);
    assert_int_equal(l.n, 1);
    s = l.v[0];
    assert_int_equal(s->length, length);
    assert_int_equal(s->entries_added, added);
    assert_int_equal(s->max_deleted.ms, 7);
    g = bus_group_get(s, "g", 1);
    assert_non_null(g);
    assert_int_equal(g->last_id.ms, 150);
    assert_int_equal(g->entries_read, 150);
    assert_int_equal(g->pel_count, 2);
    struct bus_nack *n = bus_pel_find(g, &(struct bus_id){150, 0});
    assert_non_null(n);
    assert_int_equal(n->delivery_time, 5002);
    assert_int_equal(n->delivery_count, 3);
    assert_null(bus_pel_find(g, &(struct bus_id){149, 0}));
    close_all(st, &l, dir);
}

static size_t count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)))
            n++;
    if (d)
        closedir(d);
    return n;
}

static void test_journal_compaction(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("bus-journal");
    struct bus_store *st = open_dir(dir, BUS_FSYNC_EVERYSEC, 0);
    char err[512];
    struct bus_stream *s = bus_stream_new("j", 1);
    assert_int_equal(bus_log_create(st, s, err, sizeof(err)), 0);
    append(s, 1, 5);
    struct bus_group *g = bus_group_create(s, "g", 1, &(struct bus_id){0, 0}, -1, 0);
    bus_log_group_create(s->log, g);
    struct bus_consumer *c = bus_consumer_create(g, "c", 1, 1, 0);
    bus_log_consumer_create(s->log, c);
    /* 3 MB of deliver/ack churn on a tiny PEL: the journal must compact. */
    for (int i = 0; i < 40000; i++) {
        struct bus_nack *n = bus_pel_set(g, &(struct bus_id){1, 0}, c, (uint64_t)i, 1);
        bus_log_pel_set(s->log, c, &n, 1);
        if (i % 2) {
            bus_pel_del(g, &(struct bus_id){1, 0});
            bus_log_pel_del(s->log, g, &(struct bus_id){1, 0}, 1);
        }
        if (i % 1000 == 0) {
            bus_store_flush(st);
            bus_store_cron(st);
        }
    }
    bus_store_flush(st);
    bus_store_cron(st);
    bus_store_flush(st);
    bus_store_sync_now(st);
    char sdir[4200];
    snprintf(sdir, sizeof(sdir), "%s/streams/0000000000000001", dir);
    /* The old generations go once the new one is synced (fsync thread). */
    for (int i = 0; i < 500 && count_files(sdir, "groups-") > 1; i++)
        usleep(2000);
    assert_int_equal(count_files(sdir, "groups-"), 1);
    assert_false(exists(sdir, "groups-0000000000000001.log"));
    struct stat sb;
    DIR *d = opendir(sdir);
    struct dirent *e;
    off_t jsize = -1;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "groups-", 7)) {
            char p[8400];
            snprintf(p, sizeof(p), "%s/%s", sdir, e->d_name);
            stat(p, &sb);
            jsize = sb.st_size;
        }
    closedir(d);
    assert_true(jsize > 0 && jsize < 2 * 1024 * 1024);
    bool pending = g->pel_count == 1;
    bus_log_free(s->log);
    bus_stream_free(s);
    bus_store_close(st);
    st = open_dir(dir, BUS_FSYNC_NO, 0);
    struct loaded l = {0};
    assert_int_equal(bus_store_load(st, add_cb, &l, err, sizeof(err)), 0);
    g = bus_group_get(l.v[0], "g", 1);
    assert_non_null(g);
    assert_int_equal(g->pel_count == 1, pending);
    close_all(st, &l, dir);
}

/* Regression: a compaction writes and hands over the buffered journal by
 * itself; a reply waiting for the records buffered before it must still
 * see its sequence become durable (it once waited forever). */
static void test_compaction_releases_waiters(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("bus-journal2");
    struct bus_store *st = open_dir(dir, BUS_FSYNC_ALWAYS, 0);
    char err[512];
    struct bus_stream *s = bus_stream_new("j", 1);
    assert_int_equal(bus_log_create(st, s, err, sizeof(err)), 0);
    append(s, 1, 5);
    struct bus_group *g = bus_group_create(s, "g", 1, &(struct bus_id){0, 0}, -1, 0);
    bus_log_group_create(s->log, g);
    struct bus_consumer *c = bus_consumer_create(g, "c", 1, 1, 0);
    bus_log_consumer_create(s->log, c);
    bus_store_flush(st);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 30000; i++) {
            struct bus_nack *n = bus_pel_set(g, &(struct bus_id){1, 0}, c, (uint64_t)i, 1);
            bus_log_pel_set(s->log, c, &n, 1);
        }
        uint64_t need = bus_store_flush_pending(st);
        bus_store_cron(st); /* compacts: writes everything out itself */
        uint64_t seq = bus_store_flush(st);
        assert_true(seq >= need);
        for (int i = 0; i < 1000 && bus_store_durable(st) < need; i++)
            usleep(2000);
        assert_true(bus_store_durable(st) >= need);
    }
    bus_log_free(s->log);
    bus_stream_free(s);
    bus_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_retention(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("bus-retention");
    struct bus_store *st = open_dir(dir, BUS_FSYNC_NO, 8192);
    char err[512];
    struct bus_stream *s = bus_stream_new("r", 1);
    assert_int_equal(bus_log_create(st, s, err, sizeof(err)), 0);
    for (uint64_t i = 1; i <= 1000; i++)
        append(s, i, 200);
    bus_store_flush(st);
    char sdir[4200];
    snprintf(sdir, sizeof(sdir), "%s/streams/0000000000000001", dir);
    size_t segs = count_files(sdir, "seg-");
    assert_true(segs > 20); /* ~230 KB in 8 KiB segments */

    /* By count: exactly max_entries remain; fully trimmed segments go. */
    struct bus_retention r = {.max_entries = 300};
    assert_int_equal(bus_store_retain(st, s, &r, 0), 700);
    assert_int_equal(s->length, 300);
    bus_store_flush(st);
    assert_true(count_files(sdir, "seg-") < segs / 2);

    /* By bytes: whole oldest segments until under max_bytes. */
    r = (struct bus_retention){.max_bytes = 32 * 1024};
    bus_store_retain(st, s, &r, 0);
    bus_store_flush(st);
    struct bus_store_stats stats;
    bus_store_stats(st, &stats);
    assert_true(stats.bytes_on_disk <= 32 * 1024 + 8192);
    assert_true(s->length > 0 && s->length < 300);
    struct bus_id last;
    assert_true(bus_stream_last(s, &last) && last.ms == 1000);

    /* By age (append time): the active segment is rolled after max_age/4,
     * sealed segments go once their successor is older than max_age. */
    uint64_t now = 4102444800000ull; /* far in the future */
    r = (struct bus_retention){.max_age_ms = 60000};
    bus_store_retain(st, s, &r, now);
    bus_store_flush(st);
    bus_store_retain(st, s, &r, now + 120000);
    bus_store_flush(st);
    assert_int_equal(s->length, 0);
    assert_int_equal(count_files(sdir, "seg-"), 1);
    /* The stream keeps its last id. */
    assert_int_equal(s->last_id.ms, 1000);
    bus_log_free(s->log);
    bus_stream_free(s);
    bus_store_close(st);
    st = open_dir(dir, BUS_FSYNC_NO, 8192);
    struct loaded l = {0};
    assert_int_equal(bus_store_load(st, add_cb, &l, err, sizeof(err)), 0);
    assert_int_equal(l.v[0]->length, 0);
    assert_int_equal(l.v[0]->last_id.ms, 1000);
    assert_int_equal(l.v[0]->entries_added, 1000);
    close_all(st, &l, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_corrupt_tail),
        cmocka_unit_test(test_corrupt_middle),
        cmocka_unit_test(test_sealed_corrupt),
        cmocka_unit_test(test_torn_header),
        cmocka_unit_test(test_journal_torn),
        cmocka_unit_test(test_journal_fallback),
        cmocka_unit_test(test_xdel_trim),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_newer_version),
        cmocka_unit_test(test_deleted_dir),
        cmocka_unit_test(test_empty_stream_dir),
        cmocka_unit_test(test_roundtrip_and_lock),
        cmocka_unit_test(test_journal_compaction),
        cmocka_unit_test(test_compaction_releases_waiters),
        cmocka_unit_test(test_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
