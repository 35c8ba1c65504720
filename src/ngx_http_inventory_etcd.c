/*
 * A small client of etcd's JSON gateway (/v3/...), on nginx's event loop:
 * one POST at a time, a connection each ("Connection: close"), the answer
 * read until etcd closes it, its body (whole, or chunked as etcd's
 * streaming calls answer) parsed as JSON.  An endpoint that fails is left
 * for the next one of the list.  Used by the cluster agent (cluster.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_ETCD_MAX      65536     /* bytes of an answer */


static void ngx_http_inventory_etcd_write(ngx_event_t *wev);
static void ngx_http_inventory_etcd_read(ngx_event_t *rev);
static void ngx_http_inventory_etcd_done(ngx_http_inventory_etcd_t *e,
    const char *why);
static ngx_int_t ngx_http_inventory_etcd_parse(ngx_http_inventory_etcd_t *e,
    ngx_uint_t *status, ngx_str_t *body);
static ngx_int_t ngx_http_inventory_etcd_dechunk(ngx_str_t *body);


/*
 * POSTs body to path on the current endpoint; handler(e, status, answer)
 * follows, on this event loop: answer NULL when there was none (then the
 * next call goes to the next endpoint).  NGX_BUSY while a call runs.
 */

ngx_int_t
ngx_http_inventory_etcd_call(ngx_http_inventory_etcd_t *e, const char *path,
    u_char *body, size_t len, ngx_http_inventory_etcd_pt handler, void *data)
{
    u_char            *p;
    ngx_int_t          rc;
    ngx_addr_t        *addr;
    ngx_connection_t  *c;

    if (e->busy) {
        return NGX_BUSY;
    }

    e->handler = handler;
    e->data = data;

    if (e->pool) {
        ngx_destroy_pool(e->pool);
    }

    e->pool = ngx_create_pool(4096, e->log);
    if (e->pool == NULL) {
        return NGX_ERROR;
    }

    e->out = ngx_create_temp_buf(e->pool, 512 + len);
    e->in = ngx_create_temp_buf(e->pool, NGX_HTTP_INVENTORY_ETCD_MAX);

    if (e->out == NULL || e->in == NULL) {
        return NGX_ERROR;
    }

    addr = &e->endpoints[e->current];

    p = ngx_sprintf(e->out->last, "POST %s HTTP/1.1" CRLF
                    "Host: %V" CRLF
                    "Content-Type: application/json" CRLF
                    "Content-Length: %uz" CRLF
                    "Connection: close" CRLF CRLF,
                    path, &addr->name, len);
    e->out->last = ngx_cpymem(p, body, len);

    ngx_memzero(&e->pc, sizeof(ngx_peer_connection_t));
    e->pc.sockaddr = addr->sockaddr;
    e->pc.socklen = addr->socklen;
    e->pc.name = &addr->name;
    e->pc.get = ngx_event_get_peer;
    e->pc.log = e->log;
    e->pc.log_error = NGX_ERROR_ERR;

    e->busy = 1;

    rc = ngx_event_connect_peer(&e->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        e->pc.connection = NULL;
        ngx_http_inventory_etcd_done(e, "cannot connect");
        return NGX_OK;
    }

    c = e->pc.connection;
    c->data = e;
    c->log = e->log;
    c->read->log = e->log;
    c->write->log = e->log;
    c->read->handler = ngx_http_inventory_etcd_read;
    c->write->handler = ngx_http_inventory_etcd_write;
    c->read->cancelable = 1;
    c->write->cancelable = 1;

    ngx_add_timer(c->read, e->timeout);

    if (rc == NGX_AGAIN) {
        return NGX_OK;
    }

    ngx_http_inventory_etcd_write(c->write);

    return NGX_OK;
}


/* a worker exits: a call still running is dropped, its socket closed */

void
ngx_http_inventory_etcd_close(ngx_http_inventory_etcd_t *e)
{
    if (e->pc.connection) {
        ngx_close_connection(e->pc.connection);
        e->pc.connection = NULL;
    }

    e->busy = 0;

    if (e->pool) {
        ngx_destroy_pool(e->pool);
        e->pool = NULL;
    }
}


static void
ngx_http_inventory_etcd_write(ngx_event_t *wev)
{
    ssize_t                     n;
    ngx_buf_t                  *b;
    ngx_connection_t           *c;
    ngx_http_inventory_etcd_t  *e;

    c = wev->data;
    e = c->data;
    b = e->out;

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_inventory_etcd_done(e, "sending failed");
            }

            return;
        }

        if (n <= 0) {
            ngx_http_inventory_etcd_done(e, "sending failed");
            return;
        }

        b->pos += n;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_inventory_etcd_done(e, "sending failed");
    }
}


static void
ngx_http_inventory_etcd_read(ngx_event_t *rev)
{
    ssize_t                     n;
    ngx_buf_t                  *b;
    ngx_connection_t           *c;
    ngx_http_inventory_etcd_t  *e;

    c = rev->data;
    e = c->data;
    b = e->in;

    if (rev->timedout) {
        ngx_http_inventory_etcd_done(e, "timed out");
        return;
    }

    for ( ;; ) {
        if (b->last == b->end) {
            ngx_http_inventory_etcd_done(e, "the answer is too long");
            return;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_inventory_etcd_done(e, "reading failed");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_inventory_etcd_done(e, "reading failed");
            return;
        }

        if (n == 0) {
            /* etcd closed: the whole answer is in */
            ngx_http_inventory_etcd_done(e, NULL);
            return;
        }

        b->last += n;
    }
}


/* the call ends: the answer (why NULL), or a failure */

static void
ngx_http_inventory_etcd_done(ngx_http_inventory_etcd_t *e, const char *why)
{
    char                        err[128];
    size_t                      dup_len;
    ngx_str_t                   body;
    const char                 *dup;
    ngx_uint_t                  status;
    ngx_http_inventory_json_t  *answer;

    if (e->pc.connection) {
        ngx_close_connection(e->pc.connection);
        e->pc.connection = NULL;
    }

    e->busy = 0;
    status = 0;
    answer = NULL;

    if (why == NULL) {
        if (ngx_http_inventory_etcd_parse(e, &status, &body) != NGX_OK) {
            why = "its answer is not HTTP";

        } else {
            answer = ngx_http_inventory_json_parse((char *) body.data,
                                             body.len,
                                             ngx_http_inventory_palloc,
                                             e->pool, err, &dup, &dup_len);
            if (answer == NULL) {
                why = "its answer is not JSON";
            }
        }
    }

    if (answer == NULL) {
        ngx_log_error(NGX_LOG_WARN, e->log, 0,
                      "inventory cluster: etcd at %V: %s",
                      &e->endpoints[e->current].name, why);

        e->current = (e->current + 1) % e->nendpoints;
    }

    e->handler(e, status, answer);
}


/* the status line, then the body after the headers, dechunked */

static ngx_int_t
ngx_http_inventory_etcd_parse(ngx_http_inventory_etcd_t *e,
    ngx_uint_t *status, ngx_str_t *body)
{
    u_char     *p, *end, *head_end;
    ngx_uint_t  chunked;

    p = e->in->pos;
    end = e->in->last;

    if (end - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0) {
        return NGX_ERROR;
    }

    *status = ngx_atoi(p + 9, 3);

    if (*status == (ngx_uint_t) NGX_ERROR) {
        return NGX_ERROR;
    }

    head_end = ngx_strlcasestrn(p, end, (u_char *) CRLF CRLF, 4 - 1);
    if (head_end == NULL) {
        return NGX_ERROR;
    }

    chunked = ngx_strlcasestrn(p, head_end,
                               (u_char *) "transfer-encoding: chunked",
                               sizeof("transfer-encoding: chunked") - 2)
              != NULL;

    body->data = head_end + 4;
    body->len = end - body->data;

    return chunked ? ngx_http_inventory_etcd_dechunk(body) : NGX_OK;
}


/* in place: the chunks' data, one after another */

static ngx_int_t
ngx_http_inventory_etcd_dechunk(ngx_str_t *body)
{
    u_char     *p, *end, *to, *eol;
    ngx_int_t   size;

    p = body->data;
    end = body->data + body->len;
    to = body->data;

    while (p < end) {
        eol = ngx_strlcasestrn(p, end, (u_char *) CRLF, 2 - 1);
        if (eol == NULL) {
            return NGX_ERROR;
        }

        size = ngx_hextoi(p, eol - p);
        if (size == NGX_ERROR || size > end - (eol + 2)) {
            return NGX_ERROR;
        }

        if (size == 0) {
            break;
        }

        ngx_memmove(to, eol + 2, size);
        to += size;
        p = eol + 2 + size + 2;
    }

    body->len = to - body->data;

    return NGX_OK;
}


/* prefix + name (+ member), base64 */

u_char *
ngx_http_inventory_etcd_key(u_char *p, const char *name,
    ngx_str_t *member)
{
    u_char     key[256], *k;
    ngx_str_t  src, dst;

    k = ngx_sprintf(key, NGX_HTTP_INVENTORY_CLUSTER_KEY "%s", name);

    if (member) {
        k = ngx_sprintf(k, "%V", member);
    }

    src.data = key;
    src.len = k - key;
    dst.data = p;

    ngx_encode_base64(&dst, &src);

    return p + dst.len;
}


/* a kv's value, decoded */

ngx_int_t
ngx_http_inventory_etcd_value(ngx_pool_t *pool,
    ngx_http_inventory_json_t *kv, ngx_str_t *value)
{
    ngx_str_t                   src;
    ngx_http_inventory_json_t  *v;

    v = ngx_http_inventory_json_get(kv, "value");

    if (v == NULL || v->type != NGX_HTTP_INVENTORY_JSON_STRING) {
        return NGX_ERROR;
    }

    src.data = (u_char *) v->str;
    src.len = v->len;

    value->data = ngx_pnalloc(pool, ngx_base64_decoded_length(src.len) + 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    return ngx_decode_base64(value, &src);
}


/* etcd's 64-bit numbers are strings; 0 when absent */

uint64_t
ngx_http_inventory_etcd_number(ngx_http_inventory_json_t *obj,
    const char *name)
{
    off_t                       n;
    ngx_http_inventory_json_t  *v;

    v = obj ? ngx_http_inventory_json_get(obj, name) : NULL;

    if (v == NULL || (v->type != NGX_HTTP_INVENTORY_JSON_STRING
                      && v->type != NGX_HTTP_INVENTORY_JSON_NUMBER))
    {
        return 0;
    }

    n = ngx_atoof((u_char *) v->str, v->len);

    return n > 0 ? (uint64_t) n : 0;
}


/* a member of a value this module wrote (a flat JSON object) */

ngx_int_t
ngx_http_inventory_etcd_field(ngx_pool_t *pool, ngx_str_t *json,
    const char *name, ngx_str_t *value)
{
    char                        err[128];
    size_t                      dup_len;
    const char                 *dup;
    ngx_http_inventory_json_t  *root, *v;

    root = ngx_http_inventory_json_parse((char *) json->data, json->len,
                                         ngx_http_inventory_palloc, pool,
                                         err, &dup, &dup_len);
    if (root == NULL) {
        return NGX_ERROR;
    }

    v = ngx_http_inventory_json_get(root, name);

    if (v == NULL || (v->type != NGX_HTTP_INVENTORY_JSON_STRING
                      && v->type != NGX_HTTP_INVENTORY_JSON_NUMBER))
    {
        return NGX_ERROR;
    }

    value->data = (u_char *) v->str;
    value->len = v->len;

    return NGX_OK;
}
