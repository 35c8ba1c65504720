/*
 * The store's write path: a batch of commands in one write transaction
 * (begin, apply, commit, and the settling of a spoiled batch), each
 * command's events appended to the log and the item's event index, the
 * items' projections and their low-stock and changes indexes, the
 * references index, reservations and their expiry index.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_store_db.h"
#include "ngx_http_inventory_render.h"
#include "ngx_http_inventory_pack.h"


static int ngx_http_inventory_store_settle(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_batch_t *b, int rc);
static void ngx_http_inventory_store_failed(ngx_http_inventory_cmd_t *cmd,
    int rc);
static int ngx_http_inventory_store_transact(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_batch_t *b, ngx_http_inventory_cmd_t **cmds,
    size_t n);
static int ngx_http_inventory_store_apply(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_store_batch_t *b,
    ngx_http_inventory_cmd_t **cmds, size_t n);
static int ngx_http_inventory_store_wrote(ngx_http_inventory_cmd_t *cmd);
static int ngx_http_inventory_store_token(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t *token, int put);
static unsigned ngx_http_inventory_store_outcome(int rc);
static int ngx_http_inventory_store_run(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_clock_t *clock);
static int ngx_http_inventory_store_exec_one(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_clock_t *clock);
static int ngx_http_inventory_store_exec_batch(
    ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_clock_t *clock);
static int ngx_http_inventory_store_put_reservation(
    ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_cmd_t *cmd);
static int ngx_http_inventory_store_append(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot,
    ngx_http_inventory_event_t *ev, ngx_http_inventory_clock_t *clock);
static int ngx_http_inventory_store_put_change(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot, MDB_val *item_key);


/*
 * The commands of a batch share the transaction without nested ones: a
 * command the domain refuses writes nothing, so only an LMDB error (a full
 * map) can spoil a batch.  Then the batch is rolled back and each command
 * runs again in a transaction of its own, so that the others still commit
 * and only the failing one is answered with the error.  Either way the
 * result equals the commands applied one by one, in order.
 */

int
ngx_http_inventory_store_write(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_batch_t *b)
{
    int       rc;
    MDB_txn  *txn;

    rc = ngx_http_inventory_store_begin(st, &txn);

    b->last_token[0] = 0;
    b->last_token[1] = 0;

    if (rc == 0) {
        rc = ngx_http_inventory_store_token(st, txn, b->last_token, 0);

        if (rc != 0) {
            ngx_http_inventory_store_abort(st, txn);
        }
    }

    /* called also when beginning failed: what it takes is answered */
    if (b->fill) {
        b->fill(b);
    }

    if (rc == 0) {
        if (b->n == 0) {
            ngx_http_inventory_store_abort(st, txn);
            return NGX_HTTP_INVENTORY_STORE_OK;
        }

        rc = ngx_http_inventory_store_apply(st, txn, b, b->cmds, b->n);
    }

    rc = ngx_http_inventory_store_settle(st, b, rc);

    return ngx_http_inventory_store_rc(rc);
}


/* after a batch that failed with rc: each command on its own */

static int
ngx_http_inventory_store_settle(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_batch_t *b, int rc)
{
    int                         any;
    size_t                      i, n;
    ngx_http_inventory_cmd_t  **cmds;

    cmds = b->cmds;
    n = b->n;

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

        if (ngx_http_inventory_store_transact(st, b, &cmds[i], 1) == 0) {
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


/* the commands in one transaction of their own, committed or not at all */

static int
ngx_http_inventory_store_transact(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_batch_t *b, ngx_http_inventory_cmd_t **cmds,
    size_t n)
{
    int       rc;
    MDB_txn  *txn;

    rc = ngx_http_inventory_store_begin(st, &txn);
    if (rc != 0) {
        return rc;
    }

    return ngx_http_inventory_store_apply(st, txn, b, cmds, n);
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

static int
ngx_http_inventory_store_apply(ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_store_batch_t *b, ngx_http_inventory_cmd_t **cmds,
    size_t n)
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
    if (b->now > clock.at) {
        clock.at = b->now;
    }

    /* what the transaction changes, for the replication log */
    ngx_http_inventory_store_rec_open(st, clock.seq);

    for (i = 0; rc == 0 && i < n; i++) {
        rc = ngx_http_inventory_store_run(st, txn, cmds[i], &clock);
    }

    /*
     * A transaction that wrote nothing else keeps no token either: it
     * stays empty (LMDB commits it without a write), and whether it
     * committed does not matter to anyone.
     */
    for (i = 0; rc == 0 && b->token[0] && i < n; i++) {
        if (ngx_http_inventory_store_wrote(cmds[i])) {
            rc = ngx_http_inventory_store_token(st, txn, b->token, 1);
            break;
        }
    }

    rc = ngx_http_inventory_store_rec_end(st, txn, rc, clock.seq, clock.at);

    if (rc != 0) {
        for (i = 0; i < n; i++) {
            free(cmds[i]->body);
            cmds[i]->body = NULL;
        }
    }

    return rc;
}


/* whether the command changed the store (see store_run()) */

static int
ngx_http_inventory_store_wrote(ngx_http_inventory_cmd_t *cmd)
{
    if (cmd->type == NGX_HTTP_INVENTORY_CMD_PURGE) {
        return cmd->available > 0 || cmd->purged > 0;
    }

    return cmd->appended
           || (cmd->idem_key.len && cmd->status < 500
               && cmd->outcome != NGX_HTTP_INVENTORY_REPLAYED
               && cmd->outcome != NGX_HTTP_INVENTORY_KEY_REUSED);
}


/*
 * The token of the last batch that named one (in meta): whoever takes over
 * a dead leader's batch learns from it whether the batch committed.
 */

static int
ngx_http_inventory_store_token(ngx_http_inventory_store_t *st, MDB_txn *txn,
    uint64_t *token, int put)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[16];

    key.mv_data = (void *) "commit_token";
    key.mv_size = sizeof("commit_token") - 1;

    if (put) {
        ngx_http_inventory_put_u64(buf, token[0]);
        ngx_http_inventory_put_u64(buf + 8, token[1]);
        val.mv_data = buf;
        val.mv_size = sizeof(buf);

        return ngx_http_inventory_store_put(st, txn, st->meta, &key, &val,
                                            0);
    }

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == MDB_NOTFOUND) {
        return 0;
    }

    if (rc != 0) {
        return rc;
    }

    if (val.mv_size != sizeof(buf)) {
        return MDB_CORRUPTED;
    }

    token[0] = ngx_http_inventory_get_u64(val.mv_data);
    token[1] = ngx_http_inventory_get_u64((unsigned char *) val.mv_data + 8);

    return 0;
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
    size_t  keys, reservations;

    cmd->now = clock->at;
    cmd->appended = 0;
    /* what the command was decided against, if it appends nothing */
    cmd->last_seq = clock->seq;

    if (cmd->type == NGX_HTTP_INVENTORY_CMD_PURGE) {
        reservations = 0;

        rc = ngx_http_inventory_store_purge(st, txn, cmd->now,
                                            (size_t) cmd->quantity, &keys);
        if (rc == 0) {
            rc = ngx_http_inventory_store_purge_ended(st, txn, cmd->now,
                                                      cmd->ttl,
                                                      (size_t) cmd->quantity,
                                                      &reservations);
        }

        cmd->outcome = NGX_HTTP_INVENTORY_OK;
        cmd->available = (int64_t) keys;
        cmd->purged = (int64_t) reservations;
        return rc;
    }

    rc = ngx_http_inventory_store_idem_check(st, txn, cmd);

    if (rc == NGX_HTTP_INVENTORY_EXEC_ANSWERED) {
        /* a replay or a reused key: answered, nothing to write */
        return 0;
    }

    if (rc == NGX_HTTP_INVENTORY_EXEC_DONE) {
        rc = (cmd->type == NGX_HTTP_INVENTORY_CMD_BATCH)
             ? ngx_http_inventory_store_exec_batch(st, txn, cmd, clock)
             : ngx_http_inventory_store_exec_one(st, txn, cmd, clock);
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


/*
 * A batch: its changes in order, each as a command of its own, in a
 * transaction nested in the batch's.  Atomic, one refused change undoes
 * them all (the nested transaction, the record's part and the seqs), and
 * every change is still tried, so that the answer names each one refused.
 * Returns EXEC_DONE (cmd->results tells each change's fate), EXEC_REJECT
 * (an atomic batch refused: nothing written), or an LMDB error.
 */

static int
ngx_http_inventory_store_exec_batch(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_clock_t *clock)
{
    int                             rc, refused;
    size_t                          i;
    MDB_txn                        *nested;
    const unsigned char            *p, *end;
    ngx_http_inventory_cmd_t       *change;
    ngx_http_inventory_clock_t      before;
    ngx_http_inventory_result_t    *res;
    ngx_http_inventory_rec_mark_t   mark;

    if (st->change == NULL) {
        st->change = malloc(sizeof(ngx_http_inventory_cmd_t));
        st->results = malloc(NGX_HTTP_INVENTORY_BATCH_CHANGES
                             * sizeof(ngx_http_inventory_result_t));

        if (st->change == NULL || st->results == NULL) {
            free(st->change);
            st->change = NULL;
            return ENOMEM;
        }
    }

    if (cmd->nchanges > NGX_HTTP_INVENTORY_BATCH_CHANGES) {
        return MDB_CORRUPTED;
    }

    rc = mdb_txn_begin(st->env, txn, 0, &nested);
    if (rc != 0) {
        return rc;
    }

    before = *clock;
    ngx_http_inventory_store_rec_save(st, &mark);

    change = st->change;
    cmd->results = st->results;
    p = (const unsigned char *) cmd->changes.data;
    end = p + cmd->changes.len;
    refused = 0;

    for (i = 0; i < cmd->nchanges; i++) {
        if (ngx_http_inventory_change_unpack(change, &p, end) != 0) {
            rc = MDB_CORRUPTED;
            break;
        }

        change->now = cmd->now;
        change->actor = cmd->actor;

        rc = ngx_http_inventory_store_exec_one(st, nested, change, clock);

        if (rc != NGX_HTTP_INVENTORY_EXEC_DONE
            && rc != NGX_HTTP_INVENTORY_EXEC_REJECT)
        {
            break;
        }

        res = &cmd->results[i];
        res->type = change->type;
        res->outcome = change->outcome;
        res->available = change->available;
        res->sku = change->sku;
        res->location = change->location;
        res->item = change->slots[0].item;
        res->exists = change->slots[0].exists;

        refused += (rc == NGX_HTTP_INVENTORY_EXEC_REJECT);
        rc = 0;
    }

    if (rc != 0 || (cmd->atomic && refused)) {
        mdb_txn_abort(nested);
        *clock = before;
        ngx_http_inventory_store_rec_restore(st, &mark);

        if (rc != 0) {
            return rc;
        }

        cmd->outcome = NGX_HTTP_INVENTORY_INSUFFICIENT;
        return NGX_HTTP_INVENTORY_EXEC_REJECT;
    }

    rc = mdb_txn_commit(nested);
    if (rc != 0) {
        return rc;
    }

    cmd->outcome = NGX_HTTP_INVENTORY_OK;
    cmd->appended = (unsigned) (clock->seq - before.seq);
    cmd->last_seq = clock->seq;

    return NGX_HTTP_INVENTORY_EXEC_DONE;
}


/*
 * The record, and its place in the expiry index while it is active, in the
 * index of ended ones (store_retention.c) once it ended.
 */

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

    rc = ngx_http_inventory_store_put(st, txn, st->reservations, &key, &val,
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
        rc = ngx_http_inventory_store_del(st, txn, st->res_expiry, &key);

        if (rc != 0 && rc != MDB_NOTFOUND) {
            return rc;
        }

        return ngx_http_inventory_store_ended(st, txn, res);
    }

    val.mv_data = NULL;
    val.mv_size = 0;

    return ngx_http_inventory_store_put(st, txn, st->res_expiry, &key, &val,
                                        0);
}


int
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
        slot->seq_loaded = 0;
        return 0;
    }

    slot->exists = (rc == 0);
    slot->was_low = ngx_http_inventory_low_stock(&slot->item);
    slot->seq_loaded = slot->item.seq;

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
    unsigned char               seq[8];
    unsigned char               rec[NGX_HTTP_INVENTORY_EVENT_RECORD_MAX];
    ngx_http_inventory_item_t   before;
    ngx_http_inventory_event_t  low_ev, *cause;

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

        rc = ngx_http_inventory_store_put(st, txn, st->log, &key, &val,
                                          MDB_APPEND);
        if (rc != 0) {
            return rc;
        }

        rc = ngx_http_inventory_store_put_index(st, txn, slot, ev->seq,
                                                ev->version);
        if (rc != 0) {
            return rc;
        }

        rc = ngx_http_inventory_store_put_reference(st, txn, ev);
        if (rc != 0) {
            return rc;
        }

        cause = ev;
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
            low_ev.reason = cause->reason;
            low_ev.reference = cause->reference;
            low_ev.actor = cause->actor;
            ev = &low_ev;
        }
    }

    return 0;
}


int
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

    rc = ngx_http_inventory_store_put(st, txn, st->items, &key, &val, 0);
    if (rc != 0) {
        return rc;
    }

    rc = ngx_http_inventory_store_put_change(st, txn, slot, &key);
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
        return ngx_http_inventory_store_put(st, txn, st->low_stock, &key,
                                            &val, 0);
    }

    rc = ngx_http_inventory_store_del(st, txn, st->low_stock, &key);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


/* the changes index: the item under its latest seq, and no other */

static int
ngx_http_inventory_store_put_change(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot, MDB_val *item_key)
{
    int            rc;
    MDB_val        key;
    unsigned char  seq[8];

    if (slot->item.seq == slot->seq_loaded) {
        return 0;
    }

    key.mv_data = seq;
    key.mv_size = sizeof(seq);

    if (slot->seq_loaded) {
        ngx_http_inventory_put_u64(seq, slot->seq_loaded);

        rc = ngx_http_inventory_store_del(st, txn, st->changes, &key);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            return rc;
        }
    }

    ngx_http_inventory_put_u64(seq, slot->item.seq);

    rc = ngx_http_inventory_store_put(st, txn, st->changes, &key, item_key,
                                      0);
    if (rc == 0) {
        slot->seq_loaded = slot->item.seq;
    }

    return rc;
}


/* the references index: every event that names a reference, under it */

int
ngx_http_inventory_store_put_reference(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const ngx_http_inventory_event_t *ev)
{
    MDB_val        key, val;
    unsigned char  kbuf[NGX_HTTP_INVENTORY_REF_KEY_MAX];

    /*
     * Only a reference that can be asked for: those of reservations made
     * before the rule (any text of 256 bytes) stay in their events alone.
     */
    if (!ngx_http_inventory_reference_valid(ev->reference.data,
                                            ev->reference.len))
    {
        return 0;
    }

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_reference_key(kbuf, ev->reference,
                                                   ev->seq);
    val.mv_data = NULL;
    val.mv_size = 0;

    return ngx_http_inventory_store_put(st, txn, st->references, &key, &val,
                                        0);
}


/* the item as the event left it, under the event's version: as_of reads it */

int
ngx_http_inventory_store_put_index(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot, uint64_t seq,
    uint64_t version)
{
    MDB_val        key, val;
    unsigned char  kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    unsigned char  rec[NGX_HTTP_INVENTORY_INDEX_RECORD_LEN];

    ngx_http_inventory_put_u64(rec, seq);
    ngx_http_inventory_item_encode(rec + 8, &slot->item);

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_item_event_key(kbuf, slot->sku,
                                                    slot->location, version);
    val.mv_data = rec;
    val.mv_size = sizeof(rec);

    return ngx_http_inventory_store_put(st, txn, st->item_events, &key, &val,
                                        0);
}
