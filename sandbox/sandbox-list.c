/*
 * The listing of what each list allows, made from the rules themselves:
 * the filter is built by the code that builds the loaded one, with a
 * recorder that sees every rule on its way into libseccomp. Nothing here
 * names a system call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/sandbox-internal.h"
#include "util/osdep.h"

static const char *const kind_ids[SANDBOX_NR_KINDS] = {
    [SANDBOX_MAIN] = "main",
    [SANDBOX_VCPU] = "vcpu",
    [SANDBOX_IOTHREAD] = "iothread",
    [SANDBOX_BLOCK_WORKER] = "block-worker",
    [SANDBOX_LOG_WRITER] = "log-writer",
    [SANDBOX_DAEMON] = "daemon",
    [SANDBOX_NBD_WORKER] = "nbd-worker",
    [SANDBOX_COMPRESS_WORKER] = "compress-worker",
};

const char *sandbox_kind_id(SandboxKind kind)
{
    return kind < SANDBOX_NR_KINDS ? kind_ids[kind] : NULL;
}

typedef struct Entry {
    char *name;
    SandboxRuleRecord rule;
} Entry;

typedef struct Recorded {
    Entry *v;
    size_t n, cap;
} Recorded;

static void record(const SandboxRuleRecord *rule, void *opaque)
{
    Recorded *r = opaque;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, rule->nr);
    r->v[r->n++] = (Entry){ .name = name ? name : xasprintf("#%d", rule->nr), .rule = *rule };
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

/* By name; an unconditional rule first; then by what is compared. */
static int entry_cmp(const void *pa, const void *pb)
{
    const Entry *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (c) {
        return c;
    }
    if (a->rule.nargs != b->rule.nargs) {
        return a->rule.nargs < b->rule.nargs ? -1 : 1;
    }
    if (a->rule.action != b->rule.action) {
        return a->rule.action < b->rule.action ? -1 : 1;
    }
    for (unsigned i = 0; i < a->rule.nargs && i < ARRAY_SIZE(a->rule.args); i++) {
        const struct scmp_arg_cmp *x = &a->rule.args[i], *y = &b->rule.args[i];
        if ((c = cmp_u64(x->arg, y->arg)) || (c = cmp_u64(x->op, y->op)) ||
            (c = cmp_u64(x->datum_a, y->datum_a)) || (c = cmp_u64(x->datum_b, y->datum_b))) {
            return c;
        }
    }
    return 0;
}

static void print_action(FILE *out, uint32_t action)
{
    if (action == SCMP_ACT_ALLOW) {
        return;
    }
    if ((action & ~0xffffu) == SCMP_ACT_ERRNO(0)) {
        int e = (int)(action & 0xffff);
        fprintf(out, "  fails with errno %d (%s)", e, e == ENOSYS ? "ENOSYS" : strerror(e));
    } else {
        fprintf(out, "  action 0x%08x", action);
    }
}

static void print_args(FILE *out, const SandboxRuleRecord *r)
{
    static const char *const ops[] = {
        [SCMP_CMP_NE] = "!=", [SCMP_CMP_LT] = "<", [SCMP_CMP_LE] = "<=", [SCMP_CMP_EQ] = "==",
        [SCMP_CMP_GE] = ">=", [SCMP_CMP_GT] = ">", [SCMP_CMP_MASKED_EQ] = "==",
    };
    for (unsigned i = 0; i < r->nargs && i < ARRAY_SIZE(r->args); i++) {
        const struct scmp_arg_cmp *a = &r->args[i];
        const char *op = (size_t)a->op < ARRAY_SIZE(ops) && ops[a->op] ? ops[a->op] : "?";
        fprintf(out, "%sarg%u", i ? " && " : "  ", a->arg);
        if (a->op == SCMP_CMP_MASKED_EQ) {
            fprintf(out, " & 0x%llx %s 0x%llx", (unsigned long long)a->datum_a, op,
                    (unsigned long long)a->datum_b);
        } else {
            fprintf(out, " %s 0x%llx", op, (unsigned long long)a->datum_a);
        }
    }
    if (r->label) {
        fprintf(out, "  %s", r->label);
    }
}

static bool same_rule(const Entry *a, const Entry *b)
{
    return !strcmp(a->name, b->name) && entry_cmp(a, b) == 0;
}

bool sandbox_list(FILE *out, const SandboxConfig *config, SandboxKind kind, int program,
                  int pfc_fd, Error **errp)
{
    Recorded rec = { 0 };
    sandbox_set_recorder(record, &rec);
    scmp_filter_ctx ctx = sandbox_build_filter(config, kind, program, errp);
    sandbox_set_recorder(NULL, NULL);
    bool ok = ctx != NULL;
    if (ok) {
        qsort(rec.v, rec.n, sizeof(*rec.v), entry_cmp);
        size_t calls = 0;
        for (size_t i = 0; i < rec.n; i++) {
            calls += i == 0 || strcmp(rec.v[i].name, rec.v[i - 1].name) != 0;
        }
        if (program >= 0) {
            fprintf(out, "program %s: %zu system calls\n",
                    sandbox_program_name((SandboxProgram)program), calls);
        } else {
            fprintf(out, "kind %s (%s thread): %zu system calls\n", sandbox_kind_id(kind),
                    sandbox_kind_name(kind), calls);
        }
        for (size_t i = 0; i < rec.n; i++) {
            const Entry *e = &rec.v[i];
            bool first = i == 0 || strcmp(e->name, rec.v[i - 1].name) != 0;
            /* Said twice (lists overlap), or within an unconditional rule of the same action. */
            if (!first && (same_rule(e, &rec.v[i - 1]) ||
                           (rec.v[i - 1].rule.nargs == 0 &&
                            rec.v[i - 1].rule.action == e->rule.action))) {
                rec.v[i].rule = rec.v[i - 1].rule;      /* so a third copy compares equal */
                continue;
            }
            bool more = e->rule.action != SCMP_ACT_ALLOW || e->rule.nargs || e->rule.label;
            fprintf(out, more ? "  %-24s" : "  %s", e->name);
            print_action(out, e->rule.action);
            print_args(out, &e->rule);
            fputc('\n', out);
        }
    }
    if (ok && pfc_fd >= 0) {
        fflush(out);
        int rc = seccomp_export_pfc(ctx, pfc_fd);
        if (rc < 0) {
            error_setg_errno(errp, -rc, "sandbox: cannot export the filter");
            ok = false;
        }
    }
    if (ctx) {
        seccomp_release(ctx);
    }
    for (size_t i = 0; i < rec.n; i++) {
        free(rec.v[i].name);
    }
    free(rec.v);
    return ok;
}
