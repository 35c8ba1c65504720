/*
 * The store's environment: opening it and its databases, the schema
 * check, the process's reusable read transaction, the remap lock, stat and
 * counts, the reader table, and the store's result codes and messages.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ngx_http_inventory_store_db.h"


static int ngx_http_inventory_store_env(ngx_http_inventory_store_t *st,
    const char *path, size_t map_size, int sync, unsigned flags);
static int ngx_http_inventory_store_dbis(ngx_http_inventory_store_t *st,
    MDB_txn *txn, unsigned flags);
static int ngx_http_inventory_store_schema(ngx_http_inventory_store_t *st,
    MDB_txn *txn, unsigned flags);
static int ngx_http_inventory_store_identify(ngx_http_inventory_store_t *st,
    MDB_txn *txn);
static int ngx_http_inventory_store_next_expiry(
    ngx_http_inventory_store_t *st, uint64_t *at);
static int ngx_http_inventory_store_count_reader(const char *line,
    void *ctx);


static const char  ngx_http_inventory_schema_key[] = "schema_version";


int
ngx_http_inventory_store_open(ngx_http_inventory_store_t **st,
    const char *path, size_t map_size, int sync, unsigned flags)
{
    int                          rc;
    ngx_http_inventory_store_t  *s;

    *st = NULL;

    s = calloc(1, sizeof(ngx_http_inventory_store_t));
    if (s == NULL) {
        return ENOMEM;
    }

    s->idem_ttl = 24 * 60 * 60 * 1000;

    rc = pthread_rwlock_init(&s->remap, NULL);
    if (rc != 0) {
        free(s);
        return rc;
    }

    rc = ngx_http_inventory_store_env(s, path, map_size, sync, flags);
    if (rc != 0) {
        (void) pthread_rwlock_destroy(&s->remap);
        free(s);
        return ngx_http_inventory_store_rc(rc);
    }

    *st = s;

    return NGX_HTTP_INVENTORY_STORE_OK;
}


static int
ngx_http_inventory_store_env(ngx_http_inventory_store_t *st,
    const char *path, size_t map_size, int sync, unsigned flags)
{
    int           rc;
    unsigned int  env_flags;
    MDB_txn      *txn;

    rc = mdb_env_create(&st->env);
    if (rc != 0) {
        st->env = NULL;
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

    return rc;
}


void
ngx_http_inventory_store_close(ngx_http_inventory_store_t *st)
{
    if (st == NULL) {
        return;
    }

    if (st->rtxn) {
        mdb_txn_abort(st->rtxn);
        st->rtxn = NULL;
    }

    mdb_env_close(st->env);
    (void) pthread_rwlock_destroy(&st->remap);
    free(st->rec);
    free(st->change);
    free(st->results);
    free(st);
}


void
ngx_http_inventory_store_set_idem_ttl(ngx_http_inventory_store_t *st,
    uint64_t ms)
{
    st->idem_ttl = ms;
}


/*
 * LMDB's codes become the store's; 0, errno values and the store's own
 * codes pass unchanged, so that applying it twice does no harm.
 */

int
ngx_http_inventory_store_rc(int rc)
{
    if (rc < MDB_KEYEXIST || rc > MDB_LAST_ERRCODE) {
        return rc;
    }

    switch (rc) {

    case MDB_NOTFOUND:
        return NGX_HTTP_INVENTORY_STORE_NOT_FOUND;

    case MDB_MAP_FULL:
        return NGX_HTTP_INVENTORY_STORE_FULL;

    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        return NGX_HTTP_INVENTORY_STORE_CORRUPTED;

    case MDB_INCOMPATIBLE:
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
        return NGX_HTTP_INVENTORY_STORE_INCOMPATIBLE;

    case MDB_PANIC:
        return NGX_HTTP_INVENTORY_STORE_PANIC;

    case MDB_READERS_FULL:
        return NGX_HTTP_INVENTORY_STORE_READERS_FULL;

    default:
        return NGX_HTTP_INVENTORY_STORE_FAILED;
    }
}


/* LMDB's own words where a code stands for one of its codes */

const char *
ngx_http_inventory_store_strerror(int rc)
{
    if (rc > 0) {
        return strerror(rc);
    }

    switch (rc) {

    case NGX_HTTP_INVENTORY_STORE_OK:
        return mdb_strerror(0);

    case NGX_HTTP_INVENTORY_STORE_NOT_FOUND:
        return mdb_strerror(MDB_NOTFOUND);

    case NGX_HTTP_INVENTORY_STORE_FULL:
        return mdb_strerror(MDB_MAP_FULL);

    case NGX_HTTP_INVENTORY_STORE_CORRUPTED:
        return mdb_strerror(MDB_CORRUPTED);

    case NGX_HTTP_INVENTORY_STORE_INCOMPATIBLE:
        return "the store was written by an incompatible version";

    case NGX_HTTP_INVENTORY_STORE_PANIC:
        return mdb_strerror(MDB_PANIC);

    case NGX_HTTP_INVENTORY_STORE_READERS_FULL:
        return mdb_strerror(MDB_READERS_FULL);

    case NGX_HTTP_INVENTORY_STORE_FAILED:
        return "the store failed (an LMDB error)";

    case NGX_HTTP_INVENTORY_STORE_GONE:
        return "the transactions asked for are not this store's to give";

    case NGX_HTTP_INVENTORY_STORE_FENCED:
        return "the source is of an older epoch than this copy";

    default:
        /* an LMDB code that was not turned into the store's */
        if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) {
            return ngx_http_inventory_store_strerror(
                                         ngx_http_inventory_store_rc(rc));
        }

        return "unknown store error";
    }
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
        || (rc = mdb_dbi_open(txn, "low_stock", f, &st->low_stock)) != 0
        || (rc = mdb_dbi_open(txn, "replication", f, &st->replication)) != 0)
    {
        return rc;
    }

    /* since schemas 2 and 3: an older store gets them when nginx opens it */
    if ((rc = mdb_dbi_open(txn, "references", f, &st->references)) != 0
        || (rc = mdb_dbi_open(txn, "changes", f, &st->changes)) != 0
        || (rc = mdb_dbi_open(txn, "reservation_ended", f, &st->res_ended))
           != 0)
    {
        return rc == MDB_NOTFOUND ? MDB_INCOMPATIBLE : rc;
    }

    st->dbi[0] = st->meta;
    st->dbi[1] = st->log;
    st->dbi[2] = st->items;
    st->dbi[3] = st->item_events;
    st->dbi[4] = st->reservations;
    st->dbi[5] = st->res_expiry;
    st->dbi[6] = st->idempotency;
    st->dbi[7] = st->idem_expiry;
    st->dbi[8] = st->low_stock;
    st->dbi[9] = st->references;
    st->dbi[10] = st->changes;
    st->dbi[11] = st->res_ended;
    st->dbi[12] = st->replication;

    return 0;
}


static int
ngx_http_inventory_store_schema(ngx_http_inventory_store_t *st, MDB_txn *txn,
    unsigned flags)
{
    int            rc;
    MDB_val        key, val;
    uint64_t       version;
    unsigned char  buf[8];

    key.mv_data = (void *) ngx_http_inventory_schema_key;
    key.mv_size = sizeof(ngx_http_inventory_schema_key) - 1;

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == MDB_NOTFOUND && (flags & NGX_HTTP_INVENTORY_STORE_CREATE)) {
        ngx_http_inventory_put_u64(buf, NGX_HTTP_INVENTORY_SCHEMA_VERSION);
        val.mv_data = buf;
        val.mv_size = sizeof(buf);

        rc = mdb_put(txn, st->meta, &key, &val, 0);

        return rc ? rc : ngx_http_inventory_store_identify(st, txn);
    }

    if (rc != 0) {
        return rc == MDB_NOTFOUND ? MDB_INCOMPATIBLE : rc;
    }

    if (val.mv_size != sizeof(buf)) {
        return MDB_INCOMPATIBLE;
    }

    version = ngx_http_inventory_get_u64(val.mv_data);

    /* an older store is upgraded in this transaction, where nginx opens it */
    if (version < NGX_HTTP_INVENTORY_SCHEMA_VERSION
        && (flags & NGX_HTTP_INVENTORY_STORE_CREATE))
    {
        rc = ngx_http_inventory_store_upgrade(st, txn, version);
        if (rc != 0) {
            return rc;
        }

        ngx_http_inventory_put_u64(buf, NGX_HTTP_INVENTORY_SCHEMA_VERSION);
        val.mv_data = buf;
        val.mv_size = sizeof(buf);

        rc = mdb_put(txn, st->meta, &key, &val, 0);
        if (rc != 0) {
            return rc;
        }

        version = NGX_HTTP_INVENTORY_SCHEMA_VERSION;
    }

    if (version != NGX_HTTP_INVENTORY_SCHEMA_VERSION) {
        return MDB_INCOMPATIBLE;
    }

    /* a store made before stores had an identity gets one */
    return (flags & NGX_HTTP_INVENTORY_STORE_CREATE)
           ? ngx_http_inventory_store_identify(st, txn) : 0;
}


/*
 * Created with the store (and given to a store made before they existed):
 * a random store_id, and epoch 1.
 */

static int
ngx_http_inventory_store_identify(ngx_http_inventory_store_t *st,
    MDB_txn *txn)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[16];

    key.mv_data = (void *) "store_id";
    key.mv_size = sizeof("store_id") - 1;

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == MDB_NOTFOUND) {
        if (getrandom(buf, sizeof(buf), 0) != (ssize_t) sizeof(buf)) {
            return errno ? errno : EIO;
        }

        val.mv_data = buf;
        val.mv_size = sizeof(buf);

        rc = mdb_put(txn, st->meta, &key, &val, 0);
    }

    if (rc != 0) {
        return rc;
    }

    key.mv_data = (void *) "epoch";
    key.mv_size = sizeof("epoch") - 1;

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == MDB_NOTFOUND) {
        ngx_http_inventory_put_u64(buf, 1);
        val.mv_data = buf;
        val.mv_size = 8;

        rc = mdb_put(txn, st->meta, &key, &val, 0);
    }

    return rc;
}


/*
 * Another process grew the map (a reload with a larger map_size): adopt the
 * new size.  LMDB remaps the file then, so no transaction of this process
 * may be running: a worker reads on its event loop and writes on a pool
 * thread, and each holds the remap lock shared while its transaction runs.
 */

void
ngx_http_inventory_store_remap(ngx_http_inventory_store_t *st)
{
    (void) pthread_rwlock_wrlock(&st->remap);
    (void) mdb_env_set_mapsize(st->env, 0);
    (void) pthread_rwlock_unlock(&st->remap);
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
            return NGX_HTTP_INVENTORY_STORE_OK;
        }

        if (st->rtxn) {
            mdb_txn_abort(st->rtxn);
            st->rtxn = NULL;
        }

        (void) pthread_rwlock_unlock(&st->remap);

        if (rc != MDB_MAP_RESIZED) {
            break;
        }

        ngx_http_inventory_store_remap(st);
    }

    return ngx_http_inventory_store_rc(rc);
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
ngx_http_inventory_store_reader_check(ngx_http_inventory_store_t *st,
    int *dead)
{
    int  n;

    n = 0;

    if (dead == NULL) {
        dead = &n;
    }

    return ngx_http_inventory_store_rc(mdb_reader_check(st->env, dead));
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
        return ngx_http_inventory_store_rc(rc);
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

    if (rc == 0) {
        rc = ngx_http_inventory_store_next_expiry(st, &stat->next_expiry);
    }

    ngx_http_inventory_store_read_end(st);

    stat->last_seq = clock.seq;
    stat->reservations_active = ms.ms_entries;

    return ngx_http_inventory_store_rc(rc);
}


/* the first key of the expiry index: the earliest expiry of an active one */

static int
ngx_http_inventory_store_next_expiry(ngx_http_inventory_store_t *st,
    uint64_t *at)
{
    int          rc;
    MDB_val      key, val;
    MDB_cursor  *cur;

    *at = 0;

    rc = mdb_cursor_open(st->rtxn, st->res_expiry, &cur);
    if (rc != 0) {
        return rc;
    }

    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);

    if (rc == 0) {
        if (key.mv_size == NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN) {
            *at = ngx_http_inventory_get_u64(key.mv_data);

        } else {
            rc = MDB_CORRUPTED;
        }
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


int
ngx_http_inventory_store_counts(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_counts_t *counts)
{
    int        rc;
    size_t     i;
    MDB_stat   ms;
    MDB_dbi    dbis[6];
    uint64_t  *to[6];

    dbis[0] = st->log;
    to[0] = &counts->events;
    dbis[1] = st->items;
    to[1] = &counts->items;
    dbis[2] = st->reservations;
    to[2] = &counts->reservations;
    dbis[3] = st->res_expiry;
    to[3] = &counts->reservations_active;
    dbis[4] = st->low_stock;
    to[4] = &counts->low_stock;
    dbis[5] = st->idempotency;
    to[5] = &counts->idempotency_keys;

    rc = ngx_http_inventory_store_read_begin(st);
    if (rc != 0) {
        return rc;
    }

    for (i = 0; i < 6; i++) {
        rc = mdb_stat(st->rtxn, dbis[i], &ms);
        if (rc != 0) {
            break;
        }

        *to[i] = ms.ms_entries;
    }

    ngx_http_inventory_store_read_end(st);

    return ngx_http_inventory_store_rc(rc);
}


/* the last seq and its time: the next event follows both */

int
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
        rc = ngx_http_inventory_store_log_event(&key, &val, &ev);
        clock->seq = ev.seq;
        clock->at = ev.at;

    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }

    mdb_cursor_close(cur);

    return rc;
}


/* a record of the log as the event it holds, with its seq */

int
ngx_http_inventory_store_log_event(const MDB_val *key, const MDB_val *val,
    ngx_http_inventory_event_t *ev)
{
    if (key->mv_size != 8
        || ngx_http_inventory_event_decode(val->mv_data, val->mv_size, ev)
           != 0)
    {
        memset(ev, 0, sizeof(ngx_http_inventory_event_t));
        return MDB_CORRUPTED;
    }

    ev->seq = ngx_http_inventory_get_u64(key->mv_data);

    return 0;
}
