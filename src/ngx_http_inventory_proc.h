/*
 * Whether a process is still the one that was recorded: its start time from
 * /proc, read without nginx so that the parsing can be tested alone.
 */

#ifndef _NGX_HTTP_INVENTORY_PROC_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_PROC_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


uint64_t ngx_http_inventory_proc_start(pid_t pid);
uint64_t ngx_http_inventory_proc_stat_start(const char *buf, size_t len);
int ngx_http_inventory_proc_alive(pid_t pid, uint64_t start);


#endif /* _NGX_HTTP_INVENTORY_PROC_H_INCLUDED_ */
