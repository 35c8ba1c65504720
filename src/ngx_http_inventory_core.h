/*
 * The domain core: stock items, events, commands and the rules that turn a
 * command into events.  Free of nginx and LMDB types so that it can be unit
 * tested and fuzzed on its own.
 */

#ifndef _NGX_HTTP_INVENTORY_CORE_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_CORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_INVENTORY_QTY_MAX      9007199254740991LL  /* 2^53 - 1 */
#define NGX_HTTP_INVENTORY_REQ_QTY_MAX  1000000000LL
#define NGX_HTTP_INVENTORY_ID_MAX       64
#define NGX_HTTP_INVENTORY_REASON_MAX   256
#define NGX_HTTP_INVENTORY_TIME_LEN     24     /* 2026-11-22T10:00:00.123Z */
#define NGX_HTTP_INVENTORY_ETAGS_MAX    16     /* versions in one If-Match */

#define NGX_HTTP_INVENTORY_REFERENCE_MAX 255  /* visible ASCII */
#define NGX_HTTP_INVENTORY_ACTOR_MAX    255
#define NGX_HTTP_INVENTORY_TTL_MAX      86400  /* seconds */
#define NGX_HTTP_INVENTORY_RES_ID_LEN   24     /* "r_" and 22 base62 digits */
#define NGX_HTTP_INVENTORY_MAX_LINES    100
/* bytes of a request body: a cart of 100 long lines is about 20 KB */
#define NGX_HTTP_INVENTORY_BODY_MAX     65536
/* a batch of 250 changes of long identifiers, reasons and references */
#define NGX_HTTP_INVENTORY_BATCH_BODY_MAX  (512 * 1024)
#define ngx_http_inventory_body_max(cmd)                                     \
    ((cmd)->type == NGX_HTTP_INVENTORY_CMD_BATCH                             \
     ? NGX_HTTP_INVENTORY_BATCH_BODY_MAX : NGX_HTTP_INVENTORY_BODY_MAX)

/* the most items one command touches and the most events it decides */
#define NGX_HTTP_INVENTORY_MAX_SLOTS    NGX_HTTP_INVENTORY_MAX_LINES
#define NGX_HTTP_INVENTORY_MAX_EVENTS   NGX_HTTP_INVENTORY_MAX_LINES
/* the changes of one batch */
#define NGX_HTTP_INVENTORY_BATCH_CHANGES  250


typedef struct {
    const char                 *data;
    size_t                      len;
} ngx_http_inventory_str_t;


/*
 * One SKU at one location.  damaged and quality_control are units of
 * on_hand that cannot be sold, safety_stock is held back from sale,
 * incoming is expected and not on hand; available (computed) may go below
 * zero, by safety stock or by reservations within backorder_limit.
 */
typedef struct {
    int64_t                     on_hand;
    int64_t                     reserved;
    int64_t                     damaged;
    int64_t                     quality_control;
    int64_t                     safety_stock;
    int64_t                     incoming;
    int64_t                     backorder_limit;
    int64_t                     min_level;
    uint64_t                    version;
    uint64_t                    seq;           /* of its latest event */
    uint64_t                    updated_at;    /* ms since the epoch */
} ngx_http_inventory_item_t;


/* the quantity states an adjustment or a move names */
typedef enum {
    NGX_HTTP_INVENTORY_STATE_AVAILABLE = 1,
    NGX_HTTP_INVENTORY_STATE_DAMAGED,
    NGX_HTTP_INVENTORY_STATE_QUALITY_CONTROL,
    NGX_HTTP_INVENTORY_STATE_INCOMING,
    NGX_HTTP_INVENTORY_STATE_LAST
} ngx_http_inventory_state_e;


typedef enum {
    NGX_HTTP_INVENTORY_EV_STOCK_COUNTED = 1,
    NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED,
    NGX_HTTP_INVENTORY_EV_STOCK_RESERVED,
    NGX_HTTP_INVENTORY_EV_RESERVATION_COMMITTED,
    NGX_HTTP_INVENTORY_EV_RESERVATION_RELEASED,
    NGX_HTTP_INVENTORY_EV_RESERVATION_EXPIRED,
    NGX_HTTP_INVENTORY_EV_TRANSFERRED_OUT,
    NGX_HTTP_INVENTORY_EV_TRANSFERRED_IN,
    NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED,
    NGX_HTTP_INVENTORY_EV_STOCK_MOVED,
    NGX_HTTP_INVENTORY_EV_LAST
} ngx_http_inventory_event_type_e;


/*
 * One immutable event.  Which numeric members are meaningful depends on the
 * type; the others are zero.  "other_location" is "to" for TransferredOut
 * and "from" for TransferredIn.  "state" is what an adjustment changed
 * (0 in events from before the states: available), and with "to_state" the
 * two ends of a move.
 */
typedef struct {
    uint64_t                    seq;
    uint64_t                    version;
    uint64_t                    at;
    unsigned                    type;
    ngx_http_inventory_str_t    sku;
    ngx_http_inventory_str_t    location;
    int64_t                     on_hand;
    int64_t                     min_level;
    int64_t                     delta;
    int64_t                     quantity;
    int64_t                     available;
    int64_t                     safety_stock;
    int64_t                     backorder_limit;
    unsigned                    state;
    unsigned                    to_state;
    ngx_http_inventory_str_t    reason;
    ngx_http_inventory_str_t    reservation_id;
    ngx_http_inventory_str_t    other_location;
    ngx_http_inventory_str_t    reference;
    ngx_http_inventory_str_t    actor;
} ngx_http_inventory_event_t;


typedef struct {
    ngx_http_inventory_str_t    sku;
    ngx_http_inventory_str_t    location;
    int64_t                     quantity;
} ngx_http_inventory_line_t;


typedef enum {
    NGX_HTTP_INVENTORY_RES_ACTIVE = 1,
    NGX_HTTP_INVENTORY_RES_COMMITTED,
    NGX_HTTP_INVENTORY_RES_RELEASED,
    NGX_HTTP_INVENTORY_RES_EXPIRED,
    NGX_HTTP_INVENTORY_RES_LAST
} ngx_http_inventory_res_state_e;


typedef struct {
    char                        id[NGX_HTTP_INVENTORY_RES_ID_LEN];
    unsigned                    state;
    uint64_t                    created_at;
    uint64_t                    expires_at;
    uint64_t                    ended_at;      /* 0 while active */
    ngx_http_inventory_str_t    reference;
    ngx_http_inventory_line_t   lines[NGX_HTTP_INVENTORY_MAX_LINES];
    size_t                      nlines;
} ngx_http_inventory_reservation_t;


typedef enum {
    NGX_HTTP_INVENTORY_CMD_COUNT = 1,
    NGX_HTTP_INVENTORY_CMD_ADJUST,
    NGX_HTTP_INVENTORY_CMD_RESERVE,
    NGX_HTTP_INVENTORY_CMD_COMMIT,
    NGX_HTTP_INVENTORY_CMD_RELEASE,
    NGX_HTTP_INVENTORY_CMD_EXPIRE,
    NGX_HTTP_INVENTORY_CMD_TRANSFER,
    NGX_HTTP_INVENTORY_CMD_PURGE,     /* forget expired idempotency keys
                                         and old ended reservations */
    NGX_HTTP_INVENTORY_CMD_MOVE,      /* between quantity states */
    NGX_HTTP_INVENTORY_CMD_BATCH      /* counts, adjustments and moves */
} ngx_http_inventory_cmd_type_e;


/* what one change of a batch came to, and the item it left */
typedef struct ngx_http_inventory_result_s {
    unsigned                    type;          /* count, adjust or move */
    unsigned                    outcome;
    int64_t                     available;     /* for INSUFFICIENT */
    ngx_http_inventory_str_t    sku;
    ngx_http_inventory_str_t    location;
    ngx_http_inventory_item_t   item;
    unsigned                    exists:1;      /* before the change */
} ngx_http_inventory_result_t;


/* what a command came to; the store and the HTTP layer map it to statuses */
typedef enum {
    NGX_HTTP_INVENTORY_OK = 0,
    NGX_HTTP_INVENTORY_CREATED,
    NGX_HTTP_INVENTORY_NOT_FOUND,
    NGX_HTTP_INVENTORY_INSUFFICIENT,
    NGX_HTTP_INVENTORY_OUT_OF_RANGE,
    NGX_HTTP_INVENTORY_VERSION_MISMATCH,
    NGX_HTTP_INVENTORY_NOT_ACTIVE,
    NGX_HTTP_INVENTORY_KEY_REUSED,
    NGX_HTTP_INVENTORY_REPLAYED,
    NGX_HTTP_INVENTORY_STORAGE_FULL,
    NGX_HTTP_INVENTORY_UNAVAILABLE,
    NGX_HTTP_INVENTORY_UNKNOWN        /* its committer died: applied or not */
} ngx_http_inventory_outcome_e;


/* one item as a command sees it: loaded before, written back after */
typedef struct {
    ngx_http_inventory_str_t    sku;
    ngx_http_inventory_str_t    location;
    ngx_http_inventory_item_t   item;
    int64_t                     demand;        /* reservations: summed lines */
    uint64_t                    seq_loaded;    /* its changes index entry */
    unsigned                    exists:1;
    unsigned                    was_low:1;     /* low_stock when loaded */
    unsigned                    short_stock:1;
} ngx_http_inventory_slot_t;


/*
 * A write command.  For a reservation, res holds the lines, the id and the
 * reference on the way in; commit, release and expire name the reservation
 * by res.id and the store loads the rest.  A transfer moves quantity of sku
 * from location to "to"; a move, quantity from state to to_state.  A purge
 * forgets at most quantity idempotency keys and as many reservations ended
 * more than ttl ago (ttl 0: none).
 */
typedef struct {
    unsigned                    type;
    ngx_http_inventory_str_t    sku;
    ngx_http_inventory_str_t    location;
    ngx_http_inventory_str_t    to;
    int64_t                     on_hand;
    int64_t                     min_level;
    int64_t                     delta;
    int64_t                     quantity;
    int64_t                     safety_stock;
    int64_t                     backorder_limit;
    unsigned                    state;
    unsigned                    to_state;
    uint64_t                    ttl;           /* ms */
    ngx_http_inventory_str_t    reason;
    ngx_http_inventory_str_t    reference;     /* its events carry these */
    ngx_http_inventory_str_t    actor;
    uint64_t                    if_match[NGX_HTTP_INVENTORY_ETAGS_MAX];
    size_t                      if_match_n;
    unsigned                    has_min_level:1;
    unsigned                    has_safety_stock:1;
    unsigned                    has_backorder_limit:1;
    unsigned                    has_if_match:1;
    unsigned                    if_match_any:1;
    unsigned                    multi_line:1;  /* POST /reservations */
    unsigned                    atomic:1;      /* a batch: all or nothing */

    ngx_http_inventory_str_t    idem_key;
    unsigned char               fingerprint[16];

    /* a batch: its changes, packed (pack.c), and their results */
    ngx_http_inventory_str_t    changes;
    size_t                      nchanges;
    struct ngx_http_inventory_result_s  *results;

    ngx_http_inventory_reservation_t  res;

    /* filled in by the store; cmd_init() zeroes from here to slots */
    uint64_t                    now;           /* the transaction's time */
    unsigned                    outcome;
    int64_t                     available;     /* for INSUFFICIENT; a
                                                  purge's keys forgotten */
    int64_t                     purged;        /* a purge's reservations */
    size_t                      failed_slot;   /* for NOT_FOUND */
    uint64_t                    last_seq;      /* last event appended */
    unsigned                    appended;      /* events appended */
    ngx_http_inventory_slot_t   slots[NGX_HTTP_INVENTORY_MAX_SLOTS];
    size_t                      nslots;

    /* the response, rendered in the transaction that decided it */
    unsigned                    status;
    uint64_t                    etag;
    unsigned char              *body;          /* malloc()ed */
    size_t                      body_len;
} ngx_http_inventory_cmd_t;


int ngx_http_inventory_id_valid(const char *p, size_t len);
int ngx_http_inventory_reference_valid(const char *p, size_t len);
int ngx_http_inventory_parse_int(const char *p, size_t len, int64_t *out);

int64_t ngx_http_inventory_available(const ngx_http_inventory_item_t *item);
int64_t ngx_http_inventory_sellable(const ngx_http_inventory_item_t *item);
int ngx_http_inventory_low_stock(const ngx_http_inventory_item_t *item);

void ngx_http_inventory_cmd_init(ngx_http_inventory_cmd_t *cmd);
void ngx_http_inventory_cmd_slots(ngx_http_inventory_cmd_t *cmd);
size_t ngx_http_inventory_slot_of(const ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location);
unsigned ngx_http_inventory_decide(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *events, size_t *nevents, size_t *slot_of);
int ngx_http_inventory_event_apply(ngx_http_inventory_item_t *item,
    const ngx_http_inventory_event_t *ev);
int ngx_http_inventory_low_stock_detected(
    const ngx_http_inventory_item_t *before,
    const ngx_http_inventory_item_t *after);

const char *ngx_http_inventory_event_name(unsigned type);
const char *ngx_http_inventory_state_name(unsigned state);
unsigned ngx_http_inventory_state_of(const char *p, size_t len);
const char *ngx_http_inventory_res_state_name(unsigned state);
uint64_t ngx_http_inventory_clock_now(void);
int ngx_http_inventory_reservation_id(char *id, uint64_t now);
int ngx_http_inventory_reservation_id_valid(const char *id, size_t len);
size_t ngx_http_inventory_time_format(uint64_t ms, char *buf);
int ngx_http_inventory_time_parse(const char *p, size_t len, uint64_t *ms);


#endif /* _NGX_HTTP_INVENTORY_CORE_H_INCLUDED_ */
