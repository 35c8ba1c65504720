/*
 * yajl parsing into a bounded tree, and yajl_gen output into a growable
 * buffer.  Depth and node count are capped so that no body, however built,
 * costs more than a fixed amount of memory or stack.
 */

#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "ngx_http_inventory_json.h"


typedef struct {
    ngx_http_inventory_alloc_pt  alloc;
    void                        *ctx;
    ngx_http_inventory_json_t   *root;
    ngx_http_inventory_json_t   *stack[NGX_HTTP_INVENTORY_JSON_MAX_DEPTH];
    size_t                       depth;
    size_t                       nodes;
    const char                  *key;
    size_t                       key_len;
    const char                  *error;
    const char                  *dup_key;
    size_t                       dup_key_len;
} ngx_http_inventory_json_parser_t;


static ngx_http_inventory_json_t *ngx_http_inventory_json_node(
    ngx_http_inventory_json_parser_t *jp, unsigned type);
static int ngx_http_inventory_json_copy(ngx_http_inventory_json_parser_t *jp,
    const unsigned char *s, size_t len, const char **out);
static int ngx_http_inventory_json_escapes_valid(const char *s, size_t len);
static int ngx_http_inventory_json_on_null(void *ctx);
static int ngx_http_inventory_json_on_boolean(void *ctx, int b);
static int ngx_http_inventory_json_on_number(void *ctx, const char *s,
    size_t len);
static int ngx_http_inventory_json_on_string(void *ctx,
    const unsigned char *s, size_t len);
static int ngx_http_inventory_json_on_start(void *ctx, unsigned type);
static int ngx_http_inventory_json_on_start_map(void *ctx);
static int ngx_http_inventory_json_on_start_array(void *ctx);
static int ngx_http_inventory_json_on_map_key(void *ctx,
    const unsigned char *s, size_t len);
static int ngx_http_inventory_json_on_end(void *ctx);
static void ngx_http_inventory_gen_print(void *ctx, const char *s,
    size_t len);


static yajl_callbacks  ngx_http_inventory_json_callbacks = {
    ngx_http_inventory_json_on_null,
    ngx_http_inventory_json_on_boolean,
    NULL,
    NULL,
    ngx_http_inventory_json_on_number,
    ngx_http_inventory_json_on_string,
    ngx_http_inventory_json_on_start_map,
    ngx_http_inventory_json_on_map_key,
    ngx_http_inventory_json_on_end,
    ngx_http_inventory_json_on_start_array,
    ngx_http_inventory_json_on_end
};


ngx_http_inventory_json_t *
ngx_http_inventory_json_parse(const char *text, size_t len,
    ngx_http_inventory_alloc_pt alloc, void *ctx, char *err,
    const char **dup_key, size_t *dup_key_len)
{
    yajl_handle                       h;
    yajl_status                       st;
    unsigned char                    *msg;
    ngx_http_inventory_json_parser_t  jp;

    memset(&jp, 0, sizeof(jp));
    jp.alloc = alloc;
    jp.ctx = ctx;
    err[0] = '\0';
    *dup_key = NULL;
    *dup_key_len = 0;

    if (len == 0) {
        strcpy(err, "request body is empty");
        return NULL;
    }

    if (!ngx_http_inventory_json_escapes_valid(text, len)) {
        strcpy(err, "body is not valid JSON: half a surrogate pair in a "
                    "string");
        return NULL;
    }

    h = yajl_alloc(&ngx_http_inventory_json_callbacks, NULL, &jp);
    if (h == NULL) {
        strcpy(err, "out of memory");
        return NULL;
    }

    st = yajl_parse(h, (const unsigned char *) text, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    if (st != yajl_status_ok) {
        if (jp.error) {
            strncpy(err, jp.error, NGX_HTTP_INVENTORY_JSON_ERR_LEN - 1);
            *dup_key = jp.dup_key;
            *dup_key_len = jp.dup_key_len;

        } else {
            /* non-verbose: the message never quotes the body back */
            msg = yajl_get_error(h, 0, NULL, 0);
            strcpy(err, "body is not valid JSON: ");
            strncat(err, msg ? (char *) msg : "parse error",
                    NGX_HTTP_INVENTORY_JSON_ERR_LEN - 1 - strlen(err));

            if (msg) {
                yajl_free_error(h, msg);
            }
        }

        err[NGX_HTTP_INVENTORY_JSON_ERR_LEN - 1] = '\0';
        yajl_free(h);
        return NULL;
    }

    yajl_free(h);

    return jp.root;
}


ngx_http_inventory_json_t *
ngx_http_inventory_json_get(const ngx_http_inventory_json_t *obj,
    const char *name)
{
    size_t                      n;
    ngx_http_inventory_json_t  *m;

    n = strlen(name);

    for (m = obj->child; m; m = m->next) {
        if (m->key_len == n && memcmp(m->key, name, n) == 0) {
            return m;
        }
    }

    return NULL;
}


static ngx_http_inventory_json_t *
ngx_http_inventory_json_node(ngx_http_inventory_json_parser_t *jp,
    unsigned type)
{
    ngx_http_inventory_json_t  *n, *parent, *m;

    if (++jp->nodes > NGX_HTTP_INVENTORY_JSON_MAX_NODES) {
        jp->error = "body has too many values";
        return NULL;
    }

    n = jp->alloc(jp->ctx, sizeof(ngx_http_inventory_json_t));
    if (n == NULL) {
        jp->error = "out of memory";
        return NULL;
    }

    memset(n, 0, sizeof(ngx_http_inventory_json_t));
    n->type = type;

    if (jp->depth == 0) {
        jp->root = n;
        return n;
    }

    parent = jp->stack[jp->depth - 1];

    if (parent->type == NGX_HTTP_INVENTORY_JSON_OBJECT) {
        for (m = parent->child; m; m = m->next) {
            if (m->key_len == jp->key_len
                && memcmp(m->key, jp->key, jp->key_len) == 0)
            {
                jp->error = "duplicate member";
                jp->dup_key = jp->key;
                jp->dup_key_len = jp->key_len;
                return NULL;
            }
        }

        n->key = jp->key;
        n->key_len = jp->key_len;
    }

    if (parent->last) {
        parent->last->next = n;

    } else {
        parent->child = n;
    }

    parent->last = n;
    parent->count++;

    return n;
}


static int
ngx_http_inventory_json_copy(ngx_http_inventory_json_parser_t *jp,
    const unsigned char *s, size_t len, const char **out)
{
    char  *p;

    /* yajl lets overlong forms, surrogates and code points past U+10FFFF
     * through */
    if (!ngx_http_inventory_utf8_valid(s, len)) {
        jp->error = "body is not valid JSON: invalid UTF-8 in a string";
        return 0;
    }

    /* yajl's buffers are transient: keep our own, NUL-terminated copy */
    p = jp->alloc(jp->ctx, len + 1);
    if (p == NULL) {
        jp->error = "out of memory";
        return 0;
    }

    memcpy(p, s, len);
    p[len] = '\0';
    *out = p;

    return 1;
}


/* well-formed UTF-8 as RFC 3629 defines it */

int
ngx_http_inventory_utf8_valid(const unsigned char *s, size_t len)
{
    size_t         i, need;
    unsigned char  c, lo, hi;

    for (i = 0; i < len; /* void */ ) {
        c = s[i++];

        if (c < 0x80) {
            continue;
        }

        lo = 0x80;
        hi = 0xbf;

        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;

        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            lo = (c == 0xe0) ? 0xa0 : 0x80;
            hi = (c == 0xed) ? 0x9f : 0xbf;

        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            lo = (c == 0xf0) ? 0x90 : 0x80;
            hi = (c == 0xf4) ? 0x8f : 0xbf;

        } else {
            return 0;
        }

        if (len - i < need || s[i] < lo || s[i] > hi) {
            return 0;
        }

        for (i++, need--; need; i++, need--) {
            if (s[i] < 0x80 || s[i] > 0xbf) {
                return 0;
            }
        }
    }

    return 1;
}


/*
 * yajl decodes a \uD800-\uDBFF escape with no \u escape after it into
 * "?", and pairs it with whatever \u escape follows (\uD800\u0041 is
 * U+10041): half a surrogate pair, or a pair in the wrong order, is
 * refused here from the text, as invalid UTF-8 is.
 */

static int
ngx_http_inventory_json_escapes_valid(const char *s, size_t len)
{
    size_t    i, k;
    unsigned  c, cp, high;

    high = 0;

    for (i = 0; i < len; i++) {
        if (s[i] != '\\' || i + 1 == len) {
            if (high) {
                return 0;
            }

            continue;
        }

        if (s[i + 1] != 'u') {
            if (high) {
                return 0;
            }

            i++;
            continue;
        }

        /* a \u escape without its 4 hex digits: yajl refuses it */
        if (len - i < 6) {
            return 1;
        }

        cp = 0;

        for (k = i + 2; k < i + 6; k++) {
            c = (unsigned char) s[k];

            if (c >= '0' && c <= '9') {
                cp = cp << 4 | (c - '0');

            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                cp = cp << 4 | ((c | 0x20) - 'a' + 10);

            } else {
                return 1;
            }
        }

        i += 5;

        if (high) {
            if (cp < 0xdc00 || cp > 0xdfff) {
                return 0;
            }

            high = 0;

        } else if (cp >= 0xd800 && cp <= 0xdfff) {
            if (cp >= 0xdc00) {
                return 0;
            }

            high = 1;
        }
    }

    return !high;
}


static int
ngx_http_inventory_json_on_null(void *ctx)
{
    return ngx_http_inventory_json_node(ctx, NGX_HTTP_INVENTORY_JSON_NULL)
           != NULL;
}


static int
ngx_http_inventory_json_on_boolean(void *ctx, int b)
{
    ngx_http_inventory_json_t  *n;

    n = ngx_http_inventory_json_node(ctx, NGX_HTTP_INVENTORY_JSON_BOOL);
    if (n == NULL) {
        return 0;
    }

    n->boolean = b;

    return 1;
}


static int
ngx_http_inventory_json_on_number(void *ctx, const char *s, size_t len)
{
    ngx_http_inventory_json_t  *n;

    n = ngx_http_inventory_json_node(ctx, NGX_HTTP_INVENTORY_JSON_NUMBER);
    if (n == NULL) {
        return 0;
    }

    n->len = len;

    return ngx_http_inventory_json_copy(ctx, (const unsigned char *) s, len,
                                        &n->str);
}


static int
ngx_http_inventory_json_on_string(void *ctx, const unsigned char *s,
    size_t len)
{
    ngx_http_inventory_json_t  *n;

    n = ngx_http_inventory_json_node(ctx, NGX_HTTP_INVENTORY_JSON_STRING);
    if (n == NULL) {
        return 0;
    }

    n->len = len;

    return ngx_http_inventory_json_copy(ctx, s, len, &n->str);
}


static int
ngx_http_inventory_json_on_start(void *ctx, unsigned type)
{
    ngx_http_inventory_json_t         *n;
    ngx_http_inventory_json_parser_t  *jp;

    jp = ctx;

    if (jp->depth == NGX_HTTP_INVENTORY_JSON_MAX_DEPTH) {
        jp->error = "body is nested too deeply";
        return 0;
    }

    n = ngx_http_inventory_json_node(jp, type);
    if (n == NULL) {
        return 0;
    }

    jp->stack[jp->depth++] = n;

    return 1;
}


static int
ngx_http_inventory_json_on_start_map(void *ctx)
{
    return ngx_http_inventory_json_on_start(ctx,
                                            NGX_HTTP_INVENTORY_JSON_OBJECT);
}


static int
ngx_http_inventory_json_on_start_array(void *ctx)
{
    return ngx_http_inventory_json_on_start(ctx,
                                            NGX_HTTP_INVENTORY_JSON_ARRAY);
}


static int
ngx_http_inventory_json_on_map_key(void *ctx, const unsigned char *s,
    size_t len)
{
    ngx_http_inventory_json_parser_t  *jp;

    jp = ctx;
    jp->key_len = len;

    return ngx_http_inventory_json_copy(jp, s, len, &jp->key);
}


static int
ngx_http_inventory_json_on_end(void *ctx)
{
    ngx_http_inventory_json_parser_t  *jp;

    jp = ctx;
    jp->depth--;

    return 1;
}


void
ngx_http_inventory_buf_init(ngx_http_inventory_buf_t *b,
    ngx_http_inventory_alloc_pt alloc, void *ctx)
{
    memset(b, 0, sizeof(ngx_http_inventory_buf_t));
    b->alloc = alloc;
    b->ctx = ctx;
}


void
ngx_http_inventory_buf_append(ngx_http_inventory_buf_t *b, const void *p,
    size_t n)
{
    size_t          cap;
    unsigned char  *data;

    if (b->failed) {
        return;
    }

    if (b->cap - b->len < n) {
        cap = b->cap ? b->cap : 512;

        while (cap - b->len < n) {
            cap *= 2;
        }

        if (b->alloc == NULL) {
            /* a heap buffer, for code that may not touch a pool */
            data = realloc(b->data, cap);

        } else {
            /* a pool has no realloc: grow geometrically and copy */
            data = b->alloc(b->ctx, cap);

            if (data && b->len) {
                memcpy(data, b->data, b->len);
            }
        }

        if (data == NULL) {
            b->failed = 1;
            return;
        }

        b->data = data;
        b->cap = cap;
    }

    memcpy(b->data + b->len, p, n);
    b->len += n;
}


static void
ngx_http_inventory_gen_print(void *ctx, const char *s, size_t len)
{
    ngx_http_inventory_buf_append(ctx, s, len);
}


/*
 * yajl_gen with a print callback only ever mallocs and frees (its state
 * stack is fixed): with a pool buffer, it allocates from the pool too, so a
 * response costs no heap allocation.
 */

static void *
ngx_http_inventory_gen_malloc(void *ctx, size_t size)
{
    ngx_http_inventory_buf_t  *b = ctx;

    return b->alloc(b->ctx, size);
}


static void *
ngx_http_inventory_gen_realloc(void *ctx, void *p, size_t size)
{
    (void) ctx;
    (void) p;
    (void) size;

    return NULL;
}


static void
ngx_http_inventory_gen_free(void *ctx, void *p)
{
    (void) ctx;
    (void) p;
}


yajl_gen
ngx_http_inventory_gen_open(ngx_http_inventory_buf_t *b)
{
    yajl_gen          g;
    yajl_alloc_funcs  funcs;

    if (b->alloc) {
        funcs.malloc = ngx_http_inventory_gen_malloc;
        funcs.realloc = ngx_http_inventory_gen_realloc;
        funcs.free = ngx_http_inventory_gen_free;
        funcs.ctx = b;

        g = yajl_gen_alloc(&funcs);

    } else {
        g = yajl_gen_alloc(NULL);
    }

    if (g == NULL) {
        return NULL;
    }

    yajl_gen_config(g, yajl_gen_print_callback, ngx_http_inventory_gen_print,
                    b);

    return g;
}


void
ngx_http_inventory_gen_str(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *) s, strlen(s));
}


void
ngx_http_inventory_gen_key_str(yajl_gen g, const char *key, const char *s,
    size_t len)
{
    ngx_http_inventory_gen_str(g, key);
    yajl_gen_string(g, (const unsigned char *) s, len);
}


/* yajl_gen_integer() goes through sprintf(): digits are cheaper by hand */

void
ngx_http_inventory_gen_key_int(yajl_gen g, const char *key, int64_t v)
{
    char      buf[24], *p;
    uint64_t  u;

    p = buf + sizeof(buf);
    u = (v < 0) ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;

    do {
        *--p = (char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (v < 0) {
        *--p = '-';
    }

    ngx_http_inventory_gen_str(g, key);
    yajl_gen_number(g, p, (size_t) (buf + sizeof(buf) - p));
}
