/*
 * The LMDB store: commands applied in one transaction, events and
 * projections written together, replay equal to the projection, a batch with
 * a rejected command, a full map that changes nothing, and a map grown by
 * another process adopted by reads and writes.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_store_db.h"


static void
cmd_init(ngx_http_inventory_cmd_t *cmd, unsigned type, const char *sku,
    const char *loc)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->type = type;
    cmd->sku = S(sku);
    cmd->location = S(loc);
}


/* the commands in one batch of the write entry point production uses */

static int
write_batch(ngx_http_inventory_store_t *st, ngx_http_inventory_cmd_t **cmds,
    size_t n, uint64_t now)
{
    ngx_http_inventory_store_batch_t  b;

    memset(&b, 0, sizeof(b));
    b.cmds = cmds;
    b.n = n;
    b.now = now;

    return ngx_http_inventory_store_write(st, &b);
}


static unsigned
run(ngx_http_inventory_store_t *st, ngx_http_inventory_cmd_t *cmd,
    uint64_t now)
{
    int                        rc;
    ngx_http_inventory_cmd_t  *p = cmd;

    rc = write_batch(st, &p, 1, now);
    free(cmd->body);
    cmd->body = NULL;

    return rc ? 1000 + cmd->outcome : cmd->outcome;
}


/* replays every event of the log, checking seq and per-item versions */

static int
replay_matches(ngx_http_inventory_store_t *st, uint64_t *events)
{
    int                         rc, ok;
    MDB_txn                    *txn;
    MDB_val                     key, val, ikey, ival;
    MDB_cursor                 *cur;
    uint64_t                    seq, expect;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_item_t  *items, stored;
    char                      (*names)[140];
    size_t                      nitems, i, max;
    ngx_http_inventory_event_t  ev;

    max = 100000;
    items = calloc(max, sizeof(items[0]));
    names = calloc(max, sizeof(names[0]));
    nitems = 0;
    ok = 1;
    expect = 1;

    mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    mdb_cursor_open(txn, st->log, &cur);

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        seq = ngx_http_inventory_get_u64(key.mv_data);

        if (seq != expect++
            || ngx_http_inventory_event_decode(val.mv_data, val.mv_size, &ev)
               != 0)
        {
            ok = 0;
            break;
        }

        snprintf(names[nitems], sizeof(names[0]), "%.*s/%.*s",
                 (int) ev.sku.len, ev.sku.data,
                 (int) ev.location.len, ev.location.data);

        for (i = 0; i < nitems; i++) {
            if (strcmp(names[i], names[nitems]) == 0) {
                break;
            }
        }

        if (i == nitems) {
            if (nitems == max) {
                ok = 0;
                break;
            }

            memset(&items[nitems++], 0, sizeof(items[0]));
        }

        ev.seq = seq;

        if (ngx_http_inventory_event_apply(&items[i], &ev) != 0) {
            ok = 0;
            break;
        }

        /* the per-item index points back at this seq */
        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_event_key(kbuf, ev.sku,
                                                         ev.location,
                                                         ev.version);
        if (mdb_get(txn, st->item_events, &ikey, &ival) != 0
            || ngx_http_inventory_get_u64(ival.mv_data) != seq)
        {
            ok = 0;
            break;
        }

        ikey.mv_size = ngx_http_inventory_item_key(kbuf, ev.sku, ev.location);

        if (mdb_get(txn, st->items, &ikey, &ival) != 0) {
            ok = 0;
            break;
        }
    }

    mdb_cursor_close(cur);

    /* every projection equals the replay of its events */
    for (i = 0; ok && i < nitems; i++) {
        char  *slash = strchr(names[i], '/');

        *slash = '\0';
        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_key(kbuf, S(names[i]),
                                                   S(slash + 1));
        if (mdb_get(txn, st->items, &ikey, &ival) != 0
            || ngx_http_inventory_item_decode(ival.mv_data, ival.mv_size,
                                              &stored) != 0
            || memcmp(&stored, &items[i], sizeof(stored)) != 0)
        {
            ok = 0;
        }
    }

    mdb_txn_abort(txn);
    free(items);
    free(names);
    *events = expect - 1;

    return ok;
}


/*
 * A batch spoiled by an LMDB error in one command (here: a record that
 * cannot be read) is rolled back and rerun command by command: the others
 * commit, only the bad one fails, and seq stays gap-free.
 */

/* the group commit's batch token: kept by the batch that commits it */

static void
test_store_token(ngx_http_inventory_store_t *st)
{
    ngx_http_inventory_cmd_t           a, *p;
    ngx_http_inventory_store_batch_t   bt;

    /*
     * Refused, but its key keeps the answer: the batch writes, and keeps
     * the token (the key outlives the purges of test_store_reservations)
     */
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "nowhere");
    a.delta = -1;
    a.idem_key = S("token-key-1");
    p = &a;

    memset(&bt, 0, sizeof(bt));
    bt.cmds = &p;
    bt.n = 1;
    bt.now = 20000;
    bt.token[0] = 77;
    bt.token[1] = 41;
    is_int(ngx_http_inventory_store_write(st, &bt), 0, "token: batch 41");
    free(a.body);

    /* refused without a key: writes nothing, so keeps no token */
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "nowhere");
    a.delta = -1;
    memset(&bt, 0, sizeof(bt));
    bt.cmds = &p;
    bt.n = 1;
    bt.now = 20000;
    bt.token[0] = 77;
    bt.token[1] = 42;
    is_int(ngx_http_inventory_store_write(st, &bt), 0, "token: batch 42");
    free(a.body);
    ok(bt.last_token[0] == 77 && bt.last_token[1] == 41,
       "token: the next batch reads the last one kept");

    /* an empty batch reads it too, and commits nothing */
    memset(&bt, 0, sizeof(bt));
    bt.cmds = &p;
    bt.token[0] = 77;
    bt.token[1] = 43;
    is_int(ngx_http_inventory_store_write(st, &bt), 0, "token: empty batch");
    ok(bt.last_token[1] == 41, "token: a batch that wrote nothing kept none");

    memset(&bt, 0, sizeof(bt));
    bt.cmds = &p;
    (void) ngx_http_inventory_store_write(st, &bt);
    ok(bt.last_token[1] == 41, "token: nor did an empty one");
}


static void
test_store_spoiled_batch(ngx_http_inventory_store_t *st)
{
    MDB_txn                         *txn;
    MDB_val                          key, val;
    uint64_t                         events;
    unsigned char                    kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    unsigned char                    junk[39];
    ngx_http_inventory_cmd_t        *batch[3];
    static ngx_http_inventory_cmd_t  a, b, c;

    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "SP", "a");
    a.on_hand = 5;
    run(st, &a, 20000);
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "SP", "c");
    a.on_hand = 5;
    run(st, &a, 20000);

    /* a record of the wrong size where an item should be */
    memset(junk, 0, sizeof(junk));
    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_item_key(kbuf, S("SP"), S("b"));
    val.mv_data = junk;
    val.mv_size = sizeof(junk);

    ok(mdb_txn_begin(st->env, NULL, 0, &txn) == 0
       && mdb_put(txn, st->items, &key, &val, 0) == 0
       && mdb_txn_commit(txn) == 0, "spoiled: a bad record planted");

    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "SP", "a");
    a.delta = 1;
    cmd_init(&b, NGX_HTTP_INVENTORY_CMD_ADJUST, "SP", "b");
    b.delta = 1;
    cmd_init(&c, NGX_HTTP_INVENTORY_CMD_ADJUST, "SP", "c");
    c.delta = 1;
    batch[0] = &a;
    batch[1] = &b;
    batch[2] = &c;

    is_int(write_batch(st, batch, 3, 20001), 0,
           "spoiled: the batch settles");
    is_int(a.outcome, NGX_HTTP_INVENTORY_OK, "spoiled: first applied");
    is_int(b.outcome, NGX_HTTP_INVENTORY_UNAVAILABLE, "spoiled: bad one 503");
    is_int(b.status, 503, "spoiled: its response is a 503");
    is_int(c.outcome, NGX_HTTP_INVENTORY_OK, "spoiled: third applied");
    is_int(c.last_seq, a.last_seq + 1, "spoiled: seq has no gap");
    is_int(a.slots[0].item.on_hand, 6, "spoiled: first once");
    free(a.body);
    free(b.body);
    free(c.body);

    ok(mdb_txn_begin(st->env, NULL, 0, &txn) == 0
       && mdb_del(txn, st->items, &key, NULL) == 0
       && mdb_txn_commit(txn) == 0, "spoiled: the bad record removed");

    ok(replay_matches(st, &events), "spoiled: replay equals projections");
}


/* the low-stock index read page by page with the store's cursor */

static int
count_item(void *ctx, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location, const ngx_http_inventory_item_t *item)
{
    (void) sku;
    (void) location;
    (void) item;

    (*(int *) ctx)++;

    return 0;
}


static void
test_store_low_stock(ngx_http_inventory_store_t *st)
{
    int                              n;
    size_t                           len, len2;
    unsigned char                    next[NGX_HTTP_INVENTORY_STORE_CURSOR_MAX];
    unsigned char                    next2[NGX_HTTP_INVENTORY_STORE_CURSOR_MAX];
    static ngx_http_inventory_cmd_t  a;
    static const char               *skus[] = { "L1", "L2", "L3" };

    for (n = 0; n < 3; n++) {
        cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, skus[n], "lowloc");
        a.on_hand = 1;
        a.min_level = 5;
        a.has_min_level = 1;
        run(st, &a, 30000);
    }

    ok(ngx_http_inventory_store_read_begin(st) == 0, "low: read");

    n = 0;
    is_int(ngx_http_inventory_store_low_stock(st, S("lowloc"), NULL, 0, 2,
                                              count_item, &n, next, &len),
           0, "low: first page");
    is_int(n, 2, "low: two items on it");
    ok(len > 0 && ngx_http_inventory_store_cursor_valid(next, len),
       "low: a cursor for the next page");

    n = 0;
    is_int(ngx_http_inventory_store_low_stock(st, S("lowloc"), next, len, 2,
                                              count_item, &n, next2, &len2),
           0, "low: second page");
    is_int(n, 1, "low: the third item on it");
    is_int(len2, 0, "low: no page follows");

    ngx_http_inventory_store_read_end(st);

    ok(!ngx_http_inventory_store_cursor_valid((const unsigned char *) "x", 1),
       "low: a cursor the store could not have made");
}


/* the store's own codes, and their messages */

static void
test_store_codes(void)
{
    ok(strstr(ngx_http_inventory_store_strerror(
                  NGX_HTTP_INVENTORY_STORE_FULL), "MDB_MAP_FULL") != NULL,
       "codes: FULL keeps LMDB's words");
    is_int(ngx_http_inventory_store_rc(MDB_NOTFOUND),
           NGX_HTTP_INVENTORY_STORE_NOT_FOUND, "codes: NOT_FOUND");
    is_int(ngx_http_inventory_store_rc(MDB_BAD_TXN),
           NGX_HTTP_INVENTORY_STORE_FAILED, "codes: other LMDB failures");
    is_int(ngx_http_inventory_store_rc(ENOSPC), ENOSPC,
           "codes: errno values pass");
    ok(strcmp(ngx_http_inventory_store_strerror(ENOSPC), strerror(ENOSPC))
       == 0, "codes: errno values read as strerror()");
}


/* reservations, their expiry index, and idempotency records */

static void
test_store_reservations(ngx_http_inventory_store_t *st)
{
    char                              ids[4][NGX_HTTP_INVENTORY_RES_ID_LEN];
    size_t                            n;
    ngx_http_inventory_item_t         item;
    ngx_http_inventory_reservation_t  res;
    static ngx_http_inventory_cmd_t   a, r1, r2, e;

    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "RS", "x");
    a.on_hand = 10;
    is_int(run(st, &a, 10000), NGX_HTTP_INVENTORY_CREATED, "rs: item");

    cmd_init(&r1, NGX_HTTP_INVENTORY_CMD_RESERVE, "RS", "x");
    r1.res.lines[0].sku = S("RS");
    r1.res.lines[0].location = S("x");
    r1.res.lines[0].quantity = 4;
    r1.res.nlines = 1;
    r1.ttl = 1000;
    ngx_http_inventory_reservation_id(r1.res.id, 1000);
    r1.idem_key = S("key-1");
    memset(r1.fingerprint, 7, 16);
    is_int(run(st, &r1, 10000), NGX_HTTP_INVENTORY_CREATED, "rs: reserve");
    is_int(r1.slots[0].item.reserved, 4, "rs: reserved");

    r2 = r1;
    ngx_http_inventory_reservation_id(r2.res.id, 1000);
    is_int(run(st, &r2, 10001), NGX_HTTP_INVENTORY_REPLAYED,
           "rs: the same key and request replays");
    is_int(r2.status, 201, "rs: replayed status");

    r2.fingerprint[0] = 8;
    is_int(run(st, &r2, 10002), NGX_HTTP_INVENTORY_KEY_REUSED,
           "rs: the same key for another request is refused");

    ok(ngx_http_inventory_store_read_begin(st) == 0, "rs: read");
    is_int(ngx_http_inventory_store_get_item(st, S("RS"), S("x"), &item), 0,
           "rs: item read");
    is_int(item.reserved, 4, "rs: the replay reserved nothing");
    is_int(ngx_http_inventory_store_get_reservation(st, r1.res.id, &res), 0,
           "rs: reservation read");
    ok(res.state == NGX_HTTP_INVENTORY_RES_ACTIVE && res.nlines == 1
       && res.lines[0].quantity == 4 && res.expires_at == 11000,
       "rs: reservation stored");
    is_int(ngx_http_inventory_store_get_reservation(st, r2.res.id, &res),
           NGX_HTTP_INVENTORY_STORE_NOT_FOUND, "rs: no second reservation");
    is_int(ngx_http_inventory_store_due(st, 10999, ids, 4, &n), 0, "rs: due");
    is_int(n, 0, "rs: nothing due before its time");
    is_int(ngx_http_inventory_store_due(st, 11000, ids, 4, &n), 0, "rs: due");
    ok(n == 1 && memcmp(ids[0], r1.res.id, 24) == 0, "rs: due at its time");
    ngx_http_inventory_store_read_end(st);

    cmd_init(&e, NGX_HTTP_INVENTORY_CMD_EXPIRE, "", "");
    memcpy(e.res.id, ids[0], 24);
    is_int(run(st, &e, 11000), NGX_HTTP_INVENTORY_OK, "rs: expired");
    is_int(e.slots[0].item.reserved, 0, "rs: stock returned");
    is_int(run(st, &e, 11001), NGX_HTTP_INVENTORY_NOT_ACTIVE,
           "rs: expired once");

    ok(ngx_http_inventory_store_read_begin(st) == 0, "rs: read");
    is_int(ngx_http_inventory_store_due(st, 99999, ids, 4, &n), 0, "rs: due");
    is_int(n, 0, "rs: an ended reservation leaves the index");
    ngx_http_inventory_store_read_end(st);

    cmd_init(&e, NGX_HTTP_INVENTORY_CMD_PURGE, "", "");
    e.quantity = 10;
    is_int(run(st, &e, 10000 + 86400000 - 1), NGX_HTTP_INVENTORY_OK,
           "rs: purge");
    is_int(e.available, 0, "rs: keys live for their ttl");
    is_int(run(st, &e, 10000 + 86400000), NGX_HTTP_INVENTORY_OK, "rs: purge");
    is_int(e.available, 1, "rs: then they are purged");

    r2.fingerprint[0] = 8;
    is_int(run(st, &r2, 10000 + 86400000), NGX_HTTP_INVENTORY_CREATED,
           "rs: a purged key is new again");
}


/* a child process opens the store with a larger map and fills past used */

static int
grow_in_child(const char *dir, size_t map_size, uint64_t used)
{
    int                              status;
    char                             loc[32];
    pid_t                            pid;
    unsigned                         i;
    ngx_http_inventory_cmd_t         cmd;
    ngx_http_inventory_store_t      *st;
    ngx_http_inventory_store_stat_t  stat;

    fflush(stdout);

    pid = fork();
    if (pid < 0) {
        return -1;
    }

    if (pid == 0) {
        if (ngx_http_inventory_store_open(&st, dir, map_size, 0, 0) != 0) {
            _exit(1);
        }

        for (i = 0; i < 1000000; i++) {
            snprintf(loc, sizeof(loc), "grown-%u-%u", (unsigned) map_size, i);
            cmd_init(&cmd, NGX_HTTP_INVENTORY_CMD_COUNT, "GROW", loc);
            cmd.on_hand = 1;

            if (run(st, &cmd, 5000) != NGX_HTTP_INVENTORY_CREATED
                || ngx_http_inventory_store_stat(st, &stat) != 0)
            {
                _exit(2);
            }

            if (stat.used > used) {
                break;
            }
        }

        ngx_http_inventory_store_close(st);
        _exit(0);
    }

    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }

    return WEXITSTATUS(status);
}


/* reserves res_ids[i] (one unit of RT at x) at now for ttl ms */

static unsigned
retention_reserve(ngx_http_inventory_store_t *st, char *id, uint64_t now,
    uint64_t ttl)
{
    static ngx_http_inventory_cmd_t  r;

    cmd_init(&r, NGX_HTTP_INVENTORY_CMD_RESERVE, "RT", "x");
    r.res.lines[0].sku = S("RT");
    r.res.lines[0].location = S("x");
    r.res.lines[0].quantity = 1;
    r.res.nlines = 1;
    r.ttl = ttl;
    ngx_http_inventory_reservation_id(r.res.id, now);
    memcpy(id, r.res.id, NGX_HTTP_INVENTORY_RES_ID_LEN);

    return run(st, &r, now);
}


/* commits, releases or expires the reservation at now */

static unsigned
retention_end(ngx_http_inventory_store_t *st, unsigned type, const char *id,
    uint64_t now)
{
    static ngx_http_inventory_cmd_t  e;

    cmd_init(&e, type, "", "");
    memcpy(e.res.id, id, NGX_HTTP_INVENTORY_RES_ID_LEN);

    return run(st, &e, now);
}


/* a purge at now of at most max, reservations ended more than ttl ago */

static int64_t
retention_purge(ngx_http_inventory_store_t *st, uint64_t now, uint64_t ttl,
    int64_t max)
{
    static ngx_http_inventory_cmd_t  p;

    cmd_init(&p, NGX_HTTP_INVENTORY_CMD_PURGE, "", "");
    p.quantity = max;
    p.ttl = ttl;

    return run(st, &p, now) == NGX_HTTP_INVENTORY_OK ? p.purged : -1;
}


/* the index of ended reservations, as "ended_at:id " entries */

static void
retention_index(ngx_http_inventory_store_t *st, char *buf, size_t size)
{
    int          rc;
    size_t       len;
    MDB_txn     *txn;
    MDB_val      key, val;
    MDB_cursor  *cur;

    buf[0] = '\0';
    len = 0;

    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0) {
        return;
    }

    if (mdb_cursor_open(txn, st->res_ended, &cur) == 0) {
        for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
             rc == 0 && key.mv_size == NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN
             && len + 64 < size;
             rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
        {
            len += snprintf(buf + len, size - len, "%llu:%.24s ",
                            (unsigned long long)
                            ngx_http_inventory_get_u64(key.mv_data),
                            (char *) key.mv_data + 8);
        }

        mdb_cursor_close(cur);
    }

    mdb_txn_abort(txn);
}


static int
retention_found(ngx_http_inventory_store_t *st, const char *id)
{
    int                               rc;
    ngx_http_inventory_reservation_t  res;

    if (ngx_http_inventory_store_read_begin(st) != 0) {
        return -1;
    }

    rc = ngx_http_inventory_store_get_reservation(st, id, &res);
    ngx_http_inventory_store_read_end(st);

    return rc == 0 ? 1 : rc == NGX_HTTP_INVENTORY_STORE_NOT_FOUND ? 0 : -1;
}


/*
 * Ended reservations enter the index of ended ones under their end; a
 * purge forgets those ended more than ttl ago, oldest first, max at a
 * time, never an active one, and none with ttl 0; an upgrade from schema
 * 2 and a rebuild make the same index.  In a directory of its own.
 */

static void
test_store_retention(const char *parent)
{
    int                          rc;
    char                         dir[128], before[512], after[512];
    char                         ids[5][NGX_HTTP_INVENTORY_RES_ID_LEN];
    size_t                       i;
    uint64_t                     events, bad;
    MDB_txn                     *txn;
    MDB_val                      key, val;
    unsigned char                ver[8];
    ngx_http_inventory_cmd_t     a;
    ngx_http_inventory_store_t  *st;

    snprintf(dir, sizeof(dir), "%s/retention", parent);

    if (mkdir(dir, 0700) != 0) {
        ok(0, "mkdir %s", dir);
        return;
    }

    rc = ngx_http_inventory_store_open(&st, dir, 4 * 1024 * 1024, 0,
                                       NGX_HTTP_INVENTORY_STORE_CREATE);
    is_int(rc, 0, "rt: store opens");

    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "RT", "x");
    a.on_hand = 100;
    is_int(run(st, &a, 10000), NGX_HTTP_INVENTORY_CREATED, "rt: item");

    /* 3 is active for ten hours: older than any other, never purged */
    for (i = 0; i < 5; i++) {
        is_int(retention_reserve(st, ids[i], 10000 + i,
                                 i == 3 ? 36000000 : 15000),
               NGX_HTTP_INVENTORY_CREATED, "rt: reserve %zu", i);
    }

    is_int(retention_end(st, NGX_HTTP_INVENTORY_CMD_COMMIT, ids[0], 20000),
           NGX_HTTP_INVENTORY_OK, "rt: 0 committed");
    is_int(retention_end(st, NGX_HTTP_INVENTORY_CMD_RELEASE, ids[1], 21000),
           NGX_HTTP_INVENTORY_OK, "rt: 1 released");
    is_int(retention_end(st, NGX_HTTP_INVENTORY_CMD_RELEASE, ids[4], 24000),
           NGX_HTTP_INVENTORY_OK, "rt: 4 released");
    is_int(retention_end(st, NGX_HTTP_INVENTORY_CMD_EXPIRE, ids[2], 26000),
           NGX_HTTP_INVENTORY_OK, "rt: 2 expired");

    snprintf(after, sizeof(after), "20000:%.24s 21000:%.24s 24000:%.24s "
             "26000:%.24s ", ids[0], ids[1], ids[4], ids[2]);
    retention_index(st, before, sizeof(before));
    ok(strcmp(before, after) == 0, "rt: the index holds the ended ones by "
       "their end");

    is_int(retention_purge(st, 30000, 0, 100), 0,
           "rt: ttl 0 purges nothing");
    is_int(retention_purge(st, 30000, 9000, 100), 1,
           "rt: one ended more than 9 s before");
    ok(retention_found(st, ids[0]) == 0 && retention_found(st, ids[1]) == 1,
       "rt: the oldest is gone, the next one is not");
    is_int(retention_end(st, NGX_HTTP_INVENTORY_CMD_COMMIT, ids[0], 30000),
           NGX_HTTP_INVENTORY_NOT_FOUND, "rt: a purged one is not found");
    is_int(retention_purge(st, 31000, 10000, 100), 0,
           "rt: ended exactly ttl before: kept");

    /* bounded: one at a time */
    is_int(retention_purge(st, 40000, 1000, 1), 1, "rt: a batch of 1");
    is_int(retention_purge(st, 40000, 1000, 1), 1, "rt: another");
    is_int(retention_purge(st, 40000, 1000, 1), 1, "rt: another");
    is_int(retention_purge(st, 40000, 1000, 1), 0, "rt: no more");
    ok(retention_found(st, ids[1]) == 0 && retention_found(st, ids[2]) == 0
       && retention_found(st, ids[4]) == 0 && retention_found(st, ids[3]) == 1,
       "rt: the ended ones are gone, the active one stays");
    retention_index(st, before, sizeof(before));
    is_int(strlen(before), 0, "rt: the index is empty");
    is_int(retention_end(st, NGX_HTTP_INVENTORY_CMD_RELEASE, ids[3], 50000),
           NGX_HTTP_INVENTORY_OK, "rt: the active one still releases");
    ok(replay_matches(st, &events), "rt: the log still replays");

    /* a store of schema 2, without the index, gets it where nginx opens it */
    for (i = 0; i < 3; i++) {
        is_int(retention_reserve(st, ids[i], 60000, 15000),
               NGX_HTTP_INVENTORY_CREATED, "rt: reserve again %zu", i);
        is_int(retention_end(st, NGX_HTTP_INVENTORY_CMD_RELEASE, ids[i],
                             60000 + i),
               NGX_HTTP_INVENTORY_OK, "rt: released %zu", i);
    }

    retention_index(st, before, sizeof(before));

    ngx_http_inventory_put_u64(ver, 2);
    key.mv_data = "schema_version";
    key.mv_size = sizeof("schema_version") - 1;
    val.mv_data = ver;
    val.mv_size = 8;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    rc = rc ? rc : mdb_put(txn, st->meta, &key, &val, 0);
    rc = rc ? rc : mdb_drop(txn, st->res_ended, 1);
    rc = rc ? rc : mdb_txn_commit(txn);
    is_int(rc, 0, "rt: made a store of schema 2");
    ngx_http_inventory_store_close(st);

    is_int(ngx_http_inventory_store_open(&st, dir, 0, 0,
                                         NGX_HTTP_INVENTORY_STORE_RDONLY),
           NGX_HTTP_INVENTORY_STORE_INCOMPATIBLE,
           "rt: read only, a store of schema 2 is refused");
    is_int(ngx_http_inventory_store_open(&st, dir, 4 * 1024 * 1024, 0,
                                         NGX_HTTP_INVENTORY_STORE_CREATE),
           0, "rt: nginx's open upgrades it");
    retention_index(st, after, sizeof(after));
    ok(strlen(before) > 0 && strcmp(before, after) == 0,
       "rt: the upgrade indexed the ended reservations");
    ngx_http_inventory_store_close(st);

    is_int(ngx_http_inventory_store_open(&st, dir, 0, 0,
                                         NGX_HTTP_INVENTORY_STORE_RDONLY),
           0, "rt: then it opens read only too");
    ngx_http_inventory_store_close(st);

    /* rebuild makes the index anew */
    is_int(ngx_http_inventory_store_open(&st, dir, 0, 0, 0), 0,
           "rt: opens for rebuild");
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    rc = rc ? rc : mdb_drop(txn, st->res_ended, 0);
    rc = rc ? rc : mdb_txn_commit(txn);
    is_int(rc, 0, "rt: the index emptied");
    is_int(ngx_http_inventory_store_rebuild(st, &events, &bad), 0,
           "rt: rebuild");
    retention_index(st, after, sizeof(after));
    ok(strcmp(before, after) == 0, "rt: rebuild indexed them again");
    is_int(retention_purge(st, 70000, 9997, 3), 3,
           "rt: purged after the rebuild (3 released at 50 s and 60 s)");
    is_int(retention_purge(st, 70000, 9997, 3), 1, "rt: and the last one");
    retention_index(st, after, sizeof(after));
    is_int(strlen(after), 0, "rt: the index is empty again");

    ngx_http_inventory_store_close(st);
}


/* in a directory of its own below parent */

static void
test_store_remap(const char *parent)
{
    int                              rc;
    char                             dir[128];
    ngx_http_inventory_cmd_t         a;
    ngx_http_inventory_item_t        item;
    ngx_http_inventory_store_t      *st;
    ngx_http_inventory_store_stat_t  stat;

    snprintf(dir, sizeof(dir), "%s/remap", parent);

    if (mkdir(dir, 0700) != 0) {
        ok(0, "mkdir %s", dir);
        return;
    }

    rc = ngx_http_inventory_store_open(&st, dir, 1024 * 1024, 0,
                                       NGX_HTTP_INVENTORY_STORE_CREATE);
    is_int(rc, 0, "remap: store opens with a 1 MiB map");
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "A", "s");
    a.on_hand = 3;
    is_int(run(st, &a, 1000), NGX_HTTP_INVENTORY_CREATED, "remap: a write");

    /* writes see MDB_MAP_RESIZED first */
    is_int(grow_in_child(dir, 4 * 1024 * 1024, 1536 * 1024), 0,
           "remap: another process grows the store past 1 MiB");
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A", "s");
    a.delta = 1;
    is_int(run(st, &a, 6000), NGX_HTTP_INVENTORY_OK,
           "remap: a write adopts the grown map");
    is_int(ngx_http_inventory_store_stat(st, &stat), 0, "remap: stat");
    ok(stat.map_size >= 4 * 1024 * 1024, "remap: the map is %llu bytes now",
       (unsigned long long) stat.map_size);

    /* reads see it first */
    is_int(grow_in_child(dir, 8 * 1024 * 1024, 5 * 1024 * 1024), 0,
           "remap: another process grows the store past 4 MiB");
    is_int(ngx_http_inventory_store_read_begin(st), 0,
           "remap: a read adopts the grown map");
    is_int(ngx_http_inventory_store_get_item(st, S("GROW"),
                                             S("grown-8388608-0"), &item),
           0, "remap: the other process's first write is there");
    is_int(ngx_http_inventory_store_get_item(st, S("A"), S("s"), &item), 0,
           "remap: and this one's");
    is_int(item.on_hand, 4, "remap: with its value");
    ngx_http_inventory_store_read_end(st);

    ngx_http_inventory_store_close(st);
}


void
test_store(void)
{
    int                          rc;
    char                         dir[] = "/tmp/inventory-unit-XXXXXX";
    char                         cmdline[128];
    uint64_t                     events;
    ngx_http_inventory_cmd_t     a, b, c, *batch[3];
    ngx_http_inventory_item_t    item;
    ngx_http_inventory_store_t  *st;
    ngx_http_inventory_store_stat_t  stat;

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return;
    }

    rc = ngx_http_inventory_store_open(&st, dir, 1024 * 1024, 0,
                                       NGX_HTTP_INVENTORY_STORE_CREATE);
    is_int(rc, 0, "store opens and creates");

    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "A-1", "store-7");
    a.on_hand = 5;
    a.min_level = 10;
    a.has_min_level = 1;
    is_int(run(st, &a, 1000), NGX_HTTP_INVENTORY_CREATED, "count creates");
    is_int(a.appended, 2, "StockCounted + LowStockDetected");
    is_int(a.last_seq, 2, "seq 2");
    is_int(a.slots[0].item.version, 2, "version 2");

    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "store-7");
    a.delta = 100;
    is_int(run(st, &a, 500), NGX_HTTP_INVENTORY_OK, "adjust");
    is_int(a.slots[0].item.on_hand, 105, "adjust: on_hand");
    ok(a.slots[0].item.updated_at == 1000, "event time never goes back");

    /* one batch: a good command, a rejected one, a good one */
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "store-7");
    a.delta = -5;
    cmd_init(&b, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "nowhere");
    b.delta = -1;
    cmd_init(&c, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "store-7");
    c.delta = -3;
    batch[0] = &a;
    batch[1] = &b;
    batch[2] = &c;
    is_int(write_batch(st, batch, 3, 2000), 0,
           "batch commits");
    ok(a.status == 200 && b.status == 404 && c.status == 200 && b.body_len,
       "batch: each command has its response");
    free(a.body);
    free(b.body);
    free(c.body);
    is_int(a.outcome, NGX_HTTP_INVENTORY_OK, "batch: first applied");
    is_int(b.outcome, NGX_HTTP_INVENTORY_NOT_FOUND, "batch: second rejected");
    is_int(c.outcome, NGX_HTTP_INVENTORY_OK, "batch: third applied");

    test_store_token(st);
    is_int(c.slots[0].item.on_hand, 97, "batch: effects in order");
    is_int(c.last_seq, a.last_seq + 1, "batch: seq has no gap");

    ok(ngx_http_inventory_store_read_begin(st) == 0, "read begins");
    is_int(ngx_http_inventory_store_get_item(st, S("A-1"), S("store-7"),
                                             &item), 0, "get item");
    is_int(item.on_hand, 97, "read sees the write");
    is_int(ngx_http_inventory_store_get_item(st, S("A-1"), S("nowhere"),
                                             &item),
           NGX_HTTP_INVENTORY_STORE_NOT_FOUND, "unknown item");
    ngx_http_inventory_store_read_end(st);

    ok(replay_matches(st, &events), "replay equals projections");
    is_int(events, 5, "five events");

    /* fill the 1 MiB map: the failing command changes nothing */
    for (rc = 0; rc < 100000; rc++) {
        char  loc[32];

        snprintf(loc, sizeof(loc), "loc-%d", rc);
        cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "FILL", loc);
        a.on_hand = 1;

        if (run(st, &a, 3000) != NGX_HTTP_INVENTORY_CREATED) {
            break;
        }
    }

    ok(a.outcome == NGX_HTTP_INVENTORY_STORAGE_FULL,
       "a full map answers storage-full after %d items", rc);
    ok(replay_matches(st, &events), "replay still equals projections");
    is_int(events, 5 + rc, "no event of the failed command");

    is_int(ngx_http_inventory_store_stat(st, &stat), 0, "stat");
    is_int(stat.last_seq, 5 + rc, "stat: last seq");

    ngx_http_inventory_store_close(st);

    /* reopened with a larger map, the store goes on */
    rc = ngx_http_inventory_store_open(&st, dir, 4 * 1024 * 1024, 1, 0);
    is_int(rc, 0, "store reopens with a larger map");
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "store-7");
    a.delta = 1;
    is_int(run(st, &a, 4000), NGX_HTTP_INVENTORY_OK, "write after growth");
    is_int(a.last_seq, events + 1, "seq continues");
    test_store_reservations(st);
    test_store_spoiled_batch(st);
    test_store_low_stock(st);
    ok(replay_matches(st, &events), "replay equals projections at the end");
    ngx_http_inventory_store_close(st);

    test_store_remap(dir);
    test_store_retention(dir);
    test_store_codes();

    snprintf(cmdline, sizeof(cmdline), "rm -rf %s", dir);
    if (system(cmdline) != 0) {
        ok(0, "cleanup");
    }
}
