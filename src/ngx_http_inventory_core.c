/*
 * Domain rules: validation of identifiers and quantities, the decision of
 * which events a command appends, and the application of an event to an
 * item.  The write path and the replay of the log share event_apply(), so a
 * projection always equals the replay of its events.
 */

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/types.h>

#include "ngx_http_inventory_core.h"


static unsigned ngx_http_inventory_check_if_match(
    const ngx_http_inventory_cmd_t *cmd, const ngx_http_inventory_slot_t *s);
static unsigned ngx_http_inventory_decide_count(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *ev);
static unsigned ngx_http_inventory_decide_adjust(
    ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_event_t *ev);
static unsigned ngx_http_inventory_decide_reserve(
    ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_event_t *events,
    size_t *nevents, size_t *slot_of);
static unsigned ngx_http_inventory_decide_end(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *events, size_t *nevents, size_t *slot_of);
static unsigned ngx_http_inventory_decide_transfer(
    ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_event_t *events,
    size_t *nevents, size_t *slot_of);
static void ngx_http_inventory_line_events(ngx_http_inventory_cmd_t *cmd,
    unsigned type, ngx_http_inventory_event_t *events, size_t *nevents,
    size_t *slot_of);
static int64_t ngx_http_inventory_days_from_civil(int64_t y, unsigned m,
    unsigned d);


static const char  *ngx_http_inventory_res_state_names[] = {
    NULL, "active", "committed", "released", "expired"
};


static const char  *ngx_http_inventory_event_names[] = {
    NULL,
    "StockCounted",
    "StockAdjusted",
    "StockReserved",
    "ReservationCommitted",
    "ReservationReleased",
    "ReservationExpired",
    "StockTransferredOut",
    "StockTransferredIn",
    "LowStockDetected"
};


int
ngx_http_inventory_id_valid(const char *p, size_t len)
{
    size_t  i;
    char    c;

    if (len == 0 || len > NGX_HTTP_INVENTORY_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || c == '.' || c == '_' || c == '-' || c == ':')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


/*
 * Parses a JSON number's text as an integer.  Returns 0 on success, -1 if
 * the text is not an integer (fraction, exponent, junk) and -2 if it is an
 * integer beyond int64_t.
 */

int
ngx_http_inventory_parse_int(const char *p, size_t len, int64_t *out)
{
    size_t    i;
    int       neg;
    uint64_t  v, limit;

    if (len == 0) {
        return -1;
    }

    neg = 0;
    i = 0;

    if (p[0] == '-') {
        neg = 1;
        i = 1;
    }

    if (i == len) {
        return -1;
    }

    if (p[i] == '0' && len - i > 1) {
        return -1;
    }

    limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
    v = 0;

    for ( /* void */ ; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        if (v > (limit - (uint64_t) (p[i] - '0')) / 10) {
            /* keep scanning so that "1e999999" is "not an integer" */
            for (i++; i < len; i++) {
                if (p[i] < '0' || p[i] > '9') {
                    return -1;
                }
            }

            return -2;
        }

        v = v * 10 + (uint64_t) (p[i] - '0');
    }

    if (neg) {
        *out = (v == (uint64_t) INT64_MAX + 1) ? INT64_MIN : -(int64_t) v;

    } else {
        *out = (int64_t) v;
    }

    return 0;
}


int64_t
ngx_http_inventory_available(const ngx_http_inventory_item_t *item)
{
    return item->on_hand - item->reserved;
}


int
ngx_http_inventory_low_stock(const ngx_http_inventory_item_t *item)
{
    return ngx_http_inventory_available(item) < item->min_level;
}


/*
 * A command with every member zero but its line and slot arrays (12 KB of
 * its 13): only their first res.nlines and nslots entries are ever read,
 * and each is written before it is read.  Zeroing them was a quarter of a
 * write's instructions.
 */

void
ngx_http_inventory_cmd_init(ngx_http_inventory_cmd_t *cmd)
{
    memset(cmd, 0, offsetof(ngx_http_inventory_cmd_t, res.lines));
    cmd->res.nlines = 0;
    memset(&cmd->now, 0, offsetof(ngx_http_inventory_cmd_t, slots)
                         - offsetof(ngx_http_inventory_cmd_t, now));
    memset(&cmd->nslots, 0, sizeof(ngx_http_inventory_cmd_t)
                            - offsetof(ngx_http_inventory_cmd_t, nslots));
}


/*
 * The items a command works on: one for counts and adjustments, from and to
 * for a transfer, and the distinct items of a reservation's lines, whose
 * quantities add up in the slot's demand.
 */

void
ngx_http_inventory_cmd_slots(ngx_http_inventory_cmd_t *cmd)
{
    size_t                      i, k;
    ngx_http_inventory_line_t  *line;
    ngx_http_inventory_slot_t  *s;

    cmd->nslots = 0;

    switch (cmd->type) {

    case NGX_HTTP_INVENTORY_CMD_RESERVE:
    case NGX_HTTP_INVENTORY_CMD_COMMIT:
    case NGX_HTTP_INVENTORY_CMD_RELEASE:
    case NGX_HTTP_INVENTORY_CMD_EXPIRE:
        for (i = 0; i < cmd->res.nlines; i++) {
            line = &cmd->res.lines[i];
            k = ngx_http_inventory_slot_of(cmd, line->sku, line->location);

            if (k == cmd->nslots) {
                s = &cmd->slots[cmd->nslots++];
                memset(s, 0, sizeof(ngx_http_inventory_slot_t));
                s->sku = line->sku;
                s->location = line->location;
            }

            cmd->slots[k].demand += line->quantity;
        }

        return;

    case NGX_HTTP_INVENTORY_CMD_TRANSFER:
        memset(cmd->slots, 0, 2 * sizeof(ngx_http_inventory_slot_t));
        cmd->slots[0].sku = cmd->sku;
        cmd->slots[0].location = cmd->location;
        cmd->slots[1].sku = cmd->sku;
        cmd->slots[1].location = cmd->to;
        cmd->nslots = 2;
        return;

    default:
        memset(cmd->slots, 0, sizeof(ngx_http_inventory_slot_t));
        cmd->slots[0].sku = cmd->sku;
        cmd->slots[0].location = cmd->location;
        cmd->nslots = 1;
        return;
    }
}


/* the index of an item's slot, or nslots if it has none */

size_t
ngx_http_inventory_slot_of(const ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location)
{
    size_t                            i;
    const ngx_http_inventory_slot_t  *s;

    for (i = 0; i < cmd->nslots; i++) {
        s = &cmd->slots[i];

        if (s->sku.len == sku.len && s->location.len == location.len
            && memcmp(s->sku.data, sku.data, sku.len) == 0
            && memcmp(s->location.data, location.data, location.len) == 0)
        {
            return i;
        }
    }

    return cmd->nslots;
}


/*
 * Decides the events of a command from the current state of its slots (and,
 * for the end of a reservation, of cmd->res, loaded by the store).  Returns
 * the outcome; on OK or CREATED, events[0 .. *nevents - 1] are to be
 * appended in order, events[i] applying to slots[slot_of[i]].  The store
 * fills in seq, version and at, and appends LowStockDetected where
 * low_stock_detected() says so.
 */

unsigned
ngx_http_inventory_decide(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *events, size_t *nevents, size_t *slot_of)
{
    unsigned  rc;

    *nevents = 0;

    rc = ngx_http_inventory_check_if_match(cmd, &cmd->slots[0]);
    if (rc != NGX_HTTP_INVENTORY_OK) {
        return rc;
    }

    switch (cmd->type) {

    case NGX_HTTP_INVENTORY_CMD_COUNT:
    case NGX_HTTP_INVENTORY_CMD_ADJUST:
        memset(&events[0], 0, sizeof(ngx_http_inventory_event_t));
        events[0].sku = cmd->slots[0].sku;
        events[0].location = cmd->slots[0].location;
        slot_of[0] = 0;

        rc = (cmd->type == NGX_HTTP_INVENTORY_CMD_COUNT)
             ? ngx_http_inventory_decide_count(cmd, &events[0])
             : ngx_http_inventory_decide_adjust(cmd, &events[0]);

        if (rc != NGX_HTTP_INVENTORY_OK) {
            return rc;
        }

        *nevents = 1;

        return cmd->slots[0].exists ? NGX_HTTP_INVENTORY_OK
                                    : NGX_HTTP_INVENTORY_CREATED;

    case NGX_HTTP_INVENTORY_CMD_RESERVE:
        return ngx_http_inventory_decide_reserve(cmd, events, nevents,
                                                 slot_of);

    case NGX_HTTP_INVENTORY_CMD_COMMIT:
    case NGX_HTTP_INVENTORY_CMD_RELEASE:
    case NGX_HTTP_INVENTORY_CMD_EXPIRE:
        return ngx_http_inventory_decide_end(cmd, events, nevents, slot_of);

    case NGX_HTTP_INVENTORY_CMD_TRANSFER:
        return ngx_http_inventory_decide_transfer(cmd, events, nevents,
                                                  slot_of);

    default:
        return NGX_HTTP_INVENTORY_UNAVAILABLE;
    }
}


static unsigned
ngx_http_inventory_check_if_match(const ngx_http_inventory_cmd_t *cmd,
    const ngx_http_inventory_slot_t *s)
{
    size_t  i;

    if (!cmd->has_if_match) {
        return NGX_HTTP_INVENTORY_OK;
    }

    if (!s->exists) {
        return NGX_HTTP_INVENTORY_VERSION_MISMATCH;
    }

    if (cmd->if_match_any) {
        return NGX_HTTP_INVENTORY_OK;
    }

    for (i = 0; i < cmd->if_match_n; i++) {
        if (cmd->if_match[i] == s->item.version) {
            return NGX_HTTP_INVENTORY_OK;
        }
    }

    return NGX_HTTP_INVENTORY_VERSION_MISMATCH;
}


static unsigned
ngx_http_inventory_decide_count(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *ev)
{
    ngx_http_inventory_slot_t  *s;

    s = &cmd->slots[0];

    if (cmd->on_hand < s->item.reserved) {
        cmd->available = ngx_http_inventory_available(&s->item);
        return NGX_HTTP_INVENTORY_INSUFFICIENT;
    }

    ev->type = NGX_HTTP_INVENTORY_EV_STOCK_COUNTED;
    ev->on_hand = cmd->on_hand;
    ev->min_level = cmd->has_min_level ? cmd->min_level : s->item.min_level;
    ev->reason = cmd->reason;

    return NGX_HTTP_INVENTORY_OK;
}


static unsigned
ngx_http_inventory_decide_adjust(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *ev)
{
    int64_t                     on_hand;
    ngx_http_inventory_slot_t  *s;

    s = &cmd->slots[0];

    if (!s->exists && cmd->delta < 0) {
        return NGX_HTTP_INVENTORY_NOT_FOUND;
    }

    /* both operands are bounded far below INT64_MAX: no overflow here */
    on_hand = s->item.on_hand + cmd->delta;

    if (on_hand < s->item.reserved) {
        cmd->available = ngx_http_inventory_available(&s->item);
        return NGX_HTTP_INVENTORY_INSUFFICIENT;
    }

    if (on_hand > NGX_HTTP_INVENTORY_QTY_MAX) {
        cmd->available = ngx_http_inventory_available(&s->item);
        return NGX_HTTP_INVENTORY_OUT_OF_RANGE;
    }

    ev->type = NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED;
    ev->delta = cmd->delta;
    ev->reason = cmd->reason;

    return NGX_HTTP_INVENTORY_OK;
}


/* all lines or none: every short item is marked, so a 409 can name them */

static unsigned
ngx_http_inventory_decide_reserve(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *events, size_t *nevents, size_t *slot_of)
{
    size_t                      i;
    unsigned                    rc;
    ngx_http_inventory_slot_t  *s;

    rc = NGX_HTTP_INVENTORY_OK;

    for (i = 0; i < cmd->nslots; i++) {
        s = &cmd->slots[i];

        if (!s->exists) {
            cmd->failed_slot = i;
            return NGX_HTTP_INVENTORY_NOT_FOUND;
        }

        if (s->demand > ngx_http_inventory_available(&s->item)) {
            s->short_stock = 1;
            rc = NGX_HTTP_INVENTORY_INSUFFICIENT;
        }
    }

    if (rc != NGX_HTTP_INVENTORY_OK) {
        cmd->available = ngx_http_inventory_available(&cmd->slots[0].item);
        return rc;
    }

    ngx_http_inventory_line_events(cmd, NGX_HTTP_INVENTORY_EV_STOCK_RESERVED,
                                   events, nevents, slot_of);

    cmd->res.state = NGX_HTTP_INVENTORY_RES_ACTIVE;
    cmd->res.created_at = cmd->now;
    cmd->res.expires_at = cmd->now + cmd->ttl;
    cmd->res.ended_at = 0;

    return NGX_HTTP_INVENTORY_CREATED;
}


/*
 * Commit, release or expiry of an active reservation, one event per line.
 * A reservation past its time can no longer be committed or released: the
 * expiry, due within moments, returns its stock.
 */

static unsigned
ngx_http_inventory_decide_end(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *events, size_t *nevents, size_t *slot_of)
{
    size_t                      i;
    unsigned                    type, state;

    if (cmd->res.state != NGX_HTTP_INVENTORY_RES_ACTIVE) {
        return NGX_HTTP_INVENTORY_NOT_ACTIVE;
    }

    if (cmd->type == NGX_HTTP_INVENTORY_CMD_EXPIRE) {
        if (cmd->now < cmd->res.expires_at) {
            return NGX_HTTP_INVENTORY_NOT_ACTIVE;
        }

        type = NGX_HTTP_INVENTORY_EV_RESERVATION_EXPIRED;
        state = NGX_HTTP_INVENTORY_RES_EXPIRED;

    } else {
        if (cmd->now >= cmd->res.expires_at) {
            return NGX_HTTP_INVENTORY_NOT_ACTIVE;
        }

        if (cmd->type == NGX_HTTP_INVENTORY_CMD_COMMIT) {
            type = NGX_HTTP_INVENTORY_EV_RESERVATION_COMMITTED;
            state = NGX_HTTP_INVENTORY_RES_COMMITTED;

        } else {
            type = NGX_HTTP_INVENTORY_EV_RESERVATION_RELEASED;
            state = NGX_HTTP_INVENTORY_RES_RELEASED;
        }
    }

    ngx_http_inventory_line_events(cmd, type, events, nevents, slot_of);

    /* a reservation holds stock of items that exist, or the store is bad */
    for (i = 0; i < cmd->nslots; i++) {
        if (!cmd->slots[i].exists) {
            *nevents = 0;
            return NGX_HTTP_INVENTORY_UNAVAILABLE;
        }
    }

    cmd->res.state = state;
    cmd->res.ended_at = cmd->now;

    return NGX_HTTP_INVENTORY_OK;
}


/* one event of the given type per line of the reservation */

static void
ngx_http_inventory_line_events(ngx_http_inventory_cmd_t *cmd, unsigned type,
    ngx_http_inventory_event_t *events, size_t *nevents, size_t *slot_of)
{
    size_t                      i;
    ngx_http_inventory_line_t  *line;

    for (i = 0; i < cmd->res.nlines; i++) {
        line = &cmd->res.lines[i];

        memset(&events[i], 0, sizeof(ngx_http_inventory_event_t));
        events[i].type = type;
        events[i].sku = line->sku;
        events[i].location = line->location;
        events[i].quantity = line->quantity;
        events[i].reservation_id.data = cmd->res.id;
        events[i].reservation_id.len = NGX_HTTP_INVENTORY_RES_ID_LEN;
        slot_of[i] = ngx_http_inventory_slot_of(cmd, line->sku,
                                                line->location);
    }

    *nevents = cmd->res.nlines;
}


static unsigned
ngx_http_inventory_decide_transfer(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *events, size_t *nevents, size_t *slot_of)
{
    ngx_http_inventory_slot_t  *from, *to;

    from = &cmd->slots[0];
    to = &cmd->slots[1];

    if (!from->exists) {
        cmd->failed_slot = 0;
        return NGX_HTTP_INVENTORY_NOT_FOUND;
    }

    cmd->available = ngx_http_inventory_available(&from->item);

    if (cmd->quantity > cmd->available) {
        return NGX_HTTP_INVENTORY_INSUFFICIENT;
    }

    if (to->item.on_hand + cmd->quantity > NGX_HTTP_INVENTORY_QTY_MAX) {
        cmd->available = ngx_http_inventory_available(&to->item);
        return NGX_HTTP_INVENTORY_OUT_OF_RANGE;
    }

    memset(events, 0, 2 * sizeof(ngx_http_inventory_event_t));

    events[0].type = NGX_HTTP_INVENTORY_EV_TRANSFERRED_OUT;
    events[0].sku = from->sku;
    events[0].location = from->location;
    events[0].quantity = cmd->quantity;
    events[0].reason = cmd->reason;
    events[0].other_location = to->location;
    slot_of[0] = 0;

    events[1].type = NGX_HTTP_INVENTORY_EV_TRANSFERRED_IN;
    events[1].sku = to->sku;
    events[1].location = to->location;
    events[1].quantity = cmd->quantity;
    events[1].reason = cmd->reason;
    events[1].other_location = from->location;
    slot_of[1] = 1;

    *nevents = 2;

    return NGX_HTTP_INVENTORY_OK;
}


/*
 * Applies one event to an item.  Returns -1, leaving the item unchanged, if
 * the event does not follow the item's version or would break an invariant:
 * the write path never produces such an event, so replay reports it as
 * corruption.
 */

int
ngx_http_inventory_event_apply(ngx_http_inventory_item_t *item,
    const ngx_http_inventory_event_t *ev)
{
    ngx_http_inventory_item_t  n;

    if (ev->version != item->version + 1) {
        return -1;
    }

    n = *item;

    switch (ev->type) {

    case NGX_HTTP_INVENTORY_EV_STOCK_COUNTED:
        if (ev->min_level < 0 || ev->min_level > NGX_HTTP_INVENTORY_QTY_MAX) {
            return -1;
        }

        n.on_hand = ev->on_hand;
        n.min_level = ev->min_level;
        break;

    case NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED:
        if (ev->delta < -NGX_HTTP_INVENTORY_REQ_QTY_MAX
            || ev->delta > NGX_HTTP_INVENTORY_REQ_QTY_MAX)
        {
            return -1;
        }

        n.on_hand += ev->delta;
        break;

    case NGX_HTTP_INVENTORY_EV_STOCK_RESERVED:
        n.reserved += ev->quantity;
        break;

    case NGX_HTTP_INVENTORY_EV_RESERVATION_COMMITTED:
        n.on_hand -= ev->quantity;
        n.reserved -= ev->quantity;
        break;

    case NGX_HTTP_INVENTORY_EV_RESERVATION_RELEASED:
    case NGX_HTTP_INVENTORY_EV_RESERVATION_EXPIRED:
        n.reserved -= ev->quantity;
        break;

    case NGX_HTTP_INVENTORY_EV_TRANSFERRED_OUT:
        n.on_hand -= ev->quantity;
        break;

    case NGX_HTTP_INVENTORY_EV_TRANSFERRED_IN:
        n.on_hand += ev->quantity;
        break;

    case NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED:
        break;

    default:
        return -1;
    }

    if (ev->type != NGX_HTTP_INVENTORY_EV_STOCK_COUNTED
        && ev->type != NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED
        && ev->type != NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED
        && (ev->quantity < 1 || ev->quantity > NGX_HTTP_INVENTORY_REQ_QTY_MAX))
    {
        return -1;
    }

    if (n.on_hand < 0 || n.on_hand > NGX_HTTP_INVENTORY_QTY_MAX
        || n.reserved < 0 || n.reserved > n.on_hand)
    {
        return -1;
    }

    n.version = ev->version;
    n.updated_at = ev->at;
    *item = n;

    return 0;
}


/* LowStockDetected follows an event that turned low_stock from false on */

int
ngx_http_inventory_low_stock_detected(const ngx_http_inventory_item_t *before,
    const ngx_http_inventory_item_t *after)
{
    return !ngx_http_inventory_low_stock(before)
           && ngx_http_inventory_low_stock(after);
}


const char *
ngx_http_inventory_event_name(unsigned type)
{
    if (type == 0 || type >= NGX_HTTP_INVENTORY_EV_LAST) {
        return NULL;
    }

    return ngx_http_inventory_event_names[type];
}


const char *
ngx_http_inventory_res_state_name(unsigned state)
{
    if (state == 0 || state >= NGX_HTTP_INVENTORY_RES_LAST) {
        return NULL;
    }

    return ngx_http_inventory_res_state_names[state];
}


/*
 * The one clock of the module: the wall clock in ms since the epoch, as
 * event times, expiry and reservation ids use it.  The store keeps event
 * times from going back whatever this does.
 */

uint64_t
ngx_http_inventory_clock_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/*
 * "r_", then the creation time in ms as 8 base62 digits, then 14 random
 * base62 digits from the kernel (about 83 bits: not guessable).  Ids sort by
 * creation time, so new reservations land on the last pages of the index,
 * not on random ones: a group commit then writes a few pages, not one per
 * reservation.
 */

int
ngx_http_inventory_reservation_id(char *id, uint64_t now)
{
    size_t             i, k;
    ssize_t            n;
    unsigned char      rnd[64];
    static const char  digits[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    id[0] = 'r';
    id[1] = '_';

    /* 62^8 ms is about 6900 years: the digits never wrap */
    for (k = 9; k >= 2; k--) {
        id[k] = digits[now % 62];
        now /= 62;
    }

    k = 10;

    while (k < NGX_HTTP_INVENTORY_RES_ID_LEN) {
        n = getrandom(rnd, sizeof(rnd), 0);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        for (i = 0; i < (size_t) n && k < NGX_HTTP_INVENTORY_RES_ID_LEN; i++) {
            /* bytes past 4 * 62 would favour the first digits */
            if (rnd[i] < 248) {
                id[k++] = digits[rnd[i] % 62];
            }
        }
    }

    return 0;
}


/* whether an id could have been issued by reservation_id() */

int
ngx_http_inventory_reservation_id_valid(const char *id, size_t len)
{
    size_t  i;
    char    c;

    if (len != NGX_HTTP_INVENTORY_RES_ID_LEN || id[0] != 'r' || id[1] != '_') {
        return 0;
    }

    for (i = 2; i < len; i++) {
        c = id[i];

        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
              || (c >= 'a' && c <= 'z')))
        {
            return 0;
        }
    }

    return 1;
}


/* RFC 3339 UTC with milliseconds; buf must hold TIME_LEN bytes */

size_t
ngx_http_inventory_time_format(uint64_t ms, char *buf)
{
    int64_t   days, z, era, doe, yoe, y, doy, mp, d, m;
    uint64_t  secs, sod;
    char     *p;

    secs = ms / 1000;
    days = (int64_t) (secs / 86400);
    sod = secs % 86400;

    /* civil_from_days, after Howard Hinnant's date algorithms */
    z = days + 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    if (y > 9999) {
        y = 9999;
    }

    p = buf;
    *p++ = (char) ('0' + y / 1000);
    *p++ = (char) ('0' + y / 100 % 10);
    *p++ = (char) ('0' + y / 10 % 10);
    *p++ = (char) ('0' + y % 10);
    *p++ = '-';
    *p++ = (char) ('0' + m / 10);
    *p++ = (char) ('0' + m % 10);
    *p++ = '-';
    *p++ = (char) ('0' + d / 10);
    *p++ = (char) ('0' + d % 10);
    *p++ = 'T';
    *p++ = (char) ('0' + sod / 36000);
    *p++ = (char) ('0' + sod / 3600 % 10);
    *p++ = ':';
    *p++ = (char) ('0' + sod % 3600 / 600);
    *p++ = (char) ('0' + sod % 3600 / 60 % 10);
    *p++ = ':';
    *p++ = (char) ('0' + sod % 60 / 10);
    *p++ = (char) ('0' + sod % 10);
    *p++ = '.';
    *p++ = (char) ('0' + ms % 1000 / 100);
    *p++ = (char) ('0' + ms % 100 / 10);
    *p++ = (char) ('0' + ms % 10);
    *p++ = 'Z';

    return (size_t) (p - buf);
}


static int64_t
ngx_http_inventory_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t   era, yoe, doy, doe;

    y -= (m <= 2);
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


/*
 * Parses an RFC 3339 timestamp: "YYYY-MM-DDTHH:MM:SS", an optional fraction
 * (digits past milliseconds are truncated) and "Z" or a numeric offset.
 * Returns -1 if it is not one, -2 if it is one before 1970.
 */

int
ngx_http_inventory_time_parse(const char *p, size_t len, uint64_t *ms)
{
    size_t    i;
    int64_t   v[6], days, t, frac, scale, off;
    unsigned  mdays;
    static const size_t    pos[6] = { 0, 5, 8, 11, 14, 17 };
    static const size_t    wid[6] = { 4, 2, 2, 2, 2, 2 };
    static const char      sep[6] = { '-', '-', 'T', ':', ':', 0 };
    static const unsigned  dim[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
                                       31, 30, 31 };

    if (len < 20) {
        return -1;
    }

    for (i = 0; i < 6; i++) {
        size_t  k;

        v[i] = 0;

        for (k = 0; k < wid[i]; k++) {
            char  c = p[pos[i] + k];

            if (c < '0' || c > '9') {
                return -1;
            }

            v[i] = v[i] * 10 + (c - '0');
        }

        if (sep[i] && p[pos[i] + wid[i]] != sep[i]
            && !(sep[i] == 'T' && p[pos[i] + wid[i]] == 't'))
        {
            return -1;
        }
    }

    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[3] > 23 || v[4] > 59
        || v[5] > 60)
    {
        return -1;
    }

    mdays = dim[v[1] - 1];

    if (v[1] == 2 && !((v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0))
    {
        mdays = 28;
    }

    if ((unsigned) v[2] > mdays) {
        return -1;
    }

    i = 19;
    frac = 0;
    scale = 1000;

    if (i < len && p[i] == '.') {
        i++;

        if (i == len || p[i] < '0' || p[i] > '9') {
            return -1;
        }

        while (i < len && p[i] >= '0' && p[i] <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (p[i] - '0') * scale;
            }

            i++;
        }
    }

    if (i + 1 == len && (p[i] == 'Z' || p[i] == 'z')) {
        off = 0;

    } else if (i + 6 == len && (p[i] == '+' || p[i] == '-')
               && ((p[i + 1] >= '0' && p[i + 1] <= '1'
                    && p[i + 2] >= '0' && p[i + 2] <= '9')
                   || (p[i + 1] == '2' && p[i + 2] >= '0' && p[i + 2] <= '3'))
               && p[i + 3] == ':'
               && p[i + 4] >= '0' && p[i + 4] <= '5'
               && p[i + 5] >= '0' && p[i + 5] <= '9')
    {
        off = ((p[i + 1] - '0') * 10 + (p[i + 2] - '0')) * 3600
              + ((p[i + 4] - '0') * 10 + (p[i + 5] - '0')) * 60;

        if (p[i] == '+') {
            off = -off;
        }

    } else {
        return -1;
    }

    days = ngx_http_inventory_days_from_civil(v[0], (unsigned) v[1],
                                              (unsigned) v[2]);
    t = days * 86400 + v[3] * 3600 + v[4] * 60 + (v[5] > 59 ? 59 : v[5])
        + off;

    if (t < 0) {
        return -2;
    }

    *ms = (uint64_t) t * 1000 + (uint64_t) frac;

    return 0;
}
