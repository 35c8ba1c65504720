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
    ngx_http_inventory_str_t    location;
    ngx_http_inventory_item_t   item;
} ngx_http_inventory_row_t;


typedef struct {
    ngx_pool_t                 *pool;
    ngx_array_t                *rows;
} ngx_http_inventory_collect_t;


typedef struct {
    yajl_gen                    gen;
    uint64_t                    last_version;
} ngx_http_inventory_events_t;


static int ngx_http_inventory_collect(void *data,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);
static int ngx_http_inventory_event_out(void *data,
    const ngx_http_inventory_event_t *ev);
static ngx_int_t ngx_http_inventory_arg(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
static int ngx_http_inventory_low_out(void *data,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);


/* 200 with store facts while the store can be read, 503 otherwise */

ngx_int_t
ngx_http_inventory_health(ngx_http_request_t *r)
{
    int                               rc;
    yajl_gen                          g;
    ngx_http_inventory_buf_t          body;
    ngx_http_inventory_store_stat_t   stat;
    ngx_http_inventory_main_conf_t   *imcf;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = imcf->store_open ? ngx_http_inventory_store_stat(imcf->store, &stat)
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

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);

    g = ngx_http_inventory_gen_open(&body);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "status", "ok", 2);
    ngx_http_inventory_gen_str(g, "store");
    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_int(g, "map_size", (int64_t) stat.map_size);
    ngx_http_inventory_gen_key_int(g, "used", (int64_t) stat.used);
    ngx_http_inventory_gen_key_int(g, "last_seq", (int64_t) stat.last_seq);
    ngx_http_inventory_gen_key_int(g, "readers", stat.readers);
    ngx_http_inventory_gen_key_int(g, "max_readers", stat.max_readers);
    ngx_http_inventory_gen_str(g, "sync");
    yajl_gen_bool(g, imcf->sync ? 1 : 0);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    yajl_gen_free(g);

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
            ngx_http_inventory_error_add(&errs, "as_of", 5,
                                         "must be an RFC 3339 timestamp "
                                         "such as 2026-11-22T10:00:00.123Z");
            return ngx_http_inventory_reject(r,
                                        NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                        "the query is invalid", &errs);
        }
    }

    rc = before_epoch ? NGX_HTTP_INVENTORY_STORE_NOT_FOUND
                      : ngx_http_inventory_store_read_begin(imcf->store);

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
    int64_t                          on_hand, reserved;
    yajl_gen                         g;
    ngx_uint_t                       i;
    ngx_http_inventory_buf_t         body;
    ngx_http_inventory_row_t        *row;
    ngx_http_inventory_collect_t     c;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    c.pool = r->pool;
    c.rows = ngx_array_create(r->pool, 8, sizeof(ngx_http_inventory_row_t));
    if (c.rows == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_inventory_store_read_begin(imcf->store);

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

    row = c.rows->elts;
    on_hand = 0;
    reserved = 0;

    for (i = 0; i < c.rows->nelts; i++) {
        on_hand += row[i].item.on_hand;
        reserved += row[i].item.reserved;
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);

    g = ngx_http_inventory_gen_open(&body);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "sku", ctx->ids.sku.data,
                                   ctx->ids.sku.len);
    ngx_http_inventory_gen_key_int(g, "on_hand", on_hand);
    ngx_http_inventory_gen_key_int(g, "reserved", reserved);
    ngx_http_inventory_gen_key_int(g, "available", on_hand - reserved);
    ngx_http_inventory_gen_str(g, "locations");
    yajl_gen_array_open(g);

    for (i = 0; i < c.rows->nelts; i++) {
        ngx_http_inventory_render_item(g, ctx->ids.sku, row[i].location,
                                       &row[i].item);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_free(g);

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

    rc = ngx_http_inventory_store_read_begin(imcf->store);
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

    rc = ngx_http_inventory_store_read_begin(imcf->store);
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
    out.gen = (rc == 0) ? ngx_http_inventory_gen_open(&body) : NULL;
    out.last_version = 0;

    if (out.gen) {
        yajl_gen_map_open(out.gen);
        ngx_http_inventory_gen_str(out.gen, "events");
        yajl_gen_array_open(out.gen);

        rc = ngx_http_inventory_store_item_events(imcf->store, ctx->ids.sku,
                                                  ctx->ids.location, after,
                                                  (size_t) limit,
                                                  ngx_http_inventory_event_out,
                                                  &out, &more);
        yajl_gen_array_close(out.gen);
        ngx_http_inventory_gen_str(out.gen, "next_after_version");

        if (more) {
            yajl_gen_integer(out.gen, (long long) out.last_version);

        } else {
            yajl_gen_null(out.gen);
        }

        yajl_gen_map_close(out.gen);
        yajl_gen_free(out.gen);
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

    ngx_http_inventory_render_event(out->gen, ev);
    out->last_version = ev->version;

    return 0;
}


/* an optional decimal query argument within [min, max] */

void
ngx_http_inventory_arg_uint(ngx_http_request_t *r, const char *name,
    uint64_t min, uint64_t max, uint64_t *value,
    ngx_http_inventory_errors_t *errs)
{
    ngx_http_inventory_query_uint((char *) r->args.data, r->args.len, name,
                                  min, max, value, errs);
}


/* a query argument, percent-decoded; NGX_DECLINED when absent */

static ngx_int_t
ngx_http_inventory_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_http_inventory_str_t  raw;

    if (ngx_http_inventory_query_arg((char *) r->args.data, r->args.len, name,
                                     &raw)
        != 0)
    {
        return NGX_DECLINED;
    }

    value->data = ngx_pnalloc(r->pool, raw.len ? raw.len : 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    value->len = ngx_http_inventory_unescape((char *) value->data, raw.data,
                                             raw.len);

    return NGX_OK;
}


ngx_int_t
ngx_http_inventory_read_failed(ngx_http_request_t *r, int rc)
{
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "inventory: read failed: %s",
                  ngx_http_inventory_store_strerror(rc));

    return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                     "the store cannot be read", NULL);
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
    ngx_http_inventory_str_t         raw;
    yajl_gen                         g;
    ngx_http_inventory_str_t         location;
    ngx_http_inventory_buf_t         body;
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
    if (ngx_http_inventory_query_arg((char *) r->args.data, r->args.len,
                                     "cursor", &raw)
        == 0)
    {
        arg.data = (u_char *) raw.data;
        arg.len = raw.len;
        from.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(arg.len));

        if (from.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_decode_base64url(&from, &arg) != NGX_OK
            || !ngx_http_inventory_store_cursor_valid(from.data, from.len))
        {
            ngx_http_inventory_error_add(&errs, "cursor", 6,
                                         "is not a cursor this API gave");
        }
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the query is invalid", &errs);
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_store_read_begin(imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    g = ngx_http_inventory_gen_open(&body);

    if (g == NULL) {
        ngx_http_inventory_store_read_end(imcf->store);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last.data = cur;

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_str(g, "items");
    yajl_gen_array_open(g);

    rc = ngx_http_inventory_store_low_stock(imcf->store, location,
                                            from.data, from.len,
                                            (size_t) limit,
                                            ngx_http_inventory_low_out, g,
                                            cur, &last.len);
    ngx_http_inventory_store_read_end(imcf->store);

    yajl_gen_array_close(g);
    ngx_http_inventory_gen_str(g, "next_cursor");

    if (rc == 0 && last.len) {
        next.len = ngx_base64_encoded_length(last.len);
        next.data = ngx_pnalloc(r->pool, next.len);

        if (next.data == NULL) {
            yajl_gen_free(g);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_encode_base64url(&next, &last);
        yajl_gen_string(g, next.data, next.len);

    } else {
        yajl_gen_null(g);
    }

    yajl_gen_map_close(g);
    yajl_gen_free(g);

    if (rc == ENOMEM) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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
    ngx_http_inventory_render_item(data, sku, location, item);

    return 0;
}
