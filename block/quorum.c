/*
 * quorum: a file node over N children holding the same bytes.  Writes and
 * flushes go to every child and succeed when at least vote-threshold
 * children took them.  Reads (read-pattern=quorum) read every child and
 * vote: the content that at least vote-threshold children agree on is the
 * answer, and with rewrite-corrupted=on it is written back over the
 * children that disagreed; no such content is an I/O error.  With
 * read-pattern=fifo a read goes to the first child and only moves on to
 * the next when one fails.
 */
#include "block/block-int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"

#define QUORUM_MAX_CHILDREN 32

typedef struct Quorum {
    BlockFile *children;
    int n;
    int threshold;
    bool fifo;
    bool rewrite;
} Quorum;

static int q_read_fifo(Quorum *s, uint64_t off, void *buf, size_t len, Error **errp)
{
    for (int i = 0; i < s->n; i++) {
        Error *err = NULL;
        if (bfile_pread(&s->children[i], off, buf, len, i + 1 < s->n ? &err : errp) == 0) {
            return 0;
        }
        error_free(err);
    }
    return -1;
}

static int q_pread(void *opaque, uint64_t off, void *buf, size_t len, Error **errp)
{
    Quorum *s = opaque;
    if (s->fifo) {
        return q_read_fifo(s, off, buf, len, errp);
    }
    uint8_t **bufs = xzalloc(sizeof(*bufs) * (size_t)s->n);
    int *group = xzalloc(sizeof(*group) * (size_t)s->n);   /* -1: read failed */
    int best = -1, best_votes = 0, ret = -1;
    for (int i = 0; i < s->n; i++) {
        Error *err = NULL;
        bufs[i] = xmalloc(len ? len : 1);
        group[i] = -1;
        if (bfile_pread(&s->children[i], off, bufs[i], len, &err) < 0) {
            error_free(err);
            continue;
        }
        /* Join the group of the first earlier child with the same bytes. */
        group[i] = i;
        for (int j = 0; j < i; j++) {
            if (group[j] == j && !memcmp(bufs[i], bufs[j], len)) {
                group[i] = j;
                break;
            }
        }
    }
    for (int i = 0; i < s->n; i++) {
        int votes = 0;
        for (int j = 0; j < s->n; j++) {
            votes += group[j] == i;
        }
        if (votes > best_votes) {
            best_votes = votes;
            best = i;
        }
    }
    if (best >= 0 && best_votes >= s->threshold) {
        memcpy(buf, bufs[best], len);
        ret = 0;
        for (int i = 0; s->rewrite && i < s->n; i++) {
            if (group[i] >= 0 && group[i] != best) {
                Error *err = NULL;
                /* A failed repair leaves the child as it was; the read still stands. */
                if (bfile_pwrite(&s->children[i], off, buf, len, &err) < 0) {
                    error_free(err);
                }
            }
        }
    } else {
        error_setg_errno(errp, EIO, "quorum: no content of the %zu bytes at offset %llu "
                         "is agreed on by %d of %d children", len,
                         (unsigned long long)off, s->threshold, s->n);
    }
    for (int i = 0; i < s->n; i++) {
        free(bufs[i]);
    }
    free(bufs);
    free(group);
    return ret;
}

/* One write, or a flush, on a child. */
typedef struct QuorumOp {
    bool flush;
    uint64_t off;
    const void *buf;
    size_t len;
} QuorumOp;

static int child_op(BlockFile *child, const QuorumOp *op, Error **errp)
{
    return op->flush ? bfile_flush(child, errp)
                     : bfile_pwrite(child, op->off, op->buf, op->len, errp);
}

/*
 * Writes and flushes go to every child and succeed when at least
 * vote-threshold children took them; otherwise the first child's error
 * is the one reported.
 */
static int q_on_all_children(Quorum *s, const QuorumOp *op, Error **errp)
{
    int ok = 0;
    Error *first = NULL;
    for (int i = 0; i < s->n; i++) {
        Error *err = NULL;
        if (child_op(&s->children[i], op, &err) == 0) {
            ok++;
        } else if (!first) {
            first = err;
        } else {
            error_free(err);
        }
    }
    if (ok >= s->threshold) {
        error_free(first);
        return 0;
    }
    error_propagate(errp, first);
    return -1;
}

static int q_pwrite(void *opaque, uint64_t off, const void *buf, size_t len, Error **errp)
{
    return q_on_all_children(opaque, &(QuorumOp){ .off = off, .buf = buf, .len = len }, errp);
}

static int q_flush(void *opaque, Error **errp)
{
    return q_on_all_children(opaque, &(QuorumOp){ .flush = true }, errp);
}

static int64_t q_length(void *opaque, Error **errp)
{
    Quorum *s = opaque;
    int64_t len = bfile_length(&s->children[0], errp);
    for (int i = 1; len >= 0 && i < s->n; i++) {
        int64_t other = bfile_length(&s->children[i], errp);
        if (other < 0) {
            return -1;
        }
        if (other != len) {
            error_setg_errno(errp, EIO, "quorum children differ in length");
            return -1;
        }
    }
    return len;
}

static int q_truncate(void *opaque, uint64_t len, Error **errp)
{
    error_setg(errp, "Cannot resize a quorum node");
    return -1;
}

static int64_t q_allocated(void *opaque)
{
    Quorum *s = opaque;
    int64_t sum = 0;
    for (int i = 0; i < s->n; i++) {
        int64_t a = bfile_allocated_bytes(&s->children[i]);
        if (a < 0) {
            return -1;
        }
        sum += a;
    }
    return sum;
}

static int q_hole_fd(void *opaque)
{
    return -1;      /* the children may differ: no holes are known */
}

static void q_close(void *opaque)
{
    Quorum *s = opaque;
    for (int i = 0; i < s->n; i++) {
        bfile_close(&s->children[i]);
    }
    free(s->children);
    free(s);
}

static const BlockFileOps quorum_ops = {
    .name = "quorum",
    .pread = q_pread,
    .pwrite = q_pwrite,
    .flush = q_flush,
    .length = q_length,
    .truncate = q_truncate,
    .allocated = q_allocated,
    .hole_fd = q_hole_fd,
    .close = q_close,
};

/* The options of child @idx ("children.IDX.key" as "key"); a string child is a file name. */
static void child_options(const KeyValList *opts, int idx, KeyValList *out)
{
    char *prefix = xasprintf("children.%d", idx);
    size_t plen = strlen(prefix);
    out->n = 0;
    out->items = NULL;
    for (int i = 0; i < opts->n; i++) {
        const char *key = opts->items[i].key;
        if (strncmp(key, prefix, plen)) {
            continue;
        }
        const char *sub = key[plen] == '.' ? key + plen + 1 : key[plen] ? NULL : "";
        if (sub) {
            out->items = xrealloc(out->items, sizeof(*out->items) * (size_t)(out->n + 1));
            out->items[out->n++] = (KeyVal){ (char *)sub, opts->items[i].value };
        }
    }
    free(prefix);
}

int quorum_open(BlockFile *f, const KeyValList *opts, bool writable, bool direct,
                char **base, Error **errp)
{
    Quorum *s = xzalloc(sizeof(*s));
    long long threshold = 0;
    const char *pattern = NULL;
    *base = NULL;      /* several children: no one directory to resolve names in */
    for (int i = 0; i < opts->n; i++) {
        const char *key = opts->items[i].key, *v = opts->items[i].value;
        if (!strcmp(key, "vote-threshold")) {
            char *end;
            errno = 0;
            threshold = strtoll(v, &end, 0);
            if (!*v || *end || errno || threshold > INT_MAX) {
                error_setg(errp, "Parameter 'vote-threshold' expects a number");
                goto fail;
            }
        } else if (!strcmp(key, "read-pattern")) {
            pattern = v;
        } else if (!strcmp(key, "rewrite-corrupted")) {
            if (!parse_bool(key, v, &s->rewrite, errp)) {
                goto fail;
            }
        } else if (!strcmp(key, "blkverify")) {
            bool on;
            if (!parse_bool(key, v, &on, errp)) {
                goto fail;
            }
            if (on) {
                error_setg(errp, "quorum: blkverify mode is not supported");
                goto fail;
            }
        } else if (strcmp(key, "driver") && strncmp(key, "children.", 9)) {
            error_setg(errp, "Block protocol 'quorum' doesn't support the option '%s'", key);
            goto fail;
        }
    }
    int count = 0;
    for (;; count++) {
        KeyValList c;
        child_options(opts, count, &c);
        free(c.items);
        if (!c.n) {
            break;
        }
    }
    /* Children are numbered from 0 without gaps; anything else is not an option. */
    for (int i = 0; i < opts->n; i++) {
        const char *key = opts->items[i].key;
        char *end;
        if (!strncmp(key, "children.", 9)) {
            long idx = strtol(key + 9, &end, 10);
            if (end == key + 9 || (*end && *end != '.') || idx < 0 || idx >= count) {
                error_setg(errp, "Block protocol 'quorum' doesn't support the option '%s'",
                           key);
                goto fail;
            }
        }
    }
        if (count < 1) {
        error_setg(errp, "Number of provided children must be 1 or more");
        goto fail;
    }
    if (count > QUORUM_MAX_CHILDREN) {
        error_setg(errp, "quorum takes at most %d children", QUORUM_MAX_CHILDREN);
        goto fail;
    }
    if (threshold < 1) {
        error_setg(errp, "Parameter 'vote-threshold' expects a value >= 1");
        goto fail;
    }
    if (threshold > count) {
        error_setg(errp, "threshold may not exceed children count");
        goto fail;
    }
    if (pattern && strcmp(pattern, "quorum") && strcmp(pattern, "fifo")) {
        error_setg(errp, "Please set read-pattern as fifo or quorum");
        goto fail;
    }
    s->fifo = pattern && !strcmp(pattern, "fifo");
    if (s->fifo && s->rewrite) {
        error_setg(errp, "rewrite-corrupted=on cannot be used with read-pattern=fifo");
        goto fail;
    }
    s->threshold = (int)threshold;
    s->children = xzalloc(sizeof(*s->children) * (size_t)count);
    for (; s->n < count; s->n++) {
        KeyValList c;
        char *child_base = NULL;
        child_options(opts, s->n, &c);
        s->children[s->n].fd = -1;
        if (c.n == 1 && !c.items[0].key[0]) {
            /* A string names an existing node; an image tool has none. */
            error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                       c.items[0].value, c.items[0].value);
            free(c.items);
            q_close(s);
            return -1;
        }
        int r = bfile_open_node(&s->children[s->n], &c, writable, direct, &child_base, errp);
        free(c.items);
        free(child_base);
        if (r < 0) {
            q_close(s);
            return -1;
        }
    }
    f->fd = -1;
    f->direct = direct;
    f->writable = writable;
    f->unsafe = false;
    f->ops = &quorum_ops;
    f->ops_state = s;
    return 0;
fail:
    free(s);
    return -1;
}
