/*
 * The read side: every GET runs on the worker's read transaction, renewed
 * for the request and reset before the handler returns, so that no
 * snapshot outlives an event-loop iteration.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_EVENTS_LIMIT      100
#define NGX_HTTP_INVENTORY_EVENTS_LIMIT_MAX  1000


typedef struct {
    ngx_pool_t                 *pool;
    ngx_array_t                *rows;
} ngx_http_inventory_collect_t;


typedef struct {
    ngx_http_inventory_page_t   page;
    uint64_t                    last_version;
} ngx_http_inventory_events_t;


static int ngx_http_inventory_collect(void *data,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);
static int ngx_http_inventory_event_out(void *data,
    const ngx_http_inventory_event_t *ev);
static int ngx_http_inventory_low_out(void *data,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);


/* 200 with store facts while the store can be read, 503 otherwise */

ngx_int_t
ngx_http_inventory_health(ngx_http_request_t *r)
{
    int                               rc;
    ngx_http_inventory_buf_t          body;
    ngx_http_inventory_health_t       health;
    ngx_http_inventory_identity_t     id;
    ngx_http_inventory_follow_status_t  fs;
    ngx_http_inventory_store_stat_t   stat;
    ngx_http_inventory_main_conf_t   *imcf;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = imcf->store ? ngx_http_inventory_store_stat(imcf->store, &stat)
                          : NGX_HTTP_INVENTORY_STORE_FAILED;

    if (rc != 0) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store cannot be read", NULL);
    }

    /* cleared by the next transaction that commits */
    if (imcf->sh && imcf->sh->store_error) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the last write transaction failed",
                                         NULL);
    }

    /*
     * Within the last 5 % of the map, writes may soon answer 507.  "used"
     * is LMDB's high-water mark: freed pages are reused below it, but it
     * never goes down, so this is the early side of the truth.
     */
    if (stat.used >= stat.map_size - stat.map_size / 20) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store is nearly full", NULL);
    }

    ngx_memzero(&health, sizeof(ngx_http_inventory_health_t));

    rc = ngx_http_inventory_store_read_begin(imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_identity(imcf->store, &id);
        ngx_http_inventory_store_read_end(imcf->store);
    }

    if (rc != 0) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store cannot be read", NULL);
    }

    health.map_size = stat.map_size;
    health.used = stat.used;
    health.last_seq = stat.last_seq;
    health.readers = stat.readers;
    health.max_readers = stat.max_readers;
    health.sync = imcf->sync ? 1 : 0;
    health.role = imcf->role_follower ? "follower" : "primary";
    health.epoch = id.epoch;
    health.followers = ngx_http_inventory_sync_followers(imcf);
    health.sync_replicas = imcf->role_follower ? 0 : imcf->sync_replicas;
    *ngx_hex_dump((u_char *) health.store_id, id.store_id,
                  sizeof(id.store_id)) = '\0';

    rc = ngx_http_inventory_follow_status(imcf, &fs);

    if (rc == NGX_ERROR) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store cannot be read", NULL);
    }

    if (rc == NGX_OK) {
        if (fs.refused) {
            return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                    "the node followed serves another "
                                    "store, or an older epoch of this one "
                                    "(it was deposed): nothing is applied",
                                    NULL);
        }

        if (fs.silent) {
            return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                    "nothing was heard from the primary "
                                    "for longer than max_lag", NULL);
        }

        health.primary = (char *) imcf->follow_url.data;
        health.primary_len = imcf->follow_url.len;
        health.connected = fs.connected;
        health.applied_seq = fs.applied_seq;
        health.primary_seq = fs.primary_seq;
        health.lag_ms = fs.lag_ms;
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_render_health(&body, &health);

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}


ngx_int_t
ngx_http_inventory_get_item(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    int                              rc, any;
    size_t                           n, i;
    uint64_t                         versions[NGX_HTTP_INVENTORY_ETAGS_MAX];
    uint64_t                         as_of;
    ngx_str_t                        arg;
    ngx_uint_t                       past, before_epoch;
    ngx_http_inventory_slot_t        slot;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    /* ?as_of=TIMESTAMP: the item as it was then */
    past = (ngx_http_inventory_arg(r, "as_of", &arg) == NGX_OK);
    before_epoch = 0;

    if (past) {
        rc = ngx_http_inventory_time_parse((char *) arg.data, arg.len,
                                           &as_of);

        /* before 1970: before any event, so the item did not exist */
        before_epoch = (rc == -2);

        if (rc == -1) {
            errs.n = 0;
            ngx_http_inventory_error_set(&errs, "as_of",
                                         "must be an RFC 3339 timestamp "
                                         "such as 2026-11-22T10:00:00.123Z");
            return ngx_http_inventory_reject(r,
                                        NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                        "the query is invalid", &errs);
        }
    }

    rc = before_epoch ? NGX_HTTP_INVENTORY_STORE_NOT_FOUND
                      : ngx_http_inventory_read_begin(r, imcf->store);

    if (rc == 0) {
        rc = past ? ngx_http_inventory_store_item_as_of(imcf->store,
                                                        ctx->ids.sku,
                                                        ctx->ids.location,
                                                        as_of, &slot.item)
                  : ngx_http_inventory_store_get_item(imcf->store,
                                                      ctx->ids.sku,
                                                      ctx->ids.location,
                                                      &slot.item);
        ngx_http_inventory_store_read_end(imcf->store);
    }

    if (rc == NGX_HTTP_INVENTORY_STORE_NOT_FOUND) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         past ? "no stock item for this sku at "
                                                "this location at that time"
                                              : "no stock item for this sku "
                                                "at this location", NULL);
    }

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    if (r->headers_in.if_none_match
        && ngx_http_inventory_parse_etags(
               (char *) r->headers_in.if_none_match->value.data,
               r->headers_in.if_none_match->value.len, 1, versions, &n, &any)
           == 0)
    {
        for (i = 0; i < n && versions[i] != slot.item.version; i++) {
            /* void */
        }

        if (any || i < n) {
            return ngx_http_inventory_send(r, NGX_HTTP_NOT_MODIFIED, NULL,
                                           NULL, slot.item.version);
        }
    }

    slot.sku = ctx->ids.sku;
    slot.location = ctx->ids.location;

    return ngx_http_inventory_send_item(r, NGX_HTTP_OK, &slot);
}


ngx_int_t
ngx_http_inventory_get_aggregate(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    int                              rc;
    ngx_http_inventory_buf_t         body;
    ngx_http_inventory_collect_t     c;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    c.pool = r->pool;
    c.rows = ngx_array_create(r->pool, 8, sizeof(ngx_http_inventory_row_t));
    if (c.rows == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_inventory_read_begin(r, imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_sku_items(imcf->store, ctx->ids.sku,
                                                ngx_http_inventory_collect,
                                                &c);
        ngx_http_inventory_store_read_end(imcf->store);
    }

    if (rc == ENOMEM) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    if (c.rows->nelts == 0) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no location has this sku", NULL);
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_render_aggregate(&body, ctx->ids.sku, c.rows->elts,
                                        c.rows->nelts);

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}


static int
ngx_http_inventory_collect(void *data, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location, const ngx_http_inventory_item_t *item)
{
    ngx_http_inventory_collect_t  *c = data;

    u_char                    *p;
    ngx_http_inventory_row_t  *row;

    row = ngx_array_push(c->rows);
    p = ngx_pnalloc(c->pool, location.len);

    if (row == NULL || p == NULL) {
        return ENOMEM;
    }

    /* the key lives in the map only while the read transaction does */
    ngx_memcpy(p, location.data, location.len);
    row->location.data = (char *) p;
    row->location.len = location.len;
    row->item = *item;

    return 0;
}


ngx_int_t
ngx_http_inventory_get_reservation(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    int                                rc;
    ngx_int_t                          status;
    ngx_http_inventory_reservation_t  *res;
    ngx_http_inventory_main_conf_t    *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    res = ngx_palloc(r->pool, sizeof(ngx_http_inventory_reservation_t));
    if (res == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_inventory_read_begin(r, imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    rc = ngx_http_inventory_store_get_reservation(imcf->store,
                                                  ctx->ids.id.data, res);

    if (rc == NGX_HTTP_INVENTORY_STORE_NOT_FOUND) {
        ngx_http_inventory_store_read_end(imcf->store);
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such reservation", NULL);
    }

    if (rc != 0) {
        ngx_http_inventory_store_read_end(imcf->store);
        return ngx_http_inventory_read_failed(r, rc);
    }

    /* the lines point into the map: render before the snapshot ends */
    status = ngx_http_inventory_send_reservation(r, res);
    ngx_http_inventory_store_read_end(imcf->store);

    return status;
}


/* ?after_version=V&limit=N: {"events":[...], "next_after_version": V|null} */

ngx_int_t
ngx_http_inventory_get_item_events(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    int                              rc, more;
    uint64_t                         after, limit;
    ngx_int_t                        status;
    ngx_http_inventory_buf_t         body;
    ngx_http_inventory_item_t        item;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_events_t      out;
    ngx_http_inventory_main_conf_t  *imcf;

    errs.n = 0;
    after = 0;
    limit = NGX_HTTP_INVENTORY_EVENTS_LIMIT;

    ngx_http_inventory_arg_uint(r, "after_version", 0,
                                NGX_HTTP_INVENTORY_QTY_MAX, &after, &errs);
    ngx_http_inventory_arg_uint(r, "limit", 1,
                                NGX_HTTP_INVENTORY_EVENTS_LIMIT_MAX, &limit,
                                &errs);

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the query is invalid", &errs);
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_read_begin(r, imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    rc = ngx_http_inventory_store_get_item(imcf->store, ctx->ids.sku,
                                           ctx->ids.location, &item);

    if (rc == NGX_HTTP_INVENTORY_STORE_NOT_FOUND) {
        ngx_http_inventory_store_read_end(imcf->store);
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no stock item for this sku at this "
                                         "location", NULL);
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    out.last_version = 0;
    more = 0;

    if (rc == 0) {
        ngx_http_inventory_page_open(&out.page, &body, "events");

        rc = ngx_http_inventory_store_item_events(imcf->store, ctx->ids.sku,
                                                  ctx->ids.location, after,
                                                  (size_t) limit,
                                                  ngx_http_inventory_event_out,
                                                  &out, &more);

        ngx_http_inventory_page_close_int(&out.page, "next_after_version",
                                          more, out.last_version);
    }

    ngx_http_inventory_store_read_end(imcf->store);

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    status = ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);

    return status;
}


static int
ngx_http_inventory_event_out(void *data, const ngx_http_inventory_event_t *ev)
{
    ngx_http_inventory_events_t  *out = data;

    ngx_http_inventory_page_event(&out->page, ev);
    out->last_version = ev->version;

    return 0;
}


/* ?location=L&limit=N&cursor=C: low-stock items by (location, sku) */

ngx_int_t
ngx_http_inventory_get_low_stock(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    int                              rc;
    u_char                           cur[NGX_HTTP_INVENTORY_STORE_CURSOR_MAX];
    uint64_t                         limit;
    ngx_str_t                        arg, from, next, last;
    ngx_http_inventory_str_t         location;
    ngx_http_inventory_buf_t         body;
    ngx_http_inventory_page_t        page;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    errs.n = 0;
    limit = NGX_HTTP_INVENTORY_EVENTS_LIMIT;
    location.data = NULL;
    location.len = 0;
    from.len = 0;
    from.data = NULL;

    ngx_http_inventory_arg_uint(r, "limit", 1,
                                NGX_HTTP_INVENTORY_EVENTS_LIMIT_MAX, &limit,
                                &errs);

    if (ngx_http_inventory_arg(r, "location", &arg) == NGX_OK) {
        location.data = (char *) arg.data;
        location.len = arg.len;
        ngx_http_inventory_validate_id(&errs, "location", location);
    }

    /* the store's cursor of the next page, base64url */
    if (ngx_http_inventory_arg_raw(r, "cursor", &arg) == NGX_OK) {
        from.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(arg.len));

        if (from.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_decode_base64url(&from, &arg) != NGX_OK
            || !ngx_http_inventory_store_cursor_valid(from.data, from.len))
        {
            ngx_http_inventory_error_set(&errs, "cursor",
                                         "is not a cursor this API gave");
        }
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the query is invalid", &errs);
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_read_begin(r, imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_page_open(&page, &body, "items");

    last.data = cur;
    last.len = 0;

    rc = ngx_http_inventory_store_low_stock(imcf->store, location,
                                            from.data, from.len,
                                            (size_t) limit,
                                            ngx_http_inventory_low_out, &page,
                                            cur, &last.len);
    ngx_http_inventory_store_read_end(imcf->store);

    next.data = NULL;
    next.len = 0;

    if (rc == 0 && last.len) {
        next.len = ngx_base64_encoded_length(last.len);
        next.data = ngx_pnalloc(r->pool, next.len);

        if (next.data == NULL) {
            body.failed = 1;

        } else {
            ngx_encode_base64url(&next, &last);
        }
    }

    ngx_http_inventory_page_close_str(&page, "next_cursor", next.data,
                                      next.len);

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    (void) ctx;

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}


static int
ngx_http_inventory_low_out(void *data, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location, const ngx_http_inventory_item_t *item)
{
    ngx_http_inventory_page_item(data, sku, location, item);

    return 0;
}
