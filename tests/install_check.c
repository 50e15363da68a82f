/* install_check.c — built by `make install-check` against an installed
 * corio the way a user builds (cc app.c $(pkg-config --cflags --libs
 * corio)) and run without LD_LIBRARY_PATH. It includes nothing but
 * <corio.h>, which must bring in <errno.h> itself. */
#include <corio.h>

static void *sleeper(void *arg) { return co_sleep(10) == -ECANCELED ? arg : 0; }

static void *main_task(void *arg) {
    co_task *t = co_spawn(sleeper, arg);
    co_sleep(0.01);
    co_cancel(t, 0);
    int rc = co_join(t, 0);
    co_task_release(t);
    return rc == -ECANCELED ? arg : co_fail(-EIO, "cancel not seen");
}

int puts(const char *s); /* (no <stdio.h>: the check is that corio.h suffices) */

int main(void) {
    void *v = 0;
    int status = co_run(main_task, "x", &v);
    if (status == 0) puts("installed corio works");
    return status;
}
