/*
 * The API's content handler: checks the route, the method and the
 * identifiers of the path, then hands the request to the read or the write
 * side.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


ngx_int_t
ngx_http_inventory_handler(ngx_http_request_t *r)
{
    ngx_str_t                          allow;
    ngx_http_inventory_ctx_t          *ctx;
    ngx_http_inventory_errors_t        errs;
    const ngx_http_inventory_route_t  *rt;
    ngx_http_inventory_main_conf_t    *imcf;

    ctx = ngx_http_inventory_request_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rt = ctx->rt;

    if (rt == NULL) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such resource", NULL);
    }

    if (!(ngx_http_inventory_method(r) & rt->methods)) {
        allow.data = (u_char *) rt->allow;
        allow.len = ngx_strlen(rt->allow);
        return ngx_http_inventory_not_allowed(r, &allow);
    }

    if (ctx->route == NGX_HTTP_INVENTORY_ROUTE_HEALTH) {
        return ngx_http_inventory_health(r);
    }

    errs.n = 0;

    switch (ngx_http_inventory_path_check(&ctx->ids, &errs)) {

    case NGX_HTTP_INVENTORY_PATH_INVALID:
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the path holds an invalid identifier",
                                    &errs);

    case NGX_HTTP_INVENTORY_PATH_NO_SUCH_ID:
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such reservation", NULL);

    default: /* NGX_HTTP_INVENTORY_PATH_OK */
        break;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (imcf->store == NULL) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store is not open", NULL);
    }

    if (!(ngx_http_inventory_method(r) & NGX_HTTP_INVENTORY_M_READ)) {
        return ngx_http_inventory_start_write(r, ctx);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ctx->route) {

    case NGX_HTTP_INVENTORY_ROUTE_AGGREGATE:
        return ngx_http_inventory_get_aggregate(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_ITEM_EVENTS:
        return ngx_http_inventory_get_item_events(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_RESERVATION:
        return ngx_http_inventory_get_reservation(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_EVENTS:
        return ngx_http_inventory_get_events(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_LOW_STOCK:
        return ngx_http_inventory_get_low_stock(r, ctx);

    default: /* NGX_HTTP_INVENTORY_ROUTE_ITEM */
        return ngx_http_inventory_get_item(r, ctx);
    }
}
