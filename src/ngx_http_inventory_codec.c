/*
 * Key and record encoding.  Records carry fixed-width big-endian integers
 * and length-prefixed strings, so that a record read back from LMDB is
 * checked for length before any member is trusted.
 */

#include <endian.h>
#include <string.h>

#include "ngx_http_inventory_codec.h"


#define NGX_HTTP_INVENTORY_EVENT_FIXED    (1 + 7 * 8)
/* the trailer's fixed part; then reference and actor */
#define NGX_HTTP_INVENTORY_EVENT_TRAILER  (2 + 2 * 8)


static unsigned char *ngx_http_inventory_put_str(unsigned char *p,
    ngx_http_inventory_str_t s);
static const unsigned char *ngx_http_inventory_get_str(
    const unsigned char *p, const unsigned char *end,
    ngx_http_inventory_str_t *s);


void
ngx_http_inventory_put_u64(unsigned char *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}


uint64_t
ngx_http_inventory_get_u64(const unsigned char *p)
{
    uint64_t  v;

    memcpy(&v, p, 8);

    return be64toh(v);
}


void
ngx_http_inventory_put_u32(unsigned char *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, 4);
}


uint32_t
ngx_http_inventory_get_u32(const unsigned char *p)
{
    uint32_t  v;

    memcpy(&v, p, 4);

    return be32toh(v);
}


size_t
ngx_http_inventory_item_key(unsigned char *buf, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location)
{
    memcpy(buf, sku.data, sku.len);
    buf[sku.len] = '\0';
    memcpy(buf + sku.len + 1, location.data, location.len);

    return sku.len + 1 + location.len;
}


size_t
ngx_http_inventory_sku_prefix(unsigned char *buf, ngx_http_inventory_str_t sku)
{
    memcpy(buf, sku.data, sku.len);
    buf[sku.len] = '\0';

    return sku.len + 1;
}


/* the low-stock index sorts by location, then sku */

size_t
ngx_http_inventory_low_key(unsigned char *buf, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location)
{
    return ngx_http_inventory_item_key(buf, location, sku);
}


/* the references index: a reference holds no NUL, so the seqs sort after */

size_t
ngx_http_inventory_reference_key(unsigned char *buf,
    ngx_http_inventory_str_t reference, uint64_t seq)
{
    memcpy(buf, reference.data, reference.len);
    buf[reference.len] = '\0';
    ngx_http_inventory_put_u64(buf + reference.len + 1, seq);

    return reference.len + 1 + 8;
}


size_t
ngx_http_inventory_item_event_key(unsigned char *buf,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t version)
{
    size_t  n;

    n = ngx_http_inventory_item_key(buf, sku, location);
    buf[n++] = '\0';
    ngx_http_inventory_put_u64(buf + n, version);

    return n + 8;
}


int
ngx_http_inventory_item_key_split(const unsigned char *key, size_t len,
    ngx_http_inventory_str_t *sku, ngx_http_inventory_str_t *location)
{
    const unsigned char  *nul;

    nul = memchr(key, '\0', len);
    if (nul == NULL) {
        return -1;
    }

    sku->data = (const char *) key;
    sku->len = (size_t) (nul - key);
    location->data = (const char *) nul + 1;
    location->len = len - sku->len - 1;

    if (!ngx_http_inventory_id_valid(sku->data, sku->len)
        || !ngx_http_inventory_id_valid(location->data, location->len))
    {
        return -1;
    }

    return 0;
}


/*
 * An item: the 40 bytes items had before the quantity states, then the
 * states, the settings and the seq.  A record of 40 bytes (a store written
 * before them) reads with those zero; its seq is its index record's
 * (store_query.c).
 */

void
ngx_http_inventory_item_encode(unsigned char *buf,
    const ngx_http_inventory_item_t *item)
{
    ngx_http_inventory_put_u64(buf, (uint64_t) item->on_hand);
    ngx_http_inventory_put_u64(buf + 8, (uint64_t) item->reserved);
    ngx_http_inventory_put_u64(buf + 16, (uint64_t) item->min_level);
    ngx_http_inventory_put_u64(buf + 24, item->version);
    ngx_http_inventory_put_u64(buf + 32, item->updated_at);
    ngx_http_inventory_put_u64(buf + 40, (uint64_t) item->damaged);
    ngx_http_inventory_put_u64(buf + 48, (uint64_t) item->quality_control);
    ngx_http_inventory_put_u64(buf + 56, (uint64_t) item->safety_stock);
    ngx_http_inventory_put_u64(buf + 64, (uint64_t) item->incoming);
    ngx_http_inventory_put_u64(buf + 72, (uint64_t) item->backorder_limit);
    ngx_http_inventory_put_u64(buf + 80, item->seq);
}


int
ngx_http_inventory_item_decode(const unsigned char *buf, size_t len,
    ngx_http_inventory_item_t *item)
{
    if (len != NGX_HTTP_INVENTORY_ITEM_RECORD_LEN
        && len != NGX_HTTP_INVENTORY_ITEM_RECORD_V1)
    {
        return -1;
    }

    memset(item, 0, sizeof(ngx_http_inventory_item_t));

    item->on_hand = (int64_t) ngx_http_inventory_get_u64(buf);
    item->reserved = (int64_t) ngx_http_inventory_get_u64(buf + 8);
    item->min_level = (int64_t) ngx_http_inventory_get_u64(buf + 16);
    item->version = ngx_http_inventory_get_u64(buf + 24);
    item->updated_at = ngx_http_inventory_get_u64(buf + 32);

    if (len == NGX_HTTP_INVENTORY_ITEM_RECORD_V1) {
        return 0;
    }

    item->damaged = (int64_t) ngx_http_inventory_get_u64(buf + 40);
    item->quality_control = (int64_t) ngx_http_inventory_get_u64(buf + 48);
    item->safety_stock = (int64_t) ngx_http_inventory_get_u64(buf + 56);
    item->incoming = (int64_t) ngx_http_inventory_get_u64(buf + 64);
    item->backorder_limit = (int64_t) ngx_http_inventory_get_u64(buf + 72);
    item->seq = ngx_http_inventory_get_u64(buf + 80);

    return 0;
}


/* an item_events record: the event's seq, then the item as it left it */

int
ngx_http_inventory_index_decode(const unsigned char *buf, size_t len,
    ngx_http_inventory_item_t *item)
{
    if (len < 8
        || ngx_http_inventory_item_decode(buf + 8, len - 8, item) != 0)
    {
        return -1;
    }

    item->seq = ngx_http_inventory_get_u64(buf);

    return 0;
}


static unsigned char *
ngx_http_inventory_put_str(unsigned char *p, ngx_http_inventory_str_t s)
{
    p[0] = (unsigned char) (s.len >> 8);
    p[1] = (unsigned char) (s.len & 0xff);

    if (s.len) {
        memcpy(p + 2, s.data, s.len);
    }

    return p + 2 + s.len;
}


static const unsigned char *
ngx_http_inventory_get_str(const unsigned char *p, const unsigned char *end,
    ngx_http_inventory_str_t *s)
{
    size_t  n;

    if (p == NULL || end - p < 2) {
        return NULL;
    }

    n = ((size_t) p[0] << 8) | p[1];
    p += 2;

    if ((size_t) (end - p) < n) {
        return NULL;
    }

    s->data = (const char *) p;
    s->len = n;

    return p + n;
}


/*
 * The seq is the record's key, not part of it.  buf must hold
 * EVENT_RECORD_MAX bytes; the core bounds every string so that it does.
 */

size_t
ngx_http_inventory_event_encode(unsigned char *buf,
    const ngx_http_inventory_event_t *ev)
{
    unsigned char  *p;

    p = buf;
    *p++ = (unsigned char) ev->type;
    ngx_http_inventory_put_u64(p, ev->version);
    ngx_http_inventory_put_u64(p + 8, ev->at);
    ngx_http_inventory_put_u64(p + 16, (uint64_t) ev->on_hand);
    ngx_http_inventory_put_u64(p + 24, (uint64_t) ev->min_level);
    ngx_http_inventory_put_u64(p + 32, (uint64_t) ev->delta);
    ngx_http_inventory_put_u64(p + 40, (uint64_t) ev->quantity);
    ngx_http_inventory_put_u64(p + 48, (uint64_t) ev->available);
    p += 56;

    p = ngx_http_inventory_put_str(p, ev->sku);
    p = ngx_http_inventory_put_str(p, ev->location);
    p = ngx_http_inventory_put_str(p, ev->reason);
    p = ngx_http_inventory_put_str(p, ev->reservation_id);
    p = ngx_http_inventory_put_str(p, ev->other_location);

    /* since the quantity states: a trailer, which older events lack */
    *p++ = (unsigned char) ev->state;
    *p++ = (unsigned char) ev->to_state;
    ngx_http_inventory_put_u64(p, (uint64_t) ev->safety_stock);
    ngx_http_inventory_put_u64(p + 8, (uint64_t) ev->backorder_limit);
    p += 16;
    p = ngx_http_inventory_put_str(p, ev->reference);
    p = ngx_http_inventory_put_str(p, ev->actor);

    return (size_t) (p - buf);
}


int
ngx_http_inventory_event_decode(const unsigned char *buf, size_t len,
    ngx_http_inventory_event_t *ev)
{
    const unsigned char  *p, *end;

    if (len < NGX_HTTP_INVENTORY_EVENT_FIXED) {
        return -1;
    }

    memset(ev, 0, sizeof(ngx_http_inventory_event_t));

    p = buf;
    end = buf + len;

    ev->type = *p++;
    ev->version = ngx_http_inventory_get_u64(p);
    ev->at = ngx_http_inventory_get_u64(p + 8);
    ev->on_hand = (int64_t) ngx_http_inventory_get_u64(p + 16);
    ev->min_level = (int64_t) ngx_http_inventory_get_u64(p + 24);
    ev->delta = (int64_t) ngx_http_inventory_get_u64(p + 32);
    ev->quantity = (int64_t) ngx_http_inventory_get_u64(p + 40);
    ev->available = (int64_t) ngx_http_inventory_get_u64(p + 48);
    p += 56;

    p = ngx_http_inventory_get_str(p, end, &ev->sku);
    p = ngx_http_inventory_get_str(p, end, &ev->location);
    p = ngx_http_inventory_get_str(p, end, &ev->reason);
    p = ngx_http_inventory_get_str(p, end, &ev->reservation_id);
    p = ngx_http_inventory_get_str(p, end, &ev->other_location);

    if (p != NULL && end - p >= NGX_HTTP_INVENTORY_EVENT_TRAILER) {
        ev->state = p[0];
        ev->to_state = p[1];
        ev->safety_stock = (int64_t) ngx_http_inventory_get_u64(p + 2);
        ev->backorder_limit = (int64_t) ngx_http_inventory_get_u64(p + 10);
        p += NGX_HTTP_INVENTORY_EVENT_TRAILER;
        p = ngx_http_inventory_get_str(p, end, &ev->reference);
        p = ngx_http_inventory_get_str(p, end, &ev->actor);
    }

    if (p != end || ngx_http_inventory_event_name(ev->type) == NULL
        || !ngx_http_inventory_id_valid(ev->sku.data, ev->sku.len)
        || !ngx_http_inventory_id_valid(ev->location.data, ev->location.len))
    {
        return -1;
    }

    return 0;
}


/* the id is the record's key, not part of it */

size_t
ngx_http_inventory_reservation_encode(unsigned char *buf,
    const ngx_http_inventory_reservation_t *res)
{
    size_t          i;
    unsigned char  *p;

    p = buf;
    *p++ = (unsigned char) res->state;
    ngx_http_inventory_put_u64(p, res->created_at);
    ngx_http_inventory_put_u64(p + 8, res->expires_at);
    ngx_http_inventory_put_u64(p + 16, res->ended_at);
    p += 24;

    p = ngx_http_inventory_put_str(p, res->reference);

    *p++ = (unsigned char) (res->nlines >> 8);
    *p++ = (unsigned char) (res->nlines & 0xff);

    for (i = 0; i < res->nlines; i++) {
        p = ngx_http_inventory_put_str(p, res->lines[i].sku);
        p = ngx_http_inventory_put_str(p, res->lines[i].location);
        ngx_http_inventory_put_u64(p, (uint64_t) res->lines[i].quantity);
        p += 8;
    }

    return (size_t) (p - buf);
}


int
ngx_http_inventory_reservation_decode(const unsigned char *buf, size_t len,
    const char *id, ngx_http_inventory_reservation_t *res)
{
    size_t                      i;
    const unsigned char        *p, *end;
    ngx_http_inventory_line_t  *line;

    if (len < 1 + 24 + 2 + 2) {
        return -1;
    }

    p = buf;
    end = buf + len;

    memcpy(res->id, id, NGX_HTTP_INVENTORY_RES_ID_LEN);
    res->state = *p++;
    res->created_at = ngx_http_inventory_get_u64(p);
    res->expires_at = ngx_http_inventory_get_u64(p + 8);
    res->ended_at = ngx_http_inventory_get_u64(p + 16);
    p += 24;

    p = ngx_http_inventory_get_str(p, end, &res->reference);

    if (p == NULL || end - p < 2) {
        return -1;
    }

    res->nlines = ((size_t) p[0] << 8) | p[1];
    p += 2;

    if (res->nlines == 0 || res->nlines > NGX_HTTP_INVENTORY_MAX_LINES
        || ngx_http_inventory_res_state_name(res->state) == NULL)
    {
        return -1;
    }

    for (i = 0; i < res->nlines; i++) {
        line = &res->lines[i];

        p = ngx_http_inventory_get_str(p, end, &line->sku);
        p = ngx_http_inventory_get_str(p, end, &line->location);

        if (p == NULL || end - p < 8
            || !ngx_http_inventory_id_valid(line->sku.data, line->sku.len)
            || !ngx_http_inventory_id_valid(line->location.data,
                                            line->location.len))
        {
            return -1;
        }

        line->quantity = (int64_t) ngx_http_inventory_get_u64(p);
        p += 8;
    }

    return p == end ? 0 : -1;
}


/* expiry indexes: the time first, so a cursor walks them in due order */

size_t
ngx_http_inventory_expiry_key(unsigned char *buf, uint64_t at,
    const char *id, size_t len)
{
    ngx_http_inventory_put_u64(buf, at);
    memcpy(buf + 8, id, len);

    return 8 + len;
}


void
ngx_http_inventory_idem_encode_header(unsigned char *buf,
    const ngx_http_inventory_idem_t *idem)
{
    ngx_http_inventory_put_u64(buf, idem->created_at);
    ngx_http_inventory_put_u64(buf + 8, idem->expires_at);
    memcpy(buf + 16, idem->fingerprint, 16);
    buf[32] = (unsigned char) (idem->status >> 8);
    buf[33] = (unsigned char) (idem->status & 0xff);
    ngx_http_inventory_put_u64(buf + 34, idem->etag);
}


int
ngx_http_inventory_idem_decode(const unsigned char *buf, size_t len,
    ngx_http_inventory_idem_t *idem)
{
    if (len < NGX_HTTP_INVENTORY_IDEM_HEADER_LEN) {
        return -1;
    }

    idem->created_at = ngx_http_inventory_get_u64(buf);
    idem->expires_at = ngx_http_inventory_get_u64(buf + 8);
    memcpy(idem->fingerprint, buf + 16, 16);
    idem->status = ((unsigned) buf[32] << 8) | buf[33];
    idem->etag = ngx_http_inventory_get_u64(buf + 34);
    idem->body = buf + NGX_HTTP_INVENTORY_IDEM_HEADER_LEN;
    idem->body_len = len - NGX_HTTP_INVENTORY_IDEM_HEADER_LEN;

    return 0;
}
