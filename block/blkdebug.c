/*
 * blkdebug: a filter node over one file node ("image") that passes every
 * request through, and on the way raises named events which rules act on:
 * set-state rules move a small state machine, inject-error rules make the
 * following requests (optionally only at one sector, optionally once) fail
 * with a chosen errno.  Used to test how formats and guests survive I/O
 * errors at exact points.
 *
 * Events this block layer raises, at the file level below a format:
 *   read_aio            every read
 *   write_aio, pwritev  every write, before it reaches the image
 *   pwritev_rmw_head, pwritev_rmw_after_head,
 *   pwritev_rmw_tail, pwritev_rmw_after_tail
 *                       around the read-modify-write of an unaligned head or
 *                       tail when align= is larger than the request's grain
 *   pwritev_done        after a write reached the image
 *   flush_to_os, flush_to_disk
 *                       every flush
 * QEMU names more events (raised inside its qcow2 driver); a rule naming one
 * of those is refused here, since it could never fire.
 *
 * Rules come from options (set-state.N.*, inject-error.N.*) and from an
 * optional config file in QEMU's [set-state] / [inject-error] ini layout.
 */
#include "block/block-int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"

/* QEMU's event names; those this layer raises come first. */
static const char *const event_names[] = {
    "read_aio", "write_aio", "pwritev", "pwritev_done",
    "pwritev_rmw_head", "pwritev_rmw_after_head", "pwritev_rmw_tail",
    "pwritev_rmw_after_tail", "flush_to_os", "flush_to_disk",
#define EV_RAISED 10
    "l1_update", "l1_grow_alloc_table", "l1_grow_write_table", "l1_grow_activate_table",
    "l2_load", "l2_update", "l2_update_compressed", "l2_alloc_cow_read",
    "l2_alloc_write", "read_backing_aio", "read_compressed", "write_compressed",
    "vmstate_load", "vmstate_save", "cow_read", "cow_write", "reftable_load",
    "reftable_grow", "reftable_update", "refblock_load", "refblock_update",
    "refblock_update_part", "refblock_alloc", "refblock_alloc_hookup",
    "refblock_alloc_write", "refblock_alloc_write_blocks", "refblock_alloc_write_table",
    "refblock_alloc_switch_table", "cluster_alloc", "cluster_alloc_bytes", "cluster_free",
    "pwritev_zero", "empty_image_prepare", "l1_shrink_write_table",
    "l1_shrink_free_l2_clusters", "cor_write", "cluster_alloc_space", "none",
};

enum {
    EV_READ_AIO, EV_WRITE_AIO, EV_PWRITEV, EV_PWRITEV_DONE, EV_RMW_HEAD,
    EV_RMW_AFTER_HEAD, EV_RMW_TAIL, EV_RMW_AFTER_TAIL, EV_FLUSH_TO_OS, EV_FLUSH_TO_DISK,
};

enum { IO_READ = 1, IO_WRITE = 2, IO_FLUSH = 4, IO_ALL = 7 };

typedef struct Rule {
    bool inject;            /* inject-error, else set-state */
    bool dead;              /* a once rule that fired */
    bool active;            /* inject-error: its event came since the last check */
    int event;
    int state;              /* 0: any */
    int new_state;
    int err;
    int64_t sector;         /* -1: any */
    bool once, immediately;
    unsigned iotypes;
} Rule;

typedef struct Blkdebug {
    BlockFile child;
    uint64_t align;
    int state;
    Rule *rules;
    int nrules;
} Blkdebug;

static bool parse_int(const char *name, const char *v, long long min, long long max,
                      long long *out, Error **errp)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 0);
    if (!*v || *end || errno || n < min || n > max) {
        error_setg(errp, "Parameter '%s' expects a number", name);
        return false;
    }
    *out = n;
    return true;
}

/* One rule option; false with *errp set when it is bad. */
static bool rule_option(Rule *r, const char *key, const char *v, Error **errp)
{
    long long n;
    if (!strcmp(key, "event")) {
        for (size_t i = 0; i < ARRAY_SIZE(event_names); i++) {
            if (!strcmp(v, event_names[i])) {
                if (i >= EV_RAISED) {
                    error_setg(errp, "blkdebug event '%s' is never raised by this block "
                               "layer (it raises read_aio, write_aio, pwritev, "
                               "pwritev_done, pwritev_rmw_*, flush_to_os, flush_to_disk)", v);
                    return false;
                }
                r->event = (int)i;
                return true;
            }
        }
        error_setg(errp, "invalid parameter value: %s", v);
        return false;
    }
    if (!strcmp(key, "state")) {
        if (!parse_int(key, v, 0, INT_MAX, &n, errp)) {
            return false;
        }
        r->state = (int)n;
        return true;
    }
    if (!r->inject && (!strcmp(key, "new_state") || !strcmp(key, "new-state"))) {
        if (!parse_int(key, v, 0, INT_MAX, &n, errp)) {
            return false;
        }
        r->new_state = (int)n;
        return true;
    }
    if (r->inject && !strcmp(key, "errno")) {
        if (!parse_int(key, v, 0, 4095, &n, errp)) {
            return false;
        }
        r->err = (int)n;
        return true;
    }
    if (r->inject && !strcmp(key, "sector")) {
        if (!parse_int(key, v, -1, INT64_MAX / BDRV_SECTOR_SIZE, &n, errp)) {
            return false;
        }
        r->sector = n;
        return true;
    }
    if (r->inject && !strcmp(key, "once")) {
        return parse_bool(key, v, &r->once, errp);
    }
    if (r->inject && !strcmp(key, "immediately")) {
        return parse_bool(key, v, &r->immediately, errp);
    }
    if (r->inject && !strcmp(key, "iotype")) {
        r->iotypes = !strcmp(v, "read") ? IO_READ : !strcmp(v, "write") ? IO_WRITE
                     : !strcmp(v, "flush") ? IO_FLUSH : 0;
        if (!r->iotypes) {
            error_setg(errp, "invalid parameter value: %s", v);
            return false;
        }
        return true;
    }
    error_setg(errp, "Invalid parameter '%s'", key);
    return false;
}

static Rule *new_rule(Blkdebug *s, bool inject)
{
    s->rules = xrealloc(s->rules, sizeof(*s->rules) * (size_t)(s->nrules + 1));
    Rule *r = &s->rules[s->nrules++];
    *r = (Rule){ .inject = inject, .event = -1, .err = EIO, .sector = -1,
                 .iotypes = IO_ALL };
    return r;
}

static bool rule_complete(const Rule *r, Error **errp)
{
    if (r->event < 0) {
        error_setg(errp, "Parameter 'event' is missing");
        return false;
    }
    return true;
}

/* "set-state.N.key" / "inject-error.N.key" options, N counting from 0. */
static bool rules_from_options(Blkdebug *s, const KeyValList *opts, const char *prefix,
                               bool inject, Error **errp)
{
    size_t plen = strlen(prefix);
    int idx;
    for (idx = 0;; idx++) {
        Rule *r = NULL;
        for (int i = 0; i < opts->n; i++) {
            const char *key = opts->items[i].key;
            char *end;
            if (strncmp(key, prefix, plen) || key[plen] != '.') {
                continue;
            }
            long n = strtol(key + plen + 1, &end, 10);
            if (end == key + plen + 1 || *end != '.' || n != idx) {
                continue;
            }
            if (!r) {
                r = new_rule(s, inject);
            }
            if (!rule_option(r, end + 1, opts->items[i].value, errp)) {
                return false;
            }
        }
        if (!r) {
            break;
        }
        if (!rule_complete(r, errp)) {
            return false;
        }
    }
    /* Rules are numbered from 0 without gaps; anything else is not an option. */
    for (int i = 0; i < opts->n; i++) {
        const char *key = opts->items[i].key;
        char *end;
        if (!strncmp(key, prefix, plen) && key[plen] == '.') {
            long n = strtol(key + plen + 1, &end, 10);
            if (end == key + plen + 1 || *end != '.' || n < 0 || n >= idx) {
                error_setg(errp, "Block protocol 'blkdebug' doesn't support the option '%s'",
                           key);
                return false;
            }
        }
    }
    return true;
}

static char *trim(char *p)
{
    while (isspace((unsigned char)*p)) {
        p++;
    }
    char *e = p + strlen(p);
    while (e > p && isspace((unsigned char)e[-1])) {
        *--e = 0;
    }
    return p;
}

/* The ini config file: [set-state] / [inject-error] sections of key = "value". */
static bool rules_from_config(Blkdebug *s, const char *path, Error **errp)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        error_setg_errno(errp, errno, "Could not read blkdebug config file");
        return false;
    }
    char line[512];
    Rule *r = NULL;
    bool ok = true;
    int lineno = 0;
    while (ok && fgets(line, sizeof(line), fp)) {
        lineno++;
        char *p = trim(line);
        if (!*p || *p == '#' || *p == ';') {
            continue;
        }
        if (*p == '[') {
            if (r) {
                ok = rule_complete(r, errp);
                r = NULL;
            }
            if (!strcmp(p, "[set-state]")) {
                r = new_rule(s, false);
            } else if (!strcmp(p, "[inject-error]")) {
                r = new_rule(s, true);
            } else if (ok) {
                error_setg(errp, "%s:%d: unknown section %s", path, lineno, p);
                ok = false;
            }
            continue;
        }
        char *eq = strchr(p, '=');
        if (!r || !eq) {
            error_setg(errp, "%s:%d: expected a section or key = \"value\"", path, lineno);
            ok = false;
            break;
        }
        *eq = 0;
        char *key = trim(p), *val = trim(eq + 1);
        size_t vlen = strlen(val);
        if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
            val[vlen - 1] = 0;
            val++;
        }
        ok = rule_option(r, key, val, errp);
    }
    if (ok && r) {
        ok = rule_complete(r, errp);
    }
    fclose(fp);
    return ok;
}

/* Raise @event: set-state rules move the state, inject-error rules arm. */
static void raise_event(Blkdebug *s, int event)
{
    int new_state = s->state;
    bool armed = false;
    for (int i = 0; i < s->nrules; i++) {
        Rule *r = &s->rules[i];
        if (r->dead || r->event != event || (r->state && r->state != s->state)) {
            continue;
        }
        if (!r->inject) {
            new_state = r->new_state;
            continue;
        }
        if (!armed) {
            /* A new event's rules replace those armed before. */
            for (int j = 0; j < s->nrules; j++) {
                s->rules[j].active = false;
            }
            armed = true;
        }
        r->active = true;
    }
    s->state = new_state;
}

/* The first armed rule that matches this request fails it. */
static int check_rules(Blkdebug *s, unsigned iotype, uint64_t off, uint64_t len,
                       Error **errp)
{
    for (int i = 0; i < s->nrules; i++) {
        Rule *r = &s->rules[i];
        if (r->dead || !r->active || !(r->iotypes & iotype)) {
            continue;
        }
        if (r->sector >= 0) {
            uint64_t at = (uint64_t)r->sector * BDRV_SECTOR_SIZE;
            if (iotype == IO_FLUSH || at >= off + len || at + BDRV_SECTOR_SIZE <= off) {
                continue;
            }
        }
        if (r->once) {
            r->dead = true;
        }
        errno = r->err;
        error_setg_errno(errp, r->err, "blkdebug: injected error at offset %llu",
                         (unsigned long long)off);
        return -1;
    }
    return 0;
}

static int bd_pread(void *opaque, uint64_t off, void *buf, size_t len, Error **errp)
{
    Blkdebug *s = opaque;
    raise_event(s, EV_READ_AIO);
    if (check_rules(s, IO_READ, off, len, errp) < 0) {
        return -1;
    }
    uint64_t start = off / s->align * s->align;
    uint64_t end = ROUND_UP(off + len, s->align);
    if (start == off && end == off + len) {
        return bfile_pread(&s->child, off, buf, len, errp);
    }
    uint8_t *bounce = xmalloc(end - start);
    int ret = bfile_pread(&s->child, start, bounce, end - start, errp);
    if (ret == 0) {
        memcpy(buf, bounce + (off - start), len);
    }
    free(bounce);
    return ret;
}

/* Read the aligned block at @at into @blk, raising the rmw events around it. */
static int rmw_read(Blkdebug *s, uint64_t at, uint8_t *blk, int before, Error **errp)
{
    raise_event(s, before);
    if (check_rules(s, IO_READ, at, s->align, errp) < 0 ||
        bfile_pread(&s->child, at, blk, s->align, errp) < 0) {
        return -1;
    }
    raise_event(s, before + 1);
    return 0;
}

static int bd_pwrite(void *opaque, uint64_t off, const void *buf, size_t len, Error **errp)
{
    Blkdebug *s = opaque;
    raise_event(s, EV_WRITE_AIO);
    raise_event(s, EV_PWRITEV);
    if (check_rules(s, IO_WRITE, off, len, errp) < 0) {
        return -1;
    }
    uint64_t start = off / s->align * s->align;
    uint64_t end = ROUND_UP(off + len, s->align);
    int ret;
    if (start == off && end == off + len) {
        ret = bfile_pwrite(&s->child, off, buf, len, errp);
    } else {
        uint8_t *bounce = xzalloc(end - start);
        ret = 0;
        if (start != off) {
            ret = rmw_read(s, start, bounce, EV_RMW_HEAD, errp);
        }
        if (ret == 0 && end != off + len && (end - s->align > start || start == off)) {
            ret = rmw_read(s, end - s->align, bounce + (end - s->align - start),
                           EV_RMW_TAIL, errp);
        }
        if (ret == 0) {
            memcpy(bounce + (off - start), buf, len);
            ret = bfile_pwrite(&s->child, start, bounce, end - start, errp);
        }
        free(bounce);
    }
    if (ret == 0) {
        raise_event(s, EV_PWRITEV_DONE);
    }
    return ret;
}

static int bd_flush(void *opaque, Error **errp)
{
    Blkdebug *s = opaque;
    raise_event(s, EV_FLUSH_TO_OS);
    raise_event(s, EV_FLUSH_TO_DISK);
    if (check_rules(s, IO_FLUSH, 0, 0, errp) < 0) {
        return -1;
    }
    return bfile_flush(&s->child, errp);
}

static int64_t bd_length(void *opaque, Error **errp)
{
    Blkdebug *s = opaque;
    return bfile_length(&s->child, errp);
}

static int bd_truncate(void *opaque, uint64_t len, Error **errp)
{
    Blkdebug *s = opaque;
    return bfile_truncate(&s->child, len, errp);
}

static int64_t bd_allocated(void *opaque)
{
    Blkdebug *s = opaque;
    return bfile_allocated_bytes(&s->child);
}

static int bd_hole_fd(void *opaque)
{
    Blkdebug *s = opaque;
    return bfile_hole_fd(&s->child);
}

static void bd_close(void *opaque)
{
    Blkdebug *s = opaque;
    bfile_close(&s->child);
    free(s->rules);
    free(s);
}

static const BlockFileOps blkdebug_ops = {
    .name = "blkdebug",
    .pread = bd_pread,
    .pwrite = bd_pwrite,
    .flush = bd_flush,
    .length = bd_length,
    .truncate = bd_truncate,
    .allocated = bd_allocated,
    .hole_fd = bd_hole_fd,
    .close = bd_close,
};

char *blkdebug_plain_name(const KeyValList *opts)
{
    const char *config = NULL, *image = NULL;
    for (int i = 0; i < opts->n; i++) {
        const char *key = opts->items[i].key, *v = opts->items[i].value;
        if (!strcmp(key, "config")) {
            config = v;
        } else if (!strcmp(key, "image.filename")) {
            image = v;
        } else if (strcmp(key, "driver") && strcmp(key, "image.driver")) {
            return NULL;        /* rules or options the name cannot carry */
        } else if (strcmp(v, !strcmp(key, "driver") ? "blkdebug" : "file")) {
            return NULL;
        }
    }
    return image ? xasprintf("blkdebug:%s:%s", config ? config : "", image) : NULL;
}

int blkdebug_open(BlockFile *f, const KeyValList *opts, bool writable, bool direct,
                  char **base, Error **errp)
{
    Blkdebug *s = xzalloc(sizeof(*s));
    KeyValList image = { 0 };
    const char *image_name = NULL, *config = NULL;
    long long align = 1;
    s->child.fd = -1;
    s->state = 1;
    *base = NULL;
    for (int i = 0; i < opts->n; i++) {
        const char *key = opts->items[i].key, *v = opts->items[i].value;
        if (!strncmp(key, "image.", 6)) {
            image.items = xrealloc(image.items, sizeof(*image.items) * (size_t)(image.n + 1));
            image.items[image.n++] = (KeyVal){ (char *)key + 6, (char *)v };
        } else if (!strcmp(key, "image")) {
            image_name = v;
        } else if (!strcmp(key, "config")) {
            config = v;
        } else if (!strcmp(key, "align")) {
            if (!parse_int(key, v, 0, INT_MAX, &align, errp)) {
                goto fail;
            }
        } else if (strcmp(key, "driver") && strncmp(key, "set-state.", 10) &&
                   strncmp(key, "inject-error.", 13)) {
            error_setg(errp, "Block protocol 'blkdebug' doesn't support the option '%s'", key);
            goto fail;
        }
    }
    if (align && !is_power_of_2((uint64_t)align)) {
        error_setg(errp, "Cannot meet constraints with align %lld", align);
        goto fail;
    }
    s->align = align ? (uint64_t)align : 1;
    if ((config && !rules_from_config(s, config, errp)) ||
        !rules_from_options(s, opts, "set-state", false, errp) ||
        !rules_from_options(s, opts, "inject-error", true, errp)) {
        goto fail;
    }
    if (image_name && image.n) {
        error_setg(errp, "Cannot reference an existing block device with additional "
                   "options or a new filename");
        goto fail;
    }
    if (image_name) {
        /* A string names an existing node; an image tool has none. */
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", image_name, image_name);
        goto fail;
    }
    if (!image.n) {
        error_setg(errp, "A block device must be specified for \"image\"");
        goto fail;
    }
    if (bfile_open_node(&s->child, &image, writable, direct, base, errp) < 0) {
        goto fail;
    }
    free(image.items);
    f->fd = -1;
    f->direct = direct;
    f->writable = writable;
    f->unsafe = false;
    f->ops = &blkdebug_ops;
    f->ops_state = s;
    return 0;
fail:
    free(image.items);
    free(s->rules);
    free(s);
    return -1;
}
