/* corio.h — the umbrella header of corio, asyncio for C.
 *
 * Include this one header; it pulls in every public sub-header:
 *   corio/error.h  error codes, co_strerror, co_err_name
 *   corio/core.h   loops, tasks, futures, callbacks, timers, cancellation
 *   corio/scope.h  cancel and timeout scopes (asyncio.timeout, trio scopes)
 *   corio/combine.h gather, wait, as_completed, wait_for, shield
 *   corio/group.h  task groups (asyncio.TaskGroup, trio nurseries)
 *   corio/sync.h   mutex, event, condition, semaphore, barrier, queue
 *   corio/procpool.h process pools (multiprocessing.Pool)
 *   corio/io.h     fd waits, sockets, DNS, buffered streams, servers
 *   corio/tls.h    TLS contexts, start_tls, what was negotiated
 *   corio/file.h   files on the thread pool (aiofiles), atomic whole-file writes
 *   corio/signal.h signal waits and handlers (loop.add_signal_handler)
 *   corio/process.h child processes (asyncio.create_subprocess_exec)
 *
 * Conventions (the same in every sub-header):
 *   - public names co_*, macros CO_*; nothing else is exported;
 *   - a function that can fail returns int: 0 (or a count) on success, a
 *     negative errno (-ECANCELED, -ETIMEDOUT, ...) or a -CO_E* code on
 *     failure; results go out through pointers;
 *   - a function that can suspend must be called from a task; called from
 *     anywhere else it returns -CO_ENOTASK and does nothing.
 */
#ifndef CORIO_H
#define CORIO_H

#define CORIO_VERSION_MAJOR 0
#define CORIO_VERSION_MINOR 1
#define CORIO_VERSION_PATCH 0
#define CORIO_VERSION_STRING "0.1.0"

#include <errno.h> /* every failure is -E...: ECANCELED, ETIMEDOUT, ... */

#include "corio/error.h"
#include "corio/core.h"
#include "corio/scope.h"
#include "corio/combine.h"
#include "corio/group.h"
#include "corio/sync.h"
#include "corio/thread.h"
#include "corio/procpool.h"
#include "corio/io.h"
#include "corio/tls.h"
#include "corio/file.h"
#include "corio/signal.h"
#include "corio/process.h"

#endif
