/*
 * Request validation: parsed JSON bodies to commands, with one error per
 * offending field, as the API's 400 "errors" member lists them.
 */

#ifndef _NGX_HTTP_INVENTORY_VALIDATE_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_VALIDATE_H_INCLUDED_


#include "ngx_http_inventory_core.h"
#include "ngx_http_inventory_json.h"


#define NGX_HTTP_INVENTORY_MAX_ERRORS     16
#define NGX_HTTP_INVENTORY_FIELD_LEN      80
#define NGX_HTTP_INVENTORY_MESSAGE_LEN    128


typedef struct {
    char                        field[NGX_HTTP_INVENTORY_FIELD_LEN];
    size_t                      field_len;    /* a member's name: NULs too */
    char                        message[NGX_HTTP_INVENTORY_MESSAGE_LEN];
} ngx_http_inventory_field_error_t;


typedef struct {
    ngx_http_inventory_field_error_t  e[NGX_HTTP_INVENTORY_MAX_ERRORS];
    size_t                            n;
} ngx_http_inventory_errors_t;


/* a field named by a string literal */
#define ngx_http_inventory_error_set(errs, field, message)                    \
    ngx_http_inventory_error_add(errs, field, sizeof(field) - 1, message)


void ngx_http_inventory_error_add(ngx_http_inventory_errors_t *errs,
    const char *field, size_t field_len, const char *message);
void ngx_http_inventory_validate_id(ngx_http_inventory_errors_t *errs,
    const char *field, ngx_http_inventory_str_t id);

int ngx_http_inventory_query_from_json(const ngx_http_inventory_json_t *root,
    ngx_http_inventory_line_t *items, size_t max, size_t *n,
    ngx_http_inventory_errors_t *errs);
int ngx_http_inventory_cmd_from_json(ngx_http_inventory_cmd_t *cmd,
    const ngx_http_inventory_json_t *root, ngx_http_inventory_errors_t *errs);
int ngx_http_inventory_cmd_from_body(ngx_http_inventory_cmd_t *cmd,
    const char *body, size_t len, ngx_http_inventory_alloc_pt alloc,
    void *ctx, ngx_http_inventory_errors_t *errs);


#endif /* _NGX_HTTP_INVENTORY_VALIDATE_H_INCLUDED_ */
