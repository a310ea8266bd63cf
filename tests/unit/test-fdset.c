#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "util/fdset.h"
#include "util/osdep.h"

static void test_add_open_remove(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int64_t id = -1;
    assert_true(fdset_add(-1, fds[0], "r", &id, NULL));
    assert_int_equal(id, 0);
    assert_true(fdset_add(5, fds[1], NULL, &id, NULL));
    assert_int_equal(id, 5);

    /* A read-only open finds the read end, and gets a duplicate. */
    int r = vireo_open("/dev/fdset/0", O_RDONLY, 0, NULL);
    assert_true(r >= 0);
    assert_int_not_equal(r, fds[0]);
    Error *err = NULL;
    assert_int_equal(vireo_open("/dev/fdset/0", O_WRONLY, 0, &err), -1);
    error_free(err);
    err = NULL;
    assert_int_equal(vireo_open("/dev/fdset/9", O_RDONLY, 0, &err), -1);
    error_free(err);
    err = NULL;
    assert_int_equal(vireo_open("/dev/fdset/x", O_RDONLY, 0, &err), -1);
    error_free(err);

    /* The set stays while a duplicate is open, even with no members. */
    assert_true(fdset_remove(0, -1, NULL));
    assert_non_null(fdset_list());
    fdset_dup_fd_close(r);
    close(r);
    assert_int_equal(fdset_list()->id, 5);
    err = NULL;
    assert_false(fdset_remove(5, 999, &err));
    error_free(err);
    assert_true(fdset_remove(5, fds[1], NULL));
    assert_null(fdset_list());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_open_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
