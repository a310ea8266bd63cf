/*
 * Secrets (-object secret). The value comes from data= or file=; with
 * format=base64 it is base64 text. With keyid= the input is base64 of a
 * ciphertext made with AES-256-CBC, the key being the secret named by
 * keyid (32 bytes) and the 16-byte IV given base64-encoded in iv=; the
 * plaintext ends with PKCS#7 padding, which is checked and removed.
 */
#include "core/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/aes.h>
#include <nettle/base64.h>
#include <nettle/cbc.h>

#include "util/osdep.h"

#define SECRET_MAX_SIZE (1 << 20)   /* far beyond any key or password */

const OptParam secret_params[] = {
    { "qom-type", OPT_STRING, "secret" },
    { "id", OPT_STRING, "the secret's id" },
    { "data", OPT_STRING, "the secret's value (or its ciphertext with keyid=)" },
    { "file", OPT_STRING, "file holding the value" },
    { "format", OPT_STRING, "raw or base64", "raw" },
    { "keyid", OPT_STRING, "id of the secret that encrypts this one (AES-256-CBC)" },
    { "iv", OPT_STRING, "base64 of the 16-byte initialization vector" },
    { "loaded", OPT_BOOL, "accepted; a secret is loaded when created", "on" },
    { NULL },
};

typedef struct Secret {
    char *id;
    uint8_t *value;
    size_t len;
    struct Secret *next;
} Secret;

static Secret *secrets;

static Secret *find(const char *id)
{
    for (Secret *s = secrets; s; s = s->next) {
        if (!strcmp(s->id, id)) {
            return s;
        }
    }
    return NULL;
}

static bool base64_decode(const char *what, const uint8_t *in, size_t len, uint8_t **out,
                          size_t *out_len, Error **errp)
{
    struct base64_decode_ctx ctx;
    uint8_t *buf = xmalloc(BASE64_DECODE_LENGTH(len) + 1);
    size_t n = BASE64_DECODE_LENGTH(len) + 1;
    base64_decode_init(&ctx);
    if (memchr(in, '\0', len) || !base64_decode_update(&ctx, &n, buf, len, (const char *)in) ||
        !base64_decode_final(&ctx)) {
        error_setg(errp, "%s is not valid base64 data", what);
        free(buf);
        return false;
    }
    *out = buf;
    *out_len = n;
    return true;
}

static bool read_file(const char *path, uint8_t **out, size_t *len, Error **errp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "Unable to read %s", path);
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > SECRET_MAX_SIZE) {
        error_setg(errp, "Unable to read %s: not a regular file of at most %d bytes", path,
                   SECRET_MAX_SIZE);
        close(fd);
        return false;
    }
    uint8_t *buf = xmalloc((size_t)st.st_size + 1);
    ssize_t n = read_full(fd, buf, (size_t)st.st_size);
    close(fd);
    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to read %s", path);
        free(buf);
        return false;
    }
    *out = buf;
    *len = (size_t)n;
    return true;
}

static bool decrypt(const Secret *key, const char *iv_b64, uint8_t *in, size_t len,
                    uint8_t **out, size_t *out_len, Error **errp)
{
    uint8_t *iv = NULL, *ct = NULL;
    size_t iv_len, ct_len;
    if (key->len != AES256_KEY_SIZE) {
        error_setg(errp, "master key must be %d bytes, not %zu", AES256_KEY_SIZE, key->len);
        return false;
    }
    if (!base64_decode("iv", (const uint8_t *)iv_b64, strlen(iv_b64), &iv, &iv_len, errp)) {
        return false;
    }
    bool ok = false;
    if (iv_len != AES_BLOCK_SIZE) {
        error_setg(errp, "IV must be %d bytes, not %zu", AES_BLOCK_SIZE, iv_len);
    } else if (base64_decode("data", in, len, &ct, &ct_len, errp)) {
        if (ct_len == 0 || ct_len % AES_BLOCK_SIZE) {
            error_setg(errp, "ciphertext length %zu is not a multiple of %d", ct_len,
                       AES_BLOCK_SIZE);
        } else {
            struct aes256_ctx ctx;
            uint8_t *pt = xmalloc(ct_len);
            aes256_set_decrypt_key(&ctx, key->value);
            cbc_decrypt(&ctx, (nettle_cipher_func *)aes256_decrypt, AES_BLOCK_SIZE, iv,
                        ct_len, pt, ct);
            unsigned pad = pt[ct_len - 1];
            ok = pad >= 1 && pad <= AES_BLOCK_SIZE;
            for (unsigned i = 0; ok && i < pad; i++) {
                ok = pt[ct_len - 1 - i] == pad;
            }
            if (ok) {
                *out = pt;
                *out_len = ct_len - pad;
            } else {
                error_setg(errp, "Incorrect number of padding bytes in decrypted secret");
                free(pt);
            }
            memset(&ctx, 0, sizeof(ctx));
        }
        free(ct);
    }
    free(iv);
    return ok;
}

static bool load(const KeyValList *kv, uint8_t **value, size_t *len, Error **errp)
{
    const char *data = keyval_get(kv, "data");
    const char *file = keyval_get(kv, "file");
    const char *format = keyval_get(kv, "format");
    const char *keyid = keyval_get(kv, "keyid");
    const char *iv = keyval_get(kv, "iv");
    bool b64 = format && !strcmp(format, "base64");
    if (format && !b64 && strcmp(format, "raw") != 0) {
        error_setg(errp, "Parameter 'format' does not accept value '%s'", format);
        return false;
    }
    if (!data == !file) {
        error_setg(errp, "exactly one of 'data' and 'file' must be given");
        return false;
    }
    uint8_t *in;
    size_t in_len;
    if (file) {
        if (!read_file(file, &in, &in_len, errp)) {
            return false;
        }
    } else {
        in_len = strlen(data);
        in = (uint8_t *)xstrdup(data);
    }
    bool ok;
    if (keyid) {
        const Secret *key = find(keyid);
        if (!iv) {
            error_setg(errp, "'iv' is required when 'keyid' is given");
            ok = false;
        } else if (!key) {
            error_setg(errp, "No secret with id '%s'", keyid);
            ok = false;
        } else {
            ok = decrypt(key, iv, in, in_len, value, len, errp);
        }
    } else if (iv) {
        error_setg(errp, "'iv' requires 'keyid'");
        ok = false;
    } else if (b64) {
        ok = base64_decode("data", in, in_len, value, len, errp);
    } else {
        *value = in;
        *len = in_len;
        return true;
    }
    memset(in, 0, in_len);
    free(in);
    return ok;
}

bool secret_create(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "qom-type", secret_params, &kv, errp)) {
        return false;
    }
    const char *id = keyval_get(&kv, "id");
    bool ok = false;
    uint8_t *value;
    size_t len;
    if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
    } else if (find(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object (type 'container')",
                   id);
    } else if (load(&kv, &value, &len, errp)) {
        Secret *s = xzalloc(sizeof(*s));
        s->id = xstrdup(id);
        s->value = value;
        s->len = len;
        s->next = secrets;
        secrets = s;
        ok = true;
    }
    keyval_free(&kv);
    return ok;
}

const uint8_t *secret_lookup(const char *id, size_t *len, Error **errp)
{
    const Secret *s = find(id);
    if (!s) {
        error_setg(errp, "No secret with id '%s'", id);
        return NULL;
    }
    *len = s->len;
    return s->value;
}

bool secret_delete(const char *id, Error **errp)
{
    for (Secret **p = &secrets; *p; p = &(*p)->next) {
        if (!strcmp((*p)->id, id)) {
            Secret *s = *p;
            *p = s->next;
            memset(s->value, 0, s->len);
            free(s->value);
            free(s->id);
            free(s);
            return true;
        }
    }
    error_setg(errp, "object '%s' not found", id);
    return false;
}
