/* procpool.h — what the process pool's two halves share: the parent's
 * manager (procpool.c) and the worker side (procpool_worker.c), which run
 * the same program, so the wire structs are plain native-layout structs.
 *
 * Wire protocol, over one SOCK_STREAM socketpair per worker (the worker's
 * end is its fd 3):
 *   parent -> worker, one request per job:
 *     co__pp_req, then namelen bytes of function name, then for each of
 *     nitems items: a uint64_t length and that many bytes. total counts
 *     every byte after the header.
 *   worker -> parent, one reply per item, in item order, sent as soon as
 *   the item is done:
 *     co__pp_rep, then msglen bytes of message, then outlen bytes of result.
 * A worker holds one job at a time; the parent sends the next request only
 * after the last reply of the current one. EOF on its socket tells the
 * worker to exit (close). */
#ifndef CO_THREAD_PROCPOOL_H
#define CO_THREAD_PROCPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "corio.h"

#define CO__PP_ENV "CORIO_PROCPOOL_WORKER" /* "<fd>:<parent pid>" */
#define CO__PP_FD 3
/* argv[1] of a worker: with CO__PP_ENV, what tells a worker from a start
 * of the program that merely inherited the variable (see the worker's
 * constructor); it does not depend on the parent being alive. */
#define CO__PP_ARGV1 "--corio-procpool-worker"
#define CO__PP_REQ_MAGIC 0x51504f43u /* "COPQ" */
#define CO__PP_REP_MAGIC 0x52504f43u /* "COPR" */
#define CO__PP_MSG_MAX 199            /* fits co_procpool_result.msg */

typedef struct co__pp_req {
    uint32_t magic;
    uint32_t namelen;
    uint32_t nitems;
    uint32_t pad;
    uint64_t total;
} co__pp_req;

typedef struct co__pp_rep {
    uint32_t magic;
    int32_t err;
    uint32_t item;
    uint32_t msglen;
    uint64_t outlen;
} co__pp_rep;

/* A C identifier of at most CO_PROCPOOL_MAX_NAME bytes. */
bool co__pp_name_ok(const char *name);
/* The function registered under name, else an exported function of the
 * main program (dlsym; needs -rdynamic), else NULL. */
co_procpool_fn co__pp_lookup(const char *name);

#endif
