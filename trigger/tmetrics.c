/* The trigger's metric series (reference: docs/trigger.md "Metrics").
 * Series are looked up once when a trigger starts; hot paths keep the
 * pointers. Labels: trigger="namespace/name", and subscriber or input. */
#include "trigger.h"

void trg_metrics_trigger(struct trg_trigger *t)
{
    struct ofe_metrics *m = trg__metrics(t->rt);
    const char *l[] = {"trigger", t->id, NULL};
    t->m_invalid = ofe_metrics_counter(m, "ofe_trigger_invalid_total",
                                       "Bus messages that were not valid CloudEvents", l);
    t->m_invalid_dropped = ofe_metrics_counter(
        m, "ofe_trigger_invalid_dropped_total",
        "Invalid bus messages dropped because no subscriber has a dead letter", l);
    t->m_acked = ofe_metrics_counter(
        m, "ofe_trigger_acked_total",
        "Bus messages acknowledged (every matching subscriber delivered, dead-lettered or "
        "dropped them)",
        l);
    t->m_nacked = ofe_metrics_counter(
        m, "ofe_trigger_redelivered_total",
        "Bus messages given back to be delivered again after a transient failure", l);
    t->m_held = ofe_metrics_gauge(m, "ofe_trigger_messages_inflight",
                                  "Bus messages held: delivered by the bus, not yet acked", l);
    for (size_t i = 0; i < t->ninputs; i++) {
        const char *li[] = {"trigger", t->id, "input", t->inputs[i].name, NULL};
        t->inputs[i].received = ofe_metrics_counter(m, "ofe_trigger_input_events_total",
                                                    "Events arrived per input", li);
    }
}

/* Finer than the registry's default around the milliseconds a local sink
 * answers in. */
static const double latency_bounds[] = {
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01,
    0.025,  0.05,    0.1,    0.25,    0.5,   1,      2.5,   5,     10,    30,    60};

void trg_metrics_subscriber(struct trg_subscriber *s)
{
    struct ofe_metrics *m = trg__metrics(s->t->rt);
    const char *l[] = {"trigger", s->t->id, "subscriber", s->name, NULL};
    struct trg_sub_metrics *x = &s->m;
    x->received = ofe_metrics_counter(m, "ofe_trigger_received_total",
                                      "Events considered by the subscriber", l);
    x->filtered = ofe_metrics_counter(m, "ofe_trigger_filtered_total",
                                      "Events the subscriber's filter or filters rejected", l);
    x->cond_false = ofe_metrics_counter(
        m, "ofe_trigger_condition_false_total",
        "Events that passed the filters while the subscriber's condition did not hold", l);
    x->delivered =
        ofe_metrics_counter(m, "ofe_trigger_delivered_total", "Events the sink accepted (2xx)", l);
    x->retried =
        ofe_metrics_counter(m, "ofe_trigger_retried_total", "Delivery attempts retried", l);
    x->deadlettered =
        ofe_metrics_counter(m, "ofe_trigger_deadlettered_total",
                            "Events that failed every attempt and reached a dead letter", l);
    x->dropped = ofe_metrics_counter(
        m, "ofe_trigger_dropped_total",
        "Events given up (no dead letter, or refused by every dead letter or by the bus); "
        "each is logged",
        l);
    x->republished = ofe_metrics_counter(m, "ofe_trigger_republished_total",
                                         "Events re-published to the subscriber's topic", l);
    x->replies = ofe_metrics_counter(m, "ofe_trigger_replies_total",
                                     "Reply events published to the replyTopic", l);
    x->loop_guard = ofe_metrics_counter(
        m, "ofe_trigger_loop_guard_total",
        "Events or replies not put on the bus because their ofettl was exhausted", l);
    x->filter_errors =
        ofe_metrics_counter(m, "ofe_trigger_filter_errors_total",
                            "CESQL evaluations that raised an error (the event did not match)", l);
    x->inflight = ofe_metrics_gauge(m, "ofe_trigger_inflight",
                                    "Deliveries in progress (at most the concurrency)", l);
    x->queued = ofe_metrics_gauge(m, "ofe_trigger_queued",
                                  "Deliveries waiting for a concurrency slot or their key", l);
    x->latency = ofe_metrics_histogram(
        m, "ofe_trigger_delivery_latency_seconds",
        "From the arrival of the bus message to the sink's 2xx, retries included", l,
        latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
}

void trg_metrics_forget(struct ofe_metrics *m, const char *trigger_id)
{
    if (m)
        ofe_metrics_remove_by_label(m, "trigger", trigger_id);
}
