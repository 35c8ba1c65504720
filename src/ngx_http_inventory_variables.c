/*
 * The module's variables, for log_format, limit_req_zone, map and
 * proxy_pass: the request's SKU and location, the seq of the last event it
 * appended, this node's role, and its primary's host:port.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


static ngx_int_t ngx_http_inventory_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_inventory_node_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_inventory_vars[] = {

    { ngx_string("inventory_sku"), NULL, ngx_http_inventory_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("inventory_location"), NULL, ngx_http_inventory_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("inventory_event_seq"), NULL, ngx_http_inventory_variable,
      2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("inventory_role"), NULL, ngx_http_inventory_node_variable,
      0, 0, 0 },

    { ngx_string("inventory_primary"), NULL,
      ngx_http_inventory_node_variable, 1, 0, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_inventory_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_inventory_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_inventory_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                         *p;
    ngx_http_inventory_str_t        s;
    ngx_http_inventory_ctx_t       *ctx;
    ngx_http_inventory_loc_conf_t  *ilcf;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_inventory_module);

    ctx = (ilcf->serves == NGX_HTTP_INVENTORY_SERVES_API)
          ? ngx_http_inventory_request_ctx(r)
          : ngx_http_inventory_saved_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case 0:
    case 1:
        s = (data == 0) ? ctx->ids.sku : ctx->ids.location;

        /* only identifiers the API accepts: nothing else is ever a key */
        if (s.len == 0 || !ngx_http_inventory_id_valid(s.data, s.len)) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = (u_char *) s.data;
        v->len = s.len;
        break;

    default:
        if (ctx->event_seq == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%uL", ctx->event_seq) - p;
        break;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* the node's role and its primary, as configured */

static ngx_int_t
ngx_http_inventory_node_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (data == 0) {
        if (imcf->role_follower) {
            v->data = (u_char *) "follower";
            v->len = sizeof("follower") - 1;

        } else {
            v->data = (u_char *) "primary";
            v->len = sizeof("primary") - 1;
        }

    } else {
        /* a primary's own address is not known to it */
        if (imcf->follow_host.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = imcf->follow_host.data;
        v->len = imcf->follow_host.len;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
