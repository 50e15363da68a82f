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
    cr_assert_str_eq(co_err_name(5), "EPOSITIVE");
    cr_assert_not_null(co_strerror(5));
}
