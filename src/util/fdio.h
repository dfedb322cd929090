/*
 * fdio.h: whole writes on blocking descriptors (prefix fd_).
 *
 * write(2) and send(2) may write less than asked, or be interrupted by a
 * signal; these loops finish the job.  They are for blocking descriptors
 * (files, pipes, a test's client socket): a non-blocking socket needs a
 * poll with a deadline instead (http/server*.c, job/convo.c).
 */
#ifndef CCR_FDIO_H
#define CCR_FDIO_H

#include <stddef.h>

/* fd_write_all: write all n bytes of p to fd.  0, or -1 with errno set
 * (EIO when write made no progress). */
int fd_write_all(int fd, const void *p, size_t n);

/* fd_send_all: the same with send(MSG_NOSIGNAL): a peer that is gone is
 * -1 with EPIPE, never SIGPIPE. */
int fd_send_all(int fd, const void *p, size_t n);

#endif
