/*
 * The replication stream, served where "inventory_replication" is set, to
 * followers (on a primary, or on a follower for followers of its own):
 *
 *   GET {prefix}snapshot
 *       a compact, consistent copy of the whole store (an LMDB file),
 *       written on the thread pool to an unlinked file and sent from it;
 *   GET {prefix}transactions?after=TX&check=AT&wait=S
 *       the transactions after TX, as frames of [tx u64][length u32]
 *       [record] (store_repl.c), about 1 MB at most; with nothing to send,
 *       the request waits up to S seconds for a commit, then 204;
 *   POST {prefix}handover[?to=NAME]
 *       an operator's: a cluster's primary hands the lead over
 *       (handover.c).
 *
 * Each request says "Inventory-Replication: 1" (the protocol version);
 * transactions also "Inventory-Store-Id", which must be this store's (409
 * store-mismatch), and may say "Inventory-Node-Id", the follower's name:
 * then its transaction "after" found in this store's history tells what it
 * holds (sync.c).  410 snapshot-required: this store cannot continue the
 * follower's history (forgotten, or another history).  Answers carry the
 * store's Inventory-Store-Id, Inventory-Epoch, Inventory-Seq and
 * Inventory-Replication-Tx; a primary whose writes wait for followers adds
 * Inventory-Sync-Replicas, so that they ask again at once.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"
#include "ngx_http_inventory_codec.h"


#define NGX_HTTP_INVENTORY_REPL_BYTES     (1024 * 1024)
#define NGX_HTTP_INVENTORY_REPL_WAIT_MAX  60


typedef struct {
    uint64_t                    after;
    uint64_t                    check;
    uint64_t                    epoch;         /* the follower's, or 0 */
    u_char                      node[16];
    ngx_uint_t                  named;         /* node is the follower's */
    ngx_uint_t                  checked;       /* its history, once */
} ngx_http_inventory_repl_wait_t;


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_inventory_store_t *store;
    ngx_fd_t                    fd;
    int                         rc;
} ngx_http_inventory_snapshot_t;


typedef struct {
    ngx_http_request_t         *request;
    ngx_chain_t                *first;
    ngx_chain_t               **last;
    ngx_uint_t                  count;
} ngx_http_inventory_frames_t;


static ngx_int_t ngx_http_inventory_repl_transactions(ngx_http_request_t *r);
static ngx_int_t ngx_http_inventory_repl_respond(ngx_http_request_t *r,
    void *data, ngx_uint_t final);
static int ngx_http_inventory_repl_frame(void *ctx, uint64_t tx,
    const unsigned char *rec, size_t len);
static ngx_int_t ngx_http_inventory_repl_snapshot(ngx_http_request_t *r);
#if (NGX_THREADS)
static void ngx_http_inventory_repl_copy(void *data, ngx_log_t *log);
static void ngx_http_inventory_repl_copied(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_inventory_repl_headers(ngx_http_request_t *r,
    ngx_http_inventory_identity_t *id);
static ngx_int_t ngx_http_inventory_repl_header(ngx_http_request_t *r,
    const char *name, u_char *value, size_t len);


/* the resources below the location's prefix, and the method of each */
typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  method;
    const char                 *allow;
    ngx_uint_t                  follower;   /* speaks the protocol */
    ngx_http_handler_pt         handler;
} ngx_http_inventory_repl_resource_t;


static const ngx_http_inventory_repl_resource_t
    ngx_http_inventory_repl_resources[] = {
    { ngx_string("transactions"), NGX_HTTP_GET, "GET", 1,
      ngx_http_inventory_repl_transactions },
    { ngx_string("snapshot"), NGX_HTTP_GET, "GET", 1,
      ngx_http_inventory_repl_snapshot },
    /* an operator's */
    { ngx_string("handover"), NGX_HTTP_POST, "POST", 0,
      ngx_http_inventory_handover_handler }
};


ngx_int_t
ngx_http_inventory_replication_handler(ngx_http_request_t *r)
{
    ngx_str_t                     allow, name;
    ngx_uint_t                    i;
    ngx_table_elt_t              *h;
    const ngx_http_inventory_route_t  *rt;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_inventory_errors_t   errs;
    const ngx_http_inventory_repl_resource_t  *res;

    rt = ngx_http_inventory_route_get(NGX_HTTP_INVENTORY_ROUTE_REPLICATION);

    if (!(ngx_http_inventory_method(r) & rt->methods)) {
        allow.data = (u_char *) rt->allow;
        allow.len = ngx_strlen(rt->allow);
        return ngx_http_inventory_not_allowed(r, &allow);
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    name.data = r->uri.data + clcf->name.len;
    name.len = r->uri.len > clcf->name.len ? r->uri.len - clcf->name.len : 0;

    res = NULL;

    for (i = 0; i < sizeof(ngx_http_inventory_repl_resources)
                    / sizeof(ngx_http_inventory_repl_resources[0]); i++)
    {
        if (name.len == ngx_http_inventory_repl_resources[i].name.len
            && ngx_strncmp(name.data,
                           ngx_http_inventory_repl_resources[i].name.data,
                           name.len)
               == 0)
        {
            res = &ngx_http_inventory_repl_resources[i];
            break;
        }
    }

    if (res == NULL) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such resource", NULL);
    }

    if (r->method != res->method) {
        allow.data = (u_char *) res->allow;
        allow.len = ngx_strlen(res->allow);
        return ngx_http_inventory_not_allowed(r, &allow);
    }

    if (res->follower) {
        h = ngx_http_inventory_header_in(r, "Inventory-Replication");

        if (h == NULL
            || h->value.len != sizeof(NGX_HTTP_INVENTORY_REPL_VERSION) - 1
            || ngx_strncmp(h->value.data, NGX_HTTP_INVENTORY_REPL_VERSION,
                           h->value.len) != 0)
        {
            errs.n = 0;
            ngx_http_inventory_error_set(&errs, "Inventory-Replication",
                                         "must be "
                                         NGX_HTTP_INVENTORY_REPL_VERSION
                                         ", the protocol version served "
                                         "here");
            return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "this node serves replication protocol "
                                    "version " NGX_HTTP_INVENTORY_REPL_VERSION,
                                    &errs);
        }
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return res->handler(r);
}


static ngx_int_t
ngx_http_inventory_repl_transactions(ngx_http_request_t *r)
{
    off_t                            n;
    uint64_t                         after, check, wait, epoch;
    u_char                           node[16];
    ngx_int_t                        rc, b;
    ngx_uint_t                       i;
    ngx_table_elt_t                 *h;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_repl_wait_t  *rw;

    errs.n = 0;
    after = NGX_HTTP_INVENTORY_QTY_MAX + 1;
    check = 0;
    wait = 0;

    ngx_http_inventory_arg_uint(r, "after", 0, NGX_HTTP_INVENTORY_QTY_MAX,
                                &after, &errs);
    ngx_http_inventory_arg_uint(r, "check", 0, NGX_HTTP_INVENTORY_QTY_MAX,
                                &check, &errs);
    ngx_http_inventory_arg_uint(r, "wait", 0,
                                NGX_HTTP_INVENTORY_REPL_WAIT_MAX, &wait,
                                &errs);

    if (errs.n == 0 && after > NGX_HTTP_INVENTORY_QTY_MAX) {
        ngx_http_inventory_error_set(&errs, "after", "is required");
    }

    h = ngx_http_inventory_header_in(r, "Inventory-Store-Id");

    if (errs.n == 0 && (h == NULL || h->value.len != 32)) {
        ngx_http_inventory_error_set(&errs, "Inventory-Store-Id",
                                     "must be the 32 hex digits of the "
                                     "store followed");
    }

    epoch = 0;
    h = ngx_http_inventory_header_in(r, "Inventory-Epoch");

    if (h) {
        n = ngx_atoof(h->value.data, h->value.len);

        if (n <= 0 && errs.n == 0) {
            ngx_http_inventory_error_set(&errs, "Inventory-Epoch",
                                         "must be the follower's epoch, a "
                                         "positive integer");
        }

        epoch = (n > 0) ? (uint64_t) n : 0;
    }

    h = ngx_http_inventory_header_in(r, "Inventory-Node-Id");

    for (i = 0; h && i < 16; i++) {
        b = (h->value.len == 32) ? ngx_hextoi(h->value.data + 2 * i, 2)
                                 : NGX_ERROR;

        if (b == NGX_ERROR) {
            if (errs.n == 0) {
                ngx_http_inventory_error_set(&errs, "Inventory-Node-Id",
                                             "must be the 32 hex digits of "
                                             "the follower's node id");
            }

            break;
        }

        node[i] = (u_char) b;
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the query is invalid", &errs);
    }

    rw = ngx_pcalloc(r->pool, sizeof(ngx_http_inventory_repl_wait_t));
    if (rw == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rw->after = after;
    rw->check = check;
    rw->epoch = epoch;

    if (h) {
        ngx_memcpy(rw->node, node, 16);
        rw->named = 1;
    }

    rc = ngx_http_inventory_repl_respond(r, rw, wait == 0);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_inventory_wait(r, after, 1, (ngx_msec_t) wait * 1000,
                                   ngx_http_inventory_repl_respond, rw);
}


/* NGX_DECLINED: nothing to send yet, and not final */

static ngx_int_t
ngx_http_inventory_repl_respond(ngx_http_request_t *r, void *data,
    ngx_uint_t final)
{
    ngx_http_inventory_repl_wait_t  *rw = data;

    int                              rc;
    u_char                           hex[32];
    uint64_t                         seq;
    ngx_int_t                        sent;
    ngx_uint_t                       acked;
    ngx_chain_t                     *cl;
    ngx_table_elt_t                 *h;
    ngx_http_inventory_frames_t      fr;
    ngx_http_inventory_identity_t    id;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_store_read_begin(imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    rc = ngx_http_inventory_store_identity(imcf->store, &id);

    if (rc != 0) {
        ngx_http_inventory_store_read_end(imcf->store);
        return ngx_http_inventory_read_failed(r, rc);
    }

    h = ngx_http_inventory_header_in(r, "Inventory-Store-Id");
    ngx_hex_dump(hex, id.store_id, sizeof(id.store_id));

    if (h == NULL || ngx_strncasecmp(h->value.data, hex, 32) != 0) {
        ngx_http_inventory_store_read_end(imcf->store);

        if (ngx_http_inventory_repl_headers(r, &id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_STORE_MISMATCH,
                                    "this node holds another store "
                                    "(Inventory-Store-Id)", NULL);
    }

    acked = 0;

    /*
     * Once, before waiting: whether the follower's last transaction is of
     * this history (else it waits for nothing), and then what it holds.
     */
    if (!rw->checked) {
        rw->checked = 1;
        seq = 0;

        if (rw->after) {
            rc = ngx_http_inventory_store_tx_seq(imcf->store, rw->after,
                                                 rw->check, rw->epoch, &seq);
        }

        if (rc == 0 && rw->named) {
            ngx_http_inventory_sync_ack(imcf, rw->node, seq);
            acked = (imcf->sync_replicas != 0);
        }
    }

    if (rc == 0 && id.tx == rw->after && !final) {
        ngx_http_inventory_store_read_end(imcf->store);

        /* this worker's answers that waited for it go at once */
        if (acked) {
            ngx_http_inventory_wait_notify(imcf);
        }

        return NGX_DECLINED;
    }

    fr.request = r;
    fr.first = NULL;
    fr.last = &fr.first;
    fr.count = 0;

    if (rc == 0) {
        rc = ngx_http_inventory_store_transactions(imcf->store, rw->after,
                                                rw->check, rw->epoch,
                                                NGX_HTTP_INVENTORY_REPL_BYTES,
                                                ngx_http_inventory_repl_frame,
                                                &fr);
    }

    ngx_http_inventory_store_read_end(imcf->store);

    if (acked) {
        ngx_http_inventory_wait_notify(imcf);
    }

    if (ngx_http_inventory_repl_headers(r, &id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_HTTP_INVENTORY_STORE_GONE) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_SNAPSHOT_REQUIRED,
                                    "the transactions after this one are "
                                    "not kept here, or the follower's "
                                    "history is not this store's: start "
                                    "again from a snapshot", NULL);
    }

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    if (imcf->sh) {
        (void) ngx_atomic_fetch_add(&imcf->sh->repl.served_transactions,
                                    fr.count);
    }

    r->headers_out.status = fr.count ? NGX_HTTP_OK : NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    ngx_str_set(&r->headers_out.content_type, "application/octet-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    for (cl = fr.first; cl; cl = cl->next) {
        r->headers_out.content_length_n += ngx_buf_size(cl->buf);

        if (cl->next == NULL) {
            cl->buf->last_buf = (r == r->main);
            cl->buf->last_in_chain = 1;
        }
    }

    if (fr.count == 0) {
        r->header_only = 1;
    }

    sent = ngx_http_send_header(r);

    if (sent == NGX_ERROR || sent > NGX_OK || r->header_only) {
        return sent;
    }

    return ngx_http_output_filter(r, fr.first);
}


/* one frame, copied out of the read transaction into the request's pool */

static int
ngx_http_inventory_repl_frame(void *ctx, uint64_t tx,
    const unsigned char *rec, size_t len)
{
    ngx_http_inventory_frames_t  *fr = ctx;

    u_char       *p;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_create_temp_buf(fr->request->pool, 12 + len);
    cl = ngx_alloc_chain_link(fr->request->pool);

    if (b == NULL || cl == NULL) {
        return NGX_ENOMEM;
    }

    p = b->last;
    ngx_http_inventory_put_u64(p, tx);
    ngx_http_inventory_put_u32(p + 8, (uint32_t) len);
    b->last = ngx_cpymem(p + 12, rec, len);

    cl->buf = b;
    cl->next = NULL;
    *fr->last = cl;
    fr->last = &cl->next;
    fr->count++;

    return 0;
}


static ngx_int_t
ngx_http_inventory_repl_snapshot(ngx_http_request_t *r)
{
#if (NGX_THREADS)
    u_char                          *name;
    ngx_fd_t                         fd;
    ngx_thread_task_t               *task;
    ngx_thread_pool_t               *tp;
    ngx_pool_cleanup_t              *cln;
    ngx_pool_cleanup_file_t         *clnf;
    ngx_http_inventory_snapshot_t   *sn;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    tp = ngx_thread_pool_get((ngx_cycle_t *) ngx_cycle, &imcf->thread_pool);
    if (tp == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a file no one else can see: unlinked at once, closed with r */
    name = ngx_pnalloc(r->pool, imcf->store_path.len
                                + sizeof("/.snapshot-XXXXXX"));
    if (name == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(name, "%V/.snapshot-XXXXXX%Z", &imcf->store_path);

    fd = mkstemp((char *) name);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      "inventory: mkstemp(\"%s\") for a snapshot failed",
                      name);
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "no snapshot can be written now",
                                         NULL);
    }

    (void) ngx_delete_file(name);

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_pool_cleanup_file_t));
    if (cln == NULL) {
        (void) ngx_close_file(fd);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_pool_cleanup_file;
    clnf = cln->data;
    clnf->fd = fd;
    clnf->name = name;
    clnf->log = r->pool->log;

    task = ngx_thread_task_alloc(r->pool,
                                 sizeof(ngx_http_inventory_snapshot_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sn = task->ctx;
    sn->request = r;
    sn->store = imcf->store;
    sn->fd = fd;
    sn->rc = 0;

    task->handler = ngx_http_inventory_repl_copy;
    task->event.handler = ngx_http_inventory_repl_copied;
    task->event.data = sn;

    if (ngx_thread_task_post(tp, task) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->main->blocked++;
    r->main->count++;

    return NGX_DONE;
#else
    return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                     "snapshots need nginx with threads",
                                     NULL);
#endif
}


#if (NGX_THREADS)

static void
ngx_http_inventory_repl_copy(void *data, ngx_log_t *log)
{
    ngx_http_inventory_snapshot_t  *sn = data;

    sn->rc = ngx_http_inventory_store_copy(sn->store, sn->fd);
}


static void
ngx_http_inventory_repl_copied(ngx_event_t *ev)
{
    ngx_http_inventory_snapshot_t  *sn = ev->data;

    int                              rc;
    ngx_int_t                        sent;
    ngx_buf_t                       *b;
    ngx_chain_t                      out;
    ngx_file_info_t                  fi;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_inventory_identity_t    id;
    ngx_http_inventory_main_conf_t  *imcf;

    r = sn->request;
    c = r->connection;
    r->main->blocked--;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (sn->rc != 0 || ngx_fd_info(sn->fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "inventory: writing a snapshot failed: %s",
                      ngx_http_inventory_store_strerror(sn->rc ? sn->rc
                                                               : errno));
        ngx_http_finalize_request(r,
            ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                      "the snapshot could not be written",
                                      NULL));
        ngx_http_run_posted_requests(c);
        return;
    }

    /* the identity is the copy's too: neither changes without a snapshot */
    rc = ngx_http_inventory_store_read_begin(imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_identity(imcf->store, &id);
        ngx_http_inventory_store_read_end(imcf->store);
    }

    if (rc != 0 || ngx_http_inventory_repl_headers(r, &id) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    if (imcf->sh) {
        (void) ngx_atomic_fetch_add(&imcf->sh->repl.served_snapshots, 1);
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = ngx_file_size(&fi);
    ngx_str_set(&r->headers_out.content_type, "application/octet-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    b->file->fd = sn->fd;
    b->file->log = c->log;
    ngx_str_set(&b->file->name, "snapshot");
    b->file_pos = 0;
    b->file_last = ngx_file_size(&fi);
    b->in_file = b->file_last ? 1 : 0;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    sent = ngx_http_send_header(r);

    if (sent != NGX_ERROR && sent <= NGX_OK && !r->header_only) {
        sent = ngx_http_output_filter(r, &out);
    }

    ngx_http_finalize_request(r, sent);
    ngx_http_run_posted_requests(c);
}

#endif


static ngx_int_t
ngx_http_inventory_repl_headers(ngx_http_request_t *r,
    ngx_http_inventory_identity_t *id)
{
    u_char                           buf[NGX_INT64_LEN], hex[32];
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (imcf->sync_replicas && !imcf->role_follower
        && ngx_http_inventory_repl_header(r, "Inventory-Sync-Replicas", buf,
                                          ngx_sprintf(buf, "%ui",
                                                      imcf->sync_replicas)
                                          - buf)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_hex_dump(hex, id->store_id, sizeof(id->store_id));

    if (ngx_http_inventory_repl_header(r, "Inventory-Store-Id", hex, 32)
        != NGX_OK
        || ngx_http_inventory_repl_header(r, "Inventory-Epoch", buf,
                                          ngx_sprintf(buf, "%uL", id->epoch)
                                          - buf)
           != NGX_OK
        || ngx_http_inventory_repl_header(r, "Inventory-Seq", buf,
                                          ngx_sprintf(buf, "%uL",
                                                      id->last_seq)
                                          - buf)
           != NGX_OK
        || ngx_http_inventory_repl_header(r, "Inventory-Replication-Tx", buf,
                                          ngx_sprintf(buf, "%uL", id->tx)
                                          - buf)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_inventory_repl_header(ngx_http_request_t *r, const char *name,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.len = len;
    ngx_memcpy(h->value.data, value, len);

    return NGX_OK;
}
