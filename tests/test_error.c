/* test_error.c — co_strerror / co_err_name for errno values and CO_E* codes. */
#include "testutil.h"

Test(error, corio_codes) {
    cr_assert_str_eq(co_err_name(-CO_EWRONGLOOP), "CO_EWRONGLOOP");
    cr_assert_str_eq(co_strerror(-CO_EWRONGLOOP), "object belongs to another event loop or thread");
    cr_assert_str_eq(co_err_name(-CO_ENOTASK), "CO_ENOTASK");
    cr_assert_str_eq(co_err_name(-CO_ERUNNING), "CO_ERUNNING");
    cr_assert_str_eq(co_err_name(-CO_EINVALSTATE), "CO_EINVALSTATE");
    cr_assert_str_eq(co_err_name(-CO_EBROKEN), "CO_EBROKEN");
    cr_assert_str_eq(co_strerror(-CO_EBROKEN), "barrier is broken (aborted, or reset while waiting)");
    cr_assert(CO_ENOTASK > 4000, "far above any errno");
}

Test(error, errno_codes) {
    cr_assert_str_eq(co_err_name(-ECANCELED), "ECANCELED");
    cr_assert_str_eq(co_err_name(-ETIMEDOUT), "ETIMEDOUT");
    cr_assert_str_eq(co_strerror(-ECONNREFUSED), "Connection refused");
    cr_assert_str_eq(co_err_name(0), "OK");
    cr_assert_str_eq(co_strerror(0), "success");
}

Test(error, nonsense_never_null) {
    cr_assert_not_null(co_strerror(-99999));
    cr_assert_not_null(co_err_name(-99999));
    cr_assert_not_null(co_strerror(99999));
    cr_assert_not_null(co_err_name(99999));
}

/* A timer's -ETIMEDOUT has nothing to do with a connection. */
Test(error, timeout_reads_as_a_timeout) {
    cr_assert_str_eq(co_strerror(-ETIMEDOUT), "timed out");
    cr_assert_str_eq(co_strerror(ETIMEDOUT), "timed out");
}

/* NULL-returning calls leave a positive code in errno: both signs name it. */
Test(error, positive_codes_as_errno_leaves_them) {
    cr_assert_str_eq(co_err_name(CO_ENOLOOP), "CO_ENOLOOP");
    cr_assert_str_eq(co_strerror(CO_ENOLOOP), co_strerror(-CO_ENOLOOP));
    cr_assert_str_eq(co_err_name(ECANCELED), "ECANCELED");
    cr_assert_str_eq(co_strerror(ECONNREFUSED), "Connection refused");
}

static void perror_enoloop(void) {
    co_loop_set_current(NULL);
    cr_assert_null(co_spawn_opts(NULL, NULL, NULL)); /* no loop: errno = CO_ENOLOOP */
    co_perror("spawn");
    fflush(stderr);
}

Test(error, perror_names_corio_codes, .init = cr_redirect_stderr) {
    perror_enoloop();
    cr_assert_stderr_eq_str("spawn: no event loop on this thread (CO_ENOLOOP)\n");
}

Test(error, perror_keeps_errno_and_takes_null_prefix, .init = cr_redirect_stderr) {
    errno = ETIMEDOUT;
    co_perror(NULL);
    cr_assert_eq(errno, ETIMEDOUT);
    fflush(stderr);
    cr_assert_stderr_eq_str("timed out (ETIMEDOUT)\n");
}
