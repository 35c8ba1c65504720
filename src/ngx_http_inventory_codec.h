/*
 * Byte layout of LMDB keys and values.  Integers in keys are big-endian so
 * that LMDB's byte order is numeric order; identifiers never hold a NUL, so a
 * NUL separates the parts of composite keys and "A" sorts before "A-1".
 */

#ifndef _NGX_HTTP_INVENTORY_CODEC_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_CODEC_H_INCLUDED_


#include "ngx_http_inventory_core.h"


/* sku NUL location NUL u64 */
#define NGX_HTTP_INVENTORY_KEY_MAX                                           \
    (2 * NGX_HTTP_INVENTORY_ID_MAX + 2 + 8)
/* reference NUL u64 */
#define NGX_HTTP_INVENTORY_REF_KEY_MAX                                       \
    (NGX_HTTP_INVENTORY_REFERENCE_MAX + 1 + 8)

/* an item; before the quantity states, its first 40 bytes alone */
#define NGX_HTTP_INVENTORY_ITEM_RECORD_LEN  88
#define NGX_HTTP_INVENTORY_ITEM_RECORD_V1   40
/* an item_events value: the event's seq, then the item as it left it */
#define NGX_HTTP_INVENTORY_INDEX_RECORD_LEN                                  \
    (8 + NGX_HTTP_INVENTORY_ITEM_RECORD_LEN)
#define NGX_HTTP_INVENTORY_EVENT_RECORD_MAX 2048
#define NGX_HTTP_INVENTORY_RES_RECORD_MAX                                    \
    (1 + 3 * 8 + 2 + NGX_HTTP_INVENTORY_REFERENCE_MAX + 2                    \
     + NGX_HTTP_INVENTORY_MAX_LINES * (2 * (2 + NGX_HTTP_INVENTORY_ID_MAX) + 8))
#define NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN   (8 + NGX_HTTP_INVENTORY_RES_ID_LEN)
#define NGX_HTTP_INVENTORY_IDEM_HEADER_LEN  (8 + 8 + 16 + 2 + 8)


typedef struct {
    uint64_t                    created_at;
    uint64_t                    expires_at;
    unsigned char               fingerprint[16];
    unsigned                    status;
    uint64_t                    etag;
    const unsigned char        *body;
    size_t                      body_len;
} ngx_http_inventory_idem_t;


void ngx_http_inventory_put_u64(unsigned char *p, uint64_t v);
uint64_t ngx_http_inventory_get_u64(const unsigned char *p);
void ngx_http_inventory_put_u32(unsigned char *p, uint32_t v);
uint32_t ngx_http_inventory_get_u32(const unsigned char *p);

size_t ngx_http_inventory_item_key(unsigned char *buf,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location);
size_t ngx_http_inventory_sku_prefix(unsigned char *buf,
    ngx_http_inventory_str_t sku);
size_t ngx_http_inventory_low_key(unsigned char *buf,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location);
size_t ngx_http_inventory_reference_key(unsigned char *buf,
    ngx_http_inventory_str_t reference, uint64_t seq);
size_t ngx_http_inventory_item_event_key(unsigned char *buf,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t version);
int ngx_http_inventory_item_key_split(const unsigned char *key, size_t len,
    ngx_http_inventory_str_t *sku, ngx_http_inventory_str_t *location);

void ngx_http_inventory_item_encode(unsigned char *buf,
    const ngx_http_inventory_item_t *item);
int ngx_http_inventory_item_decode(const unsigned char *buf, size_t len,
    ngx_http_inventory_item_t *item);
int ngx_http_inventory_index_decode(const unsigned char *buf, size_t len,
    ngx_http_inventory_item_t *item);

size_t ngx_http_inventory_event_encode(unsigned char *buf,
    const ngx_http_inventory_event_t *ev);
int ngx_http_inventory_event_decode(const unsigned char *buf, size_t len,
    ngx_http_inventory_event_t *ev);


size_t ngx_http_inventory_reservation_encode(unsigned char *buf,
    const ngx_http_inventory_reservation_t *res);
int ngx_http_inventory_reservation_decode(const unsigned char *buf,
    size_t len, const char *id, ngx_http_inventory_reservation_t *res);
size_t ngx_http_inventory_expiry_key(unsigned char *buf, uint64_t at,
    const char *id, size_t len);

void ngx_http_inventory_idem_encode_header(unsigned char *buf,
    const ngx_http_inventory_idem_t *idem);
int ngx_http_inventory_idem_decode(const unsigned char *buf, size_t len,
    ngx_http_inventory_idem_t *idem);


#endif /* _NGX_HTTP_INVENTORY_CODEC_H_INCLUDED_ */
