/*
 * The request's context: the route and identifiers its URI names, found
 * once, early enough for the module's variables (limit_req keys, map), and
 * found again after an internal redirect.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


static void ngx_http_inventory_ctx_mark(void *data);
static const ngx_http_inventory_route_t *ngx_http_inventory_route(
    ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx);


/*
 * The request's context, routed once: the module's variables need the SKU
 * and location earlier than the content handler (limit_req, map), and the
 * handler then finds the work done.
 */

ngx_http_inventory_ctx_t *
ngx_http_inventory_request_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_inventory_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_inventory_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    /* found again by saved_ctx() after an internal redirect */
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_inventory_ctx_mark;
    cln->data = ctx;

    ctx->rt = ngx_http_inventory_route(r, ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_inventory_module);

    return ctx;
}


/*
 * nginx forgets module contexts on an internal redirect, e.g. to the named
 * location that answers a 429 for limit_req: the request still belongs to
 * the route it came for, in the metrics and in $inventory_sku of the log.
 */

ngx_http_inventory_ctx_t *
ngx_http_inventory_saved_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_inventory_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);

    if (ctx || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_inventory_ctx_mark) {
            return cln->data;
        }
    }

    return NULL;
}


static void
ngx_http_inventory_ctx_mark(void *data)
{
    /* nothing to free: the handler only marks the context */
}


/* the context of a request in one of the module's locations, or NULL */

ngx_http_inventory_ctx_t *
ngx_http_inventory_location_ctx(ngx_http_request_t *r)
{
    ngx_http_inventory_ctx_t       *ctx;
    ngx_http_inventory_loc_conf_t  *ilcf;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_inventory_module);

    if (ilcf->serves == NGX_HTTP_INVENTORY_SERVES_NONE) {
        return NULL;
    }

    ctx = ngx_http_inventory_request_ctx(r);

    if (ctx && ilcf->serves == NGX_HTTP_INVENTORY_SERVES_METRICS) {
        ctx->rt = NULL;
        ctx->route = NGX_HTTP_INVENTORY_ROUTE_METRICS;
    }

    if (ctx && ilcf->serves == NGX_HTTP_INVENTORY_SERVES_REPLICATION) {
        ctx->rt = NULL;
        ctx->route = NGX_HTTP_INVENTORY_ROUTE_REPLICATION;
    }

    return ctx;
}


/*
 * Every request of the module's locations gets its context before limit_req
 * and access checks: what they answer is then counted for its route.  An
 * allocation failure here shows again in the content handler.
 */

ngx_int_t
ngx_http_inventory_preaccess(ngx_http_request_t *r)
{
    (void) ngx_http_inventory_location_ctx(r);

    return NGX_DECLINED;
}


/* the path below the location's prefix, matched against the route table */

static const ngx_http_inventory_route_t *
ngx_http_inventory_route(ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx)
{
    u_char                            *p, *end;
    ngx_http_core_loc_conf_t          *clcf;
    const ngx_http_inventory_route_t  *rt;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    end = r->uri.data + r->uri.len;

    /* a regex location has no prefix to strip: routes then start at "/" */
    if (clcf->regex == NULL) {
        if (r->uri.len < clcf->name.len
            || ngx_strncmp(p, clcf->name.data, clcf->name.len) != 0)
        {
            return NULL;
        }

        p += clcf->name.len;
    }

    if (p < end && *p == '/') {
        p++;
    }

    rt = ngx_http_inventory_route_find((char *) p, end - p,
                                       ngx_http_inventory_method(r),
                                       &ctx->ids, &ctx->methods);

    if (rt) {
        ctx->route = rt->route;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "inventory route: \"%V\" is %s", &r->uri,
                   ngx_http_inventory_route_get(ctx->route)->name);

    return rt;
}


/* the method as the route table's mask has it; 0 for the others */

ngx_uint_t
ngx_http_inventory_method(ngx_http_request_t *r)
{
    switch (r->method) {

    case NGX_HTTP_GET:
        return NGX_HTTP_INVENTORY_M_GET;

    case NGX_HTTP_HEAD:
        return NGX_HTTP_INVENTORY_M_HEAD;

    case NGX_HTTP_PUT:
        return NGX_HTTP_INVENTORY_M_PUT;

    case NGX_HTTP_POST:
        return NGX_HTTP_INVENTORY_M_POST;

    default:
        return 0;
    }
}


/*
 * Begins a read for the request, and keeps the seq of the snapshot it
 * reads for its Inventory-Seq.
 */

int
ngx_http_inventory_read_begin(ngx_http_request_t *r,
    ngx_http_inventory_store_t *st)
{
    int                        rc;
    uint64_t                   seq;
    ngx_http_inventory_ctx_t  *ctx;

    rc = ngx_http_inventory_store_read_begin(st);
    if (rc != 0) {
        return rc;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);

    if (ctx && ngx_http_inventory_store_last_seq(st, &seq) == 0) {
        ctx->seq = seq;
        ctx->seq_known = 1;
    }

    return 0;
}
