/*
 * inventory-admin verify: checks a store's log, projections and indexes
 * against each other.
 */

#ifndef _NGX_HTTP_INVENTORY_VERIFY_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_VERIFY_H_INCLUDED_


#include "ngx_http_inventory_store.h"


/*
 * Prints a line "problem: ..." for each difference (the first 50), then
 * "verify: N problem(s)" or "verify: ok, N events", on stdout.  Returns 0
 * when the store is consistent, 1 when it is not, 2 when it could not be
 * read at all (said on stderr).  Reads in one snapshot, writes nothing:
 * safe while nginx serves.
 */
int ngx_http_inventory_verify(ngx_http_inventory_store_t *st);


#endif /* _NGX_HTTP_INVENTORY_VERIFY_H_INCLUDED_ */
