/*
 * The follower: with "inventory_follow URL", one worker at a time (a lease
 * in the zone, as the expiry sweep's) follows the node whose replication
 * stream is at URL, over HTTP/1.1 on its event loop.  An empty store starts
 * from a snapshot (also when the primary can no longer continue this
 * store's history); then the transactions after the store's last one,
 * long-polled, each response's transactions applied on the thread pool in
 * one local transaction.  The position is the store's own last
 * transaction, so a restart, a kill -9 or a lost connection resumes with no
 * gap and no duplicate.  The event loop never waits on the disk: the
 * snapshot's bytes, its installation and every apply run on the pool.
 */

#include "ngx_http_inventory_codec.h"
#include "ngx_http_inventory_follow.h"


static void ngx_http_inventory_follow_tick(ngx_event_t *ev);
static void ngx_http_inventory_follow_connect(
    ngx_http_inventory_follower_t *f);
static ngx_int_t ngx_http_inventory_follow_request(
    ngx_http_inventory_follower_t *f);
static ngx_int_t ngx_http_inventory_follow_sized(
    ngx_http_inventory_follower_t *f);
static void ngx_http_inventory_follow_answer(
    ngx_http_inventory_follower_t *f);
static void ngx_http_inventory_follow_chunk(
    ngx_http_inventory_follower_t *f);
static void ngx_http_inventory_follow_lingered(ngx_event_t *ev);
static void ngx_http_inventory_follow_next(ngx_http_inventory_follower_t *f);
static ngx_uint_t ngx_http_inventory_follow_deposed(
    ngx_http_inventory_follower_t *f);
static void ngx_http_inventory_follow_refused(
    ngx_http_inventory_follower_t *f);
static void ngx_http_inventory_follow_fail(ngx_http_inventory_follower_t *f,
    const char *why);
static void ngx_http_inventory_follow_close(ngx_http_inventory_follower_t *f);
static void ngx_http_inventory_follow_post(ngx_http_inventory_follower_t *f,
    ngx_http_inventory_task_e kind);
static void ngx_http_inventory_follow_task(void *data, ngx_log_t *log);
static void ngx_http_inventory_follow_done(ngx_event_t *ev);
static void ngx_http_inventory_follow_applied(
    ngx_http_inventory_follower_t *f);


void
ngx_http_inventory_follow_start(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf)
{
    ngx_http_inventory_follower_t  *f;

    f = ngx_pcalloc(cycle->pool, sizeof(ngx_http_inventory_follower_t));
    if (f == NULL) {
        return;
    }

    f->imcf = imcf;
    f->log = cycle->log;
    f->file = NGX_INVALID_FILE;

    f->path = ngx_pnalloc(cycle->pool, imcf->store_path.len
                                       + sizeof("/snapshot.tmp"));
    f->task = ngx_thread_task_alloc(cycle->pool, 0);
    f->parse = ngx_pcalloc(cycle->pool, sizeof(ngx_http_request_t));
    f->head = ngx_create_temp_buf(cycle->pool,
                                  NGX_HTTP_INVENTORY_FOLLOW_HEAD);

    if (f->path == NULL || f->task == NULL || f->parse == NULL
        || f->head == NULL)
    {
        return;
    }

    ngx_sprintf(f->path, "%V/snapshot.tmp%Z", &imcf->store_path);

    /* an idle primary answers each poll in time for health's max_lag */
    f->poll = ngx_min(NGX_HTTP_INVENTORY_FOLLOW_POLL,
                      ngx_max(imcf->follow_max_lag / 2000, 1));

    f->sized = ngx_http_inventory_follow_sized;
    f->chunk = ngx_http_inventory_follow_chunk;
    f->answer = ngx_http_inventory_follow_answer;
    f->fail = ngx_http_inventory_follow_fail;

    f->task->ctx = f;
    f->task->handler = ngx_http_inventory_follow_task;
    f->task->event.handler = ngx_http_inventory_follow_done;
    f->task->event.data = f;

    f->tick.handler = ngx_http_inventory_follow_tick;
    f->tick.data = f;
    f->tick.log = cycle->log;
    f->tick.cancelable = 1;

    f->linger.handler = ngx_http_inventory_follow_lingered;
    f->linger.data = f;
    f->linger.log = cycle->log;
    f->linger.cancelable = 1;

    imcf->follower = f;

    ngx_add_timer(&f->tick, NGX_HTTP_INVENTORY_FOLLOW_TICK);
}


/* a worker that exits hands the follow to another one at once */

void
ngx_http_inventory_follow_exit(ngx_http_inventory_main_conf_t *imcf)
{
    ngx_http_inventory_follower_t  *f;

    f = imcf->follower;

    if (f == NULL) {
        return;
    }

    ngx_http_inventory_follow_close(f);

    if (imcf->sh) {
        (void) ngx_atomic_cmp_set(&imcf->sh->repl.pid,
                                  (ngx_atomic_uint_t) ngx_pid, 0);
    }
}


static void
ngx_http_inventory_follow_tick(ngx_event_t *ev)
{
    ngx_http_inventory_follower_t  *f = ev->data;

    ngx_http_inventory_repl_sh_t  *rsh;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        if (f->state != ngx_http_inventory_follow_working) {
            ngx_http_inventory_follow_exit(f->imcf);
        }

        return;
    }

    if (f->imcf->sh == NULL || f->imcf->store == NULL) {
        return;
    }

    rsh = &f->imcf->sh->repl;

    if (!ngx_http_inventory_lease(&rsh->pid, &rsh->until, ev->log,
                                  ngx_http_inventory_clock_now(),
                                  NGX_HTTP_INVENTORY_FOLLOW_LEASE))
    {
        /* another worker follows: this one's connection, if any, ends */
        if (f->state != ngx_http_inventory_follow_working) {
            ngx_http_inventory_follow_close(f);
        }

        ngx_add_timer(ev, NGX_HTTP_INVENTORY_FOLLOW_TICK);
        return;
    }

    /* the cluster chose another node to follow, or none */
    if (f->url_gen != f->imcf->follow_gen
        && f->state != ngx_http_inventory_follow_working)
    {
        ngx_http_inventory_follow_close(f);
        f->url_gen = f->imcf->follow_gen;
        f->refused = 0;
        f->want_snapshot = 0;
        f->backoff = 0;
        f->retry_at = ngx_current_msec;
        rsh->refused = 0;
        rsh->connected = 0;
    }

    if (f->state == ngx_http_inventory_follow_idle
        && f->imcf->follow_url.len
        && (ngx_msec_int_t) (ngx_current_msec - f->retry_at) >= 0)
    {
        ngx_http_inventory_follow_connect(f);
    }

    ngx_add_timer(ev, NGX_HTTP_INVENTORY_FOLLOW_TICK);
}


static void
ngx_http_inventory_follow_connect(ngx_http_inventory_follower_t *f)
{
    ngx_int_t                        rc;
    ngx_connection_t                *c;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = f->imcf;

    ngx_memzero(&f->pc, sizeof(ngx_peer_connection_t));
    f->pc.sockaddr = imcf->follow.sockaddr;
    f->pc.socklen = imcf->follow.socklen;
    f->pc.name = &imcf->follow.name;
    f->pc.get = ngx_event_get_peer;
    f->pc.log = f->log;
    f->pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&f->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        f->pc.connection = NULL;
        ngx_http_inventory_follow_fail(f, "cannot connect");
        return;
    }

    c = f->pc.connection;
    c->data = f;
    c->pool = ngx_create_pool(1024, f->log);

    if (c->pool == NULL) {
        ngx_http_inventory_follow_fail(f, "no memory");
        return;
    }

    c->log = f->log;
    c->read->log = f->log;
    c->write->log = f->log;
    c->read->handler = ngx_http_inventory_follow_read;
    c->write->handler = ngx_http_inventory_follow_write;

    /* a worker shutting down does not wait for a long poll to end */
    c->read->cancelable = 1;
    c->write->cancelable = 1;

    f->answers = 0;
    f->state = ngx_http_inventory_follow_sending;

    if (ngx_http_inventory_follow_request(f) != NGX_OK) {
        ngx_http_inventory_follow_fail(f, "the store cannot be read");
        return;
    }

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, NGX_HTTP_INVENTORY_FOLLOW_TIMEOUT);
        return;
    }

    ngx_http_inventory_follow_write(c->write);
}


/*
 * The next request, from the store's own position: a snapshot when the
 * store is empty or must start again, else the transactions after its
 * last one.
 */

static ngx_int_t
ngx_http_inventory_follow_request(ngx_http_inventory_follower_t *f)
{
    int                              rc;
    u_char                          *p, hex[32];
    ngx_buf_t                       *b;
    ngx_http_inventory_identity_t    id;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = f->imcf;

    rc = ngx_http_inventory_store_read_begin(imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_identity(imcf->store, &id);
        ngx_http_inventory_store_read_end(imcf->store);
    }

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "inventory follow: reading the store failed: %s",
                      ngx_http_inventory_store_strerror(rc));
        return NGX_ERROR;
    }

    ngx_memcpy(f->own_id, id.store_id, sizeof(f->own_id));
    f->own_epoch = id.epoch;
    ngx_hex_dump(hex, id.store_id, sizeof(id.store_id));

    /* an empty primary's snapshot leaves the store empty: once is enough */
    f->empty = (id.tx == 0 && id.last_seq == 0);
    f->snapshot = (f->empty && !f->seeded) || f->want_snapshot;

    b = f->head;
    b->pos = b->start;
    p = b->start;

    if (f->snapshot) {
        p = ngx_sprintf(p, "GET %Vsnapshot HTTP/1.1" CRLF, &imcf->follow_uri);

    } else {
        p = ngx_sprintf(p, "GET %Vtransactions?after=%uL&check=%uL&wait=%d"
                        " HTTP/1.1" CRLF "Inventory-Store-Id: %*s" CRLF,
                        &imcf->follow_uri, id.tx, id.tx_at, f->poll,
                        (size_t) 32, hex);

        /* the primary learns what this node holds: its store's last tx */
        ngx_hex_dump(hex, imcf->node_id, sizeof(imcf->node_id));
        p = ngx_sprintf(p, "Inventory-Node-Id: %*s" CRLF
                        "Inventory-Epoch: %uL" CRLF,
                        (size_t) 32, hex, id.epoch);
    }

    p = ngx_sprintf(p, "Host: %V" CRLF
                    "Inventory-Replication: "
                    NGX_HTTP_INVENTORY_REPL_VERSION CRLF
                    "User-Agent: nginx-inventory-follower" CRLF CRLF,
                    &imcf->follow_host);

    b->last = p;

    return NGX_OK;
}


/*
 * The answer's head is in: what its body is kept in.  A snapshot comes in
 * chunks, to the file; other bodies whole, within a bound.
 */

static ngx_int_t
ngx_http_inventory_follow_sized(ngx_http_inventory_follower_t *f)
{
    if (f->snapshot && f->status.code == NGX_HTTP_OK) {
        /*
         * Another store's snapshot never replaces what this one holds, nor
         * a deposed primary's a newer epoch's.
         */
        if (!f->empty
            && (ngx_memcmp(f->store_id, f->own_id, sizeof(f->own_id)) != 0
                || ngx_http_inventory_follow_deposed(f)))
        {
            ngx_http_inventory_follow_refused(f);
            return NGX_ERROR;
        }

        f->body_size = NGX_HTTP_INVENTORY_FOLLOW_CHUNK;

        /* a snapshot cut off before is started again from its first byte */
        if (f->file != NGX_INVALID_FILE) {
            (void) ngx_close_file(f->file);
            f->file = NGX_INVALID_FILE;
        }

        f->file_off = 0;

    } else if (f->length > NGX_HTTP_INVENTORY_FOLLOW_BODY_MAX) {
        ngx_http_inventory_follow_fail(f, "the primary's answer is too "
                                          "long");
        return NGX_ERROR;

    } else {
        f->body_size = (size_t) f->length;
    }

    return NGX_OK;
}



/* a full chunk of a snapshot: to the file, then the rest is read */

static void
ngx_http_inventory_follow_chunk(ngx_http_inventory_follower_t *f)
{
    ngx_http_inventory_follow_post(f, ngx_http_inventory_task_write);
}


/* a whole answer is in (a snapshot's last chunk still in the buffer) */

static void
ngx_http_inventory_follow_answer(ngx_http_inventory_follower_t *f)
{
    ngx_http_inventory_repl_sh_t  *rsh;

    rsh = &f->imcf->sh->repl;

    rsh->heard_at = ngx_http_inventory_clock_now();
    rsh->connected = 1;
    f->answers++;

    if (ngx_http_inventory_follow_deposed(f)) {
        ngx_http_inventory_follow_refused(f);
        return;
    }

    switch (f->status.code) {

    case NGX_HTTP_OK:
        if (f->snapshot) {
            ngx_http_inventory_follow_post(f, ngx_http_inventory_task_write);
            return;
        }

        /* the first record's time (store_repl.c's layout), for lag_ms */
        if (f->body_len >= 12 + 17 && rsh->pending_at == 0) {
            rsh->pending_at = ngx_http_inventory_get_u64(f->body + 12 + 9);
        }

        ngx_http_inventory_follow_post(f, ngx_http_inventory_task_apply);
        return;

    case NGX_HTTP_NO_CONTENT:
        rsh->refused = 0;
        ngx_http_inventory_follow_next(f);
        return;

    case NGX_HTTP_CONFLICT:
        ngx_http_inventory_follow_refused(f);
        return;

    case 410:
        ngx_log_error(NGX_LOG_WARN, f->log, 0,
                      "inventory follow: %V cannot continue this store's "
                      "history: starting again from a snapshot",
                      &f->imcf->follow_url);
        f->want_snapshot = 1;
        ngx_http_inventory_follow_next(f);
        return;

    default:
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "inventory follow: %V answered %ui: \"%*s\"",
                      &f->imcf->follow_url, f->status.code,
                      ngx_min(f->body_len, 200), f->body);
        ngx_http_inventory_follow_fail(f, NULL);
        return;
    }
}


static void
ngx_http_inventory_follow_lingered(ngx_event_t *ev)
{
    ngx_http_inventory_follow_next(ev->data);
}


/* the next request on the same connection, or a new one */

static void
ngx_http_inventory_follow_next(ngx_http_inventory_follower_t *f)
{
    ngx_connection_t  *c;

    ngx_free(f->body);
    f->body = NULL;
    f->backoff = 0;

    c = f->pc.connection;

    if (c == NULL || !f->keepalive || ngx_exiting || ngx_quit
        || ngx_terminate
        || f->imcf->sh->repl.pid != (ngx_atomic_uint_t) ngx_pid
        || f->url_gen != f->imcf->follow_gen)
    {
        ngx_http_inventory_follow_close(f);
        f->retry_at = ngx_current_msec;
        return;
    }

    f->state = ngx_http_inventory_follow_sending;

    if (ngx_http_inventory_follow_request(f) != NGX_OK) {
        ngx_http_inventory_follow_fail(f, "the store cannot be read");
        return;
    }

    ngx_http_inventory_follow_write(c->write);
}


/*
 * The node followed serves another store, or is of an older epoch than
 * this copy (deposed: a primary was promoted since): nothing of it is
 * applied, and health says so, until it changes.
 */

static void
ngx_http_inventory_follow_refused(ngx_http_inventory_follower_t *f)
{
    u_char  own[32], theirs[32];

    ngx_hex_dump(own, f->own_id, sizeof(f->own_id));
    ngx_hex_dump(theirs, f->store_id, sizeof(f->store_id));

    if (f->refused) {
        /* said once */

    } else if (ngx_http_inventory_follow_deposed(f)) {
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "inventory follow: %V serves epoch %uL of the store, "
                      "this copy is at epoch %uL: it was deposed by a "
                      "promotion since; nothing is applied", 
                      &f->imcf->follow_url, f->epoch, f->own_epoch);

    } else {
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "inventory follow: %V serves another store (store_id "
                      "%*s), this store is %*s: nothing is applied; a "
                      "follower needs an empty store or a copy of the "
                      "primary's", &f->imcf->follow_url, (size_t) 32, theirs,
                      (size_t) 32, own);
    }

    f->refused = 1;
    f->imcf->sh->repl.refused = 1;
    f->backoff = NGX_HTTP_INVENTORY_FOLLOW_BACKOFF_MAX / 2;

    ngx_http_inventory_follow_fail(f, NULL);
}


/* the node followed answered with an older epoch than this copy's */

static ngx_uint_t
ngx_http_inventory_follow_deposed(ngx_http_inventory_follower_t *f)
{
    return f->epoch && !f->empty && f->epoch < f->own_epoch;
}


/* closes the connection and tries again later, each time later */

static void
ngx_http_inventory_follow_fail(ngx_http_inventory_follower_t *f,
    const char *why)
{
    ngx_uint_t  answered, level;

    answered = (f->answers > 0);

    /* a connection that had served may be closed by the primary at will */
    level = answered ? NGX_LOG_INFO : NGX_LOG_ERR;

    if (why) {
        ngx_log_error(level, f->log, 0, "inventory follow: %V: %s",
                      &f->imcf->follow_url, why);
    }

    ngx_http_inventory_follow_close(f);

    if (f->imcf->sh) {
        f->imcf->sh->repl.connected = 0;
        (void) ngx_atomic_fetch_add(&f->imcf->sh->repl.reconnects, 1);
    }

    /* a connection that had served closes now and then: again at once */
    if (answered && f->backoff == 0) {
        f->retry_at = ngx_current_msec;
        f->backoff = NGX_HTTP_INVENTORY_FOLLOW_BACKOFF;
        return;
    }

    f->backoff = f->backoff ? ngx_min(f->backoff * 2,
                                      NGX_HTTP_INVENTORY_FOLLOW_BACKOFF_MAX)
                            : NGX_HTTP_INVENTORY_FOLLOW_BACKOFF;
    f->retry_at = ngx_current_msec + f->backoff;
}


static void
ngx_http_inventory_follow_close(ngx_http_inventory_follower_t *f)
{
    ngx_pool_t        *pool;
    ngx_connection_t  *c;

    c = f->pc.connection;

    /* the next request of a closed connection is never sent */
    if (f->linger.timer_set) {
        ngx_del_timer(&f->linger);
    }

    if (c) {
        pool = c->pool;
        ngx_close_connection(c);
        f->pc.connection = NULL;

        if (pool) {
            ngx_destroy_pool(pool);
        }
    }

    if (f->state != ngx_http_inventory_follow_working) {
        ngx_free(f->body);
        f->body = NULL;
        f->state = ngx_http_inventory_follow_idle;
    }
}


static void
ngx_http_inventory_follow_post(ngx_http_inventory_follower_t *f,
    ngx_http_inventory_task_e kind)
{
    ngx_thread_pool_t  *tp;

    tp = ngx_thread_pool_get((ngx_cycle_t *) ngx_cycle,
                             &f->imcf->thread_pool);

    f->task_kind = kind;
    f->task_rc = 0;
    f->state = ngx_http_inventory_follow_working;

    if (tp == NULL || ngx_thread_task_post(tp, f->task) != NGX_OK) {
        f->state = ngx_http_inventory_follow_reading;
        ngx_http_inventory_follow_fail(f, "cannot post to the thread pool");
    }
}


/* on a pool thread */

static void
ngx_http_inventory_follow_task(void *data, ngx_log_t *log)
{
    ngx_http_inventory_follower_t  *f = data;

    ssize_t  n;
    size_t   done;

    switch (f->task_kind) {

    case ngx_http_inventory_task_apply:
        f->task_rc = ngx_http_inventory_store_replicate(f->imcf->store,
                                                        f->body, f->body_len,
                                                        f->epoch,
                                                        &f->applied);
        return;

    case ngx_http_inventory_task_write:
        if (f->file == NGX_INVALID_FILE) {
            f->file = ngx_open_file(f->path, NGX_FILE_WRONLY,
                                    NGX_FILE_TRUNCATE, 0600);
            f->file_off = 0;

            if (f->file == NGX_INVALID_FILE) {
                f->task_rc = ngx_errno;
                return;
            }
        }

        for (done = 0; done < f->body_len; done += n) {
            n = pwrite(f->file, f->body + done, f->body_len - done,
                       f->file_off + done);

            if (n <= 0) {
                f->task_rc = n < 0 ? ngx_errno : EIO;
                return;
            }
        }

        f->file_off += f->body_len;
        return;

    default: /* ngx_http_inventory_task_install */
        if (ngx_close_file(f->file) == NGX_FILE_ERROR) {
            f->task_rc = ngx_errno;
        }

        f->file = NGX_INVALID_FILE;

        if (f->task_rc == 0) {
            f->task_rc = ngx_http_inventory_store_install(f->imcf->store,
                                                      (char *) f->path);
        }

        (void) ngx_delete_file(f->path);
        return;
    }
}


/* on the event loop, once the task is done */

static void
ngx_http_inventory_follow_done(ngx_event_t *ev)
{
    ngx_http_inventory_follower_t  *f = ev->data;

    ngx_uint_t         apply, bad;
    ngx_connection_t  *c;

    c = f->pc.connection;
    f->state = ngx_http_inventory_follow_reading;

    if (f->task_rc != 0) {
        apply = (f->task_kind == ngx_http_inventory_task_apply);
        bad = (f->task_rc == NGX_HTTP_INVENTORY_STORE_CORRUPTED);

        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "inventory follow: %s from %V failed: %s",
                      apply ? "applying transactions" : "taking a snapshot",
                      &f->imcf->follow_url,
                      apply && bad ? "they are malformed, or do not lead to "
                                     "the seq they name"
                                   : ngx_http_inventory_store_strerror(
                                                               f->task_rc));

        if (f->file != NGX_INVALID_FILE) {
            (void) ngx_close_file(f->file);
            f->file = NGX_INVALID_FILE;
        }

        /* this copy was promoted meanwhile (a reload) */
        if (f->task_rc == NGX_HTTP_INVENTORY_STORE_FENCED) {
            f->own_epoch = f->epoch + 1;
            ngx_http_inventory_follow_refused(f);
            return;
        }

        /* a gap: ask again from the store's own position */
        if (f->task_rc == NGX_HTTP_INVENTORY_STORE_GONE) {
            ngx_http_inventory_follow_applied(f);
            ngx_http_inventory_follow_next(f);
            return;
        }

        /* transactions that cannot be applied as they are: start again */
        if (apply && bad) {
            f->want_snapshot = 1;
        }

        ngx_http_inventory_follow_fail(f, NULL);
        return;
    }

    switch (f->task_kind) {

    case ngx_http_inventory_task_apply:
        ngx_http_inventory_follow_applied(f);

        /*
         * A small lot: the primary commits more meanwhile, and one local
         * commit of them all costs this store (and a disk it may share
         * with the primary) less than one for every few.  Not when the
         * primary's writes wait for what this follower holds.
         */
        if (f->applied.count < NGX_HTTP_INVENTORY_FOLLOW_LOT && c
            && !f->prompt)
        {
            ngx_free(f->body);
            f->body = NULL;
            f->state = ngx_http_inventory_follow_sending;
            f->head->pos = f->head->last;
            ngx_add_timer(&f->linger, NGX_HTTP_INVENTORY_FOLLOW_LINGER);
            return;
        }

        ngx_http_inventory_follow_next(f);
        return;

    case ngx_http_inventory_task_write:
        f->body_len = 0;

        if (f->received == f->length) {
            ngx_http_inventory_follow_post(f,
                                           ngx_http_inventory_task_install);
            return;
        }

        /* the rest of the snapshot */
        if (c && !ngx_exiting) {
            ngx_http_inventory_follow_read(c->read);

        } else {
            ngx_http_inventory_follow_fail(f, NULL);
        }

        return;

    default: /* ngx_http_inventory_task_install */
        ngx_log_error(NGX_LOG_NOTICE, f->log, 0,
                      "inventory follow: the store is now a copy of %V's "
                      "(%O bytes)", &f->imcf->follow_url, f->file_off);

        f->want_snapshot = 0;
        f->seeded = 1;
        f->refused = 0;
        f->imcf->sh->repl.refused = 0;
        (void) ngx_atomic_fetch_add(&f->imcf->sh->repl.snapshots, 1);

        ngx_memzero(&f->applied, sizeof(ngx_http_inventory_applied_t));
        ngx_http_inventory_follow_applied(f);
        ngx_http_inventory_follow_next(f);
        return;
    }
}


/* what was applied: counted, and the waiting readers woken */

static void
ngx_http_inventory_follow_applied(ngx_http_inventory_follower_t *f)
{
    uint64_t                       now, lag;
    ngx_uint_t                     i;
    ngx_http_inventory_repl_sh_t  *rsh;
    static const uint64_t          bounds[NGX_HTTP_INVENTORY_LAG_BUCKETS - 1]
                                       = NGX_HTTP_INVENTORY_LAG_BOUNDS;

    rsh = &f->imcf->sh->repl;
    now = ngx_http_inventory_clock_now();

    if (f->applied.count) {
        (void) ngx_atomic_fetch_add(&rsh->transactions, f->applied.count);
        (void) ngx_atomic_fetch_add(&rsh->bytes, f->applied.bytes);

        /*
         * From the primary's commit to this one, of the oldest transaction
         * of the lot: the one that waited longest.  Both clocks are wall
         * clocks, so across machines it is as good as their sync.
         */
        lag = now > f->applied.first_at ? now - f->applied.first_at : 0;

        for (i = 0; i < NGX_HTTP_INVENTORY_LAG_BUCKETS - 1; i++) {
            if (lag <= bounds[i]) {
                break;
            }
        }

        (void) ngx_atomic_fetch_add(&rsh->lag[i], 1);
        (void) ngx_atomic_fetch_add(&rsh->lag_ms, lag);
    }

    /* caught up with what the primary had when it answered */
    if (f->applied.tx >= rsh->primary_tx || f->task_rc != 0) {
        rsh->pending_at = 0;
    }

    ngx_http_inventory_wait_notify(f->imcf);
}


/*
 * A follower's state for health and metrics: the store's own position,
 * and how far behind the primary it was when last heard.  NGX_DECLINED on
 * a primary.
 */

ngx_int_t
ngx_http_inventory_follow_status(ngx_http_inventory_main_conf_t *imcf,
    ngx_http_inventory_follow_status_t *fs)
{
    int                             rc;
    uint64_t                        now;
    ngx_http_inventory_repl_sh_t   *rsh;
    ngx_http_inventory_identity_t   id;

    ngx_memzero(fs, sizeof(ngx_http_inventory_follow_status_t));

    if (imcf->follow_url.len == 0 || imcf->sh == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_http_inventory_store_read_begin(imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_identity(imcf->store, &id);
        ngx_http_inventory_store_read_end(imcf->store);
    }

    if (rc != 0) {
        return NGX_ERROR;
    }

    rsh = &imcf->sh->repl;
    now = ngx_http_inventory_clock_now();

    fs->connected = rsh->connected ? 1 : 0;
    fs->refused = rsh->refused ? 1 : 0;
    fs->silent = (now - rsh->heard_at > imcf->follow_max_lag);
    fs->applied_seq = id.last_seq;
    fs->primary_seq = ngx_max((uint64_t) rsh->primary_seq, id.last_seq);

    /* behind: how long the oldest transaction known here has waited */
    if (rsh->pending_at && now > rsh->pending_at) {
        fs->lag_ms = now - rsh->pending_at;
    }

    return NGX_OK;
}
