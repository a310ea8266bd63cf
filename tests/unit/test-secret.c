/*
 * -object secret: plain, base64 and AES-256-CBC encrypted values. The
 * ciphertexts below were made with `openssl enc -aes-256-cbc` (key bytes
 * 0x00..0x1f, IV bytes 0xa0..0xaf), so vireo's decryption is checked
 * against another implementation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/secret.h"

#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define IV_B64  "oKGio6SlpqeoqaqrrK2urw=="

static void check_value(const char *id, const char *expect, size_t len)
{
    size_t n = 0;
    const uint8_t *v = secret_lookup(id, &n, NULL);
    assert_non_null(v);
    assert_int_equal(n, len);
    assert_memory_equal(v, expect, len);
}

static bool fails_with(const char *opts, const char *text)
{
    Error *err = NULL;
    bool ok = secret_create(opts, &err);
    bool match = !ok && err && strstr(error_get_pretty(err), text);
    if (!match && err) {
        print_error("%s: %s\n", opts, error_get_pretty(err));
    }
    error_free(err);
    return match;
}

static void test_plain_and_base64(void **state)
{
    assert_true(secret_create("secret,id=p0,data=hello", NULL));
    check_value("p0", "hello", 5);
    assert_true(secret_create("secret,id=b0,data=aGVsbG8=,format=base64", NULL));
    check_value("b0", "hello", 5);
    assert_true(fails_with("secret,id=b1,data=@@@,format=base64", "not valid base64"));
    assert_true(fails_with("secret,id=p0,data=again", "duplicate"));
    assert_true(fails_with("secret,id=x", "exactly one of"));
    assert_true(fails_with("secret,id=x,data=a,format=hex", "does not accept"));
    assert_true(secret_delete("p0", NULL));
    assert_null(secret_lookup("p0", &(size_t){ 0 }, NULL));
}

static void test_aes_cbc(void **state)
{
    assert_true(secret_create("secret,id=key0,data=" KEY_B64 ",format=base64", NULL));
    assert_true(secret_create("secret,id=s1,data=ME3kQCscVZDsrBJk1+CvXw==,format=base64,"
                              "keyid=key0,iv=" IV_B64, NULL));
    check_value("s1", "s3cr3t-passw0rd", 15);
    /* a whole block of plaintext: a whole block of padding follows it */
    assert_true(secret_create("secret,id=s2,format=base64,keyid=key0,iv=" IV_B64 ","
                              "data=zhzzpOO4exObo8/xCs41tgbZay4YS/Irc9MbpL4U2Mk=", NULL));
    check_value("s2", "0123456789abcdef", 16);
    /* the same ciphertext with the last block cut off has no valid padding */
    assert_true(fails_with("secret,id=s3,format=base64,keyid=key0,iv=" IV_B64 ","
                           "data=zhzzpOO4exObo8/xCs41tg==", "padding"));
    assert_true(fails_with("secret,id=s4,data=ME3kQCscVZDsrBJk1+CvXw==,keyid=key0",
                           "'iv' is required"));
    assert_true(fails_with("secret,id=s5,data=ME3kQCscVZDsrBJk1+CvXw==,keyid=nokey,iv="
                           IV_B64, "No secret with id 'nokey'"));
    assert_true(fails_with("secret,id=s6,data=ME3k,keyid=key0,iv=" IV_B64,
                           "not a multiple"));
    assert_true(fails_with("secret,id=s7,data=ME3kQCscVZDsrBJk1+CvXw==,keyid=key0,iv=AAAA",
                           "IV must be 16 bytes"));
    /* a key that is not 32 bytes long */
    assert_true(secret_create("secret,id=short,data=abc", NULL));
    assert_true(fails_with("secret,id=s8,data=ME3kQCscVZDsrBJk1+CvXw==,keyid=short,iv="
                           IV_B64, "must be 32 bytes"));
}

static void test_file(void **state)
{
    char path[] = "/tmp/vireo-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "raw\0bytes", 9), 9);
    close(fd);
    char *opts = NULL;
    assert_true(asprintf(&opts, "secret,id=f0,file=%s,format=raw", path) > 0);
    assert_true(secret_create(opts, NULL));
    check_value("f0", "raw\0bytes", 9);
    free(opts);
    unlink(path);
    assert_true(fails_with("secret,id=f1,file=/nonexistent/key", "Unable to read"));
    assert_true(fails_with("secret,id=f2,file=/dev/zero", "not a regular file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_base64),
        cmocka_unit_test(test_aes_cbc),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
