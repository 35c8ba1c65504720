/*
 * A write command as bytes, so that it can wait in the shared zone and be
 * committed by another worker's thread: the machine-wide group commit.
 * The bytes are only ever read on the machine that wrote them (integers in
 * host order), but unpack() checks every length: it never reads past the
 * buffer, whatever it holds.
 */

#ifndef _NGX_HTTP_INVENTORY_PACK_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_PACK_H_INCLUDED_


#include "ngx_http_inventory_core.h"


/* the bytes pack() writes for cmd */
size_t ngx_http_inventory_pack_size(const ngx_http_inventory_cmd_t *cmd);

/* writes the command's inputs to buf; returns pack_size(cmd) */
size_t ngx_http_inventory_pack(const ngx_http_inventory_cmd_t *cmd,
    unsigned char *buf);

/*
 * Sets cmd's inputs from buf, its strings pointing into buf, and clears
 * what the store fills in (cmd_init()).  Returns 0, or -1 if buf does not
 * hold a packed command.
 */
int ngx_http_inventory_unpack(ngx_http_inventory_cmd_t *cmd,
    const unsigned char *buf, size_t len);

/* a batch's changes: each a count, an adjustment or a move */
size_t ngx_http_inventory_change_size_max(void);
size_t ngx_http_inventory_change_pack(const ngx_http_inventory_cmd_t *change,
    unsigned char *buf);
int ngx_http_inventory_change_unpack(ngx_http_inventory_cmd_t *cmd,
    const unsigned char **p, const unsigned char *end);


#endif /* _NGX_HTTP_INVENTORY_PACK_H_INCLUDED_ */
