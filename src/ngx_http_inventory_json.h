/*
 * JSON codec on top of yajl: a bounded parser into a small tree that keeps
 * numbers as their text (so that 1.5, 1e3 and 2^64 are told apart from
 * integers exactly), and an output buffer that yajl_gen writes into.
 */

#ifndef _NGX_HTTP_INVENTORY_JSON_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>


#define NGX_HTTP_INVENTORY_JSON_MAX_DEPTH  8
#define NGX_HTTP_INVENTORY_JSON_MAX_NODES  4096
#define NGX_HTTP_INVENTORY_JSON_ERR_LEN    128


typedef void *(*ngx_http_inventory_alloc_pt)(void *ctx, size_t size);


typedef enum {
    NGX_HTTP_INVENTORY_JSON_NULL = 0,
    NGX_HTTP_INVENTORY_JSON_BOOL,
    NGX_HTTP_INVENTORY_JSON_NUMBER,
    NGX_HTTP_INVENTORY_JSON_STRING,
    NGX_HTTP_INVENTORY_JSON_ARRAY,
    NGX_HTTP_INVENTORY_JSON_OBJECT
} ngx_http_inventory_json_type_e;


typedef struct ngx_http_inventory_json_s  ngx_http_inventory_json_t;

struct ngx_http_inventory_json_s {
    unsigned                    type;
    int                         boolean;
    const char                 *key;       /* member name, in an object */
    size_t                      key_len;
    const char                 *str;       /* string value or number text */
    size_t                      len;
    ngx_http_inventory_json_t  *child;     /* first element or member */
    ngx_http_inventory_json_t  *last;
    ngx_http_inventory_json_t  *next;
    size_t                      count;
};


/* with alloc NULL, the buffer lives on the heap: free(data) when done */
typedef struct {
    unsigned char              *data;
    size_t                      len;
    size_t                      cap;
    ngx_http_inventory_alloc_pt alloc;
    void                       *ctx;
    unsigned                    failed:1;
} ngx_http_inventory_buf_t;


/*
 * Returns the root, or NULL with a message in err; *dup_key is set to the
 * member name when the failure is a duplicate member.
 */
ngx_http_inventory_json_t *ngx_http_inventory_json_parse(const char *text,
    size_t len, ngx_http_inventory_alloc_pt alloc, void *ctx, char *err,
    const char **dup_key, size_t *dup_key_len);
ngx_http_inventory_json_t *ngx_http_inventory_json_get(
    const ngx_http_inventory_json_t *obj, const char *name);
/* well-formed UTF-8 (RFC 3629): 1, else 0 */
int ngx_http_inventory_utf8_valid(const unsigned char *s, size_t len);

void ngx_http_inventory_buf_init(ngx_http_inventory_buf_t *b,
    ngx_http_inventory_alloc_pt alloc, void *ctx);
void ngx_http_inventory_buf_append(ngx_http_inventory_buf_t *b,
    const void *p, size_t n);

yajl_gen ngx_http_inventory_gen_open(ngx_http_inventory_buf_t *b);
void ngx_http_inventory_gen_str(yajl_gen g, const char *s);
void ngx_http_inventory_gen_key_str(yajl_gen g, const char *key,
    const char *s, size_t len);
void ngx_http_inventory_gen_key_int(yajl_gen g, const char *key,
    int64_t v);


#endif /* _NGX_HTTP_INVENTORY_JSON_H_INCLUDED_ */
