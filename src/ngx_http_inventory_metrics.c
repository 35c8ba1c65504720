/*
 * Metrics: counters kept in the shared zone by every worker, and the
 * Prometheus text exposition (format 0.0.4) of them and of the store.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_METRICS_MAX  65536


static ngx_uint_t ngx_http_inventory_status_index(ngx_uint_t status);
static u_char *ngx_http_inventory_metric(u_char *p, u_char *last,
    const char *name, const char *type, const char *help, uint64_t value);
static u_char *ngx_http_inventory_metrics_requests(u_char *p, u_char *last,
    ngx_http_inventory_shctx_t *sh);
static u_char *ngx_http_inventory_metrics_latency(u_char *p, u_char *last,
    ngx_http_inventory_shctx_t *sh);
static u_char *ngx_http_inventory_metrics_replication(u_char *p,
    u_char *last, ngx_http_inventory_main_conf_t *imcf);


static ngx_uint_t  ngx_http_inventory_statuses[NGX_HTTP_INVENTORY_STATUSES] = {
    200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 410, 412, 413, 415, 422,
    429, 500, 503, 507, 0
};


/* upper bounds of the duration buckets, in ms; the last one is +Inf */
static ngx_msec_t  ngx_http_inventory_latency_le[NGX_HTTP_INVENTORY_LATENCIES]
    = { 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30000, 0 };

static const char  *ngx_http_inventory_latency_names[] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "5", "30", "+Inf"
};


static ngx_uint_t
ngx_http_inventory_status_index(ngx_uint_t status)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_INVENTORY_STATUSES - 1; i++) {
        if (ngx_http_inventory_statuses[i] == status) {
            return i;
        }
    }

    return NGX_HTTP_INVENTORY_STATUSES - 1;
}


/*
 * Log phase: every request a location of the module served, whatever
 * answered it (the module, or nginx itself: a 413 for a body too large, a
 * 429 from limit_req), by route and status, and its duration.
 */

ngx_int_t
ngx_http_inventory_metrics_log(ngx_http_request_t *r)
{
    ngx_int_t                         ms;
    ngx_uint_t                        route, status, b;
    ngx_time_t                       *tp;
    ngx_http_inventory_ctx_t         *ctx;
    ngx_http_inventory_shctx_t       *sh;
    ngx_http_inventory_main_conf_t   *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);
    sh = imcf->sh;

    if (sh == NULL) {
        return NGX_OK;
    }

    /* made in the preaccess phase, or not yet: a 413 comes before it */
    ctx = ngx_http_inventory_saved_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_inventory_location_ctx(r);

        if (ctx == NULL) {
            return NGX_OK;
        }
    }

    route = ctx->route;

    /* as $status has it */
    if (r->err_status) {
        status = r->err_status;

    } else {
        status = r->headers_out.status;
    }

    tp = ngx_timeofday();
    ms = (ngx_int_t) ((tp->sec - r->start_sec) * 1000
                      + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    for (b = 0; b < NGX_HTTP_INVENTORY_LATENCIES - 1; b++) {
        if ((ngx_msec_t) ms <= ngx_http_inventory_latency_le[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(
               &sh->requests[route][ngx_http_inventory_status_index(status)],
               1);
    (void) ngx_atomic_fetch_add(&sh->latency[route][b], 1);
    (void) ngx_atomic_fetch_add(&sh->latency_ms[route], ms);

    return NGX_OK;
}


ngx_int_t
ngx_http_inventory_metrics_handler(ngx_http_request_t *r)
{
    u_char                           *p, *last;
    ngx_int_t                         rc;
    ngx_str_t                         allow;
    uint64_t                          now, overdue;
    ngx_uint_t                        i;
    ngx_atomic_uint_t                 n;
    ngx_http_inventory_buf_t          body;
    ngx_http_inventory_shctx_t       *sh;
    ngx_http_inventory_store_stat_t   stat;
    ngx_http_inventory_main_conf_t   *imcf;
    const ngx_http_inventory_route_t *rt;
    static ngx_str_t                  type =
        ngx_string("text/plain; version=0.0.4");

    rt = ngx_http_inventory_route_get(NGX_HTTP_INVENTORY_ROUTE_METRICS);

    if (!(ngx_http_inventory_method(r) & rt->methods)) {
        allow.data = (u_char *) rt->allow;
        allow.len = ngx_strlen(rt->allow);
        return ngx_http_inventory_not_allowed(r, &allow);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);
    sh = imcf->sh;

    p = ngx_pnalloc(r->pool, NGX_HTTP_INVENTORY_METRICS_MAX);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = p;
    last = p + NGX_HTTP_INVENTORY_METRICS_MAX;

    if (sh) {
        p = ngx_http_inventory_metrics_requests(p, last, sh);
        p = ngx_http_inventory_metrics_latency(p, last, sh);
    }

    if (sh) {
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_events_appended_total",
                                      "counter", "Events appended to the log.",
                                      sh->events);
        p = ngx_http_inventory_metric(p, last, "inventory_transactions_total",
                                      "counter",
                                      "LMDB write transactions committed.",
                                      sh->transactions);
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_reservations_expired_total",
                                      "counter",
                                      "Reservations expired by the module.",
                                      sh->expired);
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_reservations_purged_total",
                                      "counter",
                                      "Ended reservations purged after "
                                      "inventory_reservation_retention.",
                                      sh->purged);
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_idempotent_replays_total",
                                      "counter",
                                      "Requests answered from an "
                                      "idempotency record.",
                                      sh->replays);
        /* batch b holds sizes 2^b .. 2^(b+1)-1: cumulative "le" buckets */
        p = ngx_slprintf(p, last,
                         "# HELP inventory_commit_batch_size Commands per "
                         "group-commit transaction.\n"
                         "# TYPE inventory_commit_batch_size histogram\n");

        for (i = 0, n = 0; i < 8; i++) {
            n += sh->batches[i];

            if (i < 7) {
                p = ngx_slprintf(p, last,
                                 "inventory_commit_batch_size_bucket"
                                 "{le=\"%ui\"} %uA\n",
                                 ((ngx_uint_t) 2 << i) - 1, n);

            } else {
                p = ngx_slprintf(p, last,
                                 "inventory_commit_batch_size_bucket"
                                 "{le=\"+Inf\"} %uA\n"
                                 "inventory_commit_batch_size_sum %uA\n"
                                 "inventory_commit_batch_size_count %uA\n",
                                 n, sh->commands, sh->transactions);
            }
        }

        p = ngx_http_inventory_metric(p, last, "inventory_commands_total",
                                      "counter",
                                      "Write commands applied in committed "
                                      "transactions.",
                                      sh->commands);
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_write_errors_total",
                                      "counter",
                                      "Write transactions that failed with "
                                      "a storage error.",
                                      sh->write_errors);
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_commit_slots_used",
                                      "gauge",
                                      "Writes in the shared zone waiting "
                                      "for, in, or answered from a group "
                                      "commit.",
                              ngx_http_inventory_commit_slots_used(sh->commit));
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_commit_overflow_total",
                                      "counter",
                                      "Writes committed in their worker's "
                                      "own batch: the shared zone had no "
                                      "room for them.",
                                      sh->commit_overflow);
    }

    if (imcf->store
        && ngx_http_inventory_store_stat(imcf->store, &stat) == 0)
    {
        p = ngx_http_inventory_metric(p, last, "inventory_store_map_size_bytes",
                                      "gauge", "LMDB map size.",
                                      stat.map_size);
        p = ngx_http_inventory_metric(p, last, "inventory_store_used_bytes",
                                      "gauge", "LMDB pages in use, in bytes.",
                                      stat.used);
        p = ngx_http_inventory_metric(p, last, "inventory_store_readers",
                                      "gauge", "LMDB reader slots in use.",
                                      stat.readers);
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_store_max_readers",
                                      "gauge", "LMDB reader slots.",
                                      stat.max_readers);
        p = ngx_http_inventory_metric(p, last,
                                      "inventory_reservations_active",
                                      "gauge",
                                      "Reservations neither committed, "
                                      "released nor expired.",
                                      stat.reservations_active);
        now = ngx_http_inventory_clock_now();
        overdue = stat.next_expiry && stat.next_expiry < now
                  ? now - stat.next_expiry : 0;
        p = ngx_slprintf(p, last,
                         "# HELP inventory_reservations_overdue_seconds How "
                         "long the earliest active reservation is past its "
                         "expiry: the sweep's delay (0: none is due).\n"
                         "# TYPE inventory_reservations_overdue_seconds "
                         "gauge\n"
                         "inventory_reservations_overdue_seconds "
                         "%uL.%03uL\n", overdue / 1000, overdue % 1000);
        p = ngx_http_inventory_metric(p, last, "inventory_last_seq", "gauge",
                                      "Sequence number of the last event.",
                                      stat.last_seq);
    }

    if (sh) {
        p = ngx_http_inventory_metrics_replication(p, last, imcf);
    }

    body.len = p - body.data;
    body.failed = 0;

    return ngx_http_inventory_send(r, NGX_HTTP_OK, &type, &body, 0);
}


/* by route and status, and the conflicts among them */

static u_char *
ngx_http_inventory_metrics_requests(u_char *p, u_char *last,
    ngx_http_inventory_shctx_t *sh)
{
    ngx_uint_t         route, i, status;
    ngx_atomic_uint_t  n, conflicts[2];

    p = ngx_slprintf(p, last,
                     "# HELP inventory_requests_total API requests by route "
                     "and response status.\n"
                     "# TYPE inventory_requests_total counter\n");

    conflicts[0] = 0;
    conflicts[1] = 0;

    for (route = 0; route < NGX_HTTP_INVENTORY_ROUTE_LAST; route++) {
        for (i = 0; i < NGX_HTTP_INVENTORY_STATUSES; i++) {
            n = sh->requests[route][i];
            status = ngx_http_inventory_statuses[i];

            if (n == 0) {
                continue;
            }

            if (status == 409 || status == 412) {
                conflicts[status == 412] += n;
            }

            p = ngx_slprintf(p, last,
                             "inventory_requests_total{route=\"%s\","
                             "status=\"",
                             ngx_http_inventory_route_get(route)->name);

            p = status ? ngx_slprintf(p, last, "%ui", status)
                       : ngx_slprintf(p, last, "other");

            p = ngx_slprintf(p, last, "\"} %uA\n", n);
        }
    }

    return ngx_slprintf(p, last,
                        "# HELP inventory_conflicts_total Requests refused "
                        "by the state of the store: 409 (stock, reservation "
                        "state, idempotency key in use) and 412 (If-Match)."
                        "\n"
                        "# TYPE inventory_conflicts_total counter\n"
                        "inventory_conflicts_total{status=\"409\"} %uA\n"
                        "inventory_conflicts_total{status=\"412\"} %uA\n",
                        conflicts[0], conflicts[1]);
}


static u_char *
ngx_http_inventory_metrics_latency(u_char *p, u_char *last,
    ngx_http_inventory_shctx_t *sh)
{
    ngx_uint_t         route, b;
    ngx_atomic_uint_t  n;

    p = ngx_slprintf(p, last,
                     "# HELP inventory_request_duration_seconds Time from "
                     "the first byte of a request to its log entry, by "
                     "route.\n"
                     "# TYPE inventory_request_duration_seconds histogram\n");

    for (route = 0; route < NGX_HTTP_INVENTORY_ROUTE_LAST; route++) {
        n = 0;

        for (b = 0; b < NGX_HTTP_INVENTORY_LATENCIES; b++) {
            n += sh->latency[route][b];
        }

        if (n == 0) {
            continue;
        }

        n = 0;

        for (b = 0; b < NGX_HTTP_INVENTORY_LATENCIES; b++) {
            n += sh->latency[route][b];

            p = ngx_slprintf(p, last,
                             "inventory_request_duration_seconds_bucket"
                             "{route=\"%s\",le=\"%s\"} %uA\n",
                             ngx_http_inventory_route_get(route)->name,
                             ngx_http_inventory_latency_names[b], n);
        }

        p = ngx_slprintf(p, last,
                         "inventory_request_duration_seconds_sum"
                         "{route=\"%s\"} %uA.%03uA\n"
                         "inventory_request_duration_seconds_count"
                         "{route=\"%s\"} %uA\n",
                         ngx_http_inventory_route_get(route)->name,
                         sh->latency_ms[route] / 1000,
                         sh->latency_ms[route] % 1000,
                         ngx_http_inventory_route_get(route)->name, n);
    }

    return p;
}


/*
 * The stream this node serves, and on a follower what it applied.  The
 * lag buckets are the first ten of the request durations' (1 ms to 1 s),
 * then +Inf.
 */

static u_char *
ngx_http_inventory_metrics_replication(u_char *p, u_char *last,
    ngx_http_inventory_main_conf_t *imcf)
{
    ngx_uint_t                          b;
    ngx_atomic_uint_t                   n;
    ngx_http_inventory_repl_sh_t       *rsh;
    ngx_http_inventory_follow_status_t  fs;

    rsh = &imcf->sh->repl;

    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_served_"
                                  "transactions_total", "counter",
                                  "Transactions sent to followers.",
                                  rsh->served_transactions);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_served_"
                                  "snapshots_total", "counter",
                                  "Snapshots sent to new followers.",
                                  rsh->served_snapshots);
    p = ngx_http_inventory_metric(p, last, "inventory_replication_followers",
                                  "gauge",
                                  "Followers that asked for transactions "
                                  "in the last 25 s.",
                                  ngx_http_inventory_sync_followers(imcf));
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_sync_replicas",
                                  "gauge",
                                  "Followers a write's answer waits for.",
                                  imcf->role_follower
                                  ? 0 : imcf->sync_replicas);
    p = ngx_http_inventory_metric(p, last, "inventory_cluster_elections_total",
                                  "counter",
                                  "Elections this node won "
                                  "(inventory_cluster).",
                                  imcf->sh->cluster.elections);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_cluster_etcd_errors_total",
                                  "counter",
                                  "Calls to etcd that failed "
                                  "(inventory_cluster).",
                                  imcf->sh->cluster.etcd_errors);
    p = ngx_http_inventory_metric(p, last, "inventory_cluster_writable",
                                  "gauge",
                                  "1 while this node answers writes 2xx.",
                                  imcf->role_follower
                                  ? 0
                                  : ngx_http_inventory_role_writable(
                                                                   imcf));
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_sync_waits_total",
                                  "counter",
                                  "Write answers that waited for sync "
                                  "followers.", rsh->sync_waits);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_sync_timeouts_"
                                  "total", "counter",
                                  "Write answers that were 503 "
                                  "replication-timeout.",
                                  rsh->sync_timeouts);

    if (ngx_http_inventory_follow_status(imcf, &fs) != NGX_OK) {
        return p;
    }

    p = ngx_http_inventory_metric(p, last, "inventory_replication_connected",
                                  "gauge", "1 while the primary answers.",
                                  fs.connected);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_applied_seq",
                                  "gauge", "The last seq applied here.",
                                  fs.applied_seq);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_primary_seq",
                                  "gauge",
                                  "The primary's last seq, as last heard.",
                                  fs.primary_seq);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_lag_events",
                                  "gauge",
                                  "Events the primary had, as last heard, "
                                  "that are not applied here.",
                                  fs.primary_seq - fs.applied_seq);
    p = ngx_slprintf(p, last,
                     "# HELP inventory_replication_lag_seconds How long ago "
                     "the primary committed the last transaction applied "
                     "here, while it has newer ones (0: caught up).\n"
                     "# TYPE inventory_replication_lag_seconds gauge\n"
                     "inventory_replication_lag_seconds %uL.%03uL\n",
                     fs.lag_ms / 1000, fs.lag_ms % 1000);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_transactions_"
                                  "applied_total", "counter",
                                  "The primary's transactions applied.",
                                  rsh->transactions);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_bytes_applied_total",
                                  "counter",
                                  "Bytes of the primary's transactions "
                                  "applied.", rsh->bytes);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_reconnects_total",
                                  "counter",
                                  "Connections to the primary lost or "
                                  "refused.", rsh->reconnects);
    p = ngx_http_inventory_metric(p, last,
                                  "inventory_replication_snapshots_total",
                                  "counter",
                                  "Snapshots of the primary installed.",
                                  rsh->snapshots);

    p = ngx_slprintf(p, last,
                     "# HELP inventory_replication_apply_lag_seconds From a "
                     "transaction's commit on the primary to its commit "
                     "here, for the oldest of each lot applied.\n"
                     "# TYPE inventory_replication_apply_lag_seconds "
                     "histogram\n");

    for (n = 0, b = 0; b < NGX_HTTP_INVENTORY_LAG_BUCKETS; b++) {
        n += rsh->lag[b];
        p = ngx_slprintf(p, last,
                         "inventory_replication_apply_lag_seconds_bucket"
                         "{le=\"%s\"} %uA\n",
                         b < NGX_HTTP_INVENTORY_LAG_BUCKETS - 1
                         ? ngx_http_inventory_latency_names[b] : "+Inf", n);
    }

    return ngx_slprintf(p, last,
                        "inventory_replication_apply_lag_seconds_sum "
                        "%uA.%03uA\n"
                        "inventory_replication_apply_lag_seconds_count %uA\n",
                        rsh->lag_ms / 1000, rsh->lag_ms % 1000, n);
}


static u_char *
ngx_http_inventory_metric(u_char *p, u_char *last, const char *name,
    const char *type, const char *help, uint64_t value)
{
    return ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n%s %uL\n",
                        name, help, name, type, name, value);
}
