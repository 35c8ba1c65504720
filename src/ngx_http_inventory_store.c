/*
 * LMDB storage.  Every change appends its events to the global log, indexes
 * them per item and rewrites the item's projection in the same write
 * transaction.  store_execute() applies a batch of commands in one
 * transaction; the batch equals the commands applied one by one in order,
 * and one command's failure leaves the others' effects intact.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_store.h"
#include "ngx_http_inventory_codec.h"
#include "ngx_http_inventory_render.h"


#define NGX_HTTP_INVENTORY_EXEC_DONE       0
#define NGX_HTTP_INVENTORY_EXEC_REJECT    -1
#define NGX_HTTP_INVENTORY_EXEC_ANSWERED  -2


typedef struct {
    uint64_t                    seq;
    uint64_t                    at;
} ngx_http_inventory_clock_t;


static int ngx_http_inventory_store_dbis(ngx_http_inventory_store_t *st,
    MDB_txn *txn, unsigned flags);
static int ngx_http_inventory_store_schema(ngx_http_inventory_store_t *st,
    MDB_txn *txn, unsigned flags);
static int ngx_http_inventory_store_item(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location, ngx_http_inventory_item_t *item);
static int ngx_http_inventory_store_clock(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_clock_t *clock);
static int ngx_http_inventory_store_batch(ngx_http_inventory_store_t *st,
    ngx_http_inventory_cmd_t **cmds, size_t n, uint64_t now);
static void ngx_http_inventory_store_failed(ngx_http_inventory_cmd_t *cmd,
    int rc);
static int ngx_http_inventory_store_run(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_clock_t *clock);
static int ngx_http_inventory_store_idem_check(
    ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_cmd_t *cmd);
static int ngx_http_inventory_store_idem_put(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd);
static int ngx_http_inventory_store_put_reservation(
    ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_cmd_t *cmd);
static int ngx_http_inventory_store_reservation(
    ngx_http_inventory_store_t *st, MDB_txn *txn, const char *id,
    ngx_http_inventory_reservation_t *res);
static int ngx_http_inventory_store_purge(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t now, size_t max, size_t *purged);
static int ngx_http_inventory_store_exec_one(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_clock_t *clock);
static int ngx_http_inventory_store_load(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot);
static int ngx_http_inventory_store_append(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot,
    ngx_http_inventory_event_t *ev, ngx_http_inventory_clock_t *clock);
static int ngx_http_inventory_store_put_item(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot);
static unsigned ngx_http_inventory_store_outcome(int rc);


static const char  ngx_http_inventory_schema_key[] = "schema_version";


int
ngx_http_inventory_store_open(ngx_http_inventory_store_t *st,
    const char *path, size_t map_size, int sync, unsigned flags)
{
    int           rc;
    unsigned int  env_flags;
    MDB_txn      *txn;

    memset(st, 0, sizeof(ngx_http_inventory_store_t));
    st->idem_ttl = 24 * 60 * 60 * 1000;

    rc = pthread_rwlock_init(&st->remap, NULL);
    if (rc != 0) {
        return rc;
    }

    rc = mdb_env_create(&st->env);
    if (rc != 0) {
        st->env = NULL;
        (void) pthread_rwlock_destroy(&st->remap);
        return rc;
    }

    /* NOTLS: read transactions belong to the worker, not to a thread */
    env_flags = MDB_NOTLS;

    if (!sync) {
        env_flags |= MDB_NOSYNC;
    }

    if (flags & NGX_HTTP_INVENTORY_STORE_RDONLY) {
        env_flags |= MDB_RDONLY;
    }

    if ((rc = mdb_env_set_maxdbs(st->env, 16)) != 0
        || (rc = mdb_env_set_maxreaders(st->env,
                                        NGX_HTTP_INVENTORY_MAX_READERS)) != 0
        || (rc = mdb_env_set_mapsize(st->env, map_size)) != 0
        || (rc = mdb_env_open(st->env, path, env_flags, 0600)) != 0)
    {
        goto failed;
    }

    /* slots of readers that died without ending their transactions */
    (void) mdb_reader_check(st->env, NULL);

    rc = mdb_txn_begin(st->env, NULL,
                       (flags & NGX_HTTP_INVENTORY_STORE_CREATE)
                       ? 0 : MDB_RDONLY,
                       &txn);
    if (rc != 0) {
        goto failed;
    }

    rc = ngx_http_inventory_store_dbis(st, txn, flags);

    if (rc == 0) {
        rc = ngx_http_inventory_store_schema(st, txn, flags);
    }

    if (rc != 0) {
        mdb_txn_abort(txn);
        goto failed;
    }

    /* committing keeps the DBI handles, also for a read-only transaction */
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        goto failed;
    }

    return 0;

failed:

    mdb_env_close(st->env);
    st->env = NULL;
    (void) pthread_rwlock_destroy(&st->remap);

    return rc;
}


void
ngx_http_inventory_store_close(ngx_http_inventory_store_t *st)
{
    if (st->env == NULL) {
        return;
    }

    if (st->rtxn) {
        mdb_txn_abort(st->rtxn);
        st->rtxn = NULL;
    }

    mdb_env_close(st->env);
    st->env = NULL;
    (void) pthread_rwlock_destroy(&st->remap);
}


/*
 * Another process grew the map (a reload with a larger map_size): adopt the
 * new size.  LMDB remaps the file then, so no transaction of this process
 * may be running: a worker reads on its event loop and writes on a pool
 * thread, and each holds the remap lock shared while its transaction runs.
 */

static void
ngx_http_inventory_store_remap(ngx_http_inventory_store_t *st)
{
    (void) pthread_rwlock_wrlock(&st->remap);
    (void) mdb_env_set_mapsize(st->env, 0);
    (void) pthread_rwlock_unlock(&st->remap);
}


const char *
ngx_http_inventory_store_strerror(int rc)
{
    if (rc == MDB_INCOMPATIBLE) {
        return "the store was written by an incompatible version";
    }

    return mdb_strerror(rc);
}


static int
ngx_http_inventory_store_dbis(ngx_http_inventory_store_t *st, MDB_txn *txn,
    unsigned flags)
{
    int           rc;
    unsigned int  f;

    f = (flags & NGX_HTTP_INVENTORY_STORE_CREATE) ? MDB_CREATE : 0;

    if ((rc = mdb_dbi_open(txn, "meta", f, &st->meta)) != 0
        || (rc = mdb_dbi_open(txn, "log", f, &st->log)) != 0
        || (rc = mdb_dbi_open(txn, "items", f, &st->items)) != 0
        || (rc = mdb_dbi_open(txn, "item_events", f, &st->item_events)) != 0
        || (rc = mdb_dbi_open(txn, "reservations", f, &st->reservations))
           != 0
        || (rc = mdb_dbi_open(txn, "reservation_expiry", f, &st->res_expiry))
           != 0
        || (rc = mdb_dbi_open(txn, "idempotency", f, &st->idempotency)) != 0
        || (rc = mdb_dbi_open(txn, "idempotency_expiry", f, &st->idem_expiry))
           != 0
        || (rc = mdb_dbi_open(txn, "low_stock", f, &st->low_stock)) != 0)
    {
        return rc;
    }

    return 0;
}


static int
ngx_http_inventory_store_schema(ngx_http_inventory_store_t *st, MDB_txn *txn,
    unsigned flags)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[8];

    key.mv_data = (void *) ngx_http_inventory_schema_key;
    key.mv_size = sizeof(ngx_http_inventory_schema_key) - 1;

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == MDB_NOTFOUND && (flags & NGX_HTTP_INVENTORY_STORE_CREATE)) {
        ngx_http_inventory_put_u64(buf, NGX_HTTP_INVENTORY_SCHEMA_VERSION);
        val.mv_data = buf;
        val.mv_size = 8;

        return mdb_put(txn, st->meta, &key, &val, 0);
    }

    if (rc != 0) {
        return rc == MDB_NOTFOUND ? MDB_INCOMPATIBLE : rc;
    }

    if (val.mv_size != 8
        || ngx_http_inventory_get_u64(val.mv_data)
           != NGX_HTTP_INVENTORY_SCHEMA_VERSION)
    {
        return MDB_INCOMPATIBLE;
    }

    return 0;
}


/*
 * Renews the process's read transaction.  A map grown by another process
 * is adopted here.
 */

int
ngx_http_inventory_store_read_begin(ngx_http_inventory_store_t *st)
{
    int  rc, tries;

    for (tries = 0; tries < 2; tries++) {

        (void) pthread_rwlock_rdlock(&st->remap);

        if (st->rtxn) {
            rc = mdb_txn_renew(st->rtxn);

        } else {
            rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &st->rtxn);
            if (rc != 0) {
                st->rtxn = NULL;
            }
        }

        if (rc == 0) {
            st->reading = 1;
            return 0;
        }

        if (st->rtxn) {
            mdb_txn_abort(st->rtxn);
            st->rtxn = NULL;
        }

        (void) pthread_rwlock_unlock(&st->remap);

        if (rc != MDB_MAP_RESIZED) {
            return rc;
        }

        ngx_http_inventory_store_remap(st);
    }

    return rc;
}


void
ngx_http_inventory_store_read_end(ngx_http_inventory_store_t *st)
{
    if (st->reading) {
        mdb_txn_reset(st->rtxn);
        st->reading = 0;
        (void) pthread_rwlock_unlock(&st->remap);
    }
}


int
ngx_http_inventory_store_get_item(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    ngx_http_inventory_item_t *item)
{
    return ngx_http_inventory_store_item(st, st->rtxn, sku, location, item);
}


static int
ngx_http_inventory_store_item(ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    ngx_http_inventory_item_t *item)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  kbuf[NGX_HTTP_INVENTORY_KEY_MAX];

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_item_key(kbuf, sku, location);

    rc = mdb_get(txn, st->items, &key, &val);
    if (rc != 0) {
        return rc;
    }

    if (ngx_http_inventory_item_decode(val.mv_data, val.mv_size, item) != 0) {
        return MDB_CORRUPTED;
    }

    return 0;
}


/* calls handler for every location of a SKU, in location order */

int
ngx_http_inventory_store_sku_items(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_item_pt handler,
    void *ctx)
{
    int                        rc;
    size_t                     plen;
    MDB_val                    key, val;
    MDB_cursor                *cur;
    unsigned char              prefix[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t   s, loc;
    ngx_http_inventory_item_t  item;

    rc = mdb_cursor_open(st->rtxn, st->items, &cur);
    if (rc != 0) {
        return rc;
    }

    plen = ngx_http_inventory_sku_prefix(prefix, sku);
    key.mv_data = prefix;
    key.mv_size = plen;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size <= plen || memcmp(key.mv_data, prefix, plen) != 0) {
            break;
        }

        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size,
                                              &s, &loc) != 0
            || ngx_http_inventory_item_decode(val.mv_data, val.mv_size,
                                              &item) != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        rc = handler(ctx, s, loc, &item);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


/*
 * mdb_reader_list() calls this once for its header and once per slot taken
 * ("pid thread txnid"): slots of live readers, and of dead ones until
 * mdb_reader_check() clears them.  LMDB's me_numreaders only tells how many
 * slots were ever handed out.
 */

static int
ngx_http_inventory_store_count_reader(const char *line, void *ctx)
{
    unsigned  *n = ctx;

    while (*line == ' ') {
        line++;
    }

    if (*line >= '0' && *line <= '9') {
        (*n)++;
    }

    return 0;
}


/* reader-table slots taken */

unsigned
ngx_http_inventory_store_readers(ngx_http_inventory_store_t *st)
{
    unsigned  n;

    n = 0;
    (void) mdb_reader_list(st->env, ngx_http_inventory_store_count_reader,
                           &n);

    return n;
}


int
ngx_http_inventory_store_stat(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_stat_t *stat)
{
    int                         rc;
    MDB_stat                    ms;
    MDB_envinfo                 info;
    ngx_http_inventory_clock_t  clock;

    if ((rc = mdb_env_info(st->env, &info)) != 0
        || (rc = mdb_env_stat(st->env, &ms)) != 0)
    {
        return rc;
    }

    stat->map_size = info.me_mapsize;
    stat->used = (uint64_t) (info.me_last_pgno + 1) * ms.ms_psize;
    stat->readers = ngx_http_inventory_store_readers(st);
    stat->max_readers = info.me_maxreaders;

    rc = ngx_http_inventory_store_read_begin(st);
    if (rc != 0) {
        return rc;
    }

    rc = ngx_http_inventory_store_clock(st, st->rtxn, &clock);

    /* an active reservation has exactly one entry in the expiry index */
    if (rc == 0) {
        rc = mdb_stat(st->rtxn, st->res_expiry, &ms);
    }

    ngx_http_inventory_store_read_end(st);

    stat->last_seq = clock.seq;
    stat->reservations_active = ms.ms_entries;

    return rc;
}


/* the last seq and its time: the next event follows both */

static int
ngx_http_inventory_store_clock(ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_clock_t *clock)
{
    int                         rc;
    MDB_val                     key, val;
    MDB_cursor                 *cur;
    ngx_http_inventory_event_t  ev;

    clock->seq = 0;
    clock->at = 0;

    rc = mdb_cursor_open(txn, st->log, &cur);
    if (rc != 0) {
        return rc;
    }

    rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);

    if (rc == 0) {
        if (key.mv_size != 8
            || ngx_http_inventory_event_decode(val.mv_data, val.mv_size, &ev)
               != 0)
        {
            rc = MDB_CORRUPTED;

        } else {
            clock->seq = ngx_http_inventory_get_u64(key.mv_data);
            clock->at = ev.at;
        }

    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }

    mdb_cursor_close(cur);

    return rc;
}


/*
 * Applies the commands in one durable write transaction and fills in each
 * command's outcome and rendered response (cmd->body, malloc()ed: the caller
 * frees it).  Returns 0 when the commands' transactions committed (some
 * commands may still have been refused), or an LMDB error, in which case
 * every command's outcome says so and nothing changed.
 *
 * The commands of a batch share the transaction without nested ones: a
 * command the domain refuses writes nothing, so only an LMDB error (a full
 * map) can spoil a batch.  Then the batch is rolled back and each command
 * runs again in a transaction of its own, so that the others still commit
 * and only the failing one is answered with the error.  Either way the
 * result equals the commands applied one by one, in order.
 */

int
ngx_http_inventory_store_execute(ngx_http_inventory_store_t *st,
    ngx_http_inventory_cmd_t **cmds, size_t n, uint64_t now)
{
    return ngx_http_inventory_store_settle(st, cmds, n, now,
                                ngx_http_inventory_store_batch(st, cmds, n,
                                                               now));
}


/* after a batch that failed with rc: each command on its own */

int
ngx_http_inventory_store_settle(ngx_http_inventory_store_t *st,
    ngx_http_inventory_cmd_t **cmds, size_t n, uint64_t now, int rc)
{
    int     any;
    size_t  i;

    if (rc == 0) {
        return 0;
    }

    if (n == 1) {
        ngx_http_inventory_store_failed(cmds[0], rc);
        return rc;
    }

    any = 0;

    for (i = 0; i < n; i++) {
        free(cmds[i]->body);
        cmds[i]->body = NULL;

        if (ngx_http_inventory_store_batch(st, &cmds[i], 1, now) == 0) {
            any = 1;

        } else {
            ngx_http_inventory_store_failed(cmds[i], rc);
        }
    }

    return any ? 0 : rc;
}


static void
ngx_http_inventory_store_failed(ngx_http_inventory_cmd_t *cmd, int rc)
{
    free(cmd->body);
    cmd->body = NULL;
    cmd->appended = 0;
    cmd->last_seq = 0;
    cmd->outcome = ngx_http_inventory_store_outcome(rc);
    ngx_http_inventory_render_outcome(cmd);
}


static int
ngx_http_inventory_store_batch(ngx_http_inventory_store_t *st,
    ngx_http_inventory_cmd_t **cmds, size_t n, uint64_t now)
{
    int       rc;
    MDB_txn  *txn;

    rc = ngx_http_inventory_store_begin(st, &txn);
    if (rc != 0) {
        return rc;
    }

    return ngx_http_inventory_store_apply(st, txn, cmds, n, now);
}


/*
 * The write transaction: waits for any other writer, in any process.  It
 * ends in store_apply() or store_abort().
 */

int
ngx_http_inventory_store_begin(ngx_http_inventory_store_t *st, MDB_txn **txn)
{
    int  rc, tries;

    for (tries = 0; /* void */ ; tries++) {
        (void) pthread_rwlock_rdlock(&st->remap);

        rc = mdb_txn_begin(st->env, NULL, 0, txn);

        if (rc == 0) {
            return 0;
        }

        (void) pthread_rwlock_unlock(&st->remap);

        if (rc != MDB_MAP_RESIZED || tries > 0) {
            return rc;
        }

        ngx_http_inventory_store_remap(st);
    }
}


void
ngx_http_inventory_store_abort(ngx_http_inventory_store_t *st, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    (void) pthread_rwlock_unlock(&st->remap);
}


/*
 * Runs the commands in a transaction from store_begin() and commits it, or
 * aborts it on an LMDB error (returned; the commands' bodies are freed).
 */

int
ngx_http_inventory_store_apply(ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_cmd_t **cmds, size_t n, uint64_t now)
{
    int                         rc;
    size_t                      i;
    ngx_http_inventory_clock_t  clock;

    for (i = 0; i < n; i++) {
        cmds[i]->body = NULL;
        cmds[i]->body_len = 0;
    }

    rc = ngx_http_inventory_store_clock(st, txn, &clock);

    /* event times never go backwards, whatever the wall clock does */
    if (now > clock.at) {
        clock.at = now;
    }

    for (i = 0; rc == 0 && i < n; i++) {
        rc = ngx_http_inventory_store_run(st, txn, cmds[i], &clock);
    }

    if (rc != 0) {
        mdb_txn_abort(txn);

    } else {
        rc = mdb_txn_commit(txn);
    }

    (void) pthread_rwlock_unlock(&st->remap);

    if (rc != 0) {
        for (i = 0; i < n; i++) {
            free(cmds[i]->body);
            cmds[i]->body = NULL;
        }
    }

    return rc;
}


static unsigned
ngx_http_inventory_store_outcome(int rc)
{
    return rc == MDB_MAP_FULL ? NGX_HTTP_INVENTORY_STORAGE_FULL
                              : NGX_HTTP_INVENTORY_UNAVAILABLE;
}


/*
 * Runs one command in the batch's transaction: the idempotency check, the
 * command, its rendered response and the idempotency record.  Returns an
 * LMDB error when the transaction can no longer be used.
 */

static int
ngx_http_inventory_store_run(ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_clock_t *clock)
{
    int     rc;
    size_t  purged;

    cmd->now = clock->at;
    cmd->appended = 0;
    cmd->last_seq = 0;

    if (cmd->type == NGX_HTTP_INVENTORY_CMD_PURGE) {
        rc = ngx_http_inventory_store_purge(st, txn, cmd->now,
                                            (size_t) cmd->quantity, &purged);
        cmd->outcome = NGX_HTTP_INVENTORY_OK;
        cmd->available = (int64_t) purged;
        return rc;
    }

    rc = ngx_http_inventory_store_idem_check(st, txn, cmd);

    if (rc == NGX_HTTP_INVENTORY_EXEC_ANSWERED) {
        /* a replay or a reused key: answered, nothing to write */
        return 0;
    }

    if (rc == NGX_HTTP_INVENTORY_EXEC_DONE) {
        rc = ngx_http_inventory_store_exec_one(st, txn, cmd, clock);
    }

    if (rc != NGX_HTTP_INVENTORY_EXEC_DONE
        && rc != NGX_HTTP_INVENTORY_EXEC_REJECT)
    {
        return rc;
    }

    ngx_http_inventory_render_outcome(cmd);

    return ngx_http_inventory_store_idem_put(st, txn, cmd);
}


/*
 * A key seen before answers at once: with the stored response when the
 * request is the same, with 422 when it is not.  An expired record is
 * removed and the key is new again.
 */

static int
ngx_http_inventory_store_idem_check(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd)
{
    int                        rc;
    MDB_val                    key, val;
    unsigned char              kbuf[NGX_HTTP_INVENTORY_IDEM_KEY_MAX + 8];
    ngx_http_inventory_idem_t  idem;

    if (cmd->idem_key.len == 0) {
        return NGX_HTTP_INVENTORY_EXEC_DONE;
    }

    key.mv_data = (void *) cmd->idem_key.data;
    key.mv_size = cmd->idem_key.len;

    rc = mdb_get(txn, st->idempotency, &key, &val);

    if (rc == MDB_NOTFOUND) {
        return NGX_HTTP_INVENTORY_EXEC_DONE;
    }

    if (rc != 0) {
        return rc;
    }

    if (ngx_http_inventory_idem_decode(val.mv_data, val.mv_size, &idem) != 0)
    {
        return MDB_CORRUPTED;
    }

    if (idem.expires_at <= cmd->now) {
        rc = mdb_del(txn, st->idempotency, &key, NULL);

        if (rc == 0) {
            key.mv_data = kbuf;
            key.mv_size = ngx_http_inventory_expiry_key(kbuf,
                                                        idem.expires_at,
                                                        cmd->idem_key.data,
                                                        cmd->idem_key.len);
            rc = mdb_del(txn, st->idem_expiry, &key, NULL);
        }

        return (rc == 0 || rc == MDB_NOTFOUND)
               ? NGX_HTTP_INVENTORY_EXEC_DONE : rc;
    }

    if (memcmp(idem.fingerprint, cmd->fingerprint, 16) != 0) {
        cmd->outcome = NGX_HTTP_INVENTORY_KEY_REUSED;
        ngx_http_inventory_render_outcome(cmd);
        return NGX_HTTP_INVENTORY_EXEC_ANSWERED;
    }

    cmd->outcome = NGX_HTTP_INVENTORY_REPLAYED;
    cmd->status = idem.status;
    cmd->etag = idem.etag;
    cmd->body_len = idem.body_len;
    cmd->body = malloc(idem.body_len ? idem.body_len : 1);

    if (cmd->body == NULL) {
        return ENOMEM;
    }

    memcpy(cmd->body, idem.body, idem.body_len);

    return NGX_HTTP_INVENTORY_EXEC_ANSWERED;
}


/* keeps the response of a decided command for the key's lifetime */

static int
ngx_http_inventory_store_idem_put(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd)
{
    int                        rc;
    MDB_val                    key, val;
    unsigned char              kbuf[NGX_HTTP_INVENTORY_IDEM_KEY_MAX + 8];
    ngx_http_inventory_idem_t  idem;

    if (cmd->idem_key.len == 0 || cmd->status >= 500) {
        return 0;
    }

    idem.created_at = cmd->now;
    idem.expires_at = cmd->now + st->idem_ttl;
    memcpy(idem.fingerprint, cmd->fingerprint, 16);
    idem.status = cmd->status;
    idem.etag = cmd->etag;

    key.mv_data = (void *) cmd->idem_key.data;
    key.mv_size = cmd->idem_key.len;
    val.mv_size = NGX_HTTP_INVENTORY_IDEM_HEADER_LEN + cmd->body_len;

    rc = mdb_put(txn, st->idempotency, &key, &val, MDB_RESERVE);
    if (rc != 0) {
        return rc;
    }

    ngx_http_inventory_idem_encode_header(val.mv_data, &idem);
    memcpy((unsigned char *) val.mv_data + NGX_HTTP_INVENTORY_IDEM_HEADER_LEN,
           cmd->body, cmd->body_len);

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_expiry_key(kbuf, idem.expires_at,
                                                cmd->idem_key.data,
                                                cmd->idem_key.len);
    val.mv_data = NULL;
    val.mv_size = 0;

    return mdb_put(txn, st->idem_expiry, &key, &val, 0);
}


/*
 * Returns EXEC_DONE when the command's events are written, EXEC_REJECT when
 * the domain rules refused it (its outcome says why; nothing was written),
 * or an LMDB error.
 */

static int
ngx_http_inventory_store_exec_one(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_clock_t *clock)
{
    int                         rc;
    size_t                      i, nevents;
    uint64_t                    first_seq;
    size_t                      slot_of[NGX_HTTP_INVENTORY_MAX_EVENTS];
    ngx_http_inventory_event_t  events[NGX_HTTP_INVENTORY_MAX_EVENTS];

    if (cmd->type >= NGX_HTTP_INVENTORY_CMD_COMMIT
        && cmd->type <= NGX_HTTP_INVENTORY_CMD_EXPIRE)
    {
        rc = ngx_http_inventory_store_reservation(st, txn, cmd->res.id,
                                                  &cmd->res);
        if (rc == MDB_NOTFOUND) {
            cmd->outcome = NGX_HTTP_INVENTORY_NOT_FOUND;
            return NGX_HTTP_INVENTORY_EXEC_REJECT;
        }

        if (rc != 0) {
            return rc;
        }
    }

    ngx_http_inventory_cmd_slots(cmd);

    for (i = 0; i < cmd->nslots; i++) {
        rc = ngx_http_inventory_store_load(st, txn, &cmd->slots[i]);
        if (rc != 0) {
            return rc;
        }
    }

    cmd->outcome = ngx_http_inventory_decide(cmd, events, &nevents, slot_of);

    if (cmd->outcome != NGX_HTTP_INVENTORY_OK
        && cmd->outcome != NGX_HTTP_INVENTORY_CREATED)
    {
        return NGX_HTTP_INVENTORY_EXEC_REJECT;
    }

    first_seq = clock->seq;

    for (i = 0; i < nevents; i++) {
        rc = ngx_http_inventory_store_append(st, txn, &cmd->slots[slot_of[i]],
                                             &events[i], clock);
        if (rc != 0) {
            return rc;
        }
    }

    for (i = 0; i < cmd->nslots; i++) {
        rc = ngx_http_inventory_store_put_item(st, txn, &cmd->slots[i]);
        if (rc != 0) {
            return rc;
        }
    }

    if (cmd->type >= NGX_HTTP_INVENTORY_CMD_RESERVE
        && cmd->type <= NGX_HTTP_INVENTORY_CMD_EXPIRE)
    {
        rc = ngx_http_inventory_store_put_reservation(st, txn, cmd);
        if (rc != 0) {
            return rc;
        }
    }

    cmd->appended = (unsigned) (clock->seq - first_seq);
    cmd->last_seq = clock->seq;

    return NGX_HTTP_INVENTORY_EXEC_DONE;
}


/* the record, and its place in the expiry index while it is active */

static int
ngx_http_inventory_store_put_reservation(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd)
{
    int                                rc;
    MDB_val                            key, val;
    unsigned char                      ekey[NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN];
    ngx_http_inventory_reservation_t  *res;

    res = &cmd->res;

    key.mv_data = res->id;
    key.mv_size = NGX_HTTP_INVENTORY_RES_ID_LEN;
    val.mv_size = ngx_http_inventory_reservation_encode(st->res_buf, res);
    val.mv_data = st->res_buf;

    rc = mdb_put(txn, st->reservations, &key, &val,
                 cmd->type == NGX_HTTP_INVENTORY_CMD_RESERVE
                 ? MDB_NOOVERWRITE : 0);
    if (rc != 0) {
        return rc;
    }

    key.mv_data = ekey;
    key.mv_size = ngx_http_inventory_expiry_key(ekey, res->expires_at,
                                                res->id,
                                                NGX_HTTP_INVENTORY_RES_ID_LEN);

    if (cmd->type != NGX_HTTP_INVENTORY_CMD_RESERVE) {
        rc = mdb_del(txn, st->res_expiry, &key, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }

    val.mv_data = NULL;
    val.mv_size = 0;

    return mdb_put(txn, st->res_expiry, &key, &val, 0);
}


static int
ngx_http_inventory_store_reservation(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const char *id, ngx_http_inventory_reservation_t *res)
{
    int      rc;
    MDB_val  key, val;

    key.mv_data = (void *) id;
    key.mv_size = NGX_HTTP_INVENTORY_RES_ID_LEN;

    rc = mdb_get(txn, st->reservations, &key, &val);
    if (rc != 0) {
        return rc;
    }

    if (ngx_http_inventory_reservation_decode(val.mv_data, val.mv_size, id,
                                              res)
        != 0)
    {
        return MDB_CORRUPTED;
    }

    return 0;
}


int
ngx_http_inventory_store_get_reservation(ngx_http_inventory_store_t *st,
    const char *id, ngx_http_inventory_reservation_t *res)
{
    return ngx_http_inventory_store_reservation(st, st->rtxn, id, res);
}


/* ids of active reservations whose time has come, in due order */

int
ngx_http_inventory_store_due(ngx_http_inventory_store_t *st, uint64_t now,
    char (*ids)[NGX_HTTP_INVENTORY_RES_ID_LEN], size_t max, size_t *n)
{
    int          rc;
    MDB_val      key, val;
    MDB_cursor  *cur;

    *n = 0;

    rc = mdb_cursor_open(st->rtxn, st->res_expiry, &cur);
    if (rc != 0) {
        return rc;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0 && *n < max;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }

        if (ngx_http_inventory_get_u64(key.mv_data) > now) {
            break;
        }

        memcpy(ids[(*n)++], (unsigned char *) key.mv_data + 8,
               NGX_HTTP_INVENTORY_RES_ID_LEN);
    }

    mdb_cursor_close(cur);

    return (rc == MDB_NOTFOUND || rc == 0) ? 0 : rc;
}


/* forgets idempotency keys past their time, at most max of them */

static int
ngx_http_inventory_store_purge(ngx_http_inventory_store_t *st, MDB_txn *txn,
    uint64_t now, size_t max, size_t *purged)
{
    int          rc;
    MDB_val      key, val, ikey;
    MDB_cursor  *cur;

    *purged = 0;

    rc = mdb_cursor_open(txn, st->idem_expiry, &cur);
    if (rc != 0) {
        return rc;
    }

    while (*purged < max) {
        rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
        if (rc != 0) {
            break;
        }

        if (key.mv_size < 8 || ngx_http_inventory_get_u64(key.mv_data) > now)
        {
            break;
        }

        ikey.mv_data = (unsigned char *) key.mv_data + 8;
        ikey.mv_size = key.mv_size - 8;

        rc = mdb_del(txn, st->idempotency, &ikey, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            break;
        }

        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            break;
        }

        (*purged)++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


/*
 * Calls handler for the item's events after version "after", at most
 * limit of them; *more tells whether others follow.
 */

int
ngx_http_inventory_store_item_events(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t after, size_t limit, ngx_http_inventory_event_pt handler,
    void *ctx, int *more)
{
    int                         rc;
    size_t                      plen, count;
    MDB_val                     key, val, lkey, lval;
    MDB_cursor                 *cur;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_event_t  ev;

    *more = 0;

    if (after == UINT64_MAX) {
        return 0;
    }

    rc = mdb_cursor_open(st->rtxn, st->item_events, &cur);
    if (rc != 0) {
        return rc;
    }

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_item_event_key(kbuf, sku, location,
                                                    after + 1);
    plen = key.mv_size - 8;
    count = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != plen + 8 || memcmp(key.mv_data, kbuf, plen) != 0)
        {
            break;
        }

        if (count == limit) {
            *more = 1;
            break;
        }

        if (val.mv_size != NGX_HTTP_INVENTORY_INDEX_RECORD_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }

        lkey.mv_data = val.mv_data;
        lkey.mv_size = 8;
        rc = mdb_get(st->rtxn, st->log, &lkey, &lval);

        if (rc == 0
            && ngx_http_inventory_event_decode(lval.mv_data, lval.mv_size,
                                               &ev) != 0)
        {
            rc = MDB_CORRUPTED;
        }

        if (rc != 0) {
            break;
        }

        ev.seq = ngx_http_inventory_get_u64(val.mv_data);

        rc = handler(ctx, &ev);
        if (rc != 0) {
            break;
        }

        count++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


static int
ngx_http_inventory_store_load(ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_slot_t *slot)
{
    int  rc;

    rc = ngx_http_inventory_store_item(st, txn, slot->sku, slot->location,
                                       &slot->item);

    if (rc == MDB_NOTFOUND) {
        memset(&slot->item, 0, sizeof(ngx_http_inventory_item_t));
        slot->exists = 0;
        slot->was_low = 0;
        return 0;
    }

    slot->exists = (rc == 0);
    slot->was_low = ngx_http_inventory_low_stock(&slot->item);

    return rc;
}


/* appends one event to the log and the item's index, then LowStockDetected
 * if the event turned the item's low_stock on */

static int
ngx_http_inventory_store_append(ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_slot_t *slot, ngx_http_inventory_event_t *ev,
    ngx_http_inventory_clock_t *clock)
{
    int                         rc, low;
    MDB_val                     key, val;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    unsigned char               seq[NGX_HTTP_INVENTORY_INDEX_RECORD_LEN];
    unsigned char               rec[NGX_HTTP_INVENTORY_EVENT_RECORD_MAX];
    ngx_http_inventory_item_t   before;
    ngx_http_inventory_event_t  low_ev;

    for (low = 0; ev; low++) {
        before = slot->item;

        ev->seq = ++clock->seq;
        ev->version = slot->item.version + 1;
        ev->at = clock->at;

        if (ngx_http_inventory_event_apply(&slot->item, ev) != 0) {
            return MDB_CORRUPTED;
        }

        ngx_http_inventory_put_u64(seq, ev->seq);

        key.mv_data = seq;
        key.mv_size = 8;
        val.mv_data = rec;
        val.mv_size = ngx_http_inventory_event_encode(rec, ev);

        rc = mdb_put(txn, st->log, &key, &val, MDB_APPEND);
        if (rc != 0) {
            return rc;
        }

        /* the index keeps the item as this event left it: as_of reads it */
        ngx_http_inventory_item_encode(seq + 8, &slot->item);

        key.mv_data = kbuf;
        key.mv_size = ngx_http_inventory_item_event_key(kbuf, slot->sku,
                                                        slot->location,
                                                        ev->version);
        val.mv_data = seq;
        val.mv_size = NGX_HTTP_INVENTORY_INDEX_RECORD_LEN;

        rc = mdb_put(txn, st->item_events, &key, &val, 0);
        if (rc != 0) {
            return rc;
        }

        ev = NULL;

        if (!low && ngx_http_inventory_low_stock_detected(&before,
                                                          &slot->item))
        {
            memset(&low_ev, 0, sizeof(ngx_http_inventory_event_t));
            low_ev.type = NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED;
            low_ev.sku = slot->sku;
            low_ev.location = slot->location;
            low_ev.available = ngx_http_inventory_available(&slot->item);
            low_ev.min_level = slot->item.min_level;
            ev = &low_ev;
        }
    }

    return 0;
}


static int
ngx_http_inventory_store_put_item(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot)
{
    int            rc, low;
    MDB_val        key, val;
    unsigned char  kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    unsigned char  rec[NGX_HTTP_INVENTORY_ITEM_RECORD_LEN];

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_item_key(kbuf, slot->sku,
                                              slot->location);

    ngx_http_inventory_item_encode(rec, &slot->item);
    val.mv_data = rec;
    val.mv_size = sizeof(rec);

    rc = mdb_put(txn, st->items, &key, &val, 0);
    if (rc != 0) {
        return rc;
    }

    /* the low-stock index follows the projection in the same transaction */
    low = ngx_http_inventory_low_stock(&slot->item);

    if (low == (int) slot->was_low) {
        return 0;
    }

    key.mv_size = ngx_http_inventory_low_key(kbuf, slot->sku, slot->location);
    val.mv_data = NULL;
    val.mv_size = 0;

    if (low) {
        return mdb_put(txn, st->low_stock, &key, &val, 0);
    }

    rc = mdb_del(txn, st->low_stock, &key, NULL);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


/* the global log after seq "after": at most limit events */

int
ngx_http_inventory_store_log(ngx_http_inventory_store_t *st, uint64_t after,
    size_t limit, ngx_http_inventory_event_pt handler, void *ctx)
{
    int                         rc;
    size_t                      count;
    MDB_val                     key, val;
    MDB_cursor                 *cur;
    unsigned char               kbuf[8];
    ngx_http_inventory_event_t  ev;

    if (after == UINT64_MAX) {
        return 0;
    }

    rc = mdb_cursor_open(st->rtxn, st->log, &cur);
    if (rc != 0) {
        return rc;
    }

    ngx_http_inventory_put_u64(kbuf, after + 1);
    key.mv_data = kbuf;
    key.mv_size = 8;
    count = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0 && count < limit;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != 8
            || ngx_http_inventory_event_decode(val.mv_data, val.mv_size, &ev)
               != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        ev.seq = ngx_http_inventory_get_u64(key.mv_data);

        rc = handler(ctx, &ev);
        if (rc != 0) {
            break;
        }

        count++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


int
ngx_http_inventory_store_last_seq(ngx_http_inventory_store_t *st,
    uint64_t *seq)
{
    int                         rc;
    ngx_http_inventory_clock_t  clock;

    rc = ngx_http_inventory_store_clock(st, st->rtxn, &clock);
    *seq = clock.seq;

    return rc;
}


/*
 * The item as it was at time "at": a binary search over the item's event
 * index, whose entries keep the item as each event left it.  MDB_NOTFOUND
 * if the item had no event yet.
 */

int
ngx_http_inventory_store_item_as_of(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t at, ngx_http_inventory_item_t *item)
{
    int                        rc;
    uint64_t                   lo, hi, mid;
    MDB_val                    key, val;
    unsigned char              kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_item_t  now, snap;

    rc = ngx_http_inventory_store_item(st, st->rtxn, sku, location, &now);
    if (rc != 0) {
        return rc;
    }

    if (now.updated_at <= at) {
        *item = now;
        return 0;
    }

    /* the answer is the last version whose event is not after "at" */
    lo = 0;
    hi = now.version;

    while (lo < hi) {
        mid = lo + (hi - lo + 1) / 2;

        key.mv_data = kbuf;
        key.mv_size = ngx_http_inventory_item_event_key(kbuf, sku, location,
                                                        mid);
        rc = mdb_get(st->rtxn, st->item_events, &key, &val);

        if (rc == 0
            && (val.mv_size != NGX_HTTP_INVENTORY_INDEX_RECORD_LEN
                || ngx_http_inventory_item_decode(
                       (unsigned char *) val.mv_data + 8,
                       NGX_HTTP_INVENTORY_ITEM_RECORD_LEN, &snap) != 0))
        {
            rc = MDB_CORRUPTED;
        }

        if (rc != 0) {
            return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
        }

        if (snap.updated_at <= at) {
            lo = mid;
            *item = snap;

        } else {
            hi = mid - 1;
        }
    }

    return lo ? 0 : MDB_NOTFOUND;
}


/*
 * Items with low_stock, in (location, sku) order, after the index key
 * "from" (none: from the start) and within "location" when given.
 */

int
ngx_http_inventory_store_low_stock(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t location, const unsigned char *from,
    size_t from_len, size_t limit, ngx_http_inventory_item_pt handler,
    void *ctx, int *more)
{
    int                        rc;
    size_t                     plen, count;
    MDB_val                    key, val;
    MDB_cursor                *cur;
    unsigned char              prefix[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t   sku, loc;
    ngx_http_inventory_item_t  item;

    *more = 0;
    plen = 0;

    if (location.len) {
        plen = ngx_http_inventory_sku_prefix(prefix, location);
    }

    rc = mdb_cursor_open(st->rtxn, st->low_stock, &cur);
    if (rc != 0) {
        return rc;
    }

    if (from_len) {
        key.mv_data = (void *) from;
        key.mv_size = from_len;
        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);

        /* the cursor names the last item of the previous page */
        if (rc == 0 && key.mv_size == from_len
            && memcmp(key.mv_data, from, from_len) == 0)
        {
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }

    } else if (plen) {
        key.mv_data = prefix;
        key.mv_size = plen;
        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);

    } else {
        rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    }

    for (count = 0; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {

        if (plen && (key.mv_size <= plen
                     || memcmp(key.mv_data, prefix, plen) != 0))
        {
            break;
        }

        if (count == limit) {
            *more = 1;
            break;
        }

        /* the index key is location NUL sku */
        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size, &loc,
                                              &sku)
            != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        rc = ngx_http_inventory_store_item(st, st->rtxn, sku, loc, &item);
        if (rc != 0) {
            rc = (rc == MDB_NOTFOUND) ? MDB_CORRUPTED : rc;
            break;
        }

        rc = handler(ctx, sku, loc, &item);
        if (rc != 0) {
            break;
        }

        count++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}
