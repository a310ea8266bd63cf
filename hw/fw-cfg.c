/*
 * fw_cfg device: items, the byte-wise data port, the DMA interface and the
 * file directory. See hw/fw-cfg.h for the guest-visible layout.
 */
#include "hw/fw-cfg.h"

#include <byteswap.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory/address-space.h"
#include "util/osdep.h"

/* Keys are masked with this; bit 15 picks the architecture table. */
#define FW_CFG_ENTRY_MASK   0x3fff
#define FW_CFG_MAX_ENTRY    (FW_CFG_FILE_FIRST + FW_CFG_FILE_SLOTS)
#define FW_CFG_INVALID      0xffff

/* Register offsets inside the 12-port window. */
#define REG_SELECTOR        0
#define REG_DATA            1
#define REG_DMA             4
#define REG_DMA_LOW         8

/* Host-side bound on a -fw_cfg file: the whole item is kept in memory. */
#define FW_CFG_USER_FILE_MAX (256u << 20)

typedef struct FwCfgItem {
    uint8_t *data;          /* NULL when the key is unused */
    uint32_t len;
    bool writable;          /* DMA writes allowed */
} FwCfgItem;

/* One file directory entry as the guest sees it (all big-endian). */
typedef struct __attribute__((packed)) FwCfgFileEntry {
    uint32_t size;
    uint16_t select;
    uint16_t reserved;
    char name[FW_CFG_MAX_FILE_PATH];
} FwCfgFileEntry;

/* The DMA descriptor in guest RAM (all big-endian). */
typedef struct __attribute__((packed)) FwCfgDmaAccess {
    uint32_t control;
    uint32_t length;
    uint64_t address;
} FwCfgDmaAccess;

struct FwCfg {
    IoRegion *io;
    GuestMemory *mem;                   /* DMA target */
    FwCfgItem items[2][FW_CFG_MAX_ENTRY];   /* [generic, arch-local] */
    FwCfgFileEntry files[FW_CFG_FILE_SLOTS];    /* host byte order, by key */
    unsigned nr_files;
    uint16_t cur_key;                   /* FW_CFG_INVALID: nothing selected */
    uint64_t cur_offset;                /* next byte of the selected item */
    uint64_t dma_addr;                  /* the DMA address register */
};

static FwCfgItem *item_for_key(FwCfg *s, uint16_t key)
{
    if (key == FW_CFG_INVALID || (key & FW_CFG_ENTRY_MASK) >= FW_CFG_MAX_ENTRY) {
        return NULL;
    }
    FwCfgItem *it = &s->items[!!(key & FW_CFG_ARCH_LOCAL)][key & FW_CFG_ENTRY_MASK];
    return it->data ? it : NULL;
}

static void select_key(FwCfg *s, uint16_t key)
{
    s->cur_offset = 0;
    bool in_range = (key & FW_CFG_ENTRY_MASK) < FW_CFG_MAX_ENTRY;
    s->cur_key = in_range ? key : FW_CFG_INVALID;
}

static uint8_t read_data_byte(FwCfg *s)
{
    FwCfgItem *it = item_for_key(s, s->cur_key);
    if (!it || s->cur_offset >= it->len) {
        return 0;
    }
    return it->data[s->cur_offset++];
}

/* ---- DMA ---- */

/*
 * Perform one descriptor's transfer; returns the status for the guest. The
 * whole buffer must lie in RAM before a byte moves: a buffer that runs off
 * the end of RAM is refused, not filled as far as it goes, so an error never
 * leaves guest memory half written.
 */
static uint32_t dma_transfer(FwCfg *s, const FwCfgDmaAccess *d)
{
    uint32_t control = be32toh(d->control);
    uint32_t length = be32toh(d->length);
    uint64_t gpa = be64toh(d->address);

    if (control & FW_CFG_DMA_CTL_SELECT) {
        select_key(s, control >> 16);
    }
    bool read = control & FW_CFG_DMA_CTL_READ;
    bool write = !read && (control & FW_CFG_DMA_CTL_WRITE);
    bool skip = !read && !write && (control & FW_CFG_DMA_CTL_SKIP);
    if (!read && !write && !skip) {
        return 0;
    }
    FwCfgItem *it = item_for_key(s, s->cur_key);
    uint64_t avail = (it && s->cur_offset < it->len) ? it->len - s->cur_offset : 0;
    /* Inside the item, move what it has; past its end, zeros (reads) or nothing. */
    uint32_t len = (uint32_t)MIN((uint64_t)length, avail);
    if (write && (len != length || !it || !it->writable)) {
        return FW_CFG_DMA_CTL_ERROR;    /* writes may not run past the item */
    }
    uint8_t *buf = NULL;
    if ((read || write) && length) {
        buf = gmem_ptr(s->mem, gpa, length);
        if (!buf) {
            return FW_CFG_DMA_CTL_ERROR;
        }
    }
    if (read && length) {
        if (len) {
            memcpy(buf, it->data + s->cur_offset, len);
        }
        memset(buf + len, 0, length - len);
    } else if (write && length) {
        memcpy(it->data + s->cur_offset, buf, length);
    }
    s->cur_offset += length;
    return 0;
}

static void dma_run(FwCfg *s)
{
    uint64_t desc_addr = s->dma_addr;
    FwCfgDmaAccess d;

    s->dma_addr = 0;            /* the register reads 0 after an operation */
    if (!gmem_read(s->mem, desc_addr, &d, sizeof(d))) {
        /* Unreadable descriptor: flag it if at least the control word is RAM. */
        gmem_write_u32(s->mem, desc_addr, htobe32(FW_CFG_DMA_CTL_ERROR));
        return;
    }
    uint32_t status = dma_transfer(s, &d);
    gmem_write_u32(s->mem, desc_addr, htobe32(status));
}

/* Guest values arrive in x86 (little-endian) byte order; the register is big-endian. */
static uint64_t swap_for_size(uint64_t v, unsigned size)
{
    switch (size) {
    case 2: return bswap_16(v);
    case 4: return bswap_32(v);
    case 8: return bswap_64(v);
    default: return v;
    }
}

static uint64_t dma_reg_read(unsigned off, unsigned size)
{
    if (off + size > 8) {
        return 0;
    }
    unsigned shift = (8 - off - size) * 8;
    uint64_t mask = size == 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
    return swap_for_size((FW_CFG_DMA_SIGNATURE >> shift) & mask, size);
}

static void dma_reg_write(FwCfg *s, unsigned off, uint64_t value, unsigned size)
{
    uint64_t v = swap_for_size(value, size);
    if (size == 4 && off == 0) {
        s->dma_addr = v << 32;
    } else if (size == 4 && off == 4) {
        s->dma_addr |= v;
        dma_run(s);
    } else if (size == 8 && off == 0) {
        s->dma_addr = v;
        dma_run(s);
    }
    /* Other widths and offsets do nothing, as on the real device. */
}

/* ---- port decoding ---- */

static uint64_t fw_cfg_io_read(void *opaque, uint64_t offset, unsigned size)
{
    FwCfg *s = opaque;
    if (offset >= REG_DMA) {
        return dma_reg_read(offset - REG_DMA, size);
    }
    if (offset + size <= REG_DATA + 1) {
        /* Both ports of the pair return a data byte, one per access. */
        return read_data_byte(s);
    }
    return size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
}

static void fw_cfg_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    FwCfg *s = opaque;
    if (offset >= REG_DMA) {
        dma_reg_write(s, offset - REG_DMA, value, size);
    } else if (offset == REG_SELECTOR && size == 2) {
        select_key(s, value);
    }
    /* Data port writes are ignored (writes happen only through DMA). */
}

static const IoOps fw_cfg_io_ops = {
    .read = fw_cfg_io_read,
    .write = fw_cfg_io_write,
};

/* ---- items ---- */

static bool set_item(FwCfg *s, uint16_t key, uint8_t *data, size_t len,
                     bool writable, Error **errp)
{
    if ((key & FW_CFG_ENTRY_MASK) >= FW_CFG_MAX_ENTRY || len > UINT32_MAX) {
        error_setg(errp, "fw_cfg: invalid item 0x%x", key);
        free(data);
        return false;
    }
    FwCfgItem *it = &s->items[!!(key & FW_CFG_ARCH_LOCAL)][key & FW_CFG_ENTRY_MASK];
    free(it->data);
    /* Zero-length items still need a non-NULL pointer to count as present. */
    it->data = data ? data : xzalloc(1);
    it->len = len;
    it->writable = writable;
    return true;
}

bool fw_cfg_add_bytes(FwCfg *s, uint16_t key, const void *data, size_t len,
                      Error **errp)
{
    uint8_t *copy = xmalloc(len ? len : 1);
    memcpy(copy, data, len);
    return set_item(s, key, copy, len, false, errp);
}

bool fw_cfg_add_u16(FwCfg *s, uint16_t key, uint16_t value, Error **errp)
{
    uint16_t le = htole16(value);
    return fw_cfg_add_bytes(s, key, &le, sizeof(le), errp);
}

bool fw_cfg_add_u32(FwCfg *s, uint16_t key, uint32_t value, Error **errp)
{
    uint32_t le = htole32(value);
    return fw_cfg_add_bytes(s, key, &le, sizeof(le), errp);
}

bool fw_cfg_add_u64(FwCfg *s, uint16_t key, uint64_t value, Error **errp)
{
    uint64_t le = htole64(value);
    return fw_cfg_add_bytes(s, key, &le, sizeof(le), errp);
}

static int compare_file_names(const void *a, const void *b)
{
    return strcmp(((const FwCfgFileEntry *)a)->name, ((const FwCfgFileEntry *)b)->name);
}

/* Rebuild the FW_CFG_FILE_DIR item: a count, then entries sorted by name. */
static void rebuild_directory(FwCfg *s)
{
    size_t len = 4 + s->nr_files * sizeof(FwCfgFileEntry);
    uint8_t *dir = xzalloc(len);
    uint32_t count = htobe32(s->nr_files);
    memcpy(dir, &count, 4);

    FwCfgFileEntry *entries = (FwCfgFileEntry *)(dir + 4);
    memcpy(entries, s->files, s->nr_files * sizeof(FwCfgFileEntry));
    qsort(entries, s->nr_files, sizeof(*entries), compare_file_names);
    for (unsigned i = 0; i < s->nr_files; i++) {
        entries[i].size = htobe32(entries[i].size);
        entries[i].select = htobe16(entries[i].select);
    }
    set_item(s, FW_CFG_FILE_DIR, dir, len, false, NULL);
}

static bool file_name_in_use(const FwCfg *s, const char *name)
{
    for (unsigned i = 0; i < s->nr_files; i++) {
        if (strcmp(s->files[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static bool check_file_name(const FwCfg *s, const char *name, Error **errp)
{
    if (!name || !*name) {
        error_setg(errp, "fw_cfg: an item needs a non-empty name");
        return false;
    }
    if (strlen(name) >= FW_CFG_MAX_FILE_PATH) {
        error_setg(errp, "fw_cfg: name '%s' is too long (at most %d bytes)",
                   name, FW_CFG_MAX_FILE_PATH - 1);
        return false;
    }
    if (file_name_in_use(s, name)) {
        error_setg(errp, "fw_cfg: duplicate item name '%s'", name);
        return false;
    }
    if (s->nr_files >= FW_CFG_FILE_SLOTS) {
        error_setg(errp, "fw_cfg: too many items (at most %d)", FW_CFG_FILE_SLOTS);
        return false;
    }
    return true;
}

bool fw_cfg_add_file(FwCfg *s, const char *name, void *data, size_t len,
                     bool writable, Error **errp)
{
    if (!check_file_name(s, name, errp)) {
        free(data);
        return false;
    }
    uint16_t key = FW_CFG_FILE_FIRST + s->nr_files;
    if (!set_item(s, key, data, len, writable, errp)) {
        return false;
    }
    FwCfgFileEntry *e = &s->files[s->nr_files++];
    memset(e, 0, sizeof(*e));
    e->size = len;
    e->select = key;
    strcpy(e->name, name);
    rebuild_directory(s);
    return true;
}

/* Read a whole host file for a -fw_cfg item. */
static bool load_host_file(const char *path, uint8_t **data, size_t *len, Error **errp)
{
    int fd = vireo_open(path, O_RDONLY, 0, errp);
    if (fd < 0) {
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        error_setg(errp, "fw_cfg: '%s' is not a regular file", path);
        close(fd);
        return false;
    }
    if ((uint64_t)st.st_size > FW_CFG_USER_FILE_MAX) {
        error_setg(errp, "fw_cfg: '%s' is too large (%lld bytes, at most %u)",
                   path, (long long)st.st_size, FW_CFG_USER_FILE_MAX);
        close(fd);
        return false;
    }
    uint8_t *buf = xmalloc(st.st_size ? st.st_size : 1);
    ssize_t n = read_full(fd, buf, st.st_size);
    int saved_errno = errno;
    close(fd);
    if (n != st.st_size) {
        error_setg_errno(errp, n < 0 ? saved_errno : EIO,
                         "fw_cfg: cannot read '%s'", path);
        free(buf);
        return false;
    }
    *data = buf;
    *len = st.st_size;
    return true;
}

static bool add_user_item(FwCfg *s, const FwCfgOption *o, Error **errp)
{
    if (!check_file_name(s, o->name, errp)) {
        return false;
    }
    if (!!o->file == !!o->string) {
        error_setg(errp, "fw_cfg '%s': give exactly one of file= and string=", o->name);
        return false;
    }
    if (strncmp(o->name, "opt/", 4) != 0) {
        warn_report("fw_cfg item name '%s' should start with \"opt/\"", o->name);
    }
    uint8_t *data;
    size_t len;
    if (o->string) {
        len = strlen(o->string);
        data = xmalloc(len ? len : 1);
        memcpy(data, o->string, len);
    } else if (!load_host_file(o->file, &data, &len, errp)) {
        return false;
    }
    return fw_cfg_add_file(s, o->name, data, len, false, errp);
}

bool fw_cfg_add_user_items(FwCfg *s, const FwCfgOption *opts, Error **errp)
{
    for (const FwCfgOption *o = opts; o; o = o->next) {
        if (!add_user_item(s, o, errp)) {
            return false;
        }
    }
    return true;
}

void fw_cfg_reset(FwCfg *s)
{
    s->cur_key = FW_CFG_INVALID;
    s->cur_offset = 0;
    s->dma_addr = 0;
}

FwCfg *fw_cfg_create(uint16_t io_base, GuestMemory *mem, Error **errp)
{
    FwCfg *s = xzalloc(sizeof(*s));
    s->mem = mem;
    s->io = io_region_add(AS_PIO, "fw_cfg", io_base, FW_CFG_IO_SIZE,
                          &fw_cfg_io_ops, s, errp);
    if (!s->io) {
        free(s);
        return NULL;
    }
    fw_cfg_reset(s);
    fw_cfg_add_bytes(s, FW_CFG_SIGNATURE, "QEMU", 4, NULL);
    fw_cfg_add_u32(s, FW_CFG_ID, FW_CFG_VERSION | FW_CFG_VERSION_DMA, NULL);
    uint8_t uuid[16] = { 0 };
    fw_cfg_add_bytes(s, FW_CFG_UUID, uuid, sizeof(uuid), NULL);
    rebuild_directory(s);
    return s;
}

void fw_cfg_destroy(FwCfg *s)
{
    if (!s) {
        return;
    }
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < FW_CFG_MAX_ENTRY; i++) {
            free(s->items[t][i].data);
        }
    }
    io_region_del(s->io);
    free(s);
}
