/*
 * fw_cfg: the firmware configuration device the guest reads the kernel
 * command line, RAM size, CPU count and -fw_cfg files from.
 *
 * Guest interface (x86 port I/O, per QEMU's fw_cfg specification):
 *   base+0  selector, 16-bit little-endian write
 *   base+1  data, 8-bit; each read returns the next byte of the selected item
 *   base+4  DMA address, 64-bit big-endian; a write to the low half (base+8)
 *           or a 64-bit write at base+4 starts a transfer; reads return
 *           "QEMU CFG"
 * Items are numbered by a 16-bit key: fixed keys below FW_CFG_FILE_FIRST,
 * named "files" from FW_CFG_FILE_FIRST on, listed in the FW_CFG_FILE_DIR item.
 */
#ifndef VIREO_HW_FW_CFG_H
#define VIREO_HW_FW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vm-config.h"
#include "memory/guest-memory.h"
#include "util/error.h"

#define FW_CFG_IO_BASE      0x510
#define FW_CFG_IO_SIZE      12

/* Fixed keys. */
#define FW_CFG_SIGNATURE    0x0000
#define FW_CFG_ID           0x0001
#define FW_CFG_UUID         0x0002
#define FW_CFG_RAM_SIZE     0x0003
#define FW_CFG_NOGRAPHIC    0x0004
#define FW_CFG_NB_CPUS      0x0005
#define FW_CFG_BOOT_MENU    0x000e
#define FW_CFG_MAX_CPUS     0x000f
#define FW_CFG_CMDLINE_SIZE 0x0014
#define FW_CFG_CMDLINE_DATA 0x0015
#define FW_CFG_FILE_DIR     0x0019
#define FW_CFG_FILE_FIRST   0x0020
#define FW_CFG_FILE_SLOTS   0x0020  /* at most this many files */
#define FW_CFG_ARCH_LOCAL   0x8000  /* selector bit: architecture-specific key */

/* FW_CFG_ID feature bits. */
#define FW_CFG_VERSION      0x01    /* the traditional port interface */
#define FW_CFG_VERSION_DMA  0x02

/* DMA control word bits (the selected key sits in the upper 16 bits). */
#define FW_CFG_DMA_CTL_ERROR  0x01
#define FW_CFG_DMA_CTL_READ   0x02
#define FW_CFG_DMA_CTL_SKIP   0x04
#define FW_CFG_DMA_CTL_SELECT 0x08
#define FW_CFG_DMA_CTL_WRITE  0x10

#define FW_CFG_DMA_SIGNATURE 0x51454d5520434647ULL   /* "QEMU CFG" */

/* A file name including its NUL terminator fits in this many bytes. */
#define FW_CFG_MAX_FILE_PATH 56

typedef struct FwCfg FwCfg;

/* Register the ports; DMA transfers go to and from mem. */
FwCfg *fw_cfg_create(uint16_t io_base, GuestMemory *mem, Error **errp);
void fw_cfg_destroy(FwCfg *s);

/* Fixed-key items. The data is copied; integers are stored little-endian. */
bool fw_cfg_add_bytes(FwCfg *s, uint16_t key, const void *data, size_t len,
                      Error **errp);
bool fw_cfg_add_u16(FwCfg *s, uint16_t key, uint16_t value, Error **errp);
bool fw_cfg_add_u32(FwCfg *s, uint16_t key, uint32_t value, Error **errp);
bool fw_cfg_add_u64(FwCfg *s, uint16_t key, uint64_t value, Error **errp);

/*
 * Add a named file item under the next free key. Takes ownership of data
 * (malloc'd, freed by fw_cfg_destroy) on success and on failure. The guest
 * may overwrite the item through DMA only when writable.
 */
bool fw_cfg_add_file(FwCfg *s, const char *name, void *data, size_t len,
                     bool writable, Error **errp);

/*
 * Apply the -fw_cfg options: each needs a name of 1..55 bytes, unique, and
 * exactly one of file= (read through vireo_open) or string= (stored without
 * its NUL). Names outside "opt/" draw a warning, as they may clash with
 * names firmware uses.
 */
bool fw_cfg_add_user_items(FwCfg *s, const FwCfgOption *opts, Error **errp);

/* Back to power-on state: no item selected, DMA address cleared. */
void fw_cfg_reset(FwCfg *s);

#endif
