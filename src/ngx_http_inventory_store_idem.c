/*
 * Idempotency records: a decided command's response kept under its
 * Idempotency-Key for the store's idem_ttl, the replay or refusal of a key
 * seen before, and the purge of expired records.  All run inside the write
 * path's transaction and return LMDB's codes.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_store_db.h"
#include "ngx_http_inventory_render.h"


/*
 * A key seen before answers at once: with the stored response when the
 * request is the same, with 422 when it is not.  An expired record is
 * removed and the key is new again.
 */

int
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
        rc = ngx_http_inventory_store_del(st, txn, st->idempotency, &key);

        if (rc == 0) {
            key.mv_data = kbuf;
            key.mv_size = ngx_http_inventory_expiry_key(kbuf,
                                                        idem.expires_at,
                                                        cmd->idem_key.data,
                                                        cmd->idem_key.len);
            rc = ngx_http_inventory_store_del(st, txn, st->idem_expiry, &key);
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

int
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

    rc = ngx_http_inventory_store_recorded(st, st->idempotency, &key, &val);
    if (rc != 0) {
        return rc;
    }

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_expiry_key(kbuf, idem.expires_at,
                                                cmd->idem_key.data,
                                                cmd->idem_key.len);
    val.mv_data = NULL;
    val.mv_size = 0;

    return ngx_http_inventory_store_put(st, txn, st->idem_expiry, &key, &val,
                                        0);
}


/* forgets idempotency keys past their time, at most max of them */

int
ngx_http_inventory_store_purge(ngx_http_inventory_store_t *st, MDB_txn *txn,
    uint64_t now, size_t max, size_t *purged)
{
    /* those that expire at now included, as idem_check() sees them */
    return ngx_http_inventory_store_purge_index(st, txn, st->idem_expiry,
                                                st->idempotency, now + 1,
                                                NULL, max, purged);
}
