/*
 * The store: the inventory's durable state (the event log, the items'
 * projections and their indexes, reservations, idempotency records) in
 * one LMDB environment per process.  Only the store's own files know LMDB:
 * this header is all its users see.
 *
 * Threads: one read transaction per store, renewed by read_begin() and
 * reset by read_end(), on the thread that opened the store (a worker's
 * event loop); store_write() may run on another thread meanwhile (a pool
 * thread).  A store must not be used after fork(): each process opens its
 * own.
 *
 * Results: every function returning int returns NGX_HTTP_INVENTORY_STORE_OK
 * (0), one of the negative NGX_HTTP_INVENTORY_STORE_* codes below, or a
 * positive errno value (ENOMEM, ENOSPC, EIO, ...), which is also how a
 * handler's own non-zero result comes back.  Handlers must return 0 or an
 * errno value.  ngx_http_inventory_store_strerror() describes any of them.
 */

#ifndef _NGX_HTTP_INVENTORY_STORE_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_STORE_H_INCLUDED_


#include "ngx_http_inventory_core.h"


#define NGX_HTTP_INVENTORY_STORE_OK            0
/* no such item, reservation or event */
#define NGX_HTTP_INVENTORY_STORE_NOT_FOUND    -1
/* the map is full: the API answers 507 */
#define NGX_HTTP_INVENTORY_STORE_FULL         -2
/* a record that cannot be read */
#define NGX_HTTP_INVENTORY_STORE_CORRUPTED    -3
/* not a store this version can open */
#define NGX_HTTP_INVENTORY_STORE_INCOMPATIBLE -4
/* any other LMDB failure */
#define NGX_HTTP_INVENTORY_STORE_FAILED       -5
/* an earlier fatal error: the environment must be reopened */
#define NGX_HTTP_INVENTORY_STORE_PANIC        -6
/* the reader table is full */
#define NGX_HTTP_INVENTORY_STORE_READERS_FULL -7
/* replication: the transactions asked for are not this store's to give */
#define NGX_HTTP_INVENTORY_STORE_GONE         -8
/* replication: the copy is of a newer epoch than its source (deposed) */
#define NGX_HTTP_INVENTORY_STORE_FENCED       -9

/* ngx_http_inventory_store_open() flags */
#define NGX_HTTP_INVENTORY_STORE_CREATE    0x01
#define NGX_HTTP_INVENTORY_STORE_RDONLY    0x02

/* the longest idempotency key the store keeps */
#define NGX_HTTP_INVENTORY_IDEM_KEY_MAX     255

/* a low-stock cursor: location NUL sku */
#define NGX_HTTP_INVENTORY_STORE_CURSOR_MAX                                  \
    (2 * NGX_HTTP_INVENTORY_ID_MAX + 1)


typedef struct ngx_http_inventory_store_s  ngx_http_inventory_store_t;


typedef struct {
    uint64_t                    map_size;
    uint64_t                    used;
    uint64_t                    last_seq;
    uint64_t                    reservations_active;
    uint64_t                    next_expiry;   /* of the active ones, ms;
                                                  0: none is active */
    unsigned                    readers;
    unsigned                    max_readers;
} ngx_http_inventory_store_stat_t;


/* entries of each database */
typedef struct {
    uint64_t                    events;
    uint64_t                    items;
    uint64_t                    reservations;
    uint64_t                    reservations_active;
    uint64_t                    low_stock;
    uint64_t                    idempotency_keys;
} ngx_http_inventory_store_counts_t;


typedef struct ngx_http_inventory_store_batch_s
    ngx_http_inventory_store_batch_t;

struct ngx_http_inventory_store_batch_s {
    ngx_http_inventory_cmd_t  **cmds;
    size_t                      n;
    uint64_t                    now;     /* ms: the transaction's time */
    /*
     * If set, called once the write lock is held (or could not be taken),
     * before cmds, n and now are read: it fills them.  The group commit
     * takes what its inbox holds then.
     */
    void                      (*fill)(ngx_http_inventory_store_batch_t *b);
    void                       *data;
    /*
     * token: if token[0] is not 0, kept in the store by the transaction
     * that commits the batch.  last_token: the one kept by the last such
     * transaction (zeroes if none), read once the write lock is held,
     * before fill is called.
     */
    uint64_t                    token[2];
    uint64_t                    last_token[2];
};


typedef int (*ngx_http_inventory_event_pt)(void *ctx,
    const ngx_http_inventory_event_t *ev);

typedef int (*ngx_http_inventory_item_pt)(void *ctx,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);


/*
 * Opens the store in directory "path" and allocates *st (malloc()).
 *
 * map_size: the map's size in bytes; 0 takes the size the store has.
 * sync: 0 lets the OS choose when commits reach the disk (a crash of the
 * machine may lose acknowledged writes).
 * flags: NGX_HTTP_INVENTORY_STORE_CREATE creates the databases (and the
 * files, in an existing directory) when missing; without it a missing
 * database is INCOMPATIBLE.  NGX_HTTP_INVENTORY_STORE_RDONLY opens for
 * reading only: store_write() and store_rebuild() fail then.
 *
 * Clears the reader slots of dead processes.  Returns OK and sets *st, or
 * an error with *st NULL: INCOMPATIBLE for a store of another schema
 * version or a file that is not a store, ENOENT, EACCES, ENOMEM, ...
 * Never call twice for one directory in one process, nor use *st after
 * fork().  ngx_http_inventory_store_close() frees *st.
 */
int ngx_http_inventory_store_open(ngx_http_inventory_store_t **st,
    const char *path, size_t map_size, int sync, unsigned flags);

/*
 * Ends the read transaction if any, closes the environment and frees st
 * (NULL is ignored).  No transaction of st may be running on another
 * thread.
 */
void ngx_http_inventory_store_close(ngx_http_inventory_store_t *st);

/*
 * How long an idempotency record is kept, in ms (24 hours unless set).
 * Call before the first store_write() that may run concurrently.
 */
void ngx_http_inventory_store_set_idem_ttl(ngx_http_inventory_store_t *st,
    uint64_t ms);

/*
 * A static message for any result of the store's functions (an errno
 * value too).  Never NULL; thread-safe.
 */
const char *ngx_http_inventory_store_strerror(int rc);

/*
 * Frees the reader slots of processes that died in a read transaction;
 * *dead (if not NULL) tells how many.  Any time, from any thread.
 */
int ngx_http_inventory_store_reader_check(ngx_http_inventory_store_t *st,
    int *dead);

/*
 * The reader-table slots taken now, by live processes and by dead ones
 * not yet cleared by store_reader_check().  0 if they cannot be listed.
 */
unsigned ngx_http_inventory_store_readers(ngx_http_inventory_store_t *st);

/*
 * Map size, pages used, last seq, active reservations, the earliest expiry
 * among them and reader slots.
 * Runs a read transaction of its own: not between read_begin() and
 * read_end().
 */
int ngx_http_inventory_store_stat(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_stat_t *stat);

/*
 * The entries of every database, in one snapshot.  Like store_stat(), not
 * between read_begin() and read_end().
 */
int ngx_http_inventory_store_counts(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_counts_t *counts);


/*
 * The read transaction.  read_begin() takes a snapshot of the store that
 * every read function below reads, until read_end(); a map grown by
 * another process is adopted here.  Pair every successful read_begin()
 * with read_end() before returning to the event loop: a snapshot pins the
 * pages it sees.  Do not nest them.  read_end() without a snapshot does
 * nothing.
 *
 * The strings and records handed to handlers (and a reservation's lines)
 * point into the map: they are valid until read_end() only.
 */
int ngx_http_inventory_store_read_begin(ngx_http_inventory_store_t *st);
void ngx_http_inventory_store_read_end(ngx_http_inventory_store_t *st);

/* The item's projection; NOT_FOUND if the item has no event. */
int ngx_http_inventory_store_get_item(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    ngx_http_inventory_item_t *item);

/*
 * Calls handler for every location of a SKU, in location order, and stops
 * at the first non-zero result of the handler (returned).  OK when the SKU
 * has no item.
 */
int ngx_http_inventory_store_sku_items(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_item_pt handler,
    void *ctx);

/*
 * The reservation "id" (NGX_HTTP_INVENTORY_RES_ID_LEN bytes) into *res;
 * NOT_FOUND if there is none.
 */
int ngx_http_inventory_store_get_reservation(ngx_http_inventory_store_t *st,
    const char *id, ngx_http_inventory_reservation_t *res);

/*
 * Calls handler for the item's events after version "after", in version
 * order, at most limit of them; *more tells whether others follow.  Stops
 * at the first non-zero result of the handler (returned).
 */
int ngx_http_inventory_store_item_events(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t after, size_t limit, ngx_http_inventory_event_pt handler,
    void *ctx, int *more);

/*
 * Calls handler for the events of the global log after seq "after", in
 * seq order, at most limit of them.  Stops at the first non-zero result of
 * the handler (returned).
 */
int ngx_http_inventory_store_log(ngx_http_inventory_store_t *st,
    uint64_t after, size_t limit, ngx_http_inventory_event_pt handler,
    void *ctx);

/*
 * Calls handler for the events that name reference, after seq "after", in
 * seq order, at most limit of them; *more tells whether others follow.
 * Stops at the first non-zero result of the handler (returned).
 */
int ngx_http_inventory_store_reference_events(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t reference, uint64_t after, size_t limit,
    ngx_http_inventory_event_pt handler, void *ctx, int *more);

/*
 * Calls handler for the items whose latest event is after seq "after", in
 * the order of that seq, at most limit of them; *next is the seq to ask
 * after for the next page, 0 when none follows.  Stops at the first
 * non-zero result of the handler (returned).
 */
int ngx_http_inventory_store_changed_items(ngx_http_inventory_store_t *st,
    uint64_t after, size_t limit, ngx_http_inventory_item_pt handler,
    void *ctx, uint64_t *next);

/* The seq of the last event, 0 for an empty log. */
int ngx_http_inventory_store_last_seq(ngx_http_inventory_store_t *st,
    uint64_t *seq);

/*
 * The item as it was at time "at" (ms); NOT_FOUND if it had no event by
 * then.
 */
int ngx_http_inventory_store_item_as_of(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t at, ngx_http_inventory_item_t *item);

/*
 * 1 if the len bytes at cursor are a cursor store_low_stock() could have
 * made, else 0.  Needs no store and no snapshot.
 */
int ngx_http_inventory_store_cursor_valid(const unsigned char *cursor,
    size_t len);

/*
 * Calls handler for the items with low_stock, in (location, sku) order,
 * at most limit of them: within "location" if its len is not 0, after the
 * cursor "from" if from_len is not 0 (a cursor store_cursor_valid()
 * accepts), else from the start.  Stops at the first non-zero result of
 * the handler (returned).
 *
 * next: room for NGX_HTTP_INVENTORY_STORE_CURSOR_MAX bytes.  *next_len is
 * 0 when no page follows, else next holds the cursor of the next page
 * (raw bytes, not a string).
 */
int ngx_http_inventory_store_low_stock(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t location, const unsigned char *from,
    size_t from_len, size_t limit, ngx_http_inventory_item_pt handler,
    void *ctx, unsigned char *next, size_t *next_len);

/*
 * The ids of active reservations whose expiry time is not after "now", in
 * due order, at most max of them; *n tells how many.
 */
int ngx_http_inventory_store_due(ngx_http_inventory_store_t *st,
    uint64_t now, char (*ids)[NGX_HTTP_INVENTORY_RES_ID_LEN], size_t max,
    size_t *n);


/*
 * Applies a batch of commands in one durable write transaction: waits for
 * the write lock (other processes' writers too), calls b->fill if set,
 * applies b->cmds in order at time b->now (event times never go back, even
 * when the clock does), and commits.  The result equals the commands
 * applied one by one: a command the domain refuses writes nothing, and
 * when an LMDB failure spoils the batch (a full map, a record that cannot
 * be read), each command runs again in a transaction of its own, so that
 * only the failing one fails.
 *
 * Fills in each command's outcome, status, etag, appended, last_seq and
 * response body: cmd->body is malloc()ed (or NULL), the caller frees it,
 * also after an error.  A command that failed has the outcome
 * NGX_HTTP_INVENTORY_STORAGE_FULL (FULL) or NGX_HTTP_INVENTORY_UNAVAILABLE
 * and the matching response.
 *
 * Returns OK when a transaction committed (refused commands included) or
 * when b->n is 0 after fill; else the error, and nothing changed.  Call it
 * on one thread at a time per store; it may run while the store's owner
 * thread reads.  Not on a RDONLY store.
 */
int ngx_http_inventory_store_write(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_batch_t *b);

/*
 * Recomputes the items, the item event index and the low-stock index from
 * the log, with the write path's own functions, in one write transaction:
 * writers wait meanwhile, readers see the old state until it commits.
 * *events: the events replayed.
 *
 * Returns OK; or CORRUPTED with *bad the seq of the event that does not
 * apply to its item, or UINT64_MAX for a log record that cannot be read
 * (else *bad is 0); or another error.  Nothing changed unless OK.
 */
int ngx_http_inventory_store_rebuild(ngx_http_inventory_store_t *st,
    uint64_t *events, uint64_t *bad);

/* a problem found by store_verify(), as a line of text */
typedef void (*ngx_http_inventory_problem_pt)(void *ctx, const char *line);

/*
 * Checks the log, the projections and every index against each other in
 * one snapshot: seq gap-free from 1, every event indexed and readable,
 * each item equal to the replay of its events, the low-stock and expiry
 * indexes and the reserved quantities equal to what the records say.
 * Calls handler once per problem (the line is valid during the call);
 * *events: the log's events, *problems: how many were found.  Returns OK
 * when the check ran (problems or not), or the error that kept it from
 * starting.  Writes nothing: safe while nginx serves.
 */
int ngx_http_inventory_store_verify(ngx_http_inventory_store_t *st,
    ngx_http_inventory_problem_pt handler, void *ctx, uint64_t *events,
    unsigned long *problems);


/* replication (ngx_http_inventory_store_repl.c) */

/* who a store is, and where its replication log stands */
typedef struct {
    unsigned char               store_id[16];  /* random, at creation */
    uint64_t                    epoch;         /* 1, then one a promotion */
    uint64_t                    tx;            /* the last transaction kept */
    uint64_t                    tx_seq;        /* the last seq after it */
    uint64_t                    tx_at;         /* its time, ms */
    uint64_t                    last_seq;
} ngx_http_inventory_identity_t;

/* what store_replicate() applied */
typedef struct {
    uint64_t                    tx;            /* the last one; 0: none */
    uint64_t                    seq;           /* the last seq after it */
    uint64_t                    at;            /* its time on the primary */
    uint64_t                    first_at;      /* the first one's */
    size_t                      count;
    size_t                      bytes;
} ngx_http_inventory_applied_t;

typedef int (*ngx_http_inventory_tx_pt)(void *ctx, uint64_t tx,
    const unsigned char *rec, size_t len);

typedef int (*ngx_http_inventory_record_pt)(void *ctx, const char *db,
    const void *key, size_t klen, const void *val, size_t vlen);

/*
 * The store's identity and its replication position.  Within
 * store_read_begin() and store_read_end().
 */
int ngx_http_inventory_store_identity(ngx_http_inventory_store_t *st,
    ngx_http_inventory_identity_t *id);

/*
 * Gives cb the transactions after "after", in order, until about max bytes
 * were given (at least one).  check: the time of the caller's transaction
 * "after" as the caller holds it, or 0; epoch: the caller's, or 0.
 * Returns STORE_GONE when this store cannot continue the caller's history:
 * those transactions are forgotten, the caller is ahead, its transaction
 * "after" is another one, or it went on after an epoch began here.  Within
 * store_read_begin() and store_read_end(); cb returns 0 or an errno value.
 */
int ngx_http_inventory_store_transactions(ngx_http_inventory_store_t *st,
    uint64_t after, uint64_t check, uint64_t epoch, size_t max,
    ngx_http_inventory_tx_pt cb, void *ctx);

/*
 * The seq this store's transaction tx ended at, if the caller's tx of that
 * number, committed at "check" (ms; 0: unchecked), is this store's too:
 * else STORE_GONE.  Within store_read_begin() and store_read_end().
 */
int ngx_http_inventory_store_tx_seq(ngx_http_inventory_store_t *st,
    uint64_t tx, uint64_t check, uint64_t epoch, uint64_t *seq);

/*
 * Makes a copy its primary's store: its epoch one more, in a transaction
 * of the replication log of its own, at now (ms) or later.  Blocks.
 */
int ngx_http_inventory_store_promote(ngx_http_inventory_store_t *st,
    uint64_t now, uint64_t *epoch);

/*
 * Applies frames ([tx u64][length u32][record]) of a source at "epoch"
 * (0: unchecked) in one write transaction: those already held are skipped
 * (if they are the same ones); one after a gap, or one held but another,
 * stops the applying and makes the result STORE_GONE (what came before it
 * is committed).  A frame that is malformed in any way is STORE_CORRUPTED,
 * and nothing is applied; so is everything from a source of an older epoch
 * than this store's (STORE_FENCED).  Blocks: on a thread.
 */
int ngx_http_inventory_store_replicate(ngx_http_inventory_store_t *st,
    const unsigned char *frames, size_t len, uint64_t epoch,
    ngx_http_inventory_applied_t *out);

/* writes a compact, consistent copy of the store to fd; blocks */
int ngx_http_inventory_store_copy(ngx_http_inventory_store_t *st, int fd);

/*
 * Makes the store a copy of the one store_copy() wrote to the file path, in
 * one write transaction.  Blocks.
 */
int ngx_http_inventory_store_install(ngx_http_inventory_store_t *st,
    const char *path);

/* every record of every database to cb, in a read transaction */
int ngx_http_inventory_store_walk(ngx_http_inventory_store_t *st,
    ngx_http_inventory_record_pt cb, void *ctx);


#endif /* _NGX_HTTP_INVENTORY_STORE_H_INCLUDED_ */
