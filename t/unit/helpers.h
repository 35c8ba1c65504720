/* Helpers shared by the unit tests. */

#ifndef _HELPERS_H_INCLUDED_
#define _HELPERS_H_INCLUDED_

#include <string.h>

#include "ngx_http_inventory_core.h"


static inline ngx_http_inventory_str_t
S(const char *s)
{
    ngx_http_inventory_str_t  r;

    r.data = s;
    r.len = strlen(s);

    return r;
}

#endif
