/*
 * The store's replication log, served and applied: the transactions after
 * a follower's (tx_seq, transactions), applied on a follower (replicate,
 * replay), the snapshot a new follower starts from (copy, install), the
 * store's identity, and a walk of every database.  The records themselves
 * are made by store_record.c.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ngx_http_inventory_store_db.h"


static int ngx_http_inventory_store_replay(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const unsigned char *p, size_t len);
static int ngx_http_inventory_store_load_db(MDB_txn *from, MDB_txn *to,
    const char *name, MDB_dbi dbi);


/* the seq a transaction of this store ended at, if the caller's is it */

int
ngx_http_inventory_store_tx_seq(ngx_http_inventory_store_t *st, uint64_t tx,
    uint64_t check, uint64_t epoch, uint64_t *seq)
{
    int            rc;
    uint64_t       at;
    MDB_val        key, val;
    unsigned char  buf[8];

    ngx_http_inventory_put_u64(buf, tx);
    key.mv_data = buf;
    key.mv_size = 8;

    rc = mdb_get(st->rtxn, st->replication, &key, &val);

    if (rc == MDB_NOTFOUND) {
        return NGX_HTTP_INVENTORY_STORE_GONE;
    }

    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    if (ngx_http_inventory_store_header(val.mv_data, val.mv_size, seq, &at)
        != 0)
    {
        return NGX_HTTP_INVENTORY_STORE_CORRUPTED;
    }

    if ((check != 0 && at != check)
        || ngx_http_inventory_store_epoch_continues(st, st->rtxn, epoch, tx)
           != 0)
    {
        return NGX_HTTP_INVENTORY_STORE_GONE;
    }

    return NGX_HTTP_INVENTORY_STORE_OK;
}


/*
 * The records after "after", in order, to cb, until max bytes were given
 * (at least one record).  check: the time of the caller's own record
 * "after" (0: not known); a different one means that the caller's history
 * is not this store's.  In the process's read transaction.
 */

int
ngx_http_inventory_store_transactions(ngx_http_inventory_store_t *st,
    uint64_t after, uint64_t check, uint64_t epoch, size_t max,
    ngx_http_inventory_tx_pt cb, void *ctx)
{
    int            rc;
    size_t         given;
    uint64_t       tx, seq, at, last;
    MDB_val        key, val;
    MDB_cursor    *cur;
    unsigned char  buf[8];

    rc = ngx_http_inventory_store_last_key(st->rtxn, st->replication, &last);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    if (after > last
        || ngx_http_inventory_store_epoch_continues(st, st->rtxn, epoch,
                                                    after)
           != 0)
    {
        return NGX_HTTP_INVENTORY_STORE_GONE;
    }

    if (after == last) {
        return NGX_HTTP_INVENTORY_STORE_OK;
    }

    rc = mdb_cursor_open(st->rtxn, st->replication, &cur);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    ngx_http_inventory_put_u64(buf, after);
    key.mv_data = buf;
    key.mv_size = 8;

    if (after == 0) {
        rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);

    } else {
        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_KEY);

        /* the caller's last one must be this store's */
        if (rc == 0
            && (ngx_http_inventory_store_header(val.mv_data, val.mv_size,
                                                &seq, &at)
                != 0
                || (check != 0 && at != check)))
        {
            rc = MDB_NOTFOUND;
        }

        if (rc == 0) {
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
    }

    /* the one after "after" must be there: not forgotten, not before 1 */
    if (rc == 0
        && (key.mv_size != 8
            || ngx_http_inventory_get_u64(key.mv_data) != after + 1))
    {
        rc = MDB_NOTFOUND;
    }

    if (rc == MDB_NOTFOUND) {
        mdb_cursor_close(cur);
        return NGX_HTTP_INVENTORY_STORE_GONE;
    }

    for (given = 0; rc == 0 && given < max; /* void */ ) {
        if (key.mv_size != 8) {
            rc = MDB_CORRUPTED;
            break;
        }

        tx = ngx_http_inventory_get_u64(key.mv_data);

        rc = cb(ctx, tx, val.mv_data, val.mv_size);
        if (rc != 0) {
            break;
        }

        given += val.mv_size + 12;

        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : ngx_http_inventory_store_rc(rc);
}


/*
 * A follower's side: frames of records ([tx][length][record]) applied in
 * one transaction.  Records it holds already are skipped; one that does
 * not follow its last is a gap, and nothing after it is applied.
 */

int
ngx_http_inventory_store_replicate(ngx_http_inventory_store_t *st,
    const unsigned char *p, size_t len, uint64_t epoch,
    ngx_http_inventory_applied_t *out)
{
    int            rc, gap, older;
    size_t         rlen;
    uint64_t       tx, last, seq, at, logged, held_seq, held_at;
    MDB_txn       *txn;
    MDB_val        rec, key;
    unsigned char  buf[8];

    memset(out, 0, sizeof(ngx_http_inventory_applied_t));

    (void) pthread_rwlock_rdlock(&st->remap);

    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0) {
        (void) pthread_rwlock_unlock(&st->remap);
        return ngx_http_inventory_store_rc(rc);
    }

    rc = ngx_http_inventory_store_last_key(txn, st->replication, &last);
    gap = 0;
    older = 0;

    if (rc == 0 && epoch) {
        rc = ngx_http_inventory_store_epoch_older(st, txn, epoch, &older);
    }

    /* a primary of an older epoch than this copy's was deposed */
    if (older) {
        mdb_txn_abort(txn);
        (void) pthread_rwlock_unlock(&st->remap);
        return NGX_HTTP_INVENTORY_STORE_FENCED;
    }

    while (rc == 0 && len > 0) {
        if (len < 12) {
            rc = MDB_CORRUPTED;
            break;
        }

        tx = ngx_http_inventory_get_u64(p);
        rlen = ngx_http_inventory_get_u32(p + 8);

        if (rlen > len - 12
            || ngx_http_inventory_store_header(p + 12, rlen, &seq, &at) != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        if (tx > last + 1 || (last == 0 && tx != 1)) {
            gap = 1;
            break;
        }

        /* one held already must be the same one, else histories forked */
        if (tx <= last) {
            ngx_http_inventory_put_u64(buf, tx);
            key.mv_data = buf;
            key.mv_size = 8;

            rc = mdb_get(txn, st->replication, &key, &rec);

            if (rc == 0
                && (ngx_http_inventory_store_header(rec.mv_data, rec.mv_size,
                                                    &held_seq, &held_at)
                    != 0
                    || held_seq != seq || held_at != at))
            {
                rc = MDB_NOTFOUND;
            }

            if (rc == MDB_NOTFOUND) {
                /* forgotten here, or another one: start again */
                rc = 0;
                gap = 1;
                break;
            }

            if (rc != 0) {
                break;
            }
        }

        if (tx == last + 1) {
            rc = ngx_http_inventory_store_replay(st, txn, p + 12, rlen);

            /* a record whose events do not lead to its seq is no copy */
            if (rc == 0) {
                rc = ngx_http_inventory_store_last_key(txn, st->log,
                                                       &logged);

                if (rc == 0 && logged != seq) {
                    rc = MDB_CORRUPTED;
                }
            }

            if (rc == 0) {
                rec.mv_data = (void *) (p + 12);
                rec.mv_size = rlen;
                rc = ngx_http_inventory_store_keep(st, txn, tx, &rec);
            }

            if (rc != 0) {
                break;
            }

            if (out->count == 0) {
                out->first_at = at;
            }

            last = tx;
            out->tx = tx;
            out->seq = seq;
            out->at = at;
            out->count++;
            out->bytes += rlen;
        }

        p += 12 + rlen;
        len -= 12 + rlen;
    }

    if (rc == 0 && out->count) {
        rc = mdb_txn_commit(txn);

    } else {
        mdb_txn_abort(txn);
    }

    (void) pthread_rwlock_unlock(&st->remap);

    if (rc != 0) {
        memset(out, 0, sizeof(ngx_http_inventory_applied_t));
        return ngx_http_inventory_store_rc(rc);
    }

    return gap ? NGX_HTTP_INVENTORY_STORE_GONE : NGX_HTTP_INVENTORY_STORE_OK;
}


/* one record's changes, each checked against the record's bounds */

static int
ngx_http_inventory_store_replay(ngx_http_inventory_store_t *st, MDB_txn *txn,
    const unsigned char *p, size_t len)
{
    int       rc;
    size_t    klen, vlen;
    unsigned  op, db;
    MDB_val   key, val;

    p += NGX_HTTP_INVENTORY_REC_HEADER;
    len -= NGX_HTTP_INVENTORY_REC_HEADER;

    while (len > 0) {
        if (len < NGX_HTTP_INVENTORY_CHANGE_HEADER) {
            return MDB_CORRUPTED;
        }

        op = p[0];
        db = p[1];
        klen = ngx_http_inventory_get_u32(p + 2);
        vlen = ngx_http_inventory_get_u32(p + 6);
        p += NGX_HTTP_INVENTORY_CHANGE_HEADER;
        len -= NGX_HTTP_INVENTORY_CHANGE_HEADER;

        /* the replication log itself is kept by store_keep() alone */
        if (db >= NGX_HTTP_INVENTORY_DBS - 1 || klen == 0
            || klen > len || vlen > len - klen
            || (op != NGX_HTTP_INVENTORY_OP_PUT
                && (op != NGX_HTTP_INVENTORY_OP_DEL || vlen != 0)))
        {
            return MDB_CORRUPTED;
        }

        key.mv_data = (void *) p;
        key.mv_size = klen;
        val.mv_data = (void *) (p + klen);
        val.mv_size = vlen;

        if (op == NGX_HTTP_INVENTORY_OP_PUT) {
            rc = mdb_put(txn, st->dbi[db], &key, &val, 0);

        } else {
            rc = mdb_del(txn, st->dbi[db], &key, NULL);

            /* only deletes that deleted something are recorded */
            if (rc == MDB_NOTFOUND) {
                rc = MDB_CORRUPTED;
            }
        }

        if (rc != 0) {
            return rc == MDB_BAD_VALSIZE ? MDB_CORRUPTED : rc;
        }

        p += klen + vlen;
        len -= klen + vlen;
    }

    return 0;
}


/* the store's identity and position, in the process's read transaction */

int
ngx_http_inventory_store_identity(ngx_http_inventory_store_t *st,
    ngx_http_inventory_identity_t *id)
{
    int            rc;
    MDB_val        key, val, rec;
    uint64_t       tx;
    unsigned char  buf[8];

    memset(id, 0, sizeof(ngx_http_inventory_identity_t));

    key.mv_data = (void *) "store_id";
    key.mv_size = sizeof("store_id") - 1;

    rc = mdb_get(st->rtxn, st->meta, &key, &val);

    if (rc == 0 && val.mv_size == sizeof(id->store_id)) {
        memcpy(id->store_id, val.mv_data, sizeof(id->store_id));
    }

    key.mv_data = (void *) "epoch";
    key.mv_size = sizeof("epoch") - 1;

    rc = mdb_get(st->rtxn, st->meta, &key, &val);

    if (rc == 0 && val.mv_size == 8) {
        id->epoch = ngx_http_inventory_get_u64(val.mv_data);
    }

    rc = ngx_http_inventory_store_last_key(st->rtxn, st->replication, &tx);

    if (rc == 0 && tx) {
        ngx_http_inventory_put_u64(buf, tx);
        key.mv_data = buf;
        key.mv_size = 8;

        rc = mdb_get(st->rtxn, st->replication, &key, &rec);

        if (rc == 0) {
            rc = ngx_http_inventory_store_header(rec.mv_data, rec.mv_size,
                                                 &id->tx_seq, &id->tx_at);
        }
    }

    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    id->tx = tx;

    return ngx_http_inventory_store_last_seq(st, &id->last_seq);
}


/* a consistent, compact copy of the whole store; blocks: on a thread */

int
ngx_http_inventory_store_copy(ngx_http_inventory_store_t *st, int fd)
{
    int  rc;

    (void) pthread_rwlock_rdlock(&st->remap);
    rc = mdb_env_copyfd2(st->env, fd, MDB_CP_COMPACT);
    (void) pthread_rwlock_unlock(&st->remap);

    return ngx_http_inventory_store_rc(rc);
}


/*
 * Makes this store a copy of the one at path (a file written by
 * store_copy()), in one transaction: what it held before is gone, all at
 * once, when it commits.  Blocks: on a thread.
 */

int
ngx_http_inventory_store_install(ngx_http_inventory_store_t *st,
    const char *path)
{
    int        rc;
    size_t     i;
    MDB_env   *env;
    MDB_txn   *from, *to;

    rc = mdb_env_create(&env);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    from = NULL;

    if ((rc = mdb_env_set_maxdbs(env, 16)) != 0
        || (rc = mdb_env_open(env, path,
                              MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0600))
           != 0
        || (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &from)) != 0)
    {
        mdb_env_close(env);
        return rc == EINVAL || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH
               ? NGX_HTTP_INVENTORY_STORE_CORRUPTED
               : ngx_http_inventory_store_rc(rc);
    }

    (void) pthread_rwlock_rdlock(&st->remap);

    rc = mdb_txn_begin(st->env, NULL, 0, &to);

    for (i = 0; rc == 0 && i < NGX_HTTP_INVENTORY_DBS; i++) {
        rc = mdb_drop(to, st->dbi[i], 0);

        if (rc == 0) {
            rc = ngx_http_inventory_store_load_db(from, to,
                                              ngx_http_inventory_db_names[i],
                                              st->dbi[i]);
        }
    }

    if (rc == 0) {
        rc = mdb_txn_commit(to);

    } else if (to != NULL) {
        mdb_txn_abort(to);
    }

    (void) pthread_rwlock_unlock(&st->remap);

    mdb_txn_abort(from);
    mdb_env_close(env);

    return ngx_http_inventory_store_rc(rc);
}


static int
ngx_http_inventory_store_load_db(MDB_txn *from, MDB_txn *to,
    const char *name, MDB_dbi dbi)
{
    int          rc;
    MDB_dbi      src;
    MDB_val      key, val;
    MDB_cursor  *cur;

    rc = mdb_dbi_open(from, name, 0, &src);

    if (rc == MDB_NOTFOUND) {
        return 0;
    }

    if (rc != 0) {
        return rc;
    }

    rc = mdb_cursor_open(from, src, &cur);
    if (rc != 0) {
        return rc;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        rc = mdb_put(to, dbi, &key, &val, MDB_APPEND);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);

    if (rc == MDB_KEYEXIST) {
        rc = MDB_CORRUPTED;
    }

    return rc == MDB_NOTFOUND ? 0 : rc;
}


/* every record of every database, in order: for comparing copies */

int
ngx_http_inventory_store_walk(ngx_http_inventory_store_t *st,
    ngx_http_inventory_record_pt cb, void *ctx)
{
    int          rc;
    size_t       i;
    MDB_val      key, val;
    MDB_cursor  *cur;

    rc = 0;

    for (i = 0; rc == 0 && i < NGX_HTTP_INVENTORY_DBS; i++) {
        rc = mdb_cursor_open(st->rtxn, st->dbi[i], &cur);
        if (rc != 0) {
            break;
        }

        for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
             rc == 0;
             rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
        {
            rc = cb(ctx, ngx_http_inventory_db_names[i], key.mv_data,
                    key.mv_size, val.mv_data, val.mv_size);
            if (rc != 0) {
                break;
            }
        }

        mdb_cursor_close(cur);

        if (rc == MDB_NOTFOUND) {
            rc = 0;
        }
    }

    return ngx_http_inventory_store_rc(rc);
}
