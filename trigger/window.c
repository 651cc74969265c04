/* Condition windows (OpenFunction's semantics): an input is true for the
 * trigger's conditionWindow after its last event arrived here, and the
 * conditions are evaluated when an event arrives. The state is this
 * process's: replicas of a trigger each see their share of the events and
 * keep their own windows (docs/trigger.md). */
#include <string.h>

#include "trigger.h"

void trg_window_mark(struct trg_trigger *t, const char *topic, uint64_t now_ns)
{
    for (size_t i = 0; i < t->ninputs; i++) {
        struct trg_input *in = &t->inputs[i];
        if (strcmp(in->topic, topic))
            continue;
        /* Keep the latest arrival when two threads race. */
        uint64_t cur = atomic_load(&in->last_ns);
        while (cur < now_ns && !atomic_compare_exchange_weak(&in->last_ns, &cur, now_ns))
            ;
        ofe_counter_inc(in->received);
    }
}

struct wctx {
    const struct trg_trigger *t;
    uint64_t now;
};

static bool input_true(void *arg, size_t i)
{
    const struct wctx *w = arg;
    if (i >= w->t->ninputs)
        return false;
    uint64_t last = atomic_load(&((struct trg_input *)&w->t->inputs[i])->last_ns);
    if (!last)
        return false;
    return last >= w->now || w->now - last <= w->t->window_ns;
}

bool trg_window_holds(const struct trg_trigger *t, const struct ofe_condition *c, uint64_t now_ns)
{
    struct wctx w = {t, now_ns};
    return ofe_condition_eval(c, input_true, &w);
}
