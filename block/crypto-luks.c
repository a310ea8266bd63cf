/*
 * Creating LUKS1 header areas (layout in block/crypto-luks.h).
 *
 * Layout of a new volume: the header in the first 4 KiB, then the eight key
 * slots' material, each rounded up to 4 KiB, then the payload.  The key
 * material of a slot is encrypted with the volume's own cipher, mode and IV
 * generator, keyed by PBKDF2(passphrase), with sector numbers counted from
 * the start of the material.  PBKDF2 iteration counts follow the requested
 * time: the master key digest gets an eighth of it, the slot all of it,
 * with at least 1000 iterations each.
 */
#include "block/crypto-luks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <nettle/aes.h>
#include <nettle/cbc.h>
#include <nettle/nettle-meta.h>
#include <nettle/pbkdf2.h>
#include <nettle/xts.h>

#include "util/byteorder.h"
#include "util/osdep.h"

#define LUKS_MAGIC_LEN        6
#define LUKS_SLOT_ACTIVE      0x00ac71f3u
#define LUKS_SLOT_DISABLED    0x0000deadu
#define LUKS_SALT_LEN         32
#define LUKS_DIGEST_LEN       20
#define LUKS_ALIGN_SECTORS    (4096 / LUKS_SECTOR_SIZE)
#define LUKS_MIN_ITERS        1000
#define LUKS_DEFAULT_ITER_MS  2000

static const uint8_t luks_magic[LUKS_MAGIC_LEN] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

enum { MODE_XTS, MODE_CBC };
enum { IV_PLAIN, IV_PLAIN64, IV_ESSIV };

typedef struct LuksHash {
    const char *name;
    const struct nettle_hash *hash;
    void (*pbkdf2)(size_t key_len, const uint8_t *key, unsigned iter, size_t salt_len,
                   const uint8_t *salt, size_t len, uint8_t *dst);
} LuksHash;

static const LuksHash luks_hashes[] = {
    { "sha1", &nettle_sha1, nettle_pbkdf2_hmac_sha1 },
    { "sha256", &nettle_sha256, nettle_pbkdf2_hmac_sha256 },
    { "sha384", &nettle_sha384, nettle_pbkdf2_hmac_sha384 },
    { "sha512", &nettle_sha512, nettle_pbkdf2_hmac_sha512 },
};

/* One AES key of 16, 24 or 32 bytes, usable through nettle's generic modes. */
typedef struct AesKey {
    union {
        struct aes128_ctx a128;
        struct aes192_ctx a192;
        struct aes256_ctx a256;
    } u;
    nettle_cipher_func *encrypt;
} AesKey;

static void aes_key_set_decrypt(AesKey *k, size_t len, const uint8_t *key)
{
    if (len == 16) {
        aes128_set_decrypt_key(&k->u.a128, key);
        k->encrypt = (nettle_cipher_func *)aes128_decrypt;
    } else if (len == 24) {
        aes192_set_decrypt_key(&k->u.a192, key);
        k->encrypt = (nettle_cipher_func *)aes192_decrypt;
    } else {
        aes256_set_decrypt_key(&k->u.a256, key);
        k->encrypt = (nettle_cipher_func *)aes256_decrypt;
    }
}

static void aes_key_set(AesKey *k, size_t len, const uint8_t *key)
{
    if (len == 16) {
        aes128_set_encrypt_key(&k->u.a128, key);
        k->encrypt = (nettle_cipher_func *)aes128_encrypt;
    } else if (len == 24) {
        aes192_set_encrypt_key(&k->u.a192, key);
        k->encrypt = (nettle_cipher_func *)aes192_encrypt;
    } else {
        aes256_set_encrypt_key(&k->u.a256, key);
        k->encrypt = (nettle_cipher_func *)aes256_encrypt;
    }
}

/* A parsed choice of cipher: what both the payload and the key slots use. */
typedef struct LuksCipher {
    size_t aes_key_len;           /* 16, 24, 32 */
    int mode;                     /* MODE_* */
    int ivgen;                    /* IV_* */
    const LuksHash *ivgen_hash;   /* IV_ESSIV */
    const LuksHash *hash;
} LuksCipher;

static size_t cipher_key_bytes(const LuksCipher *c)
{
    return c->mode == MODE_XTS ? 2 * c->aes_key_len : c->aes_key_len;
}

/* Encryption state for one key: the data key(s) and, for ESSIV, the IV key. */
typedef struct LuksCryptor {
    const LuksCipher *c;
    AesKey data, data_dec, tweak, essiv;     /* data_dec: the data key's decryption */
} LuksCryptor;

static int cryptor_init(LuksCryptor *cr, const LuksCipher *c, const uint8_t *key,
                        Error **errp)
{
    memset(cr, 0, sizeof(*cr));
    cr->c = c;
    aes_key_set(&cr->data, c->aes_key_len, key);
    aes_key_set_decrypt(&cr->data_dec, c->aes_key_len, key);
    if (c->mode == MODE_XTS) {
        aes_key_set(&cr->tweak, c->aes_key_len, key + c->aes_key_len);
    }
    if (c->ivgen == IV_ESSIV) {
        const struct nettle_hash *h = c->ivgen_hash->hash;
        if (h->digest_size != 16 && h->digest_size != 24 && h->digest_size != 32) {
            error_setg(errp, "No AES cipher with key size %u available", h->digest_size);
            return -1;
        }
        uint8_t ctx[512], digest[64];
        if (h->context_size > sizeof(ctx)) {
            error_setg(errp, "hash %s is not supported for ESSIV", c->ivgen_hash->name);
            return -1;
        }
        h->init(ctx);
        h->update(ctx, cipher_key_bytes(c), key);
        h->digest(ctx, h->digest_size, digest);
        aes_key_set(&cr->essiv, h->digest_size, digest);
        memset(digest, 0, sizeof(digest));
        memset(ctx, 0, sizeof(ctx));
    }
    return 0;
}

static void sector_iv(const LuksCryptor *cr, uint64_t sector, uint8_t iv[16])
{
    memset(iv, 0, 16);
    uint64_t n = cr->c->ivgen == IV_PLAIN ? (uint32_t)sector : sector;
    for (int i = 0; i < 8; i++) {
        iv[i] = (uint8_t)(n >> (8 * i));
    }
    if (cr->c->ivgen == IV_ESSIV) {
        cr->essiv.encrypt(&cr->essiv.u, 16, iv, iv);
    }
}

/*
 * Encrypt @len bytes in place as sectors numbered from @first_sector; a
 * last short sector is encrypted as one unit of its own length.
 */
static void cryptor_encrypt(const LuksCryptor *cr, uint64_t first_sector, uint8_t *buf,
                            size_t len)
{
    for (size_t off = 0; off < len; off += LUKS_SECTOR_SIZE, first_sector++) {
        size_t n = MIN((size_t)LUKS_SECTOR_SIZE, len - off);
        uint8_t iv[16];
        sector_iv(cr, first_sector, iv);
        if (cr->c->mode == MODE_XTS) {
            xts_encrypt_message(&cr->data.u, &cr->tweak.u, cr->data.encrypt, iv, n,
                                buf + off, buf + off);
        } else {
            cbc_encrypt(&cr->data.u, cr->data.encrypt, 16, iv, n, buf + off, buf + off);
        }
    }
}

static void cryptor_decrypt(const LuksCryptor *cr, uint64_t first_sector, uint8_t *buf,
                            size_t len)
{
    for (size_t off = 0; off < len; off += LUKS_SECTOR_SIZE, first_sector++) {
        size_t n = MIN((size_t)LUKS_SECTOR_SIZE, len - off);
        uint8_t iv[16];
        sector_iv(cr, first_sector, iv);
        if (cr->c->mode == MODE_XTS) {
            xts_decrypt_message(&cr->data_dec.u, &cr->tweak.u, cr->data_dec.encrypt,
                                cr->tweak.encrypt, iv, n, buf + off, buf + off);
        } else {
            cbc_decrypt(&cr->data_dec.u, cr->data_dec.encrypt, 16, iv, n, buf + off, buf + off);
        }
    }
}

int luks_random(uint8_t *buf, size_t len, Error **errp)
{
    while (len) {
        ssize_t n = getrandom(buf, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_setg_errno(errp, errno, "Unable to read random bytes");
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The splitter's diffusion: hash each digest-sized piece with its index in front. */
static void af_diffuse(const struct nettle_hash *h, uint8_t *block, size_t len)
{
    uint8_t ctx[512], digest[64];
    size_t ds = h->digest_size;
    for (size_t i = 0, off = 0; off < len; i++, off += ds) {
        size_t n = MIN(ds, len - off);
        uint8_t be[4] = { (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
                          (uint8_t)i };
        h->init(ctx);
        h->update(ctx, 4, be);
        h->update(ctx, n, block + off);
        h->digest(ctx, ds, digest);
        memcpy(block + off, digest, n);
    }
}

/* Spread @key (@len bytes) over @stripes stripes in @out (stripes * len bytes). */
static int af_split(const struct nettle_hash *h, const uint8_t *key, size_t len,
                    unsigned stripes, uint8_t *out, Error **errp)
{
    uint8_t *acc = xzalloc(len);
    int ret = luks_random(out, len * (stripes - 1), errp);
    for (unsigned s = 0; ret == 0 && s + 1 < stripes; s++) {
        for (size_t i = 0; i < len; i++) {
            acc[i] ^= out[s * len + i];
        }
        af_diffuse(h, acc, len);
    }
    for (size_t i = 0; ret == 0 && i < len; i++) {
        out[(stripes - 1) * len + i] = acc[i] ^ key[i];
    }
    memset(acc, 0, len);
    free(acc);
    return ret;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* PBKDF2 iterations this thread computes per second with @h (measured, >= 1). */
static uint64_t pbkdf2_rate(const LuksHash *h, size_t out_len)
{
    static const uint8_t pass[32] = "a passphrase for timing only";
    uint8_t salt[LUKS_SALT_LEN] = { 0 }, out[64];
    unsigned iters = 1 << 10;
    for (;;) {
        uint64_t start = thread_cpu_ns();
        h->pbkdf2(sizeof(pass), pass, iters, sizeof(salt), salt, MIN(out_len, sizeof(out)), out);
        uint64_t ns = thread_cpu_ns() - start;
        if (ns >= 250000000ull || iters >= (1u << 30)) {
            uint64_t rate = ns ? (uint64_t)iters * 1000000000ull / ns : UINT32_MAX;
            return rate ? rate : 1;
        }
        iters <<= 1;
    }
}

static int scaled_iters(uint64_t rate, uint64_t ms, unsigned divisor, uint32_t *out,
                        Error **errp)
{
    if (ms && rate > UINT64_MAX / ms) {
        error_setg(errp, "PBKDF iterations %" PRIu64 " too large to scale", rate);
        return -1;
    }
    uint64_t n = rate * ms / 1000 / divisor;
    if (n > UINT32_MAX) {
        error_setg(errp, "PBKDF iterations %" PRIu64 " larger than %u", n, UINT32_MAX);
        return -1;
    }
    *out = (uint32_t)MAX(n, (uint64_t)LUKS_MIN_ITERS);
    return 0;
}

static const LuksHash *find_hash(const char *name, const char *param, Error **errp)
{
    for (size_t i = 0; i < ARRAY_SIZE(luks_hashes); i++) {
        if (!strcmp(name, luks_hashes[i].name)) {
            return &luks_hashes[i];
        }
    }
    static const char *const known[] = { "md5", "sha224", "ripemd160" };
    for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
        if (!strcmp(name, known[i])) {
            error_setg(errp, "Hash algorithm %s is not supported for LUKS", name);
            return NULL;
        }
    }
    error_setg(errp, "Parameter '%s' does not accept value '%s'", param, name);
    return NULL;
}

static int parse_cipher(const BlockLuksOptions *o, LuksCipher *c, Error **errp)
{
    const char *alg = o->cipher_alg ? o->cipher_alg : "aes-256";
    const char *mode = o->cipher_mode ? o->cipher_mode : "xts";
    const char *ivgen = o->ivgen_alg ? o->ivgen_alg : "plain64";
    memset(c, 0, sizeof(*c));
    if (!strcmp(alg, "aes-128")) {
        c->aes_key_len = 16;
    } else if (!strcmp(alg, "aes-192")) {
        c->aes_key_len = 24;
    } else if (!strcmp(alg, "aes-256")) {
        c->aes_key_len = 32;
    } else {
        error_setg(errp, "Parameter 'cipher-alg' does not accept value '%s'", alg);
        return -1;
    }
    if (!strcmp(mode, "xts")) {
        c->mode = MODE_XTS;
    } else if (!strcmp(mode, "cbc")) {
        c->mode = MODE_CBC;
    } else {
        error_setg(errp, "Parameter 'cipher-mode' does not accept value '%s'", mode);
        return -1;
    }
    if (!strcmp(ivgen, "plain")) {
        c->ivgen = IV_PLAIN;
    } else if (!strcmp(ivgen, "plain64")) {
        c->ivgen = IV_PLAIN64;
    } else if (!strcmp(ivgen, "essiv")) {
        c->ivgen = IV_ESSIV;
    } else {
        error_setg(errp, "Parameter 'ivgen-alg' does not accept value '%s'", ivgen);
        return -1;
    }
    c->hash = find_hash(o->hash_alg ? o->hash_alg : "sha256", "hash-alg", errp);
    if (!c->hash) {
        return -1;
    }
    c->ivgen_hash = find_hash(o->ivgen_hash_alg ? o->ivgen_hash_alg : "sha256",
                              "ivgen-hash-alg", errp);
    return c->ivgen_hash ? 0 : -1;
}

static void put_str(uint8_t *field, size_t cap, const char *s)
{
    memset(field, 0, cap);
    memcpy(field, s, MIN(strlen(s), cap - 1));
}

static int make_uuid(char out[37], Error **errp)
{
    uint8_t u[16];
    if (luks_random(u, sizeof(u), errp) < 0) {
        return -1;
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);     /* version 4: random */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);     /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
             u[12], u[13], u[14], u[15]);
    return 0;
}

/* Header field offsets (LUKS1 on-disk format). */
enum {
    H_MAGIC = 0, H_VERSION = 6, H_CIPHER_NAME = 8, H_CIPHER_MODE = 40, H_HASH_SPEC = 72,
    H_PAYLOAD = 104, H_KEY_BYTES = 108, H_MK_DIGEST = 112, H_MK_SALT = 132,
    H_MK_ITERS = 164, H_UUID = 168, H_SLOTS = 208, SLOT_SIZE = 48,
    S_ACTIVE = 0, S_ITERS = 4, S_SALT = 8, S_OFFSET = 40, S_STRIPES = 44,
};

/* Parse and check @opts: every refusal happens here, before anything is written. */
static int check_options(const BlockLuksOptions *opts, LuksCipher *c, Error **errp)
{
    if (parse_cipher(opts, c, errp) < 0) {
        return -1;
    }
    if (!opts->secret) {
        error_setg(errp, "Parameter 'key-secret' is required for cipher");
        return -1;
    }
    size_t key_bytes = cipher_key_bytes(c);
    size_t split_len = key_bytes * LUKS_STRIPES;
    if (split_len % LUKS_SECTOR_SIZE) {
        /* QEMU 7.2 aborts on such a key slot: no image it could not open. */
        error_setg(errp, "LUKS key material of %zu bytes (%zu-byte key, %u stripes) is not "
                   "a whole number of %u-byte sectors; choose another cipher or mode",
                   split_len, key_bytes, LUKS_STRIPES, LUKS_SECTOR_SIZE);
        return -1;
    }
    unsigned ds = c->ivgen_hash->hash->digest_size;
    if (c->ivgen == IV_ESSIV && ds != 16 && ds != 24 && ds != 32) {
        error_setg(errp, "No AES cipher with key size %u available", ds);
        return -1;
    }
    return 0;
}

int luks_check_options(const BlockLuksOptions *opts, Error **errp)
{
    LuksCipher c;
    return check_options(opts, &c, errp);
}

int luks_create_area(const BlockLuksOptions *opts, uint8_t **area, size_t *len,
                     Error **errp)
{
    LuksCipher c;
    if (check_options(opts, &c, errp) < 0) {
        return -1;
    }
    size_t key_bytes = cipher_key_bytes(&c);
    size_t split_len = key_bytes * LUKS_STRIPES;
    uint32_t slot_sectors = (uint32_t)ROUND_UP((split_len + LUKS_SECTOR_SIZE - 1) /
                                               LUKS_SECTOR_SIZE, LUKS_ALIGN_SECTORS);
    uint32_t payload = LUKS_ALIGN_SECTORS + LUKS_NUM_SLOTS * slot_sectors;
    uint64_t ms = opts->has_iter_time ? opts->iter_time : LUKS_DEFAULT_ITER_MS;

    uint8_t mk[64], slot_key[64], mk_salt[LUKS_SALT_LEN], slot_salt[LUKS_SALT_LEN];
    uint8_t digest[LUKS_DIGEST_LEN];
    char uuid[37];
    uint32_t mk_iters, slot_iters;
    LuksCryptor cr, slot_cr;
    memset(&cr, 0, sizeof(cr));
    uint8_t *buf = xzalloc((size_t)payload * LUKS_SECTOR_SIZE);
    int ret = -1;
    if (luks_random(mk, key_bytes, errp) < 0 || luks_random(mk_salt, sizeof(mk_salt), errp) < 0 ||
        luks_random(slot_salt, sizeof(slot_salt), errp) < 0 || make_uuid(uuid, errp) < 0) {
        goto out;
    }
    /* The cipher must accept the master key before anything is derived from it. */
    if (cryptor_init(&cr, &c, mk, errp) < 0) {
        goto out;
    }
    uint64_t rate = pbkdf2_rate(c.hash, key_bytes);
    if (scaled_iters(rate, ms, 8, &mk_iters, errp) < 0 ||
        scaled_iters(rate, ms, 1, &slot_iters, errp) < 0) {
        goto out;
    }
    c.hash->pbkdf2(key_bytes, mk, mk_iters, sizeof(mk_salt), mk_salt, sizeof(digest), digest);

    /* Slot 0: the split master key, encrypted with PBKDF2(passphrase). */
    uint8_t *material = buf + (size_t)LUKS_ALIGN_SECTORS * LUKS_SECTOR_SIZE;
    if (af_split(c.hash->hash, mk, key_bytes, LUKS_STRIPES, material, errp) < 0) {
        goto out;
    }
    c.hash->pbkdf2(opts->secret_len, opts->secret, slot_iters, sizeof(slot_salt), slot_salt,
                   key_bytes, slot_key);
    if (cryptor_init(&slot_cr, &c, slot_key, errp) < 0) {
        goto out;
    }
    cryptor_encrypt(&slot_cr, 0, material, split_len);
    memset(&slot_cr, 0, sizeof(slot_cr));

    static const char *const mode_names[] = { "xts", "cbc" };
    static const char *const ivgen_names[] = { "plain", "plain64", "essiv" };
    char mode_spec[64];
    if (c.ivgen == IV_ESSIV) {
        snprintf(mode_spec, sizeof(mode_spec), "%s-%s:%s", mode_names[c.mode],
                 ivgen_names[c.ivgen], c.ivgen_hash->name);
    } else {
        snprintf(mode_spec, sizeof(mode_spec), "%s-%s", mode_names[c.mode],
                 ivgen_names[c.ivgen]);
    }
    memcpy(buf + H_MAGIC, luks_magic, LUKS_MAGIC_LEN);
    buf[H_VERSION] = 0;
    buf[H_VERSION + 1] = 1;
    put_str(buf + H_CIPHER_NAME, 32, "aes");
    put_str(buf + H_CIPHER_MODE, 32, mode_spec);
    put_str(buf + H_HASH_SPEC, 32, c.hash->name);
    st_be32(buf + H_PAYLOAD, payload);
    st_be32(buf + H_KEY_BYTES, (uint32_t)key_bytes);
    memcpy(buf + H_MK_DIGEST, digest, sizeof(digest));
    memcpy(buf + H_MK_SALT, mk_salt, sizeof(mk_salt));
    st_be32(buf + H_MK_ITERS, mk_iters);
    put_str(buf + H_UUID, 40, uuid);
    for (uint32_t i = 0; i < LUKS_NUM_SLOTS; i++) {
        uint8_t *s = buf + H_SLOTS + i * SLOT_SIZE;
        st_be32(s + S_ACTIVE, i == 0 ? LUKS_SLOT_ACTIVE : LUKS_SLOT_DISABLED);
        st_be32(s + S_ITERS, i == 0 ? slot_iters : 0);
        if (i == 0) {
            memcpy(s + S_SALT, slot_salt, sizeof(slot_salt));
        }
        st_be32(s + S_OFFSET, LUKS_ALIGN_SECTORS + i * slot_sectors);
        st_be32(s + S_STRIPES, LUKS_STRIPES);
    }
    *area = buf;
    *len = (size_t)payload * LUKS_SECTOR_SIZE;
    buf = NULL;
    ret = 0;
out:
    memset(mk, 0, sizeof(mk));
    memset(slot_key, 0, sizeof(slot_key));
    memset(&cr, 0, sizeof(cr));
    free(buf);
    return ret;
}

/* ---- opening a volume ---- */

static int luks_volume_cipher(const LuksVolume *v, LuksCipher *c, Error **errp);

/* Merge the stripes the splitter made back into the key. */
static void af_merge(const struct nettle_hash *h, const uint8_t *split, size_t len,
                     unsigned stripes, uint8_t *key)
{
    uint8_t *acc = xzalloc(len);
    for (unsigned s = 0; s + 1 < stripes; s++) {
        for (size_t i = 0; i < len; i++) {
            acc[i] ^= split[s * len + i];
        }
        af_diffuse(h, acc, len);
    }
    for (size_t i = 0; i < len; i++) {
        key[i] = acc[i] ^ split[(stripes - 1) * len + i];
    }
    memset(acc, 0, len);
    free(acc);
}

/* A NUL-terminated string field, or NULL when it fills its field. */
static const char *field_str(const uint8_t *f, size_t cap)
{
    return memchr(f, 0, cap) ? (const char *)f : NULL;
}

/* The header's cipher, mode spec and hash as the options that would create it. */
static int header_cipher(const uint8_t *hdr, LuksVolume *v, LuksCipher *c, Error **errp)
{
    const char *name = field_str(hdr + H_CIPHER_NAME, 32);
    const char *spec = field_str(hdr + H_CIPHER_MODE, 32);
    const char *hash = field_str(hdr + H_HASH_SPEC, 32);
    if (!name || !spec || !hash) {
        error_setg(errp, "LUKS header has an unterminated cipher, mode or hash name");
        return -1;
    }
    if (strcmp(name, "aes")) {
        error_setg(errp, "Unsupported LUKS cipher '%s'", name);
        return -1;
    }
    char mode[32], ivgen[32] = "", ivhash[32] = "";
    const char *dash = strchr(spec, '-');
    size_t mlen = dash ? (size_t)(dash - spec) : strlen(spec);
    memcpy(mode, spec, mlen);
    mode[mlen] = 0;
    if (dash) {
        snprintf(ivgen, sizeof(ivgen), "%s", dash + 1);
        char *colon = strchr(ivgen, ':');
        if (colon) {
            *colon = 0;
            snprintf(ivhash, sizeof(ivhash), "%s", colon + 1);
        }
    }
    uint32_t key_bytes = ld_be32(hdr + H_KEY_BYTES);
    uint32_t aes = !strcmp(mode, "xts") ? key_bytes / 2 : key_bytes;
    if ((aes != 16 && aes != 24 && aes != 32) || (!strcmp(mode, "xts") && key_bytes % 2)) {
        error_setg(errp, "LUKS key length %u does not fit cipher aes in mode %s", key_bytes,
                   mode);
        return -1;
    }
    snprintf(v->cipher_alg, sizeof(v->cipher_alg), "aes-%u", aes * 8);
    snprintf(v->cipher_mode, sizeof(v->cipher_mode), "%.7s", mode);
    snprintf(v->ivgen_alg, sizeof(v->ivgen_alg), "%.7s", dash ? ivgen : "plain");
    snprintf(v->ivgen_hash_alg, sizeof(v->ivgen_hash_alg), "%.15s", ivhash);
    snprintf(v->hash_alg, sizeof(v->hash_alg), "%.15s", hash);
    if (strlen(mode) >= sizeof(v->cipher_mode) || strlen(ivgen) >= sizeof(v->ivgen_alg) ||
        strlen(ivhash) >= sizeof(v->ivgen_hash_alg) || strlen(hash) >= sizeof(v->hash_alg)) {
        error_setg(errp, "Unsupported LUKS cipher mode '%s' or hash '%s'", spec, hash);
        return -1;
    }
    return luks_volume_cipher(v, c, errp);
}

static int volume_options(const LuksVolume *v, BlockLuksOptions *o)
{
    memset(o, 0, sizeof(*o));
    o->cipher_alg = v->cipher_alg;
    o->cipher_mode = v->cipher_mode;
    o->ivgen_alg = v->ivgen_alg;
    o->ivgen_hash_alg = v->ivgen_hash_alg[0] ? v->ivgen_hash_alg : NULL;
    o->hash_alg = v->hash_alg;
    return 0;
}

static int luks_volume_cipher(const LuksVolume *v, LuksCipher *c, Error **errp)
{
    BlockLuksOptions o;
    volume_options(v, &o);
    if (parse_cipher(&o, c, errp) < 0) {
        return -1;
    }
    if (c->ivgen == IV_ESSIV && !v->ivgen_hash_alg[0]) {
        error_setg(errp, "LUKS cipher mode %s-essiv names no hash", v->cipher_mode);
        return -1;
    }
    return 0;
}

int luks_unlock(const uint8_t *area, size_t len, const uint8_t *secret, size_t secret_len,
                LuksVolume *v, Error **errp)
{
    LuksCipher c;
    memset(v, 0, sizeof(*v));
    if (len < LUKS_HEADER_SIZE || memcmp(area, luks_magic, LUKS_MAGIC_LEN)) {
        error_setg(errp, "Volume is not in LUKS format");
        return -1;
    }
    if (area[H_VERSION] != 0 || area[H_VERSION + 1] != 1) {
        error_setg(errp, "LUKS version %u is not supported",
                   (unsigned)area[H_VERSION] << 8 | area[H_VERSION + 1]);
        return -1;
    }
    if (header_cipher(area, v, &c, errp) < 0) {
        return -1;
    }
    size_t key_bytes = cipher_key_bytes(&c);
    size_t split_len = key_bytes * LUKS_STRIPES;
    uint32_t mk_iters = ld_be32(area + H_MK_ITERS);
    v->payload_offset = ld_be32(area + H_PAYLOAD);
    v->key_bytes = key_bytes;
    if (!mk_iters) {
        error_setg(errp, "LUKS master key digest has no PBKDF2 iterations");
        return -1;
    }
    /* Check every slot before trying any, so a damaged header is named as such. */
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        const uint8_t *sl = area + H_SLOTS + i * SLOT_SIZE;
        uint32_t active = ld_be32(sl + S_ACTIVE);
        uint64_t start = (uint64_t)ld_be32(sl + S_OFFSET) * LUKS_SECTOR_SIZE;
        if (active != LUKS_SLOT_ACTIVE && active != LUKS_SLOT_DISABLED) {
            error_setg(errp, "LUKS keyslot %d state 0x%08x is neither active nor disabled", i,
                       active);
            return -1;
        }
        if (active != LUKS_SLOT_ACTIVE) {
            continue;
        }
        if (ld_be32(sl + S_STRIPES) != LUKS_STRIPES || !ld_be32(sl + S_ITERS)) {
            error_setg(errp, "LUKS keyslot %d has %u stripes and %u iterations", i,
                       ld_be32(sl + S_STRIPES), ld_be32(sl + S_ITERS));
            return -1;
        }
        if (start < LUKS_HEADER_SIZE || start > len || split_len > len - start) {
            error_setg(errp, "LUKS keyslot %d material lies outside the header area", i);
            return -1;
        }
    }
    uint8_t *material = xmalloc(split_len);
    uint8_t slot_key[64], digest[LUKS_DIGEST_LEN];
    LuksCryptor cr;
    int ret = -1;
    for (int i = 0; i < LUKS_NUM_SLOTS && ret < 0; i++) {
        const uint8_t *sl = area + H_SLOTS + i * SLOT_SIZE;
        if (ld_be32(sl + S_ACTIVE) != LUKS_SLOT_ACTIVE) {
            continue;
        }
        c.hash->pbkdf2(secret_len, secret, ld_be32(sl + S_ITERS), LUKS_SALT_LEN,
                       sl + S_SALT, key_bytes, slot_key);
        if (cryptor_init(&cr, &c, slot_key, errp) < 0) {
            break;
        }
        memcpy(material, area + (size_t)ld_be32(sl + S_OFFSET) * LUKS_SECTOR_SIZE, split_len);
        cryptor_decrypt(&cr, 0, material, split_len);
        af_merge(c.hash->hash, material, key_bytes, LUKS_STRIPES, v->master_key);
        c.hash->pbkdf2(key_bytes, v->master_key, mk_iters, LUKS_SALT_LEN, area + H_MK_SALT,
                       sizeof(digest), digest);
        if (!memcmp(digest, area + H_MK_DIGEST, sizeof(digest))) {
            ret = 0;
        }
    }
    if (ret < 0 && errp && !*errp) {
        error_setg(errp, "Invalid password, cannot unlock any keyslot");
    }
    if (ret < 0) {
        memset(v->master_key, 0, sizeof(v->master_key));
    }
    memset(material, 0, split_len);
    free(material);
    memset(slot_key, 0, sizeof(slot_key));
    memset(&cr, 0, sizeof(cr));
    return ret;
}

int luks_payload_crypt(const LuksVolume *v, bool encrypt, uint64_t sector, uint8_t *buf,
                       size_t len, Error **errp)
{
    LuksCipher c;
    LuksCryptor cr;
    if (len % LUKS_SECTOR_SIZE) {
        error_setg(errp, "encrypted I/O of %zu bytes is not a whole number of sectors", len);
        return -1;
    }
    if (luks_volume_cipher(v, &c, errp) < 0 || cryptor_init(&cr, &c, v->master_key, errp) < 0) {
        return -1;
    }
    if (encrypt) {
        cryptor_encrypt(&cr, sector, buf, len);
    } else {
        cryptor_decrypt(&cr, sector, buf, len);
    }
    memset(&cr, 0, sizeof(cr));
    return 0;
}
