/*
 * The store's replication: a follower made from a snapshot and then fed
 * the primary's transactions holds the same bytes in every database;
 * transactions it holds are skipped, a gap stops it, and a malformed frame
 * changes nothing.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_store_db.h"


typedef struct {
    unsigned char  *data;
    size_t          len;
    size_t          cap;
} repl_buf_t;


static int
repl_frame(void *ctx, uint64_t tx, const unsigned char *rec, size_t len)
{
    repl_buf_t  *b = ctx;

    if (b->len + 12 + len > b->cap) {
        b->cap = (b->len + 12 + len) * 2;
        b->data = realloc(b->data, b->cap);
        if (b->data == NULL) {
            return ENOMEM;
        }
    }

    ngx_http_inventory_put_u64(b->data + b->len, tx);
    ngx_http_inventory_put_u32(b->data + b->len + 8, (uint32_t) len);
    memcpy(b->data + b->len + 12, rec, len);
    b->len += 12 + len;

    return 0;
}


static int
repl_record(void *ctx, const char *db, const void *key, size_t klen,
    const void *val, size_t vlen)
{
    repl_buf_t  b;

    b = *(repl_buf_t *) ctx;

    /* the records, flattened: compared as one string */
    if (repl_frame(&b, klen, key, klen) != 0
        || repl_frame(&b, vlen, val, vlen) != 0
        || repl_frame(&b, 0, (const unsigned char *) db, strlen(db)) != 0)
    {
        return ENOMEM;
    }

    *(repl_buf_t *) ctx = b;

    return 0;
}


static int
repl_same(ngx_http_inventory_store_t *a, ngx_http_inventory_store_t *b)
{
    int         same;
    repl_buf_t  wa, wb;

    memset(&wa, 0, sizeof(wa));
    memset(&wb, 0, sizeof(wb));

    same = ngx_http_inventory_store_read_begin(a) == 0
           && ngx_http_inventory_store_walk(a, repl_record, &wa) == 0;
    ngx_http_inventory_store_read_end(a);

    same = same && ngx_http_inventory_store_read_begin(b) == 0
           && ngx_http_inventory_store_walk(b, repl_record, &wb) == 0;
    ngx_http_inventory_store_read_end(b);

    same = same && wa.len == wb.len && wa.len > 0
           && memcmp(wa.data, wb.data, wa.len) == 0;

    free(wa.data);
    free(wb.data);

    return same;
}


/* the primary's transactions after the follower's last one */

static int
repl_fetch(ngx_http_inventory_store_t *from, ngx_http_inventory_store_t *to,
    repl_buf_t *b)
{
    int                            rc;
    ngx_http_inventory_identity_t  id;

    b->len = 0;

    rc = ngx_http_inventory_store_read_begin(to);
    if (rc == 0) {
        rc = ngx_http_inventory_store_identity(to, &id);
        ngx_http_inventory_store_read_end(to);
    }

    if (rc == 0) {
        rc = ngx_http_inventory_store_read_begin(from);
    }

    if (rc == 0) {
        rc = ngx_http_inventory_store_transactions(from, id.tx, id.tx_at,
                                                   id.epoch, SIZE_MAX,
                                                   repl_frame, b);
        ngx_http_inventory_store_read_end(from);
    }

    return rc;
}


static int
repl_pull(ngx_http_inventory_store_t *from, ngx_http_inventory_store_t *to,
    repl_buf_t *b, ngx_http_inventory_applied_t *out)
{
    int  rc;

    rc = repl_fetch(from, to, b);
    if (rc != 0) {
        return rc;
    }

    return ngx_http_inventory_store_replicate(to, b->data, b->len, 0, out);
}


/* one command in a transaction of its own; its outcome */

static unsigned
repl_run(ngx_http_inventory_store_t *st, ngx_http_inventory_cmd_t *c,
    uint64_t now)
{
    ngx_http_inventory_cmd_t          *p;
    ngx_http_inventory_store_batch_t   bt;

    p = c;
    memset(&bt, 0, sizeof(bt));
    bt.cmds = &p;
    bt.n = 1;
    bt.now = now;

    if (ngx_http_inventory_store_write(st, &bt) != 0) {
        c->outcome = NGX_HTTP_INVENTORY_UNAVAILABLE;
    }

    free(c->body);
    c->body = NULL;

    return c->outcome;
}


static void
repl_writes(ngx_http_inventory_store_t *st, int round)
{
    char                       loc[16];
    static char                key[16];
    ngx_http_inventory_cmd_t   c;

    snprintf(loc, sizeof(loc), "loc-%d", round);

    memset(&c, 0, sizeof(c));
    c.type = NGX_HTTP_INVENTORY_CMD_COUNT;
    c.sku = S("R-1");
    c.location = S(loc);
    c.on_hand = 3;
    c.min_level = 5;
    c.has_min_level = 1;
    snprintf(key, sizeof(key), "repl-key-%d", round);
    c.idem_key = S(key);
    memset(c.fingerprint, round, 16);

    (void) repl_run(st, &c, 1000 + round);
}


static uint64_t
repl_epoch(ngx_http_inventory_store_t *st, uint64_t *tx)
{
    ngx_http_inventory_identity_t  id;

    memset(&id, 0, sizeof(id));
    (void) ngx_http_inventory_store_read_begin(st);
    (void) ngx_http_inventory_store_identity(st, &id);
    ngx_http_inventory_store_read_end(st);

    if (tx) {
        *tx = id.tx;
    }

    return id.epoch;
}


/*
 * A reservation ended on a, then purged past its retention: f applies
 * both transactions and holds the same bytes, without the reservation.
 */

static void
repl_retention(ngx_http_inventory_store_t *a, ngx_http_inventory_store_t *f,
    repl_buf_t *b)
{
    char                               id[NGX_HTTP_INVENTORY_RES_ID_LEN];
    ngx_http_inventory_applied_t       out;
    ngx_http_inventory_reservation_t   res;
    static ngx_http_inventory_cmd_t    c;

    memset(&c, 0, sizeof(c));
    c.type = NGX_HTTP_INVENTORY_CMD_RESERVE;
    c.sku = S("R-1");
    c.location = S("loc-1");
    c.res.lines[0] = (ngx_http_inventory_line_t) { S("R-1"), S("loc-1"), 1 };
    c.res.nlines = 1;
    c.ttl = 60000;
    ngx_http_inventory_reservation_id(c.res.id, 2000);
    memcpy(id, c.res.id, sizeof(id));
    is_int(repl_run(a, &c, 2000), NGX_HTTP_INVENTORY_CREATED,
           "repl: a reservation");

    memset(&c, 0, sizeof(c));
    c.type = NGX_HTTP_INVENTORY_CMD_RELEASE;
    memcpy(c.res.id, id, sizeof(id));
    is_int(repl_run(a, &c, 2001), NGX_HTTP_INVENTORY_OK, "repl: released");

    is_int(repl_pull(a, f, b, &out), 0, "repl: the release applies");
    ok(repl_same(a, f), "repl: the same bytes with an ended reservation");

    memset(&c, 0, sizeof(c));
    c.type = NGX_HTTP_INVENTORY_CMD_PURGE;
    c.quantity = 10;
    c.ttl = 1000;
    ok(repl_run(a, &c, 3002) == NGX_HTTP_INVENTORY_OK && c.purged == 1,
       "repl: the ended reservation purged");
    is_int(repl_pull(a, f, b, &out), 0, "repl: the purge applies");
    is_int(out.count, 1, "repl: as a transaction");
    ok(repl_same(a, f), "repl: the same bytes after the purge");

    (void) ngx_http_inventory_store_read_begin(f);
    is_int(ngx_http_inventory_store_get_reservation(f, id, &res),
           NGX_HTTP_INVENTORY_STORE_NOT_FOUND,
           "repl: the follower forgot it too");
    ngx_http_inventory_store_read_end(f);
}


/*
 * f, a copy of a, is promoted.  c, a copy taken before, follows f on; a,
 * deposed, is fenced off from f both ways, and went on alone after f's
 * epoch began: it must start again from a snapshot.
 */

static void
test_repl_epochs(ngx_http_inventory_store_t *a, ngx_http_inventory_store_t *f,
    const char *dc, repl_buf_t *b)
{
    int                            fd;
    char                           copy[64];
    uint64_t                       epoch, tx, ftx;
    ngx_http_inventory_store_t    *c;
    ngx_http_inventory_applied_t   out;

    is_int(ngx_http_inventory_store_open(&c, dc, 4 << 20, 0,
                                         NGX_HTTP_INVENTORY_STORE_CREATE),
           0, "epochs: a third store opens");
    snprintf(copy, sizeof(copy), "%s/copy", dc);
    fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    is_int(ngx_http_inventory_store_copy(a, fd), 0, "epochs: copy");
    close(fd);
    is_int(ngx_http_inventory_store_install(c, copy), 0, "epochs: install");

    (void) repl_epoch(f, &ftx);
    is_int(ngx_http_inventory_store_promote(f, 5000, &epoch), 0,
           "epochs: promote");
    is_int(epoch, 2, "epochs: the epoch grows to 2");
    ok(repl_epoch(f, &tx) == 2 && tx == ftx + 1,
       "epochs: in a transaction of its own");

    /* the deposed primary goes on alone */
    repl_writes(a, 7);

    /* its frames are not applied to the promoted copy */
    memset(b->data, 0, b->cap);
    b->len = 0;
    (void) ngx_http_inventory_store_read_begin(a);
    is_int(ngx_http_inventory_store_transactions(a, ftx, 0, 0, SIZE_MAX,
                                                 repl_frame, b),
           0, "epochs: the deposed primary's new transaction");
    ngx_http_inventory_store_read_end(a);
    is_int(ngx_http_inventory_store_replicate(f, b->data, b->len, 1, &out),
           NGX_HTTP_INVENTORY_STORE_FENCED,
           "epochs: a source of an older epoch is fenced off");
    is_int(repl_fetch(a, f, b), NGX_HTTP_INVENTORY_STORE_GONE,
           "epochs: nor does the deposed one continue a newer copy");

    /* the deposed primary cannot continue from the new one */
    is_int(repl_fetch(f, a, b), NGX_HTTP_INVENTORY_STORE_GONE,
           "epochs: the deposed one went on after epoch 2 began");

    /* the copy taken before the fork continues, through the promotion */
    is_int(repl_pull(f, c, b, &out), 0, "epochs: an older copy follows on");
    ok(repl_epoch(c, NULL) == 2 && repl_same(f, c),
       "epochs: it holds epoch 2 and the same bytes");

    ngx_http_inventory_store_close(c);
}


void
test_repl(void)
{
    int                            fd, rc;
    char                           da[] = "/tmp/inventory-unit-XXXXXX";
    char                           db[] = "/tmp/inventory-unit-XXXXXX";
    char                           dc[] = "/tmp/inventory-unit-XXXXXX";
    char                           copy[64], cmdline[200];
    repl_buf_t                     b;
    ngx_http_inventory_store_t    *a, *f;
    ngx_http_inventory_applied_t   out;
    ngx_http_inventory_identity_t  ia, ib;

    if (mkdtemp(da) == NULL || mkdtemp(db) == NULL || mkdtemp(dc) == NULL) {
        ok(0, "mkdtemp");
        return;
    }

    memset(&b, 0, sizeof(b));

    is_int(ngx_http_inventory_store_open(&a, da, 4 << 20, 0,
                                         NGX_HTTP_INVENTORY_STORE_CREATE),
           0, "repl: primary opens");
    is_int(ngx_http_inventory_store_open(&f, db, 4 << 20, 0,
                                         NGX_HTTP_INVENTORY_STORE_CREATE),
           0, "repl: follower opens");

    repl_writes(a, 1);
    repl_writes(a, 2);

    /* a new follower: from a snapshot */
    snprintf(copy, sizeof(copy), "%s/copy", db);
    fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    is_int(ngx_http_inventory_store_copy(a, fd), 0, "repl: copy");
    close(fd);
    is_int(ngx_http_inventory_store_install(f, copy), 0, "repl: install");
    ok(repl_same(a, f), "repl: the snapshot holds the same bytes");

    (void) ngx_http_inventory_store_read_begin(f);
    rc = ngx_http_inventory_store_identity(f, &ib);
    ngx_http_inventory_store_read_end(f);
    (void) ngx_http_inventory_store_read_begin(a);
    (void) ngx_http_inventory_store_identity(a, &ia);
    ngx_http_inventory_store_read_end(a);
    ok(rc == 0 && memcmp(ia.store_id, ib.store_id, 16) == 0
       && ib.epoch == 1 && ib.tx == 2 && ib.last_seq == ia.last_seq,
       "repl: the follower takes the primary's identity and position");

    /* then the transactions */
    repl_writes(a, 3);
    repl_writes(a, 4);
    repl_writes(a, 3);     /* a replayed key: no transaction */

    is_int(repl_pull(a, f, &b, &out), 0, "repl: applies");
    ok(out.tx == 4 && out.count == 2 && out.seq == ia.last_seq + 4,
       "repl: two transactions, to the primary's seq");
    ok(repl_same(a, f), "repl: the same bytes after the transactions");

    /* again: all skipped, nothing committed */
    is_int(ngx_http_inventory_store_replicate(f, b.data, b.len, 0, &out), 0,
           "repl: transactions held already");
    is_int(out.count, 0, "repl: are skipped");

    /* malformed frames change nothing */
    repl_writes(a, 5);
    is_int(repl_fetch(a, f, &b), 0, "repl: one more");
    ok(b.len > 12, "repl: one more transaction");
    b.data[12] = 9;       /* the record's version */
    is_int(ngx_http_inventory_store_replicate(f, b.data, b.len, 0, &out),
           NGX_HTTP_INVENTORY_STORE_CORRUPTED, "repl: a bad version");
    b.data[12] = 1;
    ngx_http_inventory_put_u32(b.data + 8, (uint32_t) b.len);
    is_int(ngx_http_inventory_store_replicate(f, b.data, b.len, 0, &out),
           NGX_HTTP_INVENTORY_STORE_CORRUPTED, "repl: a length too long");
    is_int(ngx_http_inventory_store_replicate(f, b.data, 7, 0, &out),
           NGX_HTTP_INVENTORY_STORE_CORRUPTED, "repl: a cut frame");

    /* a change of an unknown database */
    ngx_http_inventory_put_u32(b.data + 8, (uint32_t) (b.len - 12));
    b.data[12 + 17 + 1] = NGX_HTTP_INVENTORY_DBS - 1;
    is_int(ngx_http_inventory_store_replicate(f, b.data, b.len, 0, &out),
           NGX_HTTP_INVENTORY_STORE_CORRUPTED, "repl: a change of the log");
    ok(repl_same(a, f) == 0, "repl: nothing was applied");

    /* a gap */
    ngx_http_inventory_put_u64(b.data, 9);
    is_int(ngx_http_inventory_store_replicate(f, b.data, b.len, 0, &out),
           NGX_HTTP_INVENTORY_STORE_GONE, "repl: a gap");

    /* another history at the same number is not continued */
    (void) ngx_http_inventory_store_read_begin(a);
    is_int(ngx_http_inventory_store_transactions(a, 4, 1, 0, SIZE_MAX,
                                                 repl_frame, &b),
           NGX_HTTP_INVENTORY_STORE_GONE, "repl: another transaction 4");
    is_int(ngx_http_inventory_store_transactions(a, 99, 0, 0, SIZE_MAX,
                                                 repl_frame, &b),
           NGX_HTTP_INVENTORY_STORE_GONE, "repl: a follower ahead");
    ngx_http_inventory_store_read_end(a);

    is_int(repl_pull(a, f, &b, &out), 0, "repl: catches up");
    ok(repl_same(a, f), "repl: the same bytes again");

    repl_retention(a, f, &b);
    test_repl_epochs(a, f, dc, &b);

    free(b.data);
    ngx_http_inventory_store_close(a);
    ngx_http_inventory_store_close(f);

    snprintf(cmdline, sizeof(cmdline), "rm -rf %s %s %s", da, db, dc);
    if (system(cmdline) != 0) {
        ok(0, "cleanup");
    }
}
