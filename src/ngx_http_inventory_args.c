/*
 * Query arguments of a request: found and percent-decoded by the pure
 * parsers of uri.c, copied into the request's pool.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


/* the argument as it came, not decoded; NGX_DECLINED when absent */

ngx_int_t
ngx_http_inventory_arg_raw(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_http_inventory_str_t  raw;

    if (ngx_http_inventory_query_arg((char *) r->args.data, r->args.len, name,
                                     &raw)
        != 0)
    {
        return NGX_DECLINED;
    }

    value->data = (u_char *) raw.data;
    value->len = raw.len;

    return NGX_OK;
}


/* a query argument, percent-decoded; NGX_DECLINED when absent */

ngx_int_t
ngx_http_inventory_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_str_t  raw;

    if (ngx_http_inventory_arg_raw(r, name, &raw) != NGX_OK) {
        return NGX_DECLINED;
    }

    value->data = ngx_pnalloc(r->pool, raw.len ? raw.len : 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    value->len = ngx_http_inventory_unescape((char *) value->data,
                                             (char *) raw.data, raw.len);

    return NGX_OK;
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
