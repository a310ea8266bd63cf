/*
 * Unit tests for block/crypto-luks.c: header areas made by luks_create_area
 * unlock with their passphrase and only with it, damaged headers are
 * refused with an error, payload crypto round-trips, and -- when Debian's
 * qemu-img and qemu-io are installed -- a volume QEMU made unlocks and data
 * QEMU encrypted decrypts to what it wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/crypto-luks.h"

static const char pw[] = "a good passphrase";

static uint8_t *make_area(const char *alg, const char *mode, const char *ivgen,
                          const char *hash, size_t *len)
{
    BlockLuksOptions o = {
        .secret = (const uint8_t *)pw, .secret_len = strlen(pw), .cipher_alg = alg,
        .cipher_mode = mode, .ivgen_alg = ivgen, .hash_alg = hash, .iter_time = 1,
        .has_iter_time = true,
    };
    uint8_t *area = NULL;
    Error *err = NULL;
    assert_int_equal(luks_create_area(&o, &area, len, &err), 0);
    assert_null(err);
    return area;
}

static void unlock_own_volumes(void **state)
{
    static const char *const v[][4] = {
        { "aes-256", "xts", "plain64", "sha256" }, { "aes-128", "cbc", "essiv", "sha1" },
        { "aes-192", "xts", "plain", "sha512" }, { "aes-256", "cbc", "plain64", "sha384" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t len;
        uint8_t *area = make_area(v[i][0], v[i][1], v[i][2], v[i][3], &len);
        LuksVolume vol;
        Error *err = NULL;
        assert_int_equal(luks_unlock(area, len, (const uint8_t *)pw, strlen(pw), &vol, &err), 0);
        assert_string_equal(vol.cipher_alg, v[i][0]);
        assert_string_equal(vol.cipher_mode, v[i][1]);
        assert_string_equal(vol.ivgen_alg, v[i][2]);
        assert_string_equal(vol.hash_alg, v[i][3]);
        assert_int_equal((size_t)vol.payload_offset * 512, len);
        /* Wrong passphrase. */
        assert_int_equal(luks_unlock(area, len, (const uint8_t *)"nope", 4, &vol, &err), -1);
        assert_non_null(err);
        assert_non_null(strstr(error_get_pretty(err), "Invalid password"));
        error_free(err);
        err = NULL;
        /* Payload round trip; the ciphertext differs from the plaintext. */
        assert_int_equal(luks_unlock(area, len, (const uint8_t *)pw, strlen(pw), &vol, &err), 0);
        uint8_t buf[2048], orig[2048];
        for (size_t j = 0; j < sizeof(buf); j++) {
            orig[j] = buf[j] = (uint8_t)(j * 13);
        }
        assert_int_equal(luks_payload_crypt(&vol, true, 77, buf, sizeof(buf), NULL), 0);
        assert_memory_not_equal(buf, orig, 512);
        assert_int_equal(luks_payload_crypt(&vol, false, 77, buf, sizeof(buf), NULL), 0);
        assert_memory_equal(buf, orig, sizeof(buf));
        assert_int_equal(luks_payload_crypt(&vol, false, 77, buf, 100, &err), -1);
        error_free(err);
        free(area);
    }
}

/* Damage one field at a time: every damage is an error, never a crash. */
static void damaged_headers_refused(void **state)
{
    size_t len;
    uint8_t *area = make_area(NULL, NULL, NULL, NULL, &len);
    uint8_t *copy = malloc(len);
    static const struct { size_t off; uint8_t val; } damage[] = {
        { 0, 'X' },               /* magic */
        { 7, 2 },                 /* version */
        { 8, 'd' },               /* cipher name */
        { 40, 'q' },              /* mode */
        { 72, 'm' },              /* hash */
        { 111, 63 },              /* key bytes */
        { 164, 0 },               /* master key iterations: all four bytes cleared */
        { 208, 0x12 },            /* slot 0 state */
        { 208 + 40, 0xff },       /* slot 0 material offset far beyond the area */
        { 208 + 46, 0x0f },       /* slot 0 stripes: 160 */
        { 112, 0x55 },            /* master key digest: no slot unlocks */
    };
    for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
        memcpy(copy, area, len);
        if (damage[i].off == 164) {
            memset(copy + 164, 0, 4);
        } else {
            copy[damage[i].off] ^= damage[i].val;
        }
        LuksVolume vol;
        Error *err = NULL;
        assert_int_equal(luks_unlock(copy, len, (const uint8_t *)pw, strlen(pw), &vol, &err),
                         -1);
        assert_non_null(err);
        error_free(err);
    }
    /* Unterminated names and a truncated area. */
    memcpy(copy, area, len);
    memset(copy + 40, 'x', 32);
    Error *err = NULL;
    LuksVolume vol;
    assert_int_equal(luks_unlock(copy, len, (const uint8_t *)pw, strlen(pw), &vol, &err), -1);
    error_free(err);
    err = NULL;
    assert_int_equal(luks_unlock(area, 4096, (const uint8_t *)pw, strlen(pw), &vol, &err), -1);
    error_free(err);
    err = NULL;
    assert_int_equal(luks_unlock(area, 100, (const uint8_t *)pw, strlen(pw), &vol, &err), -1);
    error_free(err);
    free(copy);
    free(area);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* A volume and data made by QEMU itself (skipped without Debian's qemu-img). */
static void qemu_made_volume(void **state)
{
    if (access("/usr/bin/qemu-img", X_OK) || access("/usr/bin/qemu-io", X_OK)) {
        skip();
    }
    char dir[] = "/tmp/luks-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[1024], img[256];
    snprintf(img, sizeof(img), "%s/q.qcow2", dir);
    /*
     * qemu-img times PBKDF2 to pick the iteration count and gives up with
     * "Unable to get accurate CPU usage" when a loaded host starves it: try
     * again then (only then), up to three times.
     */
    snprintf(cmd, sizeof(cmd),
             "for try in 1 2 3; do "
             "out=$(qemu-img create -q --object secret,id=s,data='%s' -f qcow2 -o "
             "encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=50 %s 1M 2>&1) && break; "
             "case \"$out\" in *'accurate CPU usage'*) [ $try -lt 3 ] && continue;; esac; "
             "echo \"$out\" >&2; exit 1; done && "
             "qemu-io --object secret,id=s,data='%s' --image-opts "
             "driver=qcow2,file.filename=%s,encrypt.key-secret=s -c 'write -P 0x6b 0 64k' "
             ">/dev/null", pw, img, pw, img);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(img, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    uint8_t *file = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    assert_int_equal(fread(file, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    /* The full disk encryption header extension names the area. */
    uint32_t hlen = (uint32_t)file[100] << 24 | file[101] << 16 | file[102] << 8 | file[103];
    uint64_t off = 0, len = 0;
    for (size_t pos = hlen; pos + 8 <= 65536;) {
        uint32_t type = (uint32_t)(be64(file + pos) >> 32);
        uint32_t elen = (uint32_t)be64(file + pos);
        if (!type) {
            break;
        }
        if (type == 0x0537be77u) {
            off = be64(file + pos + 8);
            len = be64(file + pos + 16);
        }
        pos += 8 + (elen + 7) / 8 * 8;
    }
    assert_true(len && off + len <= (uint64_t)size);
    LuksVolume vol;
    Error *err = NULL;
    assert_int_equal(luks_unlock(file + off, len, (const uint8_t *)pw, strlen(pw), &vol, &err), 0);
    assert_string_equal(vol.cipher_alg, "aes-256");
    /* The data cluster is the file's last; its sectors count from the host offset. */
    uint64_t data = (uint64_t)size - 65536;
    assert_int_equal(luks_payload_crypt(&vol, false, data / 512, file + data, 65536, NULL), 0);
    for (size_t i = 0; i < 65536; i++) {
        assert_int_equal(file[data + i], 0x6b);
    }
    free(file);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unlock_own_volumes),
        cmocka_unit_test(damaged_headers_refused),
        cmocka_unit_test(qemu_made_volume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
