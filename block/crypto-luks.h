/*
 * LUKS version 1 key management for encrypted images.
 *
 * A LUKS1 header area starts with a 592-byte big-endian header (magic,
 * cipher name and mode, hash, payload offset, master key length, a PBKDF2
 * digest of the master key, a UUID and eight key slots).  Each key slot
 * holds the master key spread over 4000 stripes by the anti-forensic
 * splitter, encrypted sector by sector with a key derived from a
 * passphrase by PBKDF2.  Crypto comes from nettle, randomness from
 * getrandom().
 */
#ifndef VIREO_BLOCK_CRYPTO_LUKS_H
#define VIREO_BLOCK_CRYPTO_LUKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/block.h"
#include "util/error.h"

#define LUKS_HEADER_SIZE   592
#define LUKS_SECTOR_SIZE   512
#define LUKS_NUM_SLOTS     8
#define LUKS_STRIPES       4000

/*
 * Build the header area of a new LUKS1 volume: a random master key, slot 0
 * active under @opts->secret, slots 1-7 laid out but disabled.  On success
 * *@area (malloc'ed, *@len bytes, the payload offset) holds the whole area.
 */
int luks_create_area(const BlockLuksOptions *opts, uint8_t **area, size_t *len,
                     Error **errp);

/* Refuse @opts as luks_create_area() would, without computing anything. */
int luks_check_options(const BlockLuksOptions *opts, Error **errp);

/*
 * An unlocked volume: its master key and its cipher by qemu-img's names.
 */
typedef struct LuksVolume {
    uint8_t master_key[64];
    size_t key_bytes;
    uint32_t payload_offset;      /* sectors from the start of the header area */
    char cipher_alg[8];           /* aes-128, aes-192, aes-256 */
    char cipher_mode[8];          /* xts, cbc */
    char ivgen_alg[8];            /* plain, plain64, essiv */
    char ivgen_hash_alg[16];      /* essiv only, else "" */
    char hash_alg[16];
} LuksVolume;

/*
 * Unlock the LUKS1 header area @area (@len bytes, read from an image: every
 * field is checked) with @secret, trying each active key slot.  Fails with
 * "Invalid password, cannot unlock any keyslot" when none opens.
 */
int luks_unlock(const uint8_t *area, size_t len, const uint8_t *secret, size_t secret_len,
                LuksVolume *v, Error **errp);

/*
 * En- or decrypt @len bytes (whole 512-byte sectors) of payload in place,
 * the first being sector @sector.
 */
int luks_payload_crypt(const LuksVolume *v, bool encrypt, uint64_t sector, uint8_t *buf,
                       size_t len, Error **errp);

/* Fill @buf with @len bytes from the kernel's random source. */
int luks_random(uint8_t *buf, size_t len, Error **errp);

#endif
