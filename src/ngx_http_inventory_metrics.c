/*
 * Metrics: counters kept in the shared zone by every worker, and the
 * Prometheus text exposition (format 0.0.4) of them and of the store.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_METRICS_MAX  16384


static u_char *ngx_http_inventory_metric(u_char *p, u_char *last,
    const char *name, const char *type, const char *help, uint64_t value);


ngx_uint_t  ngx_http_inventory_statuses[NGX_HTTP_INVENTORY_STATUSES] = {
    200, 201, 304, 400, 404, 405, 409, 412, 413, 415, 422, 503, 507, 0
};


static const char  *ngx_http_inventory_route_names[] = {
    "unknown", "item", "adjustments", "aggregate", "metrics", "health",
    "reserve", "item_events", "reservations", "reservation", "commit",
    "release", "transfers", "events", "low_stock"
};


ngx_uint_t
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


void
ngx_http_inventory_count(ngx_http_request_t *r, ngx_uint_t route,
    ngx_uint_t status)
{
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (imcf->sh == NULL || route >= NGX_HTTP_INVENTORY_ROUTE_LAST) {
        return;
    }

    (void) ngx_atomic_fetch_add(
               &imcf->sh->requests[route]
                                  [ngx_http_inventory_status_index(status)],
               1);
}


ngx_int_t
ngx_http_inventory_metrics_handler(ngx_http_request_t *r)
{
    u_char                           *p, *last;
    ngx_int_t                         rc;
    ngx_str_t                         allow;
    ngx_uint_t                        route, i;
    ngx_atomic_uint_t                 n;
    ngx_http_inventory_buf_t          body;
    ngx_http_inventory_shctx_t       *sh;
    ngx_http_inventory_store_stat_t   stat;
    ngx_http_inventory_main_conf_t   *imcf;
    static ngx_str_t                  type =
        ngx_string("text/plain; version=0.0.4");

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        ngx_str_set(&allow, "GET, HEAD");
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

    p = ngx_slprintf(p, last,
                     "# HELP inventory_requests_total API requests by route "
                     "and response status.\n"
                     "# TYPE inventory_requests_total counter\n");

    for (route = 0; sh && route < NGX_HTTP_INVENTORY_ROUTE_LAST; route++) {
        for (i = 0; i < NGX_HTTP_INVENTORY_STATUSES; i++) {
            n = sh->requests[route][i];

            if (n == 0) {
                continue;
            }

            if (ngx_http_inventory_statuses[i]) {
                p = ngx_slprintf(p, last,
                                 "inventory_requests_total{route=\"%s\","
                                 "status=\"%ui\"} %uA\n",
                                 ngx_http_inventory_route_names[route],
                                 ngx_http_inventory_statuses[i], n);

            } else {
                p = ngx_slprintf(p, last,
                                 "inventory_requests_total{route=\"%s\","
                                 "status=\"other\"} %uA\n",
                                 ngx_http_inventory_route_names[route], n);
            }
        }
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
    }

    if (imcf->store_open
        && ngx_http_inventory_store_stat(&imcf->store, &stat) == 0)
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
        p = ngx_http_inventory_metric(p, last, "inventory_last_seq", "gauge",
                                      "Sequence number of the last event.",
                                      stat.last_seq);
    }

    body.len = p - body.data;
    body.failed = 0;

    return ngx_http_inventory_send(r, NGX_HTTP_OK, &type, &body, 0);
}


static u_char *
ngx_http_inventory_metric(u_char *p, u_char *last, const char *name,
    const char *type, const char *help, uint64_t value)
{
    return ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n%s %uL\n",
                        name, help, name, type, name, value);
}
