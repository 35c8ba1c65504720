/*
 * The API handler: routes a request below the location's prefix, checks
 * method, identifiers, media type and preconditions, reads the body with
 * nginx's request-body API and runs reads on the worker's read transaction
 * and writes through the store's command path.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_MAX_SEGMENTS  5


typedef struct {
    ngx_http_inventory_str_t    location;
    ngx_http_inventory_item_t   item;
} ngx_http_inventory_row_t;


typedef struct {
    ngx_pool_t                 *pool;
    ngx_array_t                *rows;
} ngx_http_inventory_collect_t;


static ngx_int_t ngx_http_inventory_route(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
static ngx_uint_t ngx_http_inventory_methods(ngx_uint_t route,
    ngx_str_t *allow);
static ngx_int_t ngx_http_inventory_reject(ngx_http_request_t *r,
    unsigned code, const char *detail, ngx_http_inventory_errors_t *errs);
static ngx_int_t ngx_http_inventory_not_allowed(ngx_http_request_t *r,
    ngx_str_t *allow);
static ngx_int_t ngx_http_inventory_health(ngx_http_request_t *r);
static ngx_int_t ngx_http_inventory_get_item(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
static ngx_int_t ngx_http_inventory_get_aggregate(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
static int ngx_http_inventory_collect(void *data,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);
static ngx_int_t ngx_http_inventory_start_write(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
static void ngx_http_inventory_write_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_inventory_write(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
static ngx_int_t ngx_http_inventory_write_response(ngx_http_request_t *r,
    ngx_http_inventory_cmd_t *cmd);
static ngx_int_t ngx_http_inventory_read_body(ngx_http_request_t *r,
    u_char **data, size_t *len);
static ngx_uint_t ngx_http_inventory_is_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_inventory_parse_etags(ngx_str_t *value,
    ngx_uint_t weak_ok, uint64_t *versions, size_t *n, ngx_uint_t *any);
static uint64_t ngx_http_inventory_now(void);


ngx_int_t
ngx_http_inventory_handler(ngx_http_request_t *r)
{
    ngx_str_t                        allow;
    ngx_uint_t                       methods;
    ngx_http_inventory_ctx_t        *ctx;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_inventory_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_inventory_module);

    if (ngx_http_inventory_route(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route == NGX_HTTP_INVENTORY_ROUTE_UNKNOWN) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such resource", NULL);
    }

    methods = ngx_http_inventory_methods(ctx->route, &allow);

    if (!(r->method & methods)) {
        return ngx_http_inventory_not_allowed(r, &allow);
    }

    if (ctx->route == NGX_HTTP_INVENTORY_ROUTE_HEALTH) {
        return ngx_http_inventory_health(r);
    }

    errs.n = 0;
    ngx_http_inventory_validate_id(&errs, "sku", ctx->sku);

    if (ctx->route != NGX_HTTP_INVENTORY_ROUTE_AGGREGATE) {
        ngx_http_inventory_validate_id(&errs, "location", ctx->location);
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the path holds an invalid identifier",
                                    &errs);
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (!imcf->store_open) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store is not open", NULL);
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ctx->route == NGX_HTTP_INVENTORY_ROUTE_AGGREGATE) {
            return ngx_http_inventory_get_aggregate(r, ctx);
        }

        return ngx_http_inventory_get_item(r, ctx);
    }

    return ngx_http_inventory_start_write(r, ctx);
}


/* {prefix}health, {prefix}inventory/{sku}[/{location}[/adjustments]] */

static ngx_int_t
ngx_http_inventory_route(ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx)
{
    u_char                    *p, *end, *start;
    ngx_str_t                  seg[NGX_HTTP_INVENTORY_MAX_SEGMENTS];
    ngx_uint_t                 n, i;
    ngx_http_core_loc_conf_t  *clcf;

    ctx->route = NGX_HTTP_INVENTORY_ROUTE_UNKNOWN;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    end = r->uri.data + r->uri.len;

    /* a regex location has no prefix to strip: routes then start at "/" */
    if (clcf->regex == NULL) {
        if (r->uri.len < clcf->name.len
            || ngx_strncmp(p, clcf->name.data, clcf->name.len) != 0)
        {
            return NGX_OK;
        }

        p += clcf->name.len;
    }

    if (p < end && *p == '/') {
        p++;
    }

    for (n = 0; n < NGX_HTTP_INVENTORY_MAX_SEGMENTS; n++) {
        start = p;

        while (p < end && *p != '/') {
            p++;
        }

        seg[n].data = start;
        seg[n].len = p - start;

        if (p == end) {
            n++;
            break;
        }

        p++;
    }

    if (p == end && n == 1 && seg[0].len == sizeof("health") - 1
        && ngx_strncmp(seg[0].data, "health", seg[0].len) == 0)
    {
        ctx->route = NGX_HTTP_INVENTORY_ROUTE_HEALTH;
        return NGX_OK;
    }

    for (i = 0; i < n; i++) {
        if (seg[i].len == 0) {
            return NGX_OK;
        }
    }

    if (p < end || n < 2
        || seg[0].len != sizeof("inventory") - 1
        || ngx_strncmp(seg[0].data, "inventory", seg[0].len) != 0)
    {
        return NGX_OK;
    }

    ctx->sku.data = (char *) seg[1].data;
    ctx->sku.len = seg[1].len;

    if (n == 2) {
        ctx->route = NGX_HTTP_INVENTORY_ROUTE_AGGREGATE;
        return NGX_OK;
    }

    ctx->location.data = (char *) seg[2].data;
    ctx->location.len = seg[2].len;

    if (n == 3) {
        ctx->route = NGX_HTTP_INVENTORY_ROUTE_ITEM;
        return NGX_OK;
    }

    if (n == 4 && seg[3].len == sizeof("adjustments") - 1
        && ngx_strncmp(seg[3].data, "adjustments", seg[3].len) == 0)
    {
        ctx->route = NGX_HTTP_INVENTORY_ROUTE_ADJUST;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_inventory_methods(ngx_uint_t route, ngx_str_t *allow)
{
    switch (route) {

    case NGX_HTTP_INVENTORY_ROUTE_ITEM:
        ngx_str_set(allow, "GET, HEAD, PUT");
        return NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_PUT;

    case NGX_HTTP_INVENTORY_ROUTE_ADJUST:
        ngx_str_set(allow, "POST");
        return NGX_HTTP_POST;

    default: /* NGX_HTTP_INVENTORY_ROUTE_AGGREGATE, _HEALTH */
        ngx_str_set(allow, "GET, HEAD");
        return NGX_HTTP_GET|NGX_HTTP_HEAD;
    }
}


static ngx_int_t
ngx_http_inventory_reject(ngx_http_request_t *r, unsigned code,
    const char *detail, ngx_http_inventory_errors_t *errs)
{
    ngx_http_inventory_problem_t  p;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&p, sizeof(ngx_http_inventory_problem_t));
    p.code = code;
    p.detail = detail;
    p.errors = errs;

    return ngx_http_inventory_send_problem(r, &p);
}


static ngx_int_t
ngx_http_inventory_not_allowed(ngx_http_request_t *r, ngx_str_t *allow)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value = *allow;

    return ngx_http_inventory_reject(r,
                                NGX_HTTP_INVENTORY_P_METHOD_NOT_ALLOWED,
                                "the method is not allowed on this resource",
                                NULL);
}


/* 200 with store facts while the store can be read, 503 otherwise */

static ngx_int_t
ngx_http_inventory_health(ngx_http_request_t *r)
{
    int                               rc;
    yajl_gen                          g;
    ngx_http_inventory_buf_t          body;
    ngx_http_inventory_store_stat_t   stat;
    ngx_http_inventory_main_conf_t   *imcf;
    static ngx_str_t                  type = ngx_string("application/json");

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = imcf->store_open ? ngx_http_inventory_store_stat(&imcf->store, &stat)
                          : MDB_PANIC;

    if (rc != 0) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store cannot be read", NULL);
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

    return ngx_http_inventory_send(r, NGX_HTTP_OK, &type, &body, 0);
}


static ngx_int_t
ngx_http_inventory_get_item(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    int                              rc;
    size_t                           n, i;
    uint64_t                         versions[NGX_HTTP_INVENTORY_ETAGS_MAX];
    ngx_uint_t                       any;
    ngx_http_inventory_slot_t        slot;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_store_read_begin(&imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_get_item(&imcf->store, ctx->sku,
                                               ctx->location, &slot.item);
        ngx_http_inventory_store_read_end(&imcf->store);
    }

    if (rc == MDB_NOTFOUND) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no stock item for this sku at this "
                                         "location", NULL);
    }

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "inventory: read failed: %s", mdb_strerror(rc));
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store cannot be read", NULL);
    }

    if (r->headers_in.if_none_match
        && ngx_http_inventory_parse_etags(&r->headers_in.if_none_match->value,
                                          1, versions, &n, &any)
           == NGX_OK)
    {
        for (i = 0; i < n && versions[i] != slot.item.version; i++) {
            /* void */
        }

        if (any || i < n) {
            return ngx_http_inventory_send(r, NGX_HTTP_NOT_MODIFIED, NULL,
                                           NULL, slot.item.version);
        }
    }

    slot.sku = ctx->sku;
    slot.location = ctx->location;

    return ngx_http_inventory_send_item(r, NGX_HTTP_OK, &slot);
}


static ngx_int_t
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
    static ngx_str_t                 type = ngx_string("application/json");

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    c.pool = r->pool;
    c.rows = ngx_array_create(r->pool, 8, sizeof(ngx_http_inventory_row_t));
    if (c.rows == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_inventory_store_read_begin(&imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_sku_items(&imcf->store, ctx->sku,
                                                ngx_http_inventory_collect,
                                                &c);
        ngx_http_inventory_store_read_end(&imcf->store);
    }

    if (rc == ENOMEM) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "inventory: read failed: %s", mdb_strerror(rc));
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store cannot be read", NULL);
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
    ngx_http_inventory_gen_key_str(g, "sku", ctx->sku.data, ctx->sku.len);
    ngx_http_inventory_gen_key_int(g, "on_hand", on_hand);
    ngx_http_inventory_gen_key_int(g, "reserved", reserved);
    ngx_http_inventory_gen_key_int(g, "available", on_hand - reserved);
    ngx_http_inventory_gen_str(g, "locations");
    yajl_gen_array_open(g);

    for (i = 0; i < c.rows->nelts; i++) {
        ngx_http_inventory_render_item(g, ctx->sku, row[i].location,
                                       &row[i].item);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_free(g);

    return ngx_http_inventory_send(r, NGX_HTTP_OK, &type, &body, 0);
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


static ngx_int_t
ngx_http_inventory_start_write(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    ngx_int_t                     rc;
    ngx_uint_t                    any;
    ngx_http_inventory_cmd_t     *cmd;
    ngx_http_inventory_errors_t   errs;

    if (!ngx_http_inventory_is_json(r)) {
        return ngx_http_inventory_reject(r,
                          NGX_HTTP_INVENTORY_P_UNSUPPORTED_MEDIA_TYPE,
                          "the body must be application/json", NULL);
    }

    cmd = &ctx->cmd;
    cmd->sku = ctx->sku;
    cmd->location = ctx->location;
    cmd->type = (ctx->route == NGX_HTTP_INVENTORY_ROUTE_ITEM)
                ? NGX_HTTP_INVENTORY_CMD_COUNT : NGX_HTTP_INVENTORY_CMD_ADJUST;

    if (r->headers_in.if_match) {
        if (ngx_http_inventory_parse_etags(&r->headers_in.if_match->value, 0,
                                           cmd->if_match, &cmd->if_match_n,
                                           &any)
            != NGX_OK)
        {
            errs.n = 0;
            ngx_http_inventory_error_add(&errs, "If-Match", 8,
                                         "must be * or a list of at most 16 "
                                         "entity tags such as \"42\"");
            return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the If-Match header is invalid", &errs);
        }

        cmd->has_if_match = 1;
        cmd->if_match_any = any ? 1 : 0;
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_inventory_write_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_inventory_write_body(ngx_http_request_t *r)
{
    ngx_http_inventory_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);

    ngx_http_finalize_request(r, ngx_http_inventory_write(r, ctx));
}


static ngx_int_t
ngx_http_inventory_write(ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx)
{
    int                              rc;
    u_char                          *data;
    size_t                           len;
    ngx_http_inventory_cmd_t        *cmd;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);
    cmd = &ctx->cmd;

    if (ngx_http_inventory_read_body(r, &data, &len) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    errs.n = 0;

    if (ngx_http_inventory_cmd_from_body(cmd, (char *) data, len,
                                         ngx_http_inventory_palloc, r->pool,
                                         &errs)
        != 0)
    {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the request body is invalid", &errs);
    }

    rc = ngx_http_inventory_store_execute(&imcf->store, &cmd, 1,
                                          ngx_http_inventory_now());

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "inventory: write failed: %s", mdb_strerror(rc));

    } else if (imcf->sh) {
        (void) ngx_atomic_fetch_add(&imcf->sh->transactions, 1);
        (void) ngx_atomic_fetch_add(&imcf->sh->commands, 1);
        (void) ngx_atomic_fetch_add(&imcf->sh->events, cmd->appended);
    }

    return ngx_http_inventory_write_response(r, cmd);
}


static ngx_int_t
ngx_http_inventory_write_response(ngx_http_request_t *r,
    ngx_http_inventory_cmd_t *cmd)
{
    ngx_http_inventory_ctx_t      *ctx;
    ngx_http_inventory_problem_t   p;

    ngx_memzero(&p, sizeof(ngx_http_inventory_problem_t));

    switch (cmd->outcome) {

    case NGX_HTTP_INVENTORY_OK:
    case NGX_HTTP_INVENTORY_CREATED:
        ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);
        ctx->event_seq = cmd->last_seq;

        return ngx_http_inventory_send_item(r,
                                  cmd->outcome == NGX_HTTP_INVENTORY_CREATED
                                  ? NGX_HTTP_CREATED : NGX_HTTP_OK,
                                  &cmd->slots[0]);

    case NGX_HTTP_INVENTORY_NOT_FOUND:
        p.code = NGX_HTTP_INVENTORY_P_NOT_FOUND;
        p.detail = "no stock item for this sku at this location";
        break;

    case NGX_HTTP_INVENTORY_INSUFFICIENT:
        p.code = NGX_HTTP_INVENTORY_P_INSUFFICIENT_STOCK;
        p.detail = (cmd->type == NGX_HTTP_INVENTORY_CMD_COUNT)
                   ? "on_hand cannot be less than the reserved quantity"
                   : "on_hand cannot fall below the reserved quantity";
        p.available = cmd->available;
        p.has_available = 1;
        break;

    case NGX_HTTP_INVENTORY_OUT_OF_RANGE:
        p.code = NGX_HTTP_INVENTORY_P_INSUFFICIENT_STOCK;
        p.detail = "on_hand would exceed 9007199254740991";
        p.available = cmd->available;
        p.has_available = 1;
        break;

    case NGX_HTTP_INVENTORY_VERSION_MISMATCH:
        p.code = NGX_HTTP_INVENTORY_P_VERSION_MISMATCH;
        p.detail = "If-Match does not name the item's current version";

        if (cmd->slots[0].exists) {
            p.version = cmd->slots[0].item.version;
            p.has_version = 1;
        }

        break;

    case NGX_HTTP_INVENTORY_STORAGE_FULL:
        p.code = NGX_HTTP_INVENTORY_P_STORAGE_FULL;
        p.detail = "the store is full; nothing was written";
        break;

    default:
        p.code = NGX_HTTP_INVENTORY_P_UNAVAILABLE;
        p.detail = "the store cannot be written; nothing was written";
        break;
    }

    return ngx_http_inventory_send_problem(r, &p);
}


/* the whole body in one piece, from memory buffers or the temp file */

static ngx_int_t
ngx_http_inventory_read_body(ngx_http_request_t *r, u_char **data,
    size_t *len)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_chain_t  *cl;

    *data = NULL;
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    if (r->request_body->temp_file) {
        size = r->request_body->temp_file->file.offset;

        p = ngx_pnalloc(r->pool, size ? size : 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        n = ngx_read_file(&r->request_body->temp_file->file, p, size, 0);
        if (n != size) {
            return NGX_ERROR;
        }

        *data = p;
        *len = size;

        return NGX_OK;
    }

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size == 0) {
        return NGX_OK;
    }

    /* a chunked body may end in empty buffers: one piece is used as is */
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (ngx_buf_size(cl->buf) == size) {
            *data = cl->buf->pos;
            *len = size;
            return NGX_OK;
        }
    }

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *data = p;
    *len = size;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (ngx_buf_size(cl->buf)) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_inventory_is_json(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    ct = &r->headers_in.content_type->value;

    if (ct->len < sizeof("application/json") - 1
        || ngx_strncasecmp(ct->data, (u_char *) "application/json",
                           sizeof("application/json") - 1) != 0)
    {
        return 0;
    }

    p = ct->data + sizeof("application/json") - 1;
    last = ct->data + ct->len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    return p == last || *p == ';';
}


/*
 * Parses an If-Match or If-None-Match value: "*" or a list of entity tags.
 * Tags that can never name a version (weak ones when strong comparison is
 * asked for, opaque ones that are not a number) are skipped; a value that is
 * not a list of entity tags is an error.
 */

static ngx_int_t
ngx_http_inventory_parse_etags(ngx_str_t *value, ngx_uint_t weak_ok,
    uint64_t *versions, size_t *n, ngx_uint_t *any)
{
    u_char      *p, *last, *start;
    uint64_t     v;
    ngx_uint_t   weak, numeric;

    p = value->data;
    last = value->data + value->len;
    *n = 0;
    *any = 0;

    for ( ;; ) {
        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        if (p == last) {
            return NGX_OK;
        }

        if (*p == '*') {
            *any = 1;
            p++;
            continue;
        }

        weak = 0;

        if (last - p > 2 && p[0] == 'W' && p[1] == '/') {
            weak = 1;
            p += 2;
        }

        if (*p != '"') {
            return NGX_ERROR;
        }

        start = ++p;
        v = 0;
        numeric = 1;

        while (p < last && *p != '"') {
            if (*p < '0' || *p > '9' || p - start >= 19) {
                numeric = 0;

            } else {
                v = v * 10 + (*p - '0');
            }

            p++;
        }

        if (p == last) {
            return NGX_ERROR;
        }

        if (numeric && p > start && (weak_ok || !weak)) {
            if (*n == NGX_HTTP_INVENTORY_ETAGS_MAX) {
                return NGX_ERROR;
            }

            versions[(*n)++] = v;
        }

        p++;
    }
}


static uint64_t
ngx_http_inventory_now(void)
{
    ngx_time_t  *tp;

    ngx_time_update();
    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}
