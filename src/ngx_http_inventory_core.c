/*
 * Domain rules: validation of identifiers and quantities, the decision of
 * which events a command appends, and the application of an event to an
 * item.  The write path and the replay of the log share event_apply(), so a
 * projection always equals the replay of its events.
 */

#include <errno.h>
#include <stddef.h>
#include <string.h>

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
static unsigned ngx_http_inventory_decide_move(
    ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_event_t *ev);
static unsigned ngx_http_inventory_decide_item(
    ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_event_t *ev);
static void ngx_http_inventory_line_events(ngx_http_inventory_cmd_t *cmd,
    unsigned type, ngx_http_inventory_event_t *events, size_t *nevents,
    size_t *slot_of);
static void ngx_http_inventory_event_ledger(
    const ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_event_t *ev);
static void ngx_http_inventory_change(ngx_http_inventory_item_t *item,
    unsigned state, int64_t delta);
static int ngx_http_inventory_effect(ngx_http_inventory_item_t *item,
    const ngx_http_inventory_event_t *ev);
static unsigned ngx_http_inventory_item_check(
    const ngx_http_inventory_item_t *item);


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
    "LowStockDetected",
    "StockMoved"
};


static const char  *ngx_http_inventory_state_names[] = {
    NULL, "available", "damaged", "quality_control", "incoming"
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

/* a reference: 1 to 255 visible ASCII characters, as "po:4711" or a URL */

int
ngx_http_inventory_reference_valid(const char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_INVENTORY_REFERENCE_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


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


/* what may be sold still: it goes below zero by safety stock or backorders */

int64_t
ngx_http_inventory_available(const ngx_http_inventory_item_t *item)
{
    return ngx_http_inventory_sellable(item) - item->safety_stock
           - item->reserved;
}


/* the units on hand that are neither damaged nor held for quality control */

int64_t
ngx_http_inventory_sellable(const ngx_http_inventory_item_t *item)
{
    return item->on_hand - item->damaged - item->quality_control;
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
    case NGX_HTTP_INVENTORY_CMD_MOVE:
        memset(&events[0], 0, sizeof(ngx_http_inventory_event_t));
        events[0].sku = cmd->slots[0].sku;
        events[0].location = cmd->slots[0].location;
        ngx_http_inventory_event_ledger(cmd, &events[0]);
        slot_of[0] = 0;

        rc = (cmd->type == NGX_HTTP_INVENTORY_CMD_COUNT)
             ? ngx_http_inventory_decide_count(cmd, &events[0])
             : (cmd->type == NGX_HTTP_INVENTORY_CMD_ADJUST)
             ? ngx_http_inventory_decide_adjust(cmd, &events[0])
             : ngx_http_inventory_decide_move(cmd, &events[0]);

        if (rc == NGX_HTTP_INVENTORY_OK) {
            rc = ngx_http_inventory_decide_item(cmd, &events[0]);
        }

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
    ngx_http_inventory_item_t  *item;

    item = &cmd->slots[0].item;

    ev->type = NGX_HTTP_INVENTORY_EV_STOCK_COUNTED;
    ev->on_hand = cmd->on_hand;
    ev->min_level = cmd->has_min_level ? cmd->min_level : item->min_level;
    ev->safety_stock = cmd->has_safety_stock ? cmd->safety_stock
                                             : item->safety_stock;
    ev->backorder_limit = cmd->has_backorder_limit ? cmd->backorder_limit
                                                   : item->backorder_limit;

    return NGX_HTTP_INVENTORY_OK;
}


static unsigned
ngx_http_inventory_decide_adjust(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *ev)
{
    if (!cmd->slots[0].exists && cmd->delta < 0) {
        return NGX_HTTP_INVENTORY_NOT_FOUND;
    }

    ev->type = NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED;
    ev->delta = cmd->delta;
    ev->state = cmd->state ? cmd->state : NGX_HTTP_INVENTORY_STATE_AVAILABLE;

    return NGX_HTTP_INVENTORY_OK;
}


/* a move takes from a state no more than it holds (available: as sold) */

static unsigned
ngx_http_inventory_decide_move(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *ev)
{
    int64_t                     held;
    ngx_http_inventory_item_t  *item;

    if (!cmd->slots[0].exists) {
        return NGX_HTTP_INVENTORY_NOT_FOUND;
    }

    item = &cmd->slots[0].item;

    switch (cmd->state) {
    case NGX_HTTP_INVENTORY_STATE_DAMAGED:
        held = item->damaged;
        break;
    case NGX_HTTP_INVENTORY_STATE_QUALITY_CONTROL:
        held = item->quality_control;
        break;
    case NGX_HTTP_INVENTORY_STATE_INCOMING:
        held = item->incoming;
        break;
    default:
        held = ngx_http_inventory_available(item);
    }

    if (cmd->quantity > held) {
        cmd->available = ngx_http_inventory_available(item);
        return NGX_HTTP_INVENTORY_INSUFFICIENT;
    }

    ev->type = NGX_HTTP_INVENTORY_EV_STOCK_MOVED;
    ev->quantity = cmd->quantity;
    ev->state = cmd->state;
    ev->to_state = cmd->to_state;

    return NGX_HTTP_INVENTORY_OK;
}


/* the item as the event would leave it must keep every invariant */

static unsigned
ngx_http_inventory_decide_item(ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *ev)
{
    unsigned                   rc;
    ngx_http_inventory_item_t  n;

    n = cmd->slots[0].item;

    rc = ngx_http_inventory_effect(&n, ev) == 0
         ? ngx_http_inventory_item_check(&n)
         : NGX_HTTP_INVENTORY_OUT_OF_RANGE;

    if (rc != NGX_HTTP_INVENTORY_OK) {
        cmd->available = ngx_http_inventory_available(&cmd->slots[0].item);
    }

    return rc;
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

        /* backorders: available may go down to -backorder_limit */
        if (s->demand > ngx_http_inventory_available(&s->item)
                        + s->item.backorder_limit)
        {
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
    unsigned                    type, state, short_stock;

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

            /* a backordered hold ships only once the stock is there */
            short_stock = 0;

            for (i = 0; i < cmd->nslots; i++) {
                if (cmd->slots[i].exists
                    && cmd->slots[i].demand
                       > ngx_http_inventory_sellable(&cmd->slots[i].item))
                {
                    cmd->slots[i].short_stock = 1;
                    short_stock = 1;
                }
            }

            if (short_stock) {
                cmd->available = ngx_http_inventory_available(
                                                       &cmd->slots[0].item);
                return NGX_HTTP_INVENTORY_INSUFFICIENT;
            }

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


/*
 * What the ledger keeps of the write: its reason, its reference (for a
 * reservation's events, the reservation's unless the write names another)
 * and who asked.
 */

static void
ngx_http_inventory_event_ledger(const ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_event_t *ev)
{
    ev->reason = cmd->reason;
    ev->reference = cmd->reference.len ? cmd->reference : cmd->res.reference;
    ev->actor = cmd->actor;
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
        ngx_http_inventory_event_ledger(cmd, &events[i]);
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
    events[0].other_location = to->location;
    ngx_http_inventory_event_ledger(cmd, &events[0]);
    slot_of[0] = 0;

    events[1].type = NGX_HTTP_INVENTORY_EV_TRANSFERRED_IN;
    events[1].sku = to->sku;
    events[1].location = to->location;
    events[1].quantity = cmd->quantity;
    events[1].other_location = from->location;
    ngx_http_inventory_event_ledger(cmd, &events[1]);
    slot_of[1] = 1;

    *nevents = 2;

    return NGX_HTTP_INVENTORY_OK;
}


/*
 * Applies one event to an item.  Returns -1, leaving the item unchanged, if
 * the event does not follow the item's version or would break an invariant:
 * the write path never produces such an event, so replay reports it as
 * corruption.  The write path decides with the same effect and check.
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

    if (ngx_http_inventory_effect(&n, ev) != 0
        || ngx_http_inventory_item_check(&n) != NGX_HTTP_INVENTORY_OK)
    {
        return -1;
    }

    n.version = ev->version;
    n.seq = ev->seq;
    n.updated_at = ev->at;
    *item = n;

    return 0;
}


/* what an event does to the quantities; -1 if it is not a valid event */

static int
ngx_http_inventory_effect(ngx_http_inventory_item_t *item,
    const ngx_http_inventory_event_t *ev)
{
    switch (ev->type) {

    case NGX_HTTP_INVENTORY_EV_STOCK_COUNTED:
        if (ev->on_hand < 0 || ev->on_hand > NGX_HTTP_INVENTORY_QTY_MAX
            || ev->min_level < 0 || ev->min_level > NGX_HTTP_INVENTORY_QTY_MAX
            || ev->safety_stock < 0
            || ev->safety_stock > NGX_HTTP_INVENTORY_QTY_MAX
            || ev->backorder_limit < 0
            || ev->backorder_limit > NGX_HTTP_INVENTORY_QTY_MAX)
        {
            return -1;
        }

        item->on_hand = ev->on_hand;
        item->min_level = ev->min_level;
        item->safety_stock = ev->safety_stock;
        item->backorder_limit = ev->backorder_limit;
        return 0;

    case NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED:
        if (ev->delta < -NGX_HTTP_INVENTORY_REQ_QTY_MAX
            || ev->delta > NGX_HTTP_INVENTORY_REQ_QTY_MAX
            || ev->state >= NGX_HTTP_INVENTORY_STATE_LAST)
        {
            return -1;
        }

        ngx_http_inventory_change(item, ev->state, ev->delta);
        return 0;

    case NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED:
        return 0;

    default:
        break;
    }

    /* the others move a quantity a request gave */
    if (ev->quantity < 1 || ev->quantity > NGX_HTTP_INVENTORY_REQ_QTY_MAX) {
        return -1;
    }

    switch (ev->type) {

    case NGX_HTTP_INVENTORY_EV_STOCK_RESERVED:
        item->reserved += ev->quantity;
        return 0;

    case NGX_HTTP_INVENTORY_EV_RESERVATION_COMMITTED:
        item->on_hand -= ev->quantity;
        item->reserved -= ev->quantity;
        return 0;

    case NGX_HTTP_INVENTORY_EV_RESERVATION_RELEASED:
    case NGX_HTTP_INVENTORY_EV_RESERVATION_EXPIRED:
        item->reserved -= ev->quantity;
        return 0;

    case NGX_HTTP_INVENTORY_EV_TRANSFERRED_OUT:
        item->on_hand -= ev->quantity;
        return 0;

    case NGX_HTTP_INVENTORY_EV_TRANSFERRED_IN:
        item->on_hand += ev->quantity;
        return 0;

    case NGX_HTTP_INVENTORY_EV_STOCK_MOVED:
        if (ev->state == 0 || ev->state >= NGX_HTTP_INVENTORY_STATE_LAST
            || ev->to_state == 0
            || ev->to_state >= NGX_HTTP_INVENTORY_STATE_INCOMING
            || ev->state == ev->to_state)
        {
            return -1;
        }

        /* out of one state into another: a receipt when from incoming */
        ngx_http_inventory_change(item, ev->state, -ev->quantity);
        ngx_http_inventory_change(item, ev->to_state, ev->quantity);
        return 0;

    default:
        return -1;
    }
}


/*
 * A quantity into (delta > 0) or out of a state: damaged and
 * quality_control units are part of on_hand, incoming ones are not.
 * State 0, of the events from before the states, is available.
 */

static void
ngx_http_inventory_change(ngx_http_inventory_item_t *item, unsigned state,
    int64_t delta)
{
    switch (state) {

    case NGX_HTTP_INVENTORY_STATE_DAMAGED:
        item->damaged += delta;
        break;

    case NGX_HTTP_INVENTORY_STATE_QUALITY_CONTROL:
        item->quality_control += delta;
        break;

    case NGX_HTTP_INVENTORY_STATE_INCOMING:
        item->incoming += delta;
        return;

    default:
        break;
    }

    item->on_hand += delta;
}


/*
 * The invariants: no quantity below zero, unsellable units within on_hand,
 * reservations within what is sellable plus the backorder limit
 * (INSUFFICIENT); every quantity within 2^53 - 1 (OUT_OF_RANGE).  The
 * operands are bounded far below INT64_MAX: nothing overflows.
 */

static unsigned
ngx_http_inventory_item_check(const ngx_http_inventory_item_t *item)
{
    if (item->on_hand > NGX_HTTP_INVENTORY_QTY_MAX
        || item->incoming > NGX_HTTP_INVENTORY_QTY_MAX
        || item->reserved > NGX_HTTP_INVENTORY_QTY_MAX
        || item->damaged > NGX_HTTP_INVENTORY_QTY_MAX
        || item->quality_control > NGX_HTTP_INVENTORY_QTY_MAX)
    {
        return NGX_HTTP_INVENTORY_OUT_OF_RANGE;
    }

    if (item->on_hand < 0 || item->reserved < 0 || item->damaged < 0
        || item->quality_control < 0 || item->incoming < 0
        || ngx_http_inventory_sellable(item) < 0
        || item->reserved
           > ngx_http_inventory_sellable(item) + item->backorder_limit)
    {
        return NGX_HTTP_INVENTORY_INSUFFICIENT;
    }

    return NGX_HTTP_INVENTORY_OK;
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
ngx_http_inventory_state_name(unsigned state)
{
    if (state == 0 || state >= NGX_HTTP_INVENTORY_STATE_LAST) {
        return NULL;
    }

    return ngx_http_inventory_state_names[state];
}


/* a state by its name, or 0 */

unsigned
ngx_http_inventory_state_of(const char *p, size_t len)
{
    unsigned  i;

    for (i = 1; i < NGX_HTTP_INVENTORY_STATE_LAST; i++) {
        if (strlen(ngx_http_inventory_state_names[i]) == len
            && memcmp(ngx_http_inventory_state_names[i], p, len) == 0)
        {
            return i;
        }
    }

    return 0;
}


const char *
ngx_http_inventory_res_state_name(unsigned state)
{
    if (state == 0 || state >= NGX_HTTP_INVENTORY_RES_LAST) {
        return NULL;
    }

    return ngx_http_inventory_res_state_names[state];
}
