/*
 * What a request brings besides its path and body: query arguments (found
 * and percent-decoded by the pure parsers of uri.c, copied into the
 * request's pool) and request headers nginx does not keep by name.
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


/* the first request header of that name; NULL when there is none */

ngx_table_elt_t *
ngx_http_inventory_header_in(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}
