/*
 * inventory-admin: offline tool for a store.
 *
 *   inventory-admin verify STORE     replay every item's events and compare
 *                                    with the projections and indexes
 *   inventory-admin rebuild STORE [--take-write-lock]
 *                                    recompute projections and indexes
 *   inventory-admin dump STORE [--after SEQ]
 *                                    the log as JSON lines
 *   inventory-admin dump STORE --all every record of every database, a
 *                                    line each: database, key and value
 *                                    in hex (copies compare equal)
 *   inventory-admin info STORE       its role, store_id, epoch and seq
 *   inventory-admin stats STORE      counts and sizes, as JSON
 *
 * verify, dump, info and stats only read (LMDB read transactions), so they are
 * safe while nginx serves.  Exit status: 0 fine, 1 verify found a
 * difference, 2 the command could not run.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ngx_http_inventory_store.h"
#include "ngx_http_inventory_render.h"


/* problem lines verify prints; the summary counts them all */
#define NGX_HTTP_INVENTORY_ADMIN_MAX_PROBLEMS  50


static int ngx_http_inventory_admin_verify(ngx_http_inventory_store_t *st);
static void ngx_http_inventory_admin_problem(void *ctx, const char *line);
static int ngx_http_inventory_admin_rebuild(ngx_http_inventory_store_t *st,
    int force);
static int ngx_http_inventory_admin_dump(ngx_http_inventory_store_t *st,
    uint64_t after, int all);
static int ngx_http_inventory_admin_record(void *ctx, const char *db,
    const void *key, size_t klen, const void *val, size_t vlen);
static int ngx_http_inventory_admin_info(ngx_http_inventory_store_t *st,
    const char *path);
static int ngx_http_inventory_admin_stats(ngx_http_inventory_store_t *st);
static int ngx_http_inventory_admin_print(
    const ngx_http_inventory_count_t *counts, size_t n, const char *cmd);
static int ngx_http_inventory_admin_readers(ngx_http_inventory_store_t *st);
static int ngx_http_inventory_admin_event(void *ctx,
    const ngx_http_inventory_event_t *ev);


int
main(int argc, char **argv)
{
    int                         rc, force, all, i;
    char                        file[4096];
    int64_t                     seq;
    unsigned                    flags;
    uint64_t                    after;
    const char                 *cmd, *path;
    ngx_http_inventory_store_t *st;

    if (argc < 3) {
        fprintf(stderr, "usage: %s verify|rebuild|dump|info|stats STORE "
                        "[--take-write-lock] [--after SEQ] [--all]\n",
                argv[0]);
        return 2;
    }

    cmd = argv[1];
    path = NULL;
    force = 0;
    all = 0;
    after = 0;

    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--take-write-lock") == 0
            && strcmp(cmd, "rebuild") == 0)
        {
            force = 1;

        } else if (strcmp(argv[i], "--all") == 0 && strcmp(cmd, "dump") == 0)
        {
            all = 1;

        } else if (strcmp(argv[i], "--after") == 0 && i + 1 < argc
                   && strcmp(cmd, "dump") == 0)
        {
            i++;

            if (ngx_http_inventory_parse_int(argv[i], strlen(argv[i]), &seq)
                != 0 || seq < 0)
            {
                fprintf(stderr, "%s: --after takes a seq, 0 or more\n",
                        argv[0]);
                return 2;
            }

            after = (uint64_t) seq;

        } else if (path == NULL && argv[i][0] != '-') {
            path = argv[i];

        } else {
            fprintf(stderr, "%s: unexpected arguments\n", argv[0]);
            return 2;
        }
    }

    if (path == NULL || (all && after)) {
        fprintf(stderr, "%s: unexpected arguments\n", argv[0]);
        return 2;
    }

    /* never create a store: LMDB would, in any directory it is given */
    snprintf(file, sizeof(file), "%s/data.mdb", path);

    if (access(file, R_OK) != 0) {
        fprintf(stderr, "%s: \"%s\" is not a store (no data.mdb)\n",
                argv[0], path);
        return 2;
    }

    /* map size 0: LMDB takes the size the store was made with */
    flags = strcmp(cmd, "rebuild") == 0 ? 0 : NGX_HTTP_INVENTORY_STORE_RDONLY;

    rc = ngx_http_inventory_store_open(&st, path, 0, 1, flags);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot open the store \"%s\": %s\n", argv[0],
                path, ngx_http_inventory_store_strerror(rc));
        return 2;
    }

    if (strcmp(cmd, "verify") == 0) {
        rc = ngx_http_inventory_admin_verify(st);

    } else if (strcmp(cmd, "rebuild") == 0) {
        rc = ngx_http_inventory_admin_rebuild(st, force);

    } else if (strcmp(cmd, "dump") == 0) {
        rc = ngx_http_inventory_admin_dump(st, after, all);

    } else if (strcmp(cmd, "info") == 0) {
        rc = ngx_http_inventory_admin_info(st, path);

    } else if (strcmp(cmd, "stats") == 0) {
        rc = ngx_http_inventory_admin_stats(st);

    } else {
        fprintf(stderr, "%s: unknown command \"%s\"\n", argv[0], cmd);
        rc = 2;
    }

    ngx_http_inventory_store_close(st);

    return rc;
}



/*
 * Recomputes items, the item event index and the low-stock index from the
 * log, in one write transaction: writers wait meanwhile, readers see the
 * old state until it commits.
 */

/* the store's checker: its problems, the first 50 of them, then a summary */

static int
ngx_http_inventory_admin_verify(ngx_http_inventory_store_t *st)
{
    int            rc;
    uint64_t       events;
    unsigned long  problems, shown;

    shown = 0;

    rc = ngx_http_inventory_store_verify(st, ngx_http_inventory_admin_problem,
                                         &shown, &events, &problems);
    if (rc != 0) {
        fprintf(stderr, "verify: %s\n",
                ngx_http_inventory_store_strerror(rc));
        return 2;
    }

    if (problems) {
        printf("verify: %lu problem(s)\n", problems);
        return 1;
    }

    printf("verify: ok, %llu events\n", (unsigned long long) events);

    return 0;
}


static void
ngx_http_inventory_admin_problem(void *ctx, const char *line)
{
    unsigned long  *shown = ctx;

    if ((*shown)++ < NGX_HTTP_INVENTORY_ADMIN_MAX_PROBLEMS) {
        printf("problem: %s\n", line);
    }
}


static int
ngx_http_inventory_admin_rebuild(ngx_http_inventory_store_t *st, int force)
{
    int       rc, readers;
    uint64_t  events, bad;

    readers = ngx_http_inventory_admin_readers(st);

    if (readers > 0 && !force) {
        fprintf(stderr, "rebuild: the store is in use (%d readers, e.g. a "
                        "running nginx); stop it, or pass --take-write-lock\n",
                readers);
        return 2;
    }

    rc = ngx_http_inventory_store_rebuild(st, &events, &bad);

    if (rc == NGX_HTTP_INVENTORY_STORE_OK) {
        printf("rebuild: ok, %llu events replayed\n",
               (unsigned long long) events);
        return 0;
    }

    if (bad == UINT64_MAX) {
        fprintf(stderr, "rebuild: the log has an unreadable event\n");

    } else if (bad) {
        fprintf(stderr, "rebuild: event %llu does not apply to its item\n",
                (unsigned long long) bad);
    }

    fprintf(stderr, "rebuild: %s; nothing was changed\n",
            ngx_http_inventory_store_strerror(rc));

    return 2;
}



/* the log as the feed renders it, one event a line */

static int
ngx_http_inventory_admin_dump(ngx_http_inventory_store_t *st, uint64_t after,
    int all)
{
    int  rc;

    rc = ngx_http_inventory_store_read_begin(st);

    /* all: every database in hex, the same bytes for two copies of one */
    if (rc == 0) {
        rc = all ? ngx_http_inventory_store_walk(st,
                                              ngx_http_inventory_admin_record,
                                              stdout)
                 : ngx_http_inventory_store_log(st, after, SIZE_MAX,
                                              ngx_http_inventory_admin_event,
                                              stdout);
        ngx_http_inventory_store_read_end(st);
    }

    if (rc != 0) {
        fprintf(stderr, "dump: %s\n", ngx_http_inventory_store_strerror(rc));
        return 2;
    }

    return fflush(stdout) == 0 ? 0 : 2;
}


static int
ngx_http_inventory_admin_record(void *ctx, const char *db, const void *key,
    size_t klen, const void *val, size_t vlen)
{
    size_t                i;
    const unsigned char  *p;

    fputs(db, ctx);
    fputc('\t', ctx);

    for (p = key, i = 0; i < klen; i++) {
        fprintf(ctx, "%02x", p[i]);
    }

    fputc('\t', ctx);

    for (p = val, i = 0; i < vlen; i++) {
        fprintf(ctx, "%02x", p[i]);
    }

    return fputc('\n', ctx) == EOF ? EIO : 0;
}


/*
 * Who the store is.  Its role is what the nginx serving it was last
 * configured as (the file "role" it keeps beside the store).
 */

static int
ngx_http_inventory_admin_info(ngx_http_inventory_store_t *st,
    const char *path)
{
    int                            rc;
    char                           file[4096], role[16], hex[33];
    FILE                          *f;
    size_t                         i, n;
    ngx_http_inventory_identity_t  id;
    ngx_http_inventory_count_t     counts[] = {
        { "role", 0, NULL }, { "store_id", 0, NULL }, { "epoch", 0, NULL },
        { "last_seq", 0, NULL }, { "replication_tx", 0, NULL }
    };

    rc = ngx_http_inventory_store_read_begin(st);

    if (rc == 0) {
        rc = ngx_http_inventory_store_identity(st, &id);
        ngx_http_inventory_store_read_end(st);
    }

    if (rc != 0) {
        fprintf(stderr, "info: %s\n", ngx_http_inventory_store_strerror(rc));
        return 2;
    }

    strcpy(role, "unknown");
    snprintf(file, sizeof(file), "%s/role", path);

    f = fopen(file, "r");
    if (f) {
        n = fread(role, 1, sizeof(role) - 1, f);
        role[n] = '\0';
        role[strcspn(role, "\n")] = '\0';
        fclose(f);

        if (strcmp(role, "primary") != 0 && strcmp(role, "follower") != 0) {
            strcpy(role, "unknown");
        }
    }

    for (i = 0; i < sizeof(id.store_id); i++) {
        snprintf(hex + 2 * i, 3, "%02x", id.store_id[i]);
    }

    counts[0].text = role;
    counts[1].text = hex;
    counts[2].value = id.epoch;
    counts[3].value = id.last_seq;
    counts[4].value = id.tx;

    return ngx_http_inventory_admin_print(counts,
                                          sizeof(counts) / sizeof(counts[0]),
                                          "info");
}


static int
ngx_http_inventory_admin_event(void *ctx, const ngx_http_inventory_event_t *ev)
{
    int                       rc;
    ngx_http_inventory_buf_t  b;

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_render_event_body(&b, ev);

    if (b.failed) {
        free(b.data);
        return ENOMEM;
    }

    rc = (fwrite(b.data, 1, b.len, ctx) != b.len || fputc('\n', ctx) == EOF)
         ? EIO : 0;

    free(b.data);

    return rc;
}


static int
ngx_http_inventory_admin_stats(ngx_http_inventory_store_t *st)
{
    int                                rc, readers;
    ngx_http_inventory_store_stat_t    stat;
    ngx_http_inventory_store_counts_t  n;
    ngx_http_inventory_count_t         counts[] = {
        { "last_seq", 0, NULL }, { "events", 0, NULL },
        { "items", 0, NULL }, { "reservations", 0, NULL },
        { "active_reservations", 0, NULL }, { "low_stock", 0, NULL },
        { "idempotency_keys", 0, NULL }, { "map_size", 0, NULL },
        { "used", 0, NULL }, { "readers", 0, NULL }
    };

    /* before this tool takes reader slots of its own */
    readers = ngx_http_inventory_admin_readers(st);

    rc = ngx_http_inventory_store_stat(st, &stat);
    if (rc == 0) {
        rc = ngx_http_inventory_store_counts(st, &n);
    }

    if (rc != 0) {
        fprintf(stderr, "stats: %s\n", ngx_http_inventory_store_strerror(rc));
        return 2;
    }

    counts[0].value = stat.last_seq;
    counts[1].value = n.events;
    counts[2].value = n.items;
    counts[3].value = n.reservations;
    counts[4].value = n.reservations_active;
    counts[5].value = n.low_stock;
    counts[6].value = n.idempotency_keys;
    counts[7].value = stat.map_size;
    counts[8].value = stat.used;
    counts[9].value = (uint64_t) readers;

    return ngx_http_inventory_admin_print(counts,
                                          sizeof(counts) / sizeof(counts[0]),
                                          "stats");
}


/* a JSON object of counts on a line of stdout */

static int
ngx_http_inventory_admin_print(const ngx_http_inventory_count_t *counts,
    size_t n, const char *cmd)
{
    int                       rc;
    ngx_http_inventory_buf_t  b;

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_render_counts(&b, counts, n);

    rc = (b.failed || fwrite(b.data, 1, b.len, stdout) != b.len
          || fputc('\n', stdout) == EOF || fflush(stdout) != 0);

    free(b.data);

    if (rc) {
        fprintf(stderr, "%s: the output failed\n", cmd);
        return 2;
    }

    return 0;
}


/* reader slots held by live processes: a running nginx holds some */

static int
ngx_http_inventory_admin_readers(ngx_http_inventory_store_t *st)
{
    (void) ngx_http_inventory_store_reader_check(st, NULL);

    return (int) ngx_http_inventory_store_readers(st);
}
