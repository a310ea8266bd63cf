/*
 * vireo-img's -o option tables and everything built from them: parsing,
 * the help listings and the Formatting line.  Names, help texts, listing
 * layout and messages are qemu-img 7.2's; the tables hold only options
 * vireo-img acts on.
 */
#include "tools/img-opts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/img.h"
#include "util/osdep.h"

/* ---- the tables, each in the order the Formatting line echoes it ---- */

static const ImgOptDesc qcow2_create_opts[] = {
    { "encryption", IMG_OPT_BOOL,
      "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)" },
    { "encrypt.format", IMG_OPT_STR, "Encrypt the image, format choices: 'aes', 'luks'" },
    { "encrypt.key-secret", IMG_OPT_STR,
      "ID of secret providing qcow AES key or LUKS passphrase" },
    { "encrypt.cipher-alg", IMG_OPT_STR, "Name of encryption cipher algorithm" },
    { "encrypt.cipher-mode", IMG_OPT_STR, "Name of encryption cipher mode" },
    { "encrypt.ivgen-alg", IMG_OPT_STR, "Name of IV generator algorithm" },
    { "encrypt.ivgen-hash-alg", IMG_OPT_STR, "Name of IV generator hash algorithm" },
    { "encrypt.hash-alg", IMG_OPT_STR, "Name of encryption hash algorithm" },
    { "encrypt.iter-time", IMG_OPT_NUM, "Time to spend in PBKDF in milliseconds" },
    { "cluster_size", IMG_OPT_SIZE, "qcow2 cluster size", "65536" },
    { "extended_l2", IMG_OPT_BOOL, "Extended L2 tables", "off" },
    { "preallocation", IMG_OPT_STR,
      "Preallocation mode (allowed values: off, metadata, falloc, full)" },
    { "compression_type", IMG_OPT_STR,
      "Compression method used for image cluster compression", "zlib" },
    { "size", IMG_OPT_SIZE, "Virtual disk size" },
    { "compat", IMG_OPT_STR, "Compatibility level (v2 [0.10] or v3 [1.1])" },
    { "backing_file", IMG_OPT_STR, "File name of a base image" },
    { "backing_fmt", IMG_OPT_STR, "Image format of the base image" },
    { "data_file", IMG_OPT_STR, "File name of an external data file" },
    { "data_file_raw", IMG_OPT_BOOL, "The external data file must stay valid as a raw image" },
    { "lazy_refcounts", IMG_OPT_BOOL, "Postpone refcount updates", "off" },
    { "refcount_bits", IMG_OPT_NUM, "Width of a reference count entry in bits", "16" },
    { NULL },
};

static const ImgOptDesc parallels_create_opts[] = {
    { "size", IMG_OPT_SIZE, "Virtual disk size" },
    { "cluster_size", IMG_OPT_SIZE, "Parallels image cluster size", "1048576" },
    { NULL },
};

static const ImgOptDesc raw_create_opts[] = {
    { "size", IMG_OPT_SIZE, "Virtual disk size" },
    { NULL },
};

/* The host-file protocol under every format. */
static const ImgOptDesc file_create_opts[] = {
    { "size", IMG_OPT_SIZE, "Virtual disk size" },
    { "nocow", IMG_OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)" },
    { "preallocation", IMG_OPT_STR, "Preallocation mode (allowed values: off, falloc, full)" },
    { "extent_size_hint", IMG_OPT_SIZE, "Extent size hint for the image file, 0 to disable" },
    { NULL },
};

/* What blk_amend() changes in a qcow2 image (the backing options are refused there). */
static const ImgOptDesc qcow2_amend_opts[] = {
    { "compat", IMG_OPT_STR, "Compatibility level (v2 [0.10] or v3 [1.1])" },
    { "backing_file", IMG_OPT_STR, "File name of a base image" },
    { "backing_fmt", IMG_OPT_STR, "Image format of the base image" },
    { "data_file", IMG_OPT_STR, "File name of an external data file" },
    { "data_file_raw", IMG_OPT_BOOL, "The external data file must stay valid as a raw image" },
    /*
     * LUKS keyslot changes: listed as qemu-img lists them, so scripts reading
     * the help see the same names; tools/img-amend.c refuses them with the
     * reason (vireo-img does not rewrite keyslots).
     */
    { "encrypt.iter-time", IMG_OPT_NUM, "Time to spend in PBKDF in milliseconds" },
    { "encrypt.keyslot", IMG_OPT_NUM, "Select a single keyslot to modify explicitly" },
    { "encrypt.new-secret", IMG_OPT_STR,
      "New secret to set in the matching keyslots. Empty string to erase" },
    { "encrypt.old-secret", IMG_OPT_STR, "Select all keyslots that match this password" },
    { "encrypt.state", IMG_OPT_STR,
      "Select new state of affected keyslots (active/inactive)" },
    { "lazy_refcounts", IMG_OPT_BOOL, "Postpone refcount updates" },
    { "refcount_bits", IMG_OPT_NUM, "Width of a reference count entry in bits" },
    { "size", IMG_OPT_SIZE, "Virtual disk size" },
    { NULL },
};

static const ImgOptDesc *create_table(const char *fmt)
{
    if (!strcmp(fmt, "qcow2")) {
        return qcow2_create_opts;
    }
    if (!strcmp(fmt, "parallels")) {
        return parallels_create_opts;
    }
    if (!strcmp(fmt, "raw")) {
        return raw_create_opts;
    }
    return NULL;
}

/* ---- option lists as strings ---- */

bool img_opts_list_valid(const char *arg)
{
    /* Empty, a leading comma, or an odd run of trailing commas (one left unpaired). */
    size_t len = strlen(arg), i = len;
    if (!len || arg[0] == ',') {
        return false;
    }
    while (i > 0 && arg[i - 1] == ',') {
        i--;
    }
    return (len - i) % 2 == 0;
}

void img_opts_accumulate(char **acc, const char *arg)
{
    char *joined = *acc ? xasprintf("%s,%s", *acc, arg) : xstrdup(arg);
    free(*acc);
    *acc = joined;
}

/*
 * Split the next element off *@p: its name (up to '=' or ','), and its value
 * with ",," unescaped (NULL when the element has no '=').  Both are
 * allocated.  Returns false at the end of the list.
 */
static bool next_element(const char **p, char **name, char **value)
{
    const char *s = *p;
    if (!*s) {
        return false;
    }
    size_t n = strcspn(s, "=,");
    *name = xstrndup_safe(s, n);
    s += n;
    *value = NULL;
    if (*s == '=') {
        s++;
        char *v = xmalloc(strlen(s) + 1), *o = v;
        while (*s) {
            if (*s == ',' && s[1] != ',') {
                break;
            }
            if (*s == ',') {
                s++;        /* ",," is one literal comma */
            }
            *o++ = *s++;
        }
        *o = '\0';
        *value = v;
    }
    if (*s == ',') {
        s++;
    }
    *p = s;
    return true;
}

bool img_opts_help_requested(const char *list)
{
    char *name, *value;
    bool help = false;
    while (!help && next_element(&list, &name, &value)) {
        help = !value && (!strcmp(name, "help") || !strcmp(name, "?"));
        free(name);
        free(value);
    }
    return help;
}

/* ---- sets ---- */

static void add_table(ImgOptSet *set, const ImgOptDesc *t)
{
    for (; t && t->name; t++) {
        bool dup = false;
        for (int i = 0; i < set->n && !dup; i++) {
            dup = !strcmp(set->desc[i]->name, t->name);
        }
        if (!dup && set->n < IMG_OPTS_MAX) {
            set->desc[set->n++] = t;
        }
    }
}

bool img_create_optset(const char *fmt, bool with_protocol, const char *errfile,
                       ImgOptSet *set)
{
    memset(set, 0, sizeof(*set));
    const ImgOptDesc *t = create_table(fmt);
    if (!t) {
        img_error("%s%s%s '%s'%s\n", errfile ? errfile : "", errfile ? ": " : "",
                  img_format_name_known(fmt) ? "Format driver" : "Unknown file format", fmt,
                  img_format_name_known(fmt) ? " does not support image creation" : "");
        return false;
    }
    add_table(set, t);
    if (with_protocol) {
        add_table(set, file_create_opts);
    }
    return true;
}

bool img_amend_optset(const char *fmt, ImgOptSet *set)
{
    memset(set, 0, sizeof(*set));
    if (strcmp(fmt, "qcow2")) {
        if (img_format_name_known(fmt)) {
            img_error("Format driver '%s' does not support option amendment\n", fmt);
        } else {
            img_error("Unknown file format '%s'\n", fmt);
        }
        return false;
    }
    add_table(set, qcow2_amend_opts);
    return true;
}

void img_optset_free(ImgOptSet *set)
{
    for (int i = 0; i < set->n; i++) {
        free(set->str[i]);
        set->str[i] = NULL;
    }
}

static int find(const ImgOptSet *set, const char *name)
{
    for (int i = 0; i < set->n; i++) {
        if (!strcmp(set->desc[i]->name, name)) {
            return i;
        }
    }
    return -1;
}

const char *img_optset_get(const ImgOptSet *set, const char *name)
{
    int i = find(set, name);
    return i < 0 ? NULL : set->str[i];
}

static bool bool_value(const char *v, bool *out)
{
    static const char *const yes[] = { "on", "yes", "true", "y" };
    static const char *const no[] = { "off", "no", "false", "n" };
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (!strcmp(v, yes[i]) || !strcmp(v, no[i])) {
            *out = !strcmp(v, yes[i]);
            return true;
        }
    }
    return false;
}

static bool check_value(const ImgOptDesc *d, const char *v, uint64_t *num, Error **errp)
{
    bool b;
    char *end;
    switch (d->type) {
    case IMG_OPT_BOOL:
        if (!bool_value(v, &b)) {
            error_setg(errp, "Parameter '%s' expects 'on' or 'off'", d->name);
            return false;
        }
        *num = b;
        return true;
    case IMG_OPT_NUM:
        errno = 0;
        *num = strtoull(v, &end, 0);
        if (!*v || *end || errno || *v == '-') {
            error_setg(errp, "Parameter '%s' expects a number", d->name);
            return false;
        }
        return true;
    case IMG_OPT_SIZE:
        if (img_parse_size(v, num) < 0) {
            error_setg(errp, "Parameter '%s' expects a non-negative number below 2^64\n"
                       "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
                       "tera-, peta-\nand exabytes, respectively.", d->name);
            return false;
        }
        return true;
    case IMG_OPT_STR:
        return true;
    }
    return false;
}

bool img_optset_set(ImgOptSet *set, const char *name, const char *value, Error **errp)
{
    int i = find(set, name);
    if (i < 0) {
        error_setg(errp, "Invalid parameter '%s'", name);
        return false;
    }
    uint64_t num = 0;
    if (!check_value(set->desc[i], value, &num, errp)) {
        return false;
    }
    free(set->str[i]);
    set->str[i] = xstrdup(value);
    set->num[i] = num;
    return true;
}

bool img_optset_parse(ImgOptSet *set, const char *list, Error **errp)
{
    char *name, *value;
    bool ok = true;
    while (ok && next_element(&list, &name, &value)) {
        /* A bare name is that option set to "on". */
        ok = img_optset_set(set, name, value ? value : "on", errp);
        free(name);
        free(value);
    }
    return ok;
}

static bool table_has(const ImgOptDesc *t, const char *name)
{
    for (; t && t->name; t++) {
        if (!strcmp(t->name, name)) {
            return true;
        }
    }
    return false;
}

bool img_amend_optset_parse(ImgOptSet *set, const char *fmt, const char *list, Error **errp)
{
    char *name, *value;
    bool ok = true;
    while (ok && next_element(&list, &name, &value)) {
        if (find(set, name) < 0 && table_has(create_table(fmt), name)) {
            error_setg(errp, "Invalid parameter '%s'\nThis option is only supported for "
                       "image creation", name);
            ok = false;
        } else {
            ok = img_optset_set(set, name, value ? value : "on", errp);
        }
        free(name);
        free(value);
    }
    return ok;
}

bool img_add_object(const char *spec)
{
    Error *err = NULL;
    if (!img_object_add(spec, &err)) {
        img_report_err(err);
        return false;
    }
    return true;
}

/* ---- listings ---- */

static const char *type_name(ImgOptType t)
{
    static const char *const names[] = { "str", "bool (on/off)", "num", "size" };
    return names[t];
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_help_lines(const ImgOptSet *set)
{
    char *lines[IMG_OPTS_MAX];
    for (int i = 0; i < set->n; i++) {
        char *head = xasprintf("%s=<%s>", set->desc[i]->name, type_name(set->desc[i]->type));
        lines[i] = xasprintf("  %-22s - %s", head, set->desc[i]->help);
        free(head);
    }
    qsort(lines, (size_t)set->n, sizeof(lines[0]), cmp_lines);
    for (int i = 0; i < set->n; i++) {
        printf("%s\n", lines[i]);
        free(lines[i]);
    }
}

int img_print_create_help(const char *filename, const char *fmt)
{
    ImgOptSet set;
    if (!img_create_optset(fmt, filename != NULL, NULL, &set)) {
        return 1;
    }
    if (filename) {
        printf("Supported options:\n");
    } else {
        printf("Supported %s options:\n", fmt);
    }
    print_help_lines(&set);
    if (!filename) {
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    }
    return 0;
}

int img_print_amend_help(const char *fmt)
{
    ImgOptSet set;
    if (!img_amend_optset(fmt, &set)) {
        return 1;
    }
    printf("Amend options for '%s':\n", fmt);
    print_help_lines(&set);
    return 0;
}

void img_optset_print(const ImgOptSet *set)
{
    for (int i = 0; i < set->n; i++) {
        const ImgOptDesc *d = set->desc[i];
        const char *v = set->str[i] ? set->str[i] : d->def;
        if (!v) {
            continue;
        }
        printf(" %s=", d->name);
        if (set->str[i] && (d->type == IMG_OPT_SIZE || d->type == IMG_OPT_NUM)) {
            printf("%" PRIu64, set->num[i]);
        } else if (d->type == IMG_OPT_STR) {
            for (const char *c = v; *c; c++) {
                fputs(*c == ',' ? ",," : (char[]){ *c, 0 }, stdout);
            }
        } else {
            fputs(v, stdout);
        }
    }
}

/* ---- from strings to creation options ---- */

static bool given(const ImgOptSet *set, const char *name, uint64_t *num)
{
    int i = find(set, name);
    if (i < 0 || !set->str[i]) {
        return false;
    }
    if (num) {
        *num = set->num[i];
    }
    return true;
}

static int pick(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (names[i] && !strcmp(v, names[i])) {
            return i;
        }
    }
    return -1;
}

static bool encryption_options(const ImgOptSet *set, BlockCreateOptions *o, Error **errp)
{
    const char *fmt = img_optset_get(set, "encrypt.format");
    const char *secret = img_optset_get(set, "encrypt.key-secret");
    uint64_t legacy = 0;
    bool has_legacy = given(set, "encryption", &legacy);
    if (has_legacy && fmt) {
        error_setg(errp, "'encrypt.format' and its alias 'encryption' can't be used at the "
                   "same time");
        return false;
    }
    if (has_legacy && legacy) {
        fmt = "aes";
    }
    if (!fmt) {
        if (secret) {
            error_setg(errp, "Parameter 'encrypt.format' is missing");
            return false;
        }
        return true;
    }
    if (strcmp(fmt, "aes") && strcmp(fmt, "luks")) {
        error_setg(errp, "Parameter 'format' does not accept value '%s'", fmt);
        return false;
    }
    if (!secret) {
        error_setg(errp, "Parameter 'encrypt.key-secret' is required for cipher");
        return false;
    }
    if (!img_secret_exists(secret)) {
        error_setg(errp, "No secret with id '%s'", secret);
        return false;
    }
    static const char *const luks_names[] = {
        "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg",
        "encrypt.ivgen-hash-alg", "encrypt.hash-alg", "encrypt.iter-time",
    };
    if (strcmp(fmt, "luks")) {
        for (size_t i = 0; i < ARRAY_SIZE(luks_names); i++) {
            if (given(set, luks_names[i], NULL)) {
                error_setg(errp, "Parameter '%s' is unexpected", luks_names[i]);
                return false;
            }
        }
        o->encrypt_format = BLK_ENCRYPT_AES;
        return true;
    }
    BlockLuksOptions *l = &o->luks;
    l->secret = img_secret_data(secret, &l->secret_len);
    l->cipher_alg = img_optset_get(set, "encrypt.cipher-alg");
    l->cipher_mode = img_optset_get(set, "encrypt.cipher-mode");
    l->ivgen_alg = img_optset_get(set, "encrypt.ivgen-alg");
    l->ivgen_hash_alg = img_optset_get(set, "encrypt.ivgen-hash-alg");
    l->hash_alg = img_optset_get(set, "encrypt.hash-alg");
    l->has_iter_time = given(set, "encrypt.iter-time", &l->iter_time);
    o->encrypt_format = BLK_ENCRYPT_LUKS;
    return true;
}

bool img_optset_to_create(const ImgOptSet *set, BlockCreateOptions *o, Error **errp)
{
    uint64_t n;
    const char *v;
    bool qcow2 = !strcmp(o->format, "qcow2");
    if (given(set, "size", &n)) {
        o->size = n;
        o->given |= BLK_CREATE_GIVEN_SIZE;
    }
    if (given(set, "cluster_size", &n)) {
        o->cluster_size = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;    /* checked by the format */
    }
    if (given(set, "extent_size_hint", &n)) {
        o->extent_size_hint = n;
    }
    if (given(set, "nocow", &n)) {
        o->nocow = n;
    }
    if (given(set, "lazy_refcounts", &n)) {
        o->lazy_refcounts = n;
        o->given |= BLK_CREATE_GIVEN_LAZY;
    }
    if (given(set, "extended_l2", &n)) {
        o->extended_l2 = n;
    }
    if (given(set, "data_file_raw", &n)) {
        o->data_file_raw = n;
    }
    if (given(set, "refcount_bits", &n)) {
        o->refcount_bits = n == 0 || n > 64 ? -1 : (int)n;   /* -1: a width it refuses */
        o->given |= BLK_CREATE_GIVEN_REFCOUNT_BITS;
    }
    if ((v = img_optset_get(set, "data_file"))) {
        o->data_file = v;
    }
    if ((v = img_optset_get(set, "backing_file"))) {
        o->backing_file = v;
    }
    if ((v = img_optset_get(set, "backing_fmt"))) {
        o->backing_fmt = v;
    }
    if ((v = img_optset_get(set, "compat"))) {
        static const char *const levels[] = { "0.10", "v2", "1.1", "v3" };
        int i = pick(v, levels, 4);
        if (i < 0) {
            error_setg(errp, "Parameter 'version' does not accept value '%s'", v);
            return false;
        }
        o->compat = i < 2 ? 2 : 3;
        o->given |= BLK_CREATE_GIVEN_COMPAT;
    }
    if ((v = img_optset_get(set, "preallocation"))) {
        static const char *const modes[] = { "off", "metadata", "falloc", "full" };
        int i = pick(v, modes, 4);
        if (i < 0) {
            error_setg(errp, qcow2 ? "Parameter 'preallocation' does not accept value '%s'"
                                   : "invalid parameter value: %s", v);
            return false;
        }
        if (!qcow2 && i == BLK_PREALLOC_METADATA) {
            error_setg(errp, "Unsupported preallocation mode: %s", v);
            return false;
        }
        o->preallocation = i;
        o->given |= BLK_CREATE_GIVEN_PREALLOC;
    }
    if ((v = img_optset_get(set, "compression_type"))) {
        static const char *const types[] = { "zlib", "zstd" };
        int i = pick(v, types, 2);
        if (i < 0) {
            error_setg(errp, "Parameter 'compression-type' does not accept value '%s'", v);
            return false;
        }
        o->compression_type = i;
    }
    return !qcow2 || encryption_options(set, o, errp);
}
