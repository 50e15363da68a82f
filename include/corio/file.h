/* corio/file.h — files without blocking the loop (aiofiles, asyncio's
 * to_thread(open)).
 *
 * asyncio / aiofiles names, C shapes:
 *   aiofiles.open                 -> co_file_open (a co_file handle)
 *   f.read / f.write              -> co_file_read / co_file_write (at the handle's position)
 *   os.pread / os.pwrite          -> co_file_pread / co_file_pwrite (at an offset)
 *   f.seek / f.tell               -> co_file_seek / co_file_tell
 *   os.fsync / f.close            -> co_file_fsync / co_file_close
 *   aiofiles.os.stat / rename / remove -> co_file_stat / co_file_rename / co_file_unlink
 *   pathlib read_bytes / write_bytes -> co_file_read_all / co_file_write_all
 *                                    (write_all replaces atomically: temp + rename)
 *
 * How: regular files are always "ready" to poll, so there is nothing to
 * wait for with epoll; each operation runs as a job on the default thread
 * pool (co_pool_default) and the calling task suspends until it is done;
 * the loop serves the other tasks meanwhile. Every operation goes through
 * one internal table of backend functions (src/io/file.c, co__fileops):
 * the thread pool is the one backend today; an io_uring backend can take
 * its place behind the same table without changing this interface.
 *
 * Threads: every function here is called from a task (it may suspend);
 * from anywhere else it returns -CO_ENOTASK and does nothing, except
 * co_file_close, which then closes at once (blocking) so a handle can
 * always be released, and co_file_fd / co_file_tell / co_file_seek
 * (SEEK_SET, SEEK_CUR), which never suspend.
 *
 * Cancellation (co_cancel, or the deadline of an enclosing scope, whose
 * exit then says -ETIMEDOUT): the waiting task is released at once with
 * -ECANCELED. A job that
 * had not started never runs; one already in a system call finishes in
 * the background and whatever it produced is cleaned up there: a late
 * opened fd is closed, a late read's buffer freed. Buffers are copied
 * through memory the job owns, so the caller's buffer is never touched
 * after the call returns, whatever it returns. A cancelled read leaves
 * the handle's position where it was; a cancelled write advances it by
 * the bytes it reports through *written.
 *
 * Errors are the kernel's, negated (-ENOENT, -EACCES, -EISDIR, -ENOSPC,
 * -EFBIG, -EIO, ...), plus -ECANCELED as above, -CO_ENOTASK,
 * -ENOMEM, -EINVAL for bad arguments, and -CO_ESHUTDOWN if the default
 * pool was shut down. Each function lists the ones it adds of its own.
 */
#ifndef CORIO_FILE_H
#define CORIO_FILE_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An open file: owns its fd and a position for co_file_read /
 * co_file_write. co_file_open's caller owns it and frees it with
 * co_file_close. One task at a time may use the position (read, write,
 * seek); pread, pwrite, fsync and fstat may run from several tasks at
 * once. Used by one loop's tasks at a time; never closed while another
 * task is in a call on it. */
typedef struct co_file co_file;

/* open(2) on the pool: flags and mode as for open(2); O_CLOEXEC is always
 * added. 0 with *out (position 0; with O_APPEND writes go to the end).
 *   -ENOENT, -EACCES, -EISDIR (a directory opened for writing), -EEXIST
 *   (O_CREAT | O_EXCL), -EMFILE, ...   the kernel's
 *   -ECANCELED     cancelled while opening (a late fd is closed)
 *   -EINVAL        path or out NULL
 *   -CO_ENOTASK    not called from a task
 * A FIFO opened for reading waits for a writer, as open(2) does; only the
 * task waits, and it can be cancelled meanwhile. */
CO_API int co_file_open(const char *path, int flags, mode_t mode, co_file **out);

/* Reads up to n bytes at the handle's position and advances it: fewer
 * only at end of file (or, on a pipe, FIFO or tty, what one read(2)
 * returned). The count, 0 at end of file, or:
 *   -EBADF (not open for reading), -EISDIR (a directory), -EIO, ...
 *   -EBUSY         another task is reading, writing or seeking f
 *   -ECANCELED     cancelled: the position is unchanged and buf's
 *                  contents unspecified
 *   -EINVAL        f NULL, or buf NULL with n > 0
 *   -CO_ENOTASK */
CO_API ssize_t co_file_read(co_file *f, void *buf, size_t n);

/* Writes all n bytes at the handle's position (the end with O_APPEND) and
 * advances it. 0, or:
 *   -ENOSPC, -EFBIG (RLIMIT_FSIZE or the file system's limit), -EBADF
 *   (not open for writing), -EPIPE (a FIFO without reader), -EIO, ...
 *   -EBUSY, -ECANCELED, -EINVAL, -CO_ENOTASK as for co_file_read
 * *written (if not NULL) gets how many bytes were written (n on success);
 * the position advances by as many, also after an error. A cancelled call
 * may still have written some bytes it does not count. SIGPIPE is
 * blocked for the write, so a FIFO without reader gives -EPIPE. */
CO_API int co_file_write(co_file *f, const void *buf, size_t n, size_t *written);

/* Reads up to n bytes at offset off (>= 0), without using or moving the
 * position; fewer only at end of file. The count, 0 at or past end of
 * file, -ESPIPE (f is a pipe or FIFO), -EINVAL (off < 0), or as
 * co_file_read (never -EBUSY). */
CO_API ssize_t co_file_pread(co_file *f, void *buf, size_t n, off_t off);

/* Writes all n bytes at offset off (>= 0), without using or moving the
 * position. 0, -ESPIPE, -EINVAL, or as co_file_write (never -EBUSY).
 * With O_APPEND, Linux appends whatever off says (see pwrite(2)). */
CO_API int co_file_pwrite(co_file *f, const void *buf, size_t n, off_t off, size_t *written);

/* fsync(2): 0, -EIO (an earlier write-back failed), -EINVAL (f NULL, or
 * an fd that cannot be synced), -ECANCELED, -CO_ENOTASK. */
CO_API int co_file_fsync(co_file *f);

/* fstat(2) on f's fd into *st. 0, -EINVAL (NULL), -ECANCELED, -CO_ENOTASK. */
CO_API int co_file_fstat(co_file *f, struct stat *st);

/* Moves the position: whence SEEK_SET, SEEK_CUR, or SEEK_END (which asks
 * the file's size on the pool, so only that one suspends). The new
 * position, or -EINVAL (f NULL, bad whence, negative result), -ESPIPE (a
 * pipe or FIFO), -EBUSY (a read or write using the position is running),
 * -EOVERFLOW, and for SEEK_END -ECANCELED, -CO_ENOTASK. */
CO_API off_t co_file_seek(co_file *f, off_t off, int whence);
/* The position (bytes read or written so far on a pipe); -EINVAL if f NULL. */
CO_API off_t co_file_tell(const co_file *f);
/* The fd, for fcntl, flock, mmap and the like (do not close it). */
CO_API int co_file_fd(const co_file *f);

/* close(2) on the pool, and frees f, whatever it returns.
 *   0              closed (or, if a cancelled read or write still runs in
 *                  the background, it will close the fd when it ends; its
 *                  close error is then not reported)
 *   -EIO, -ENOSPC, -EDQUOT  a delayed write-back failed (NFS and the like):
 *                  data written earlier may be lost
 *   -ECANCELED     the task was cancelled: the fd is closed anyway, in the
 *                  background
 *   -EINVAL        f NULL
 * Outside a task it closes at once, blocking the caller. */
CO_API int co_file_close(co_file *f);

/* stat(2) into *st (follows symlinks). 0, -ENOENT, -ENOTDIR, -EACCES,
 * -ELOOP, -ENAMETOOLONG, -EINVAL (NULL), -ECANCELED, -CO_ENOTASK. */
CO_API int co_file_stat(const char *path, struct stat *st);

/* rename(2): atomically replaces `to` if it exists. 0, -ENOENT, -EISDIR
 * (`to` is a directory, `from` is not), -ENOTDIR, -EXDEV (another file
 * system), -EACCES, -ENOTEMPTY, -EINVAL (NULL), -ECANCELED (the rename may
 * or may not have happened), -CO_ENOTASK. */
CO_API int co_file_rename(const char *from, const char *to);

/* unlink(2). 0, -ENOENT, -EISDIR (a directory), -EACCES, -EPERM,
 * -EINVAL (NULL), -ECANCELED (it may or may not have happened),
 * -CO_ENOTASK. */
CO_API int co_file_unlink(const char *path);

/* Reads the whole file at path into a new buffer: 0 with *data (malloc'd,
 * NUL-terminated after the *len bytes; free it with free()) and *len.
 *   -EFBIG         the file holds more than max_bytes (SIZE_MAX: no limit)
 *   -ENOENT, -EACCES, -EISDIR, -EIO, ...   the kernel's
 *   -ENOMEM, -EINVAL (path, data or len NULL), -ECANCELED, -CO_ENOTASK
 * On error *data is NULL and *len 0. */
CO_API int co_file_read_all(const char *path, size_t max_bytes, char **data, size_t *len);

/* Replaces the file at path with the len bytes at data, atomically: they
 * go to a new temporary file in the same directory (".NAME.XXXXXX.tmp",
 * created with mode, less the umask), which is fsync'd, closed and renamed
 * over path; then the directory is fsync'd so the rename itself survives
 * a crash. Readers see the old file or the new one, never a mix, and a
 * crash or a failure at any point never leaves path half-written. The new
 * file is a new inode: hard links to the old one keep the old contents,
 * and its owner and permissions are the new file's, not the old one's.
 *   0              replaced (or created)
 *   -EFBIG, -ENOSPC, -EDQUOT, -EIO   writing or syncing the temporary file
 *                  failed: it is removed and path is as it was
 *   -EISDIR        path is a directory
 *   -ENOENT, -EACCES, -EROFS, ...    the directory is missing or not writable
 *   -ECANCELED     cancelled: path is either replaced or as it was, never
 *                  half-written; the temporary file is removed (in the
 *                  background if the task could not wait for it)
 *   -EINVAL        path NULL or empty or ending in '/', or data NULL with len > 0
 *   -ENOMEM, -CO_ENOTASK
 * An error syncing the directory after the rename is returned too
 * (-EIO): the new contents are in place but may not survive a crash. */
CO_API int co_file_write_all(const char *path, const void *data, size_t len, mode_t mode);

#ifdef __cplusplus
}
#endif
#endif
