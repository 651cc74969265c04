/* Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XREAD, XREADGROUP, XACK,
 * XPENDING, XCLAIM, XAUTOCLAIM, XTRIM, XDEL, XGROUP, XINFO. Argument
 * parsing, error texts, reply shapes and the consumer-group bookkeeping
 * follow Redis 7.0's t_stream.c, so clients cannot tell the difference
 * (tests/integration/test_bus_diff.c compares both). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define COMP "eventbus"

static struct bus_reader g_rd;
static bool g_rd_init;

static struct bus_reader *reader(void)
{
    if (!g_rd_init) {
        bus_reader_init(&g_rd);
        g_rd_init = true;
    }
    return &g_rd;
}

static const char ERR_INVALID_ID[] = "Invalid stream ID specified as stream command argument";

/* ---- argument helpers ---------------------------------------------------------- */

static bool get_ll(struct bus_client *c, const struct bus_cmdctx *a, size_t i, long long *v,
                   const char *msg)
{
    if (resp_str2ll(a->argv[i], a->argl[i], v))
        return true;
    resp_add_error(bus_client_out(c), msg ? msg : "value is not an integer or out of range");
    return false;
}

/* Redis's streamGenericParseIDOrReply. seq_given != NULL enables "ms-*".
 * c may be NULL (no reply). */
static bool parse_id(struct bus_client *c, const char *arg, size_t len, struct bus_id *id,
                     uint64_t missing_seq, bool strict, int *seq_given)
{
    char buf[128];
    if (len > sizeof(buf) - 1)
        goto invalid;
    memcpy(buf, arg, len);
    buf[len] = '\0';
    if (strict && (buf[0] == '-' || buf[0] == '+') && buf[1] == '\0')
        goto invalid;
    if (seq_given)
        *seq_given = 1;
    if (buf[0] == '-' && buf[1] == '\0') {
        *id = (struct bus_id){0, 0};
        return true;
    }
    if (buf[0] == '+' && buf[1] == '\0') {
        *id = BUS_ID_MAX;
        return true;
    }
    unsigned long long ms, seq;
    char *dot = strchr(buf, '-');
    if (dot)
        *dot = '\0';
    if (!resp_str2ull(buf, strlen(buf), &ms))
        goto invalid;
    if (dot) {
        size_t seqlen = strlen(dot + 1);
        if (seq_given && seqlen == 1 && dot[1] == '*') {
            seq = 0;
            *seq_given = 0;
        } else if (!resp_str2ull(dot + 1, seqlen, &seq)) {
            goto invalid;
        }
    } else {
        seq = missing_seq;
    }
    id->ms = ms;
    id->seq = seq;
    return true;
invalid:
    if (c)
        resp_add_error(bus_client_out(c), ERR_INVALID_ID);
    return false;
}

/* Redis's streamParseIntervalIDOrReply ("(" for exclusive bounds). */
static bool parse_interval(struct bus_client *c, const char *arg, size_t len, struct bus_id *id,
                           bool *exclude, uint64_t missing_seq)
{
    *exclude = len > 1 && arg[0] == '(';
    if (*exclude)
        return parse_id(c, arg + 1, len - 1, id, missing_seq, true, NULL);
    return parse_id(c, arg, len, id, missing_seq, false, NULL);
}

static bool check_writable(struct bus_client *c)
{
    char err[300];
    if (bus_store_writable(bus_server_store(bus_client_server(c)), err, sizeof(err)))
        return true;
    resp_add_errorf(bus_client_out(c), "%s; writes are refused", err);
    return false;
}

static void reply_id(struct ofe_buf *o, const struct bus_id *id)
{
    char b[48];
    size_t n = bus_id_fmt(b, id);
    resp_add_bulk(o, b, n);
}

/* Emits one entry as [id, [field, value, ...]]. */
static void emit_entry(struct ofe_buf *o, struct bus_stream *s, const struct bus_slot *sl)
{
    struct bus_id id = bus_slot_id(sl);
    const char *f;
    size_t fl;
    uint32_t nf;
    int rc = bus_log_read(s->log, sl, reader(), &f, &fl, &nf);
    resp_add_array(o, 2);
    reply_id(o, &id);
    if (rc != 0) {
        char b[48];
        b[bus_id_fmt(b, &id)] = '\0';
        OFE_ERROR(COMP, s->name, "cannot read entry %s: %s", b, ofe_strerror(rc));
        resp_add_null_array(o);
        return;
    }
    ofe_buf_append(o, f, fl);
}

/* Index of the first slot with id > id (s->n if none). */
static size_t upper_idx(const struct bus_stream *s, const struct bus_id *id)
{
    struct bus_id n = *id;
    if (!bus_id_incr(&n))
        return s->n;
    return bus_stream_lower_bound(s, &n);
}

static bool entry_exists(const struct bus_stream *s, const struct bus_id *id)
{
    return bus_stream_find(s, id) != SIZE_MAX;
}

/* Emits one entry by id if it exists; returns 1 when emitted. */
static size_t emit_by_id(struct ofe_buf *o, struct bus_stream *s, const struct bus_id *id)
{
    size_t i = bus_stream_find(s, id);
    if (i == SIZE_MAX)
        return 0;
    emit_entry(o, s, bus_slot_at(s, i));
    return 1;
}

/* Patches a "*<n>\r\n" header written with room for 20 digits. */
static size_t reserve_len(struct ofe_buf *o)
{
    size_t at = o->len;
    ofe_buf_append(o, "*                    \r\n", 23);
    return at;
}

static void set_len(struct ofe_buf *o, size_t at, long long n)
{
    /* Rewrite as the exact header and close the gap. */
    char hdr[32];
    hdr[0] = '*';
    size_t hl = 1 + resp_i64toa(hdr + 1, n);
    hdr[hl++] = '\r';
    hdr[hl++] = '\n';
    memmove(o->data + at + hl, o->data + at + 23, o->len - at - 23);
    memcpy(o->data + at, hdr, hl);
    o->len -= 23 - hl;
    o->data[o->len] = '\0';
}

/* ---- XADD / XTRIM ----------------------------------------------------------------- */

struct addtrim {
    struct bus_trim trim;
    bool nomkstream;
    bool id_given;
    int seq_given;
    struct bus_id id;
};

/* Redis's streamParseAddOrTrimArgsOrReply. Returns the index of the id
 * (XADD) or of the last option, -1 after an error reply. */
static long parse_addtrim(struct bus_client *c, const struct bus_cmdctx *a, struct addtrim *t,
                          bool xadd)
{
    struct ofe_buf *o = bus_client_out(c);
    memset(t, 0, sizeof(*t));
    t->trim.strategy = BUS_TRIM_NONE;
    bool limit_given = false;
    long long limit = 0;
    size_t i = 2;
    for (; i < a->argc; i++) {
        size_t more = a->argc - 1 - i;
        const char *opt = a->argv[i];
        if (xadd && a->argl[i] == 1 && opt[0] == '*') {
            break;
        } else if (bus_arg_is(a, i, "maxlen") && more) {
            if (t->trim.strategy != BUS_TRIM_NONE) {
                resp_add_error(o, "syntax error, MAXLEN and MINID options at the same time are "
                                  "not compatible");
                return -1;
            }
            t->trim.approx = false;
            const char *next = a->argv[i + 1];
            if (more >= 2 && a->argl[i + 1] == 1 && next[0] == '~') {
                t->trim.approx = true;
                i++;
            } else if (more >= 2 && a->argl[i + 1] == 1 && next[0] == '=') {
                i++;
            }
            if (!get_ll(c, a, i + 1, &t->trim.maxlen, NULL))
                return -1;
            if (t->trim.maxlen < 0) {
                resp_add_error(o, "The MAXLEN argument must be >= 0.");
                return -1;
            }
            i++;
            t->trim.strategy = BUS_TRIM_MAXLEN;
        } else if (bus_arg_is(a, i, "minid") && more) {
            if (t->trim.strategy != BUS_TRIM_NONE) {
                resp_add_error(o, "syntax error, MAXLEN and MINID options at the same time are "
                                  "not compatible");
                return -1;
            }
            t->trim.approx = false;
            const char *next = a->argv[i + 1];
            if (more >= 2 && a->argl[i + 1] == 1 && next[0] == '~') {
                t->trim.approx = true;
                i++;
            } else if (more >= 2 && a->argl[i + 1] == 1 && next[0] == '=') {
                i++;
            }
            if (!parse_id(c, a->argv[i + 1], a->argl[i + 1], &t->trim.minid, 0, true, NULL))
                return -1;
            i++;
            t->trim.strategy = BUS_TRIM_MINID;
        } else if (bus_arg_is(a, i, "limit") && more) {
            if (!get_ll(c, a, i + 1, &limit, NULL))
                return -1;
            if (limit < 0) {
                resp_add_error(o, "The LIMIT argument must be >= 0.");
                return -1;
            }
            limit_given = true;
            i++;
        } else if (xadd && bus_arg_is(a, i, "nomkstream")) {
            t->nomkstream = true;
        } else if (xadd) {
            if (!parse_id(c, a->argv[i], a->argl[i], &t->id, 0, true, &t->seq_given))
                return -1;
            t->id_given = true;
            break;
        } else {
            resp_add_error(o, "syntax error");
            return -1;
        }
    }
    if (limit && t->trim.strategy == BUS_TRIM_NONE) {
        resp_add_error(o, "syntax error, LIMIT cannot be used without specifying a trimming "
                          "strategy");
        return -1;
    }
    if (!xadd && t->trim.strategy == BUS_TRIM_NONE) {
        resp_add_error(o, "syntax error, XTRIM must be called with a trimming strategy");
        return -1;
    }
    if (limit_given) {
        if (!t->trim.approx) {
            resp_add_error(o, "syntax error, LIMIT cannot be used without the special ~ option");
            return -1;
        }
        t->trim.limit = limit;
    } else {
        t->trim.limit = t->trim.approx ? 100 * BUS_NODE_MAX_ENTRIES : 0;
    }
    return (long)i;
}

/* Trims and logs; returns the entries removed. */
static long long do_trim(struct bus_stream *s, const struct bus_trim *t)
{
    struct bus_trim_plan plan;
    bus_stream_plan_trim(s, t, &plan);
    if (!plan.remove && !plan.mark)
        return 0;
    if (bus_log_trim(s->log, &plan) != 0)
        return 0;
    bus_stream_apply_trim(s, &plan);
    bus_log_gc(s->log);
    return plan.deleted;
}

/* Picks the id for a new entry; false when it is not greater than the
 * stream's last id (EDOM in Redis). */
static bool choose_id(const struct bus_stream *s, const struct addtrim *t, uint64_t now,
                      struct bus_id *out)
{
    if (!t->id_given) {
        if (now > s->last_id.ms) {
            *out = (struct bus_id){now, 0};
        } else {
            *out = s->last_id;
            if (!bus_id_incr(out))
                return false;
        }
        return true;
    }
    if (t->seq_given) {
        if (bus_id_cmp(&t->id, &s->last_id) <= 0)
            return false;
        *out = t->id;
        return true;
    }
    /* ms-* */
    if (t->id.ms == s->last_id.ms) {
        if (s->last_id.seq == UINT64_MAX)
            return false;
        *out = (struct bus_id){t->id.ms, s->last_id.seq + 1};
        return true;
    }
    if (t->id.ms < s->last_id.ms)
        return false;
    *out = (struct bus_id){t->id.ms, 0};
    return true;
}

/* Appends one entry (log + index). Returns 0 or an OFE_E* code. */
static int append_entry(struct bus_server *srv, struct bus_stream *s, const struct bus_id *id,
                        size_t nfields, const char *const *fv, const size_t *fl)
{
    bool node = bus_stream_node_start(s);
    uint32_t seg, off;
    int rc = bus_log_entry(s->log, id, node, nfields, fv, fl, &seg, &off);
    if (rc != 0)
        return rc;
    rc = bus_stream_apply_entry(s, id, node, seg, off);
    if (rc != 0)
        return rc;
    uint64_t bytes = 0;
    for (size_t i = 0; i < nfields * 2; i++)
        bytes += fl[i];
    bus_count_appends(srv, 1, bytes);
    return 0;
}

BUS_CMD_FN(bus_cmd_xadd)
{
    struct bus_server *srv = bus_client_server(c);
    struct ofe_buf *o = bus_client_out(c);
    struct addtrim t;
    long idpos = parse_addtrim(c, a, &t, true);
    if (idpos < 0)
        return;
    size_t fpos = (size_t)idpos + 1;
    if (a->argc < fpos + 2 || (a->argc - fpos) % 2 == 1) {
        bus_reply_arity(c, "xadd");
        return;
    }
    if (t.id_given && t.seq_given && t.id.ms == 0 && t.id.seq == 0) {
        resp_add_error(o, "The ID specified in XADD must be greater than 0-0");
        return;
    }
    size_t total = 0;
    for (size_t i = fpos; i < a->argc; i++)
        total += a->argl[i];
    if (total > bus_server_max_event(srv)) {
        resp_add_errorf(o, "event too large: %zu bytes of fields and values, the limit is %zu",
                        total, bus_server_max_event(srv));
        return;
    }
    struct bus_stream *s = bus_db_get(srv, a->argv[1], a->argl[1]);
    if (!s && t.nomkstream) {
        resp_add_null(o);
        return;
    }
    if (!check_writable(c))
        return;
    if (!s && !(s = bus_db_create(srv, c, a->argv[1], a->argl[1])))
        return;
    if (s->last_id.ms == UINT64_MAX && s->last_id.seq == UINT64_MAX) {
        resp_add_error(o, "The stream has exhausted the last possible ID, unable to add more "
                          "items");
        return;
    }
    struct bus_id id;
    if (!choose_id(s, &t, bus_now_ms(srv), &id)) {
        resp_add_error(o, "The ID specified in XADD is equal or smaller than the target stream "
                          "top item");
        return;
    }
    size_t nf = (a->argc - fpos) / 2;
    int rc = append_entry(srv, s, &id, nf, a->argv + fpos, a->argl + fpos);
    if (rc != 0) {
        resp_add_errorf(o, "cannot append: %s", ofe_strerror(rc));
        return;
    }
    reply_id(o, &id);
    if (t.trim.strategy != BUS_TRIM_NONE)
        do_trim(s, &t.trim);
    bus_signal_ready(srv, s);
}

void bus_cmd_xadd_internal(struct bus_server *srv, struct bus_append_job *job)
{
    char err[300];
    if (!bus_store_writable(bus_server_store(srv), err, sizeof(err))) {
        job->done(job->arg, OFE_EIO, NULL, 0, err);
        goto free_job;
    }
    struct bus_stream *s = bus_db_get(srv, job->stream, job->slen);
    if (!s && !(s = bus_db_create(srv, NULL, job->stream, job->slen))) {
        job->done(job->arg, OFE_EIO, NULL, 0, "cannot create the stream");
        goto free_job;
    }
    job->ids = calloc(job->n, sizeof(*job->ids));
    if (!job->ids) {
        job->done(job->arg, OFE_ENOMEM, NULL, 0, "out of memory");
        goto free_job;
    }
    for (size_t k = 0; k < job->n; k++) {
        struct ofe_hdrs *h = &job->fields[k];
        const char **fv = malloc(h->n * 2 * sizeof(*fv));
        size_t *fl = malloc(h->n * 2 * sizeof(*fl));
        struct bus_id id;
        struct addtrim t = {.id_given = false};
        int rc = OFE_ENOMEM;
        if (fv && fl && h->n) {
            for (size_t i = 0; i < h->n; i++) {
                fv[2 * i] = h->v[i].name;
                fl[2 * i] = h->v[i].name_len;
                fv[2 * i + 1] = h->v[i].value;
                fl[2 * i + 1] = h->v[i].value_len;
            }
            rc = choose_id(s, &t, bus_now_ms(srv), &id) ? append_entry(srv, s, &id, h->n, fv, fl)
                                                        : OFE_EINVAL;
        }
        free(fv);
        free(fl);
        if (rc != 0) {
            /* Entries appended before stay (they are in the log); the
             * request fails as a whole so the client retries. */
            for (size_t i = 0; i < k; i++)
                free(job->ids[i]);
            free(job->ids);
            job->ids = NULL;
            job->done(job->arg, rc, NULL, 0, "cannot append the event");
            goto free_job;
        }
        char b[48];
        b[bus_id_fmt(b, &id)] = '\0';
        job->ids[k] = strdup(b);
    }
    bus_signal_ready(srv, s);
    return; /* answered once durable */
free_job:
    for (size_t i = 0; i < job->n; i++)
        ofe_hdrs_fini(&job->fields[i]);
    free(job->fields);
    free(job->stream);
    free(job);
}

BUS_CMD_FN(bus_cmd_xtrim)
{
    struct addtrim t;
    if (parse_addtrim(c, a, &t, false) < 0)
        return;
    struct bus_stream *s = bus_db_get(bus_client_server(c), a->argv[1], a->argl[1]);
    if (!s) {
        resp_add_int(bus_client_out(c), 0);
        return;
    }
    if (!check_writable(c))
        return;
    resp_add_int(bus_client_out(c), do_trim(s, &t.trim));
}

BUS_CMD_FN(bus_cmd_xlen)
{
    struct bus_stream *s = bus_db_get(bus_client_server(c), a->argv[1], a->argl[1]);
    resp_add_int(bus_client_out(c), s ? (long long)s->length : 0);
}

BUS_CMD_FN(bus_cmd_xdel)
{
    struct ofe_buf *o = bus_client_out(c);
    struct bus_stream *s = bus_db_get(bus_client_server(c), a->argv[1], a->argl[1]);
    if (!s) {
        resp_add_int(o, 0);
        return;
    }
    size_t n = a->argc - 2;
    struct bus_id *ids = malloc(n * sizeof(*ids));
    if (!ids) {
        resp_add_error(o, "out of memory");
        return;
    }
    for (size_t j = 0; j < n; j++)
        if (!parse_id(c, a->argv[j + 2], a->argl[j + 2], &ids[j], 0, true, NULL)) {
            free(ids);
            return;
        }
    if (!check_writable(c)) {
        free(ids);
        return;
    }
    size_t k = 0;
    for (size_t j = 0; j < n; j++)
        if (bus_stream_apply_delete(s, &ids[j]))
            ids[k++] = ids[j];
    if (k)
        bus_log_delete(s->log, ids, k);
    free(ids);
    resp_add_int(o, (long long)k);
}

/* ---- XRANGE / XREVRANGE ------------------------------------------------------------- */

static void xrange_generic(struct bus_client *c, struct bus_cmdctx *a, bool rev)
{
    struct ofe_buf *o = bus_client_out(c);
    size_t si = rev ? 3 : 2, ei = rev ? 2 : 3;
    struct bus_id start, end;
    bool sx, ex;
    long long count = -1;
    if (!parse_interval(c, a->argv[si], a->argl[si], &start, &sx, 0))
        return;
    if (sx && !bus_id_incr(&start)) {
        resp_add_error(o, "invalid start ID for the interval");
        return;
    }
    if (!parse_interval(c, a->argv[ei], a->argl[ei], &end, &ex, UINT64_MAX))
        return;
    if (ex && !bus_id_decr(&end)) {
        resp_add_error(o, "invalid end ID for the interval");
        return;
    }
    for (size_t j = 4; j < a->argc; j++) {
        size_t more = a->argc - j - 1;
        if (bus_arg_is(a, j, "count") && more >= 1) {
            if (!get_ll(c, a, j + 1, &count, NULL))
                return;
            if (count < 0)
                count = 0;
            j++;
        } else {
            resp_add_error(o, "syntax error");
            return;
        }
    }
    struct bus_stream *s = bus_db_get(bus_client_server(c), a->argv[1], a->argl[1]);
    if (!s) {
        resp_add_array(o, 0);
        return;
    }
    if (count == 0) {
        resp_add_null_array(o);
        return;
    }
    if (count == -1)
        count = 0;
    size_t at = reserve_len(o);
    long long n = 0;
    if (bus_id_cmp(&start, &end) <= 0) {
        if (!rev) {
            for (size_t i = bus_stream_lower_bound(s, &start); i < s->n; i++) {
                struct bus_slot *sl = bus_slot_at(s, i);
                struct bus_id id = bus_slot_id(sl);
                if (bus_id_cmp(&id, &end) > 0)
                    break;
                if (sl->seg & BUS_SLOT_DELETED)
                    continue;
                emit_entry(o, s, sl);
                if (++n == count)
                    break;
            }
        } else {
            for (size_t i = upper_idx(s, &end); i-- > 0;) {
                struct bus_slot *sl = bus_slot_at(s, i);
                struct bus_id id = bus_slot_id(sl);
                if (bus_id_cmp(&id, &start) < 0)
                    break;
                if (sl->seg & BUS_SLOT_DELETED)
                    continue;
                emit_entry(o, s, sl);
                if (++n == count)
                    break;
            }
        }
    }
    set_len(o, at, n);
    bus_count_reads(bus_client_server(c), (uint64_t)n);
}

BUS_CMD_FN(bus_cmd_xrange)
{
    xrange_generic(c, a, false);
}

BUS_CMD_FN(bus_cmd_xrevrange)
{
    xrange_generic(c, a, true);
}

/* ---- group helpers ---------------------------------------------------------------- */

static struct bus_consumer *consumer_lookup_or_create(struct bus_stream *s, struct bus_group *g,
                                                      const char *name, size_t nlen, uint64_t now,
                                                      bool *created)
{
    struct bus_consumer *cs = bus_consumer_get(g, name, nlen);
    if (created)
        *created = false;
    if (cs) {
        cs->seen_time = now;
        return cs;
    }
    cs = bus_consumer_create(g, name, nlen, now, 0);
    if (cs) {
        bus_log_consumer_create(s->log, cs);
        if (created)
            *created = true;
    }
    return cs;
}

/* Journal batching of PEL changes made by one command. */
struct pelbatch {
    struct bus_nack **v;
    size_t n, cap;
};

static void pb_push(struct pelbatch *b, struct bus_nack *n)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        struct bus_nack **nv = realloc(b->v, ncap * sizeof(*nv));
        if (!nv)
            return;
        b->v = nv;
        b->cap = ncap;
    }
    b->v[b->n++] = n;
}

static void pb_flush(struct bus_stream *s, struct bus_consumer *cs, struct pelbatch *b)
{
    if (b->n && cs)
        bus_log_pel_set(s->log, cs, b->v, b->n);
    free(b->v);
    memset(b, 0, sizeof(*b));
}

/* XREADGROUP '>' on one stream: new entries after the group's last id. */
static size_t read_new(struct ofe_buf *o, struct bus_stream *s, struct bus_group *g,
                       struct bus_consumer *cs, size_t count, bool noack, uint64_t now)
{
    size_t at = reserve_len(o);
    size_t n = 0;
    struct pelbatch pb = {0};
    struct bus_id before_last = g->last_id;
    int64_t before_er = g->entries_read;
    for (size_t i = upper_idx(s, &g->last_id); i < s->n; i++) {
        struct bus_slot *sl = bus_slot_at(s, i);
        if (sl->seg & BUS_SLOT_DELETED)
            continue;
        struct bus_id id = bus_slot_id(sl);
        if (bus_id_cmp(&id, &g->last_id) > 0) {
            if (g->entries_read != BUS_ENTRIES_READ_INVALID &&
                !bus_stream_range_has_tombstones(s, &id, NULL))
                g->entries_read++;
            else if (s->entries_added)
                g->entries_read = bus_stream_estimate_distance(s, &id);
            g->last_id = id;
        }
        emit_entry(o, s, sl);
        if (!noack) {
            struct bus_nack *nk = bus_pel_set(g, &id, cs, now, 1);
            if (nk)
                pb_push(&pb, nk);
        }
        n++;
        if (count && n == count)
            break;
    }
    set_len(o, at, (long long)n);
    if (bus_id_cmp(&before_last, &g->last_id) != 0 || before_er != g->entries_read)
        bus_log_group_setid(s->log, g);
    pb_flush(s, cs, &pb);
    return n;
}

/* XREADGROUP with an id: the consumer's own pending history. */
static size_t read_history(struct ofe_buf *o, struct bus_stream *s, struct bus_group *g,
                           struct bus_consumer *cs, const struct bus_id *start, size_t count,
                           uint64_t now)
{
    (void)g;
    size_t at = reserve_len(o);
    size_t n = 0;
    struct pelbatch pb = {0};
    for (struct bus_nack *nk = bus_pel_seek(cs->pel, 1, start); nk && (!count || n < count);
         nk = bus_pel_next(cs->pel, 1, nk)) {
        if (!emit_by_id(o, s, &nk->id)) {
            resp_add_array(o, 2);
            reply_id(o, &nk->id);
            resp_add_null_array(o);
        } else {
            nk->delivery_time = now;
            nk->delivery_count++;
            pb_push(&pb, nk);
        }
        n++;
    }
    set_len(o, at, (long long)n);
    pb_flush(s, cs, &pb);
    return n;
}

/* ---- XREAD / XREADGROUP ------------------------------------------------------------ */

BUS_CMD_FN(bus_cmd_xread)
{
    struct bus_server *srv = bus_client_server(c);
    struct ofe_buf *o = bus_client_out(c);
    bool xreadgroup = a->argl[0] == 10;
    long long timeout = -1, count = 0;
    size_t streams_arg = 0, nstreams = 0;
    bool noack = false;
    size_t gi = 0; /* index of the group name */
    for (size_t i = 1; i < a->argc; i++) {
        size_t more = a->argc - i - 1;
        if (bus_arg_is(a, i, "block") && more) {
            i++;
            long long t;
            if (!resp_str2ll(a->argv[i], a->argl[i], &t)) {
                resp_add_error(o, "timeout is not an integer or out of range");
                return;
            }
            if (t < 0) {
                resp_add_error(o, "timeout is negative");
                return;
            }
            timeout = t;
        } else if (bus_arg_is(a, i, "count") && more) {
            i++;
            if (!get_ll(c, a, i, &count, NULL))
                return;
            if (count < 0)
                count = 0;
        } else if (bus_arg_is(a, i, "streams") && more) {
            streams_arg = i + 1;
            nstreams = a->argc - streams_arg;
            if (nstreams % 2 != 0) {
                /* Redis 7.0 says XREAD and '$' for XREADGROUP too. */
                resp_add_error(o, "Unbalanced XREAD list of streams: for each stream key an ID "
                                  "or '$' must be specified.");
                return;
            }
            nstreams /= 2;
            break;
        } else if (bus_arg_is(a, i, "group") && more >= 2) {
            if (!xreadgroup) {
                resp_add_error(o, "The GROUP option is only supported by XREADGROUP. You "
                                  "called XREAD instead.");
                return;
            }
            gi = i + 1;
            i += 2;
        } else if (bus_arg_is(a, i, "noack")) {
            if (!xreadgroup) {
                resp_add_error(o, "The NOACK option is only supported by XREADGROUP. You "
                                  "called XREAD instead.");
                return;
            }
            noack = true;
        } else {
            resp_add_error(o, "syntax error");
            return;
        }
    }
    if (streams_arg == 0) {
        resp_add_error(o, "syntax error");
        return;
    }
    if (xreadgroup && !gi) {
        resp_add_error(o, "Missing GROUP option for XREADGROUP");
        return;
    }
    struct bus_id idsb[8];
    struct bus_group *groupsb[8];
    struct bus_id *ids = nstreams > 8 ? malloc(nstreams * sizeof(*ids)) : idsb;
    struct bus_group **groups = nstreams > 8 ? malloc(nstreams * sizeof(*groups)) : groupsb;
    if (!ids || !groups) {
        resp_add_error(o, "out of memory");
        goto cleanup;
    }
    for (size_t k = 0; k < nstreams; k++) {
        size_t ki = streams_arg + k, ii = streams_arg + nstreams + k;
        struct bus_stream *s = bus_db_get(srv, a->argv[ki], a->argl[ki]);
        groups[k] = NULL;
        if (gi) {
            struct bus_group *g = s ? bus_group_get(s, a->argv[gi], a->argl[gi]) : NULL;
            if (!g) {
                resp_add_errorf(o,
                                "-NOGROUP No such key '%.*s' or consumer group '%.*s' in "
                                "XREADGROUP with GROUP option",
                                (int)strnlen(a->argv[ki], a->argl[ki]), a->argv[ki],
                                (int)strnlen(a->argv[gi], a->argl[gi]), a->argv[gi]);
                goto cleanup;
            }
            groups[k] = g;
        }
        if (a->argl[ii] == 1 && a->argv[ii][0] == '$') {
            if (xreadgroup) {
                resp_add_error(o, "The $ ID is meaningless in the context of XREADGROUP: you "
                                  "want to read the history of this consumer by specifying a "
                                  "proper ID, or use the > ID to get new messages. The $ ID "
                                  "would just return an empty result set.");
                goto cleanup;
            }
            ids[k] = s ? s->last_id : (struct bus_id){0, 0};
            continue;
        } else if (a->argl[ii] == 1 && a->argv[ii][0] == '>') {
            if (!xreadgroup) {
                resp_add_error(o, "The > ID can be specified only when calling XREADGROUP using "
                                  "the GROUP <group> <consumer> option.");
                goto cleanup;
            }
            ids[k] = BUS_ID_MAX;
            continue;
        }
        if (!parse_id(c, a->argv[ii], a->argl[ii], &ids[k], 0, true, NULL))
            goto cleanup;
    }
    if (xreadgroup && !check_writable(c))
        goto cleanup;
    if (count == 0 && bus_client_serving_blocked(c))
        count = 1000; /* Redis serves woken readers 1000 at most */
    uint64_t now = bus_now_ms(srv);
    size_t outer = 0, at = 0;
    uint64_t delivered = 0;
    for (size_t k = 0; k < nstreams; k++) {
        size_t ki = streams_arg + k;
        struct bus_stream *s = bus_db_get(srv, a->argv[ki], a->argl[ki]);
        if (!s)
            continue;
        struct bus_id gt = ids[k];
        bool serve = false, history = false;
        struct bus_consumer *cs = NULL;
        if (groups[k]) {
            struct bus_group *g = groups[k];
            if (gt.ms != UINT64_MAX || gt.seq != UINT64_MAX) {
                serve = history = true;
            } else if (s->length) {
                struct bus_id maxid;
                if (bus_stream_last(s, &maxid) && bus_id_cmp(&maxid, &g->last_id) > 0) {
                    serve = true;
                    gt = g->last_id;
                }
            }
            cs = consumer_lookup_or_create(s, g, a->argv[gi + 1], a->argl[gi + 1], now, NULL);
            if (!cs) {
                resp_add_error(o, "out of memory");
                goto cleanup;
            }
        } else if (s->length) {
            struct bus_id maxid;
            if (bus_stream_last(s, &maxid) && bus_id_cmp(&maxid, &gt) > 0)
                serve = true;
        }
        if (!serve)
            continue;
        if (++outer == 1)
            at = reserve_len(o);
        resp_add_array(o, 2);
        resp_add_bulk(o, a->argv[ki], a->argl[ki]);
        struct bus_id start = gt;
        bus_id_incr(&start);
        if (groups[k] && history) {
            delivered += read_history(o, s, groups[k], cs, &start, (size_t)count, now);
        } else if (groups[k]) {
            delivered += read_new(o, s, groups[k], cs, (size_t)count, noack, now);
        } else {
            size_t at2 = reserve_len(o);
            long long n = 0;
            for (size_t i = bus_stream_lower_bound(s, &start); i < s->n; i++) {
                struct bus_slot *sl = bus_slot_at(s, i);
                if (sl->seg & BUS_SLOT_DELETED)
                    continue;
                emit_entry(o, s, sl);
                if (++n == count)
                    break;
            }
            set_len(o, at2, n);
            delivered += (uint64_t)n;
        }
    }
    if (outer) {
        set_len(o, at, (long long)outer);
        bus_count_reads(srv, delivered);
        goto cleanup;
    }
    if (timeout != -1) {
        if (bus_block_client(c, a, streams_arg, nstreams, ids, (uint64_t)timeout) != 0)
            resp_add_error(o, "out of memory");
        goto cleanup;
    }
    resp_add_null_array(o);
cleanup:
    if (ids != idsb)
        free(ids);
    if (groups != groupsb)
        free(groups);
}

/* ---- XACK ---------------------------------------------------------------------------- */

BUS_CMD_FN(bus_cmd_xack)
{
    struct ofe_buf *o = bus_client_out(c);
    struct bus_stream *s = bus_db_get(bus_client_server(c), a->argv[1], a->argl[1]);
    struct bus_group *g = s ? bus_group_get(s, a->argv[2], a->argl[2]) : NULL;
    if (!g) {
        resp_add_int(o, 0);
        return;
    }
    size_t n = a->argc - 3;
    struct bus_id *ids = malloc(n * sizeof(*ids));
    if (!ids) {
        resp_add_error(o, "out of memory");
        return;
    }
    for (size_t j = 0; j < n; j++)
        if (!parse_id(c, a->argv[j + 3], a->argl[j + 3], &ids[j], 0, true, NULL)) {
            free(ids);
            return;
        }
    if (!check_writable(c)) {
        free(ids);
        return;
    }
    size_t k = 0;
    for (size_t j = 0; j < n; j++)
        if (bus_pel_del(g, &ids[j]))
            ids[k++] = ids[j];
    if (k)
        bus_log_pel_del(s->log, g, ids, k);
    free(ids);
    bus_count_acks(bus_client_server(c), k);
    resp_add_int(o, (long long)k);
}

/* ---- XPENDING ------------------------------------------------------------------------ */

static void reply_nogroup(struct ofe_buf *o, const struct bus_cmdctx *a, size_t ki, size_t gi)
{
    resp_add_errorf(o, "-NOGROUP No such key '%.*s' or consumer group '%.*s'",
                    (int)strnlen(a->argv[ki], a->argl[ki]), a->argv[ki],
                    (int)strnlen(a->argv[gi], a->argl[gi]), a->argv[gi]);
}

BUS_CMD_FN(bus_cmd_xpending)
{
    struct ofe_buf *o = bus_client_out(c);
    bool justinfo = a->argc == 3;
    struct bus_id start = {0, 0}, end = BUS_ID_MAX;
    long long count = 0, minidle = 0;
    size_t consumer_arg = 0;
    if (a->argc != 3 && (a->argc < 6 || a->argc > 9)) {
        resp_add_error(o, "syntax error");
        return;
    }
    if (a->argc >= 6) {
        size_t si = 3;
        if (bus_arg_is(a, 3, "idle")) {
            if (!get_ll(c, a, 4, &minidle, NULL))
                return;
            if (a->argc < 8) {
                resp_add_error(o, "syntax error");
                return;
            }
            si += 2;
        }
        if (!get_ll(c, a, si + 2, &count, NULL))
            return;
        if (count < 0)
            count = 0;
        bool sx, ex;
        if (!parse_interval(c, a->argv[si], a->argl[si], &start, &sx, 0))
            return;
        if (sx && !bus_id_incr(&start)) {
            resp_add_error(o, "invalid start ID for the interval");
            return;
        }
        if (!parse_interval(c, a->argv[si + 1], a->argl[si + 1], &end, &ex, UINT64_MAX))
            return;
        if (ex && !bus_id_decr(&end)) {
            resp_add_error(o, "invalid end ID for the interval");
            return;
        }
        if (si + 3 < a->argc)
            consumer_arg = si + 3;
    }
    struct bus_stream *s = bus_db_get(bus_client_server(c), a->argv[1], a->argl[1]);
    struct bus_group *g = s ? bus_group_get(s, a->argv[2], a->argl[2]) : NULL;
    if (!g) {
        reply_nogroup(o, a, 1, 2);
        return;
    }
    if (justinfo) {
        resp_add_array(o, 4);
        resp_add_int(o, (long long)g->pel_count);
        if (!g->pel_count) {
            resp_add_null(o);
            resp_add_null(o);
            resp_add_null_array(o);
            return;
        }
        struct bus_nack *first = bus_pel_seek(g->pel, 0, &(struct bus_id){0, 0});
        struct bus_nack *last = first;
        for (struct bus_nack *r = g->pel; r; r = r->link[0][1])
            last = r;
        reply_id(o, &first->id);
        reply_id(o, &last->id);
        struct bus_dict_ent **v = bus_dict_sorted(&g->consumers);
        size_t nc = 0;
        for (size_t i = 0; v && i < g->consumers.n; i++)
            if (((struct bus_consumer *)v[i]->val)->pel_count)
                nc++;
        resp_add_array(o, (long long)nc);
        for (size_t i = 0; v && i < g->consumers.n; i++) {
            struct bus_consumer *cs = v[i]->val;
            if (!cs->pel_count)
                continue;
            resp_add_array(o, 2);
            resp_add_bulk(o, cs->name, cs->nlen);
            resp_add_bulk_ll(o, (long long)cs->pel_count);
        }
        free(v);
        return;
    }
    struct bus_consumer *cs = NULL;
    if (consumer_arg) {
        cs = bus_consumer_get(g, a->argv[consumer_arg], a->argl[consumer_arg]);
        if (!cs) {
            resp_add_array(o, 0);
            return;
        }
    }
    int which = cs ? 1 : 0;
    struct bus_nack *root = cs ? cs->pel : g->pel;
    uint64_t now = bus_now_ms(bus_client_server(c));
    size_t at = reserve_len(o);
    long long n = 0;
    for (struct bus_nack *nk = bus_pel_seek(root, which, &start); count && nk;
         nk = bus_pel_next(root, which, nk)) {
        if (bus_id_cmp(&nk->id, &end) > 0)
            break;
        long long idle = (long long)(now - nk->delivery_time);
        if (minidle && idle < minidle)
            continue;
        n++;
        count--;
        resp_add_array(o, 4);
        reply_id(o, &nk->id);
        resp_add_bulk(o, nk->consumer->name, nk->consumer->nlen);
        resp_add_int(o, idle < 0 ? 0 : idle);
        resp_add_int(o, (long long)nk->delivery_count);
    }
    set_len(o, at, n);
}

/* ---- XCLAIM / XAUTOCLAIM ----------------------------------------------------------- */

BUS_CMD_FN(bus_cmd_xclaim)
{
    struct bus_server *srv = bus_client_server(c);
    struct ofe_buf *o = bus_client_out(c);
    struct bus_stream *s = bus_db_get(srv, a->argv[1], a->argl[1]);
    struct bus_group *g = s ? bus_group_get(s, a->argv[2], a->argl[2]) : NULL;
    long long minidle, retrycount = -1, deliverytime = -1;
    bool force = false, justid = false;
    if (!g) {
        reply_nogroup(o, a, 1, 2);
        return;
    }
    if (!get_ll(c, a, 4, &minidle, "Invalid min-idle-time argument for XCLAIM"))
        return;
    if (minidle < 0)
        minidle = 0;
    size_t j;
    struct bus_id tmp;
    for (j = 5; j < a->argc; j++)
        if (!parse_id(NULL, a->argv[j], a->argl[j], &tmp, 0, true, NULL))
            break;
    size_t last_id_arg = j - 1;
    long long now = (long long)bus_now_ms(srv);
    struct bus_id last_id = {0, 0};
    for (; j < a->argc; j++) {
        size_t more = a->argc - 1 - j;
        if (bus_arg_is(a, j, "force")) {
            force = true;
        } else if (bus_arg_is(a, j, "justid")) {
            justid = true;
        } else if (bus_arg_is(a, j, "idle") && more) {
            j++;
            if (!get_ll(c, a, j, &deliverytime, "Invalid IDLE option argument for XCLAIM"))
                return;
            deliverytime = now - deliverytime;
        } else if (bus_arg_is(a, j, "time") && more) {
            j++;
            if (!get_ll(c, a, j, &deliverytime, "Invalid TIME option argument for XCLAIM"))
                return;
        } else if (bus_arg_is(a, j, "retrycount") && more) {
            j++;
            if (!get_ll(c, a, j, &retrycount, "Invalid RETRYCOUNT option argument for XCLAIM"))
                return;
        } else if (bus_arg_is(a, j, "lastid") && more) {
            j++;
            if (!parse_id(c, a->argv[j], a->argl[j], &last_id, 0, true, NULL))
                return;
        } else {
            resp_add_errorf(o, "Unrecognized XCLAIM option '%.*s'",
                            (int)strnlen(a->argv[j], a->argl[j]), a->argv[j]);
            return;
        }
    }
    if (!check_writable(c))
        return;
    if (bus_id_cmp(&last_id, &g->last_id) > 0) {
        g->last_id = last_id;
        bus_log_group_setid(s->log, g);
    }
    if (deliverytime != -1) {
        if (deliverytime < 0 || deliverytime > now)
            deliverytime = now;
    } else {
        deliverytime = now;
    }
    struct bus_consumer *cs = NULL;
    struct pelbatch pb = {0};
    struct bus_id *gone = NULL;
    size_t ngone = 0;
    size_t at = reserve_len(o);
    long long n = 0;
    for (size_t k = 5; k <= last_id_arg; k++) {
        struct bus_id id;
        parse_id(NULL, a->argv[k], a->argl[k], &id, 0, false, NULL);
        struct bus_nack *nk = bus_pel_find(g, &id);
        if (!entry_exists(s, &id)) {
            if (nk) {
                bus_pel_del(g, &id);
                struct bus_id *ng = realloc(gone, (ngone + 1) * sizeof(*gone));
                if (ng) {
                    gone = ng;
                    gone[ngone++] = id;
                }
            }
            continue;
        }
        bool fresh = false;
        if (force && !nk)
            fresh = true;
        if (nk || fresh) {
            if (nk && minidle) {
                long long idle = now - (long long)nk->delivery_time;
                if (idle < minidle)
                    continue;
            }
            if (!cs)
                cs = consumer_lookup_or_create(s, g, a->argv[3], a->argl[3], (uint64_t)now, NULL);
            if (!cs)
                break;
            /* A NACK created by FORCE starts at 1, as Redis's does. */
            uint64_t cnt = nk ? nk->delivery_count : 1;
            if (retrycount >= 0)
                cnt = (uint64_t)retrycount;
            else if (!justid)
                cnt++;
            nk = bus_pel_set(g, &id, cs, (uint64_t)deliverytime, cnt);
            if (!nk)
                break;
            pb_push(&pb, nk);
            if (justid)
                reply_id(o, &id);
            else if (!emit_by_id(o, s, &id))
                resp_add_null(o);
            n++;
        }
    }
    set_len(o, at, n);
    if (ngone)
        bus_log_pel_del(s->log, g, gone, ngone);
    free(gone);
    pb_flush(s, cs, &pb);
}

BUS_CMD_FN(bus_cmd_xautoclaim)
{
    struct bus_server *srv = bus_client_server(c);
    struct ofe_buf *o = bus_client_out(c);
    long long minidle, count = 100;
    struct bus_id start;
    bool sx, justid = false;
    if (!get_ll(c, a, 4, &minidle, "Invalid min-idle-time argument for XAUTOCLAIM"))
        return;
    if (minidle < 0)
        minidle = 0;
    if (!parse_interval(c, a->argv[5], a->argl[5], &start, &sx, 0))
        return;
    if (sx && !bus_id_incr(&start)) {
        resp_add_error(o, "invalid start ID for the interval");
        return;
    }
    for (size_t j = 6; j < a->argc; j++) {
        size_t more = a->argc - 1 - j;
        if (bus_arg_is(a, j, "count") && more) {
            long long max = LONG_MAX / 16;
            if (!resp_str2ll(a->argv[j + 1], a->argl[j + 1], &count) || count < 1 || count > max) {
                resp_add_error(o, "COUNT must be > 0");
                return;
            }
            j++;
        } else if (bus_arg_is(a, j, "justid")) {
            justid = true;
        } else {
            resp_add_error(o, "syntax error");
            return;
        }
    }
    struct bus_stream *s = bus_db_get(srv, a->argv[1], a->argl[1]);
    struct bus_group *g = s ? bus_group_get(s, a->argv[2], a->argl[2]) : NULL;
    if (!g) {
        reply_nogroup(o, a, 1, 2);
        return;
    }
    if (!check_writable(c))
        return;
    long long attempts = count * 10;
    uint64_t now = bus_now_ms(srv);
    struct bus_consumer *cs = NULL;
    struct pelbatch pb = {0};
    struct bus_id *gone = malloc((size_t)(count < 1024 ? count : 1024) * sizeof(*gone));
    size_t ngone = 0, capgone = (size_t)(count < 1024 ? count : 1024);
    struct ofe_buf body = OFE_BUF_INIT;
    long long n = 0;
    struct bus_nack *nk = bus_pel_seek(g->pel, 0, &start);
    struct bus_id cursor = start;
    bool eof = false;
    for (;;) {
        if (!(attempts-- && count))
            break;
        nk = bus_pel_seek(g->pel, 0, &cursor);
        if (!nk) {
            eof = true;
            break;
        }
        struct bus_id id = nk->id;
        cursor = id;
        bool more_ids = bus_id_incr(&cursor);
        if (!entry_exists(s, &id)) {
            bus_pel_del(g, &id);
            if (ngone == capgone) {
                capgone = capgone ? capgone * 2 : 16;
                struct bus_id *ng = realloc(gone, capgone * sizeof(*gone));
                if (!ng)
                    break;
                gone = ng;
            }
            gone[ngone++] = id;
            count--;
            if (!more_ids) {
                eof = true;
                break;
            }
            continue;
        }
        if (minidle) {
            long long idle = (long long)(now - nk->delivery_time);
            if (idle < minidle) {
                if (!more_ids) {
                    eof = true;
                    break;
                }
                continue;
            }
        }
        if (!cs)
            cs = consumer_lookup_or_create(s, g, a->argv[3], a->argl[3], now, NULL);
        if (!cs)
            break;
        nk = bus_pel_set(g, &id, cs, now, nk->delivery_count + (justid ? 0 : 1));
        if (!nk)
            break;
        pb_push(&pb, nk);
        if (justid)
            reply_id(&body, &id);
        else if (!emit_by_id(&body, s, &id))
            resp_add_null(&body);
        n++;
        count--;
        if (!more_ids) {
            eof = true;
            break;
        }
    }
    /* The cursor for the next call: the next pending entry, or 0-0. */
    struct bus_nack *next = eof ? NULL : bus_pel_seek(g->pel, 0, &cursor);
    struct bus_id endid = next ? next->id : (struct bus_id){0, 0};
    resp_add_array(o, 3);
    reply_id(o, &endid);
    resp_add_array(o, n);
    ofe_buf_append(o, body.data ? body.data : "", body.len);
    resp_add_array(o, (long long)ngone);
    for (size_t i = 0; i < ngone; i++)
        reply_id(o, &gone[i]);
    ofe_buf_fini(&body);
    if (ngone)
        bus_log_pel_del(s->log, g, gone, ngone);
    free(gone);
    pb_flush(s, cs, &pb);
}

/* ---- XGROUP ------------------------------------------------------------------------ */

BUS_CMD_FN(bus_cmd_xgroup)
{
    (void)a;
    bus_reply_arity(c, "xgroup");
}

static const char ERR_NEEDKEY[] =
    "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use "
    "the MKSTREAM option to create an empty stream automatically.";

/* Common part: key and group lookups. Returns false after a reply. */
static bool xgroup_prelude(struct bus_client *c, struct bus_cmdctx *a, bool mkstream,
                           bool need_group, struct bus_stream **sp, struct bus_group **gp)
{
    struct ofe_buf *o = bus_client_out(c);
    struct bus_stream *s = bus_db_get(bus_client_server(c), a->argv[2], a->argl[2]);
    if (!s && !mkstream) {
        resp_add_error(o, ERR_NEEDKEY);
        return false;
    }
    struct bus_group *g = s ? bus_group_get(s, a->argv[3], a->argl[3]) : NULL;
    if (!g && need_group) {
        resp_add_errorf(o, "-NOGROUP No such consumer group '%.*s' for key name '%.*s'",
                        (int)strnlen(a->argv[3], a->argl[3]), a->argv[3],
                        (int)strnlen(a->argv[2], a->argl[2]), a->argv[2]);
        return false;
    }
    *sp = s;
    *gp = g;
    return true;
}

static void syntax_sub(struct bus_client *c, const struct bus_cmdctx *a, const char *cmd)
{
    resp_add_errorf(bus_client_out(c),
                    "unknown subcommand or wrong number of arguments for '%.*s'. Try %s HELP.",
                    (int)(a->argl[1] < 128 ? a->argl[1] : 128), a->argv[1], cmd);
}

BUS_CMD_FN(bus_cmd_xgroup_create)
{
    struct bus_server *srv = bus_client_server(c);
    struct ofe_buf *o = bus_client_out(c);
    bool mkstream = false;
    long long entries_read = BUS_ENTRIES_READ_INVALID;
    for (size_t i = 5; i < a->argc;) {
        if (bus_arg_is(a, i, "mkstream")) {
            mkstream = true;
            i++;
        } else if (bus_arg_is(a, i, "entriesread") && i + 1 < a->argc) {
            if (!get_ll(c, a, i + 1, &entries_read, NULL))
                return;
            if (entries_read < 0 && entries_read != BUS_ENTRIES_READ_INVALID) {
                resp_add_error(o, "value for ENTRIESREAD must be positive or -1");
                return;
            }
            i += 2;
        } else {
            syntax_sub(c, a, "XGROUP");
            return;
        }
    }
    struct bus_stream *s;
    struct bus_group *g;
    if (!xgroup_prelude(c, a, mkstream, false, &s, &g))
        return;
    if (a->argc > 8) {
        syntax_sub(c, a, "XGROUP");
        return;
    }
    struct bus_id id;
    if (a->argl[4] == 1 && a->argv[4][0] == '$') {
        id = s ? s->last_id : (struct bus_id){0, 0};
    } else if (!parse_id(c, a->argv[4], a->argl[4], &id, 0, true, NULL)) {
        return;
    }
    if (g) {
        resp_add_error(o, "-BUSYGROUP Consumer Group name already exists");
        return;
    }
    if (!check_writable(c))
        return;
    if (!s && !(s = bus_db_create(srv, c, a->argv[2], a->argl[2])))
        return;
    g = bus_group_create(s, a->argv[3], a->argl[3], &id, entries_read, 0);
    if (!g) {
        resp_add_error(o, "out of memory");
        return;
    }
    bus_log_group_create(s->log, g);
    bus_group_metric_add(srv, g);
    resp_add_simple(o, "OK");
}

BUS_CMD_FN(bus_cmd_xgroup_setid)
{
    struct ofe_buf *o = bus_client_out(c);
    long long entries_read = BUS_ENTRIES_READ_INVALID;
    for (size_t i = 5; i < a->argc;) {
        if (bus_arg_is(a, i, "entriesread") && i + 1 < a->argc) {
            if (!get_ll(c, a, i + 1, &entries_read, NULL))
                return;
            if (entries_read < 0 && entries_read != BUS_ENTRIES_READ_INVALID) {
                resp_add_error(o, "value for ENTRIESREAD must be positive or -1");
                return;
            }
            i += 2;
        } else {
            syntax_sub(c, a, "XGROUP");
            return;
        }
    }
    struct bus_stream *s;
    struct bus_group *g;
    if (!xgroup_prelude(c, a, false, true, &s, &g))
        return;
    if (a->argc != 5 && a->argc != 7) {
        syntax_sub(c, a, "XGROUP");
        return;
    }
    struct bus_id id;
    if (a->argl[4] == 1 && a->argv[4][0] == '$')
        id = s->last_id;
    else if (!parse_id(c, a->argv[4], a->argl[4], &id, 0, false, NULL))
        return;
    if (!check_writable(c))
        return;
    g->last_id = id;
    g->entries_read = entries_read;
    bus_log_group_setid(s->log, g);
    resp_add_simple(o, "OK");
}

BUS_CMD_FN(bus_cmd_xgroup_destroy)
{
    struct bus_server *srv = bus_client_server(c);
    struct bus_stream *s;
    struct bus_group *g;
    if (!xgroup_prelude(c, a, false, false, &s, &g))
        return;
    if (!g) {
        resp_add_int(bus_client_out(c), 0);
        return;
    }
    if (!check_writable(c))
        return;
    bus_log_group_destroy(s->log, g);
    bus_group_metric_del(srv, g);
    bus_group_destroy(s, g);
    resp_add_int(bus_client_out(c), 1);
    bus_signal_ready(srv, s); /* blocked XREADGROUP get -NOGROUP */
}

BUS_CMD_FN(bus_cmd_xgroup_createconsumer)
{
    struct bus_stream *s;
    struct bus_group *g;
    if (!xgroup_prelude(c, a, false, true, &s, &g))
        return;
    if (!check_writable(c))
        return;
    bool created = false;
    if (!bus_consumer_get(g, a->argv[4], a->argl[4])) {
        struct bus_consumer *cs =
            bus_consumer_create(g, a->argv[4], a->argl[4], bus_now_ms(bus_client_server(c)), 0);
        if (cs) {
            bus_log_consumer_create(s->log, cs);
            created = true;
        }
    }
    resp_add_int(bus_client_out(c), created ? 1 : 0);
}

BUS_CMD_FN(bus_cmd_xgroup_delconsumer)
{
    struct bus_stream *s;
    struct bus_group *g;
    if (!xgroup_prelude(c, a, false, true, &s, &g))
        return;
    if (!check_writable(c))
        return;
    struct bus_consumer *cs = bus_consumer_get(g, a->argv[4], a->argl[4]);
    long long pending = 0;
    if (cs) {
        bus_log_consumer_delete(s->log, cs);
        pending = (long long)bus_consumer_delete(g, cs);
    }
    resp_add_int(bus_client_out(c), pending);
}

BUS_CMD_FN(bus_cmd_xgroup_help)
{
    (void)a;
    static const char *const lines[] = {
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
        NULL};
    bus_reply_help(c, "XGROUP", lines);
}

/* ---- XINFO ------------------------------------------------------------------------- */

BUS_CMD_FN(bus_cmd_xinfo)
{
    (void)a;
    bus_reply_arity(c, "xinfo");
}

static struct bus_stream *xinfo_key(struct bus_client *c, struct bus_cmdctx *a)
{
    struct bus_stream *s = bus_db_get(bus_client_server(c), a->argv[2], a->argl[2]);
    if (!s)
        resp_add_error(bus_client_out(c), "no such key");
    return s;
}

static void reply_lag(struct ofe_buf *o, const struct bus_stream *s, const struct bus_group *g)
{
    int64_t lag;
    if (bus_group_lag(s, g, &lag))
        resp_add_int(o, lag);
    else
        resp_add_null(o);
}

static void reply_entries_read(struct ofe_buf *o, const struct bus_group *g)
{
    if (g->entries_read != BUS_ENTRIES_READ_INVALID)
        resp_add_int(o, g->entries_read);
    else
        resp_add_null(o);
}

BUS_CMD_FN(bus_cmd_xinfo_stream)
{
    struct ofe_buf *o = bus_client_out(c);
    struct bus_stream *s = xinfo_key(c, a);
    if (!s)
        return;
    bool full = true;
    long long count = 10;
    size_t argc = a->argc - 3;
    if (argc == 0) {
        full = false;
    } else {
        if ((argc != 1 && argc != 3) || !bus_arg_is(a, 3, "full")) {
            syntax_sub(c, a, "XINFO");
            return;
        }
        if (argc == 3) {
            if (!bus_arg_is(a, 4, "count")) {
                syntax_sub(c, a, "XINFO");
                return;
            }
            if (!get_ll(c, a, 5, &count, NULL))
                return;
            if (count < 0)
                count = 10;
        }
    }
    size_t nodes = bus_stream_nodes(s);
    resp_add_array(o, full ? 18 : 20);
    resp_add_bulk_str(o, "length");
    resp_add_int(o, (long long)s->length);
    resp_add_bulk_str(o, "radix-tree-keys");
    resp_add_int(o, (long long)nodes);
    resp_add_bulk_str(o, "radix-tree-nodes");
    resp_add_int(o, (long long)nodes + 1);
    resp_add_bulk_str(o, "last-generated-id");
    reply_id(o, &s->last_id);
    resp_add_bulk_str(o, "max-deleted-entry-id");
    reply_id(o, &s->max_deleted);
    resp_add_bulk_str(o, "entries-added");
    resp_add_int(o, (long long)s->entries_added);
    resp_add_bulk_str(o, "recorded-first-entry-id");
    reply_id(o, &s->first_id);
    if (!full) {
        resp_add_bulk_str(o, "groups");
        resp_add_int(o, (long long)s->groups.n);
        struct bus_id first, last;
        resp_add_bulk_str(o, "first-entry");
        if (bus_stream_first(s, &first))
            emit_by_id(o, s, &first);
        else
            resp_add_null(o);
        resp_add_bulk_str(o, "last-entry");
        if (bus_stream_last(s, &last))
            emit_by_id(o, s, &last);
        else
            resp_add_null(o);
        return;
    }
    resp_add_bulk_str(o, "entries");
    size_t at = reserve_len(o);
    long long n = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct bus_slot *sl = bus_slot_at(s, i);
        if (sl->seg & BUS_SLOT_DELETED)
            continue;
        emit_entry(o, s, sl);
        if (++n == count)
            break;
    }
    set_len(o, at, n);
    resp_add_bulk_str(o, "groups");
    struct bus_dict_ent **gv = bus_dict_sorted(&s->groups);
    resp_add_array(o, (long long)s->groups.n);
    for (size_t gi = 0; gv && gi < s->groups.n; gi++) {
        struct bus_group *g = gv[gi]->val;
        resp_add_array(o, 14);
        resp_add_bulk_str(o, "name");
        resp_add_bulk(o, g->name, g->nlen);
        resp_add_bulk_str(o, "last-delivered-id");
        reply_id(o, &g->last_id);
        resp_add_bulk_str(o, "entries-read");
        reply_entries_read(o, g);
        resp_add_bulk_str(o, "lag");
        reply_lag(o, s, g);
        resp_add_bulk_str(o, "pel-count");
        resp_add_int(o, (long long)g->pel_count);
        resp_add_bulk_str(o, "pending");
        size_t pat = reserve_len(o);
        long long pn = 0;
        for (struct bus_nack *nk = bus_pel_seek(g->pel, 0, &(struct bus_id){0, 0});
             nk && (!count || pn < count); nk = bus_pel_next(g->pel, 0, nk)) {
            resp_add_array(o, 4);
            reply_id(o, &nk->id);
            resp_add_bulk(o, nk->consumer->name, nk->consumer->nlen);
            resp_add_int(o, (long long)nk->delivery_time);
            resp_add_int(o, (long long)nk->delivery_count);
            pn++;
        }
        set_len(o, pat, pn);
        resp_add_bulk_str(o, "consumers");
        struct bus_dict_ent **cv = bus_dict_sorted(&g->consumers);
        resp_add_array(o, (long long)g->consumers.n);
        for (size_t ci = 0; cv && ci < g->consumers.n; ci++) {
            struct bus_consumer *cs = cv[ci]->val;
            resp_add_array(o, 8);
            resp_add_bulk_str(o, "name");
            resp_add_bulk(o, cs->name, cs->nlen);
            resp_add_bulk_str(o, "seen-time");
            resp_add_int(o, (long long)cs->seen_time);
            resp_add_bulk_str(o, "pel-count");
            resp_add_int(o, (long long)cs->pel_count);
            resp_add_bulk_str(o, "pending");
            size_t cat = reserve_len(o);
            long long cn = 0;
            for (struct bus_nack *nk = bus_pel_seek(cs->pel, 1, &(struct bus_id){0, 0});
                 nk && (!count || cn < count); nk = bus_pel_next(cs->pel, 1, nk)) {
                resp_add_array(o, 3);
                reply_id(o, &nk->id);
                resp_add_int(o, (long long)nk->delivery_time);
                resp_add_int(o, (long long)nk->delivery_count);
                cn++;
            }
            set_len(o, cat, cn);
        }
        free(cv);
    }
    free(gv);
}

BUS_CMD_FN(bus_cmd_xinfo_groups)
{
    struct ofe_buf *o = bus_client_out(c);
    struct bus_stream *s = xinfo_key(c, a);
    if (!s)
        return;
    struct bus_dict_ent **gv = bus_dict_sorted(&s->groups);
    resp_add_array(o, (long long)s->groups.n);
    for (size_t gi = 0; gv && gi < s->groups.n; gi++) {
        struct bus_group *g = gv[gi]->val;
        resp_add_array(o, 12);
        resp_add_bulk_str(o, "name");
        resp_add_bulk(o, g->name, g->nlen);
        resp_add_bulk_str(o, "consumers");
        resp_add_int(o, (long long)g->consumers.n);
        resp_add_bulk_str(o, "pending");
        resp_add_int(o, (long long)g->pel_count);
        resp_add_bulk_str(o, "last-delivered-id");
        reply_id(o, &g->last_id);
        resp_add_bulk_str(o, "entries-read");
        reply_entries_read(o, g);
        resp_add_bulk_str(o, "lag");
        reply_lag(o, s, g);
    }
    free(gv);
}

BUS_CMD_FN(bus_cmd_xinfo_consumers)
{
    struct ofe_buf *o = bus_client_out(c);
    struct bus_stream *s = xinfo_key(c, a);
    if (!s)
        return;
    struct bus_group *g = bus_group_get(s, a->argv[3], a->argl[3]);
    if (!g) {
        resp_add_errorf(o, "-NOGROUP No such consumer group '%.*s' for key name '%.*s'",
                        (int)strnlen(a->argv[3], a->argl[3]), a->argv[3],
                        (int)strnlen(a->argv[2], a->argl[2]), a->argv[2]);
        return;
    }
    uint64_t now = bus_now_ms(bus_client_server(c));
    struct bus_dict_ent **cv = bus_dict_sorted(&g->consumers);
    resp_add_array(o, (long long)g->consumers.n);
    for (size_t ci = 0; cv && ci < g->consumers.n; ci++) {
        struct bus_consumer *cs = cv[ci]->val;
        long long idle = (long long)(now - cs->seen_time);
        resp_add_array(o, 6);
        resp_add_bulk_str(o, "name");
        resp_add_bulk(o, cs->name, cs->nlen);
        resp_add_bulk_str(o, "pending");
        resp_add_int(o, (long long)cs->pel_count);
        resp_add_bulk_str(o, "idle");
        resp_add_int(o, idle < 0 ? 0 : idle);
    }
    free(cv);
}

BUS_CMD_FN(bus_cmd_xinfo_help)
{
    (void)a;
    static const char *const lines[] = {"CONSUMERS <key> <groupname>",
                                        "    Show consumers of <groupname>.",
                                        "GROUPS <key>",
                                        "    Show the stream consumer groups.",
                                        "STREAM <key> [FULL [COUNT <count>]",
                                        "    Show information about the stream.",
                                        NULL};
    bus_reply_help(c, "XINFO", lines);
}
