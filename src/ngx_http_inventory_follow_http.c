/*
 * A follower's exchange with its primary on one connection: the request
 * sent, then the answer read, its status line and headers with nginx's own
 * parsers (the primary's position from its headers), its body into memory,
 * a chunk at a time when follow.c keeps it elsewhere (a snapshot).  What
 * the answer means is follow.c's: it is told through the follower's
 * callbacks.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_follow.h"


static ngx_msec_t ngx_http_inventory_follow_timeout(
    ngx_http_inventory_follower_t *f);
static ngx_int_t ngx_http_inventory_follow_head(
    ngx_http_inventory_follower_t *f);
static ngx_int_t ngx_http_inventory_follow_header(
    ngx_http_inventory_follower_t *f, ngx_str_t *name, ngx_str_t *value);


void
ngx_http_inventory_follow_write(ngx_event_t *wev)
{
    ssize_t                         n;
    ngx_buf_t                      *b;
    ngx_connection_t               *c;
    ngx_http_inventory_follower_t  *f;

    c = wev->data;
    f = c->data;
    b = f->head;

    if (wev->timedout) {
        f->fail(f, "sending timed out");
        return;
    }

    if (f->state != ngx_http_inventory_follow_sending) {
        (void) ngx_handle_write_event(wev, 0);
        return;
    }

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (!wev->timer_set) {
                ngx_add_timer(wev, NGX_HTTP_INVENTORY_FOLLOW_TIMEOUT);
            }

            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                f->fail(f, "sending failed");
            }

            return;
        }

        if (n <= 0) {
            f->fail(f, "sending failed");
            return;
        }

        b->pos += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    /* the answer: status line and headers into the same buffer */
    b->pos = b->start;
    b->last = b->start;
    ngx_memzero(f->parse, sizeof(ngx_http_request_t));
    ngx_memzero(&f->status, sizeof(ngx_http_status_t));
    ngx_memzero(f->store_id, sizeof(f->store_id));
    f->epoch = 0;
    f->status_done = 0;
    f->head_done = 0;
    f->keepalive = 1;
    f->prompt = 0;
    f->length = -1;
    f->received = 0;
    f->body_len = 0;
    f->state = ngx_http_inventory_follow_reading;

    ngx_add_timer(c->read, ngx_http_inventory_follow_timeout(f));

    ngx_http_inventory_follow_read(c->read);
}


void
ngx_http_inventory_follow_read(ngx_event_t *rev)
{
    size_t                          size;
    ssize_t                         n;
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_connection_t               *c;
    ngx_http_inventory_follower_t  *f;

    c = rev->data;
    f = c->data;
    b = f->head;

    if (rev->timedout) {
        f->fail(f, "the primary did not answer in "
                                          "time");
        return;
    }

    /* between answers, or while a task runs: resumed by its completion */
    if (f->state != ngx_http_inventory_follow_reading) {
        if (f->state == ngx_http_inventory_follow_idle) {
            return;
        }

        if (f->state == ngx_http_inventory_follow_sending && rev->ready) {
            /* the primary closed an idle connection, or sent garbage */
            n = c->recv(c, b->last, 1);

            if (n != NGX_AGAIN) {
                f->fail(f, "closed by the primary");
                return;
            }
        }

        (void) ngx_handle_read_event(rev, 0);
        return;
    }

    for ( ;; ) {

        if (!f->head_done) {
            if (b->last == b->end) {
                f->fail(f, "the answer's head is too "
                                                  "long");
                return;
            }

            n = c->recv(c, b->last, b->end - b->last);

            if (n == NGX_AGAIN) {
                break;
            }

            if (n <= 0) {
                f->fail(f, "closed by the primary");
                return;
            }

            b->last += n;

            rc = ngx_http_inventory_follow_head(f);

            if (rc == NGX_AGAIN) {
                continue;
            }

            if (rc != NGX_OK) {
                return;
            }

            continue;
        }

        if (f->received == f->length) {
            if (rev->timer_set) {
                ngx_del_timer(rev);
            }

            f->answer(f);
            return;
        }

        if (f->body_len == f->body_size) {
            /* a full chunk goes first (a snapshot's, to the file) */
            f->chunk(f);
            return;
        }

        size = ngx_min(f->body_size - f->body_len,
                       (size_t) (f->length - f->received));

        n = c->recv(c, f->body + f->body_len, size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n <= 0) {
            f->fail(f, "closed by the primary in the "
                                              "middle of an answer");
            return;
        }

        f->body_len += n;
        f->received += n;

        /* a long snapshot is news from the primary all along */
        f->imcf->sh->repl.heard_at = ngx_http_inventory_clock_now();
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        f->fail(f, "reading failed");
        return;
    }

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    ngx_add_timer(rev, ngx_http_inventory_follow_timeout(f));
}


/* how long the primary may be silent in the middle of an answer */

static ngx_msec_t
ngx_http_inventory_follow_timeout(ngx_http_inventory_follower_t *f)
{
    return f->snapshot ? NGX_HTTP_INVENTORY_FOLLOW_SNAPSHOT_TIMEOUT
                       : f->poll * 1000 + NGX_HTTP_INVENTORY_FOLLOW_TIMEOUT;
}


/*
 * The status line and headers, with nginx's own parsers; once whole, the
 * body's buffer: the answer's length at most (a snapshot: a chunk), with
 * the bytes already read moved into it.
 */

static ngx_int_t
ngx_http_inventory_follow_head(ngx_http_inventory_follower_t *f)
{
    size_t              rest;
    ngx_int_t           rc;
    ngx_buf_t          *b;
    ngx_str_t           name, value;
    ngx_http_request_t *r;

    b = f->head;
    r = f->parse;

    /* the parser sets the code before the line is whole */
    if (!f->status_done) {
        rc = ngx_http_parse_status_line(r, b, &f->status);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc != NGX_OK) {
            f->fail(f, "the primary's answer is not "
                                              "HTTP");
            return NGX_ERROR;
        }

        f->status_done = 1;
        r->state = 0;
    }

    for ( ;; ) {
        rc = ngx_http_parse_header_line(r, b, 1);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc == NGX_HTTP_PARSE_HEADER_DONE) {
            break;
        }

        if (rc != NGX_OK) {
            f->fail(f, "the primary's answer has an "
                                              "invalid header");
            return NGX_ERROR;
        }

        name.data = r->header_name_start;
        name.len = r->header_name_end - r->header_name_start;
        value.data = r->header_start;
        value.len = r->header_end - r->header_start;

        if (ngx_http_inventory_follow_header(f, &name, &value) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    f->head_done = 1;

    if (f->status.code == NGX_HTTP_NO_CONTENT
        || f->status.code == NGX_HTTP_NOT_MODIFIED)
    {
        f->length = 0;
    }

    if (f->length < 0) {
        f->fail(f, "the primary's answer has no "
                                          "Content-Length");
        return NGX_ERROR;
    }

    /* the body's buffer: as long as the body, or a chunk of it */
    if (f->sized(f) != NGX_OK) {
        return NGX_ERROR;
    }

    f->body = ngx_alloc(f->body_size ? f->body_size : 1, f->log);
    if (f->body == NULL) {
        f->fail(f, "no memory");
        return NGX_ERROR;
    }

    rest = ngx_min((size_t) (b->last - b->pos), (size_t) f->length);
    rest = ngx_min(rest, f->body_size);

    f->body_len = rest;
    f->received = rest;
    ngx_memcpy(f->body, b->pos, rest);
    b->pos += rest;

    /* the head buffer is smaller than a chunk: what is left is too much */
    if (b->pos < b->last) {
        f->fail(f, "the primary sent more than its "
                                          "answer");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_inventory_follow_header(ngx_http_inventory_follower_t *f,
    ngx_str_t *name, ngx_str_t *value)
{
    u_char                        *p;
    off_t                          n;
    ngx_int_t                      hex;
    ngx_uint_t                     i;
    ngx_http_inventory_repl_sh_t  *rsh;

    rsh = &f->imcf->sh->repl;

#define ngx_http_inventory_is(h)                                            \
    (name->len == sizeof(h) - 1                                             \
     && ngx_strncasecmp(name->data, (u_char *) h, name->len) == 0)

    if (ngx_http_inventory_is("Content-Length")) {
        n = ngx_atoof(value->data, value->len);

        if (n < 0 || f->length >= 0) {
            f->fail(f, "the primary's answer has an "
                                              "invalid Content-Length");
            return NGX_ERROR;
        }

        f->length = n;

    } else if (ngx_http_inventory_is("Transfer-Encoding")) {
        f->fail(f, "the primary's answer is chunked");
        return NGX_ERROR;

    } else if (ngx_http_inventory_is("Connection")) {
        if (value->len == sizeof("close") - 1
            && ngx_strncasecmp(value->data, (u_char *) "close", value->len)
               == 0)
        {
            f->keepalive = 0;
        }

    } else if (ngx_http_inventory_is("Inventory-Store-Id")) {
        p = f->store_id;

        ngx_memzero(f->store_id, sizeof(f->store_id));

        for (i = 0; value->len == 32 && i < 16; i++) {
            hex = ngx_hextoi(value->data + 2 * i, 2);

            if (hex == NGX_ERROR) {
                ngx_memzero(f->store_id, sizeof(f->store_id));
                break;
            }

            p[i] = (u_char) hex;
        }

    } else if (ngx_http_inventory_is("Inventory-Seq")) {
        n = ngx_atoof(value->data, value->len);
        if (n >= 0) {
            rsh->primary_seq = (ngx_atomic_uint_t) n;
        }

    } else if (ngx_http_inventory_is("Inventory-Epoch")) {
        n = ngx_atoof(value->data, value->len);
        f->epoch = (n > 0) ? (uint64_t) n : 0;

    } else if (ngx_http_inventory_is("Inventory-Sync-Replicas")) {
        f->prompt = (ngx_atoi(value->data, value->len) > 0);

    } else if (ngx_http_inventory_is("Inventory-Replication-Tx")) {
        n = ngx_atoof(value->data, value->len);
        if (n >= 0) {
            rsh->primary_tx = (ngx_atomic_uint_t) n;
        }
    }

#undef ngx_http_inventory_is

    return NGX_OK;
}
