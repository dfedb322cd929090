/*
 * msgsock.c: see msgsock.h.  Both ends use non-blocking sockets and one
 * deadline per exchange (io_all), so neither a stalled peer nor a full
 * backlog holds serve's request thread or the job's listener for long.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "task/msgsock.h"
#include "util/clock.h"
#include "util/hex.h"

static const char magic[4] = { 'C', 'C', 'M', '1' };

void msk_locate(const char *data_dir, const char *task_id, char *dir, size_t dn, char *name, size_t nn)
{
	struct cr_sha256 h;
	uint8_t d[CR_SHA256_LEN];
	char hx[2 * CR_SHA256_LEN + 1];

	cr_sha256_init(&h);
	cr_sha256_update(&h, "ccr-msg:", 8);
	cr_sha256_update(&h, task_id, strlen(task_id));
	cr_sha256_final(&h, d);
	hex_fmt(hx, d, 16);
	snprintf(dir, dn, "%s/.run/msg", data_dir);
	snprintf(name, nn, "%s.sock", hx);
}

/* The address of dir/name: the path itself, or through *dirfd (opened
 * here, closed by the caller) when it is too long for sun_path. */
static int addr_of(const char *dir, const char *name, struct sockaddr_un *a, int *dirfd, struct err *e)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	*dirfd = -1;
	n = snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, name);
	if (n > 0 && (size_t)n < sizeof(a->sun_path))
		return 0;
	if ((*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return err_set(e, "cannot open %s: %s", dir, strerror(errno));
	snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/%s", *dirfd, name);
	return 0;
}

/* dir and its parent exist, are directories of ours, and dir is 0700. */
static int private_dir(const char *dir, struct err *e)
{
	char parent[4200];
	struct stat st;
	char *slash;

	snprintf(parent, sizeof(parent), "%s", dir);
	if ((slash = strrchr(parent, '/')))
		*slash = 0;
	if ((mkdir(parent, 0700) != 0 && errno != EEXIST) || (mkdir(dir, 0700) != 0 && errno != EEXIST))
		return err_set(e, "cannot create %s: %s", dir, strerror(errno));
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
		return err_set(e, "%s is not a directory of this user: remove it", dir);
	if ((st.st_mode & 077) && chmod(dir, 0700) != 0)
		return err_set(e, "cannot make %s private: %s", dir, strerror(errno));
	return 0;
}

/* Read (want_read) or write all n bytes by deadline: 0 or -1. */
static int io_all(int fd, void *p, size_t n, int want_read, int64_t deadline)
{
	size_t off = 0;

	while (off < n) {
		ssize_t k = want_read ? read(fd, (char *)p + off, n - off) : send(fd, (char *)p + off, n - off, MSG_NOSIGNAL);
		struct pollfd pf = { fd, (short)(want_read ? POLLIN : POLLOUT), 0 };
		int64_t left;

		if (k > 0) {
			off += (size_t)k;
			continue;
		}
		if (k == 0 || (errno != EAGAIN && errno != EINTR))
			return -1;
		if ((left = deadline - clock_mono_ms()) <= 0)
			return -1;
		(void)poll(&pf, 1, (int)left);
	}
	return 0;
}

/* One connection: a frame in, the answer out. */
static void serve_one(struct msk_server *s, int fd)
{
	int64_t deadline = clock_mono_ms() + MSK_IO_TIMEOUT_MS;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	uint8_t head[8], *frame = NULL;
	char ack = 'x';
	uint32_t n;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.uid != getuid())
		return;
	if (io_all(fd, head, sizeof(head), 1, deadline) != 0 || memcmp(head, magic, 4) != 0)
		return;
	n = (uint32_t)head[4] << 24 | (uint32_t)head[5] << 16 | (uint32_t)head[6] << 8 | head[7];
	if (n > 0 && n <= MSK_FRAME_MAX && (frame = malloc(n)) && io_all(fd, frame, n, 1, deadline) == 0 &&
	    s->take(s->arg, frame, n) == 0)
		ack = 'k';
	free(frame);
	(void)io_all(fd, &ack, 1, 0, deadline);
}

static void *listener(void *arg)
{
	struct msk_server *s = arg;

	for (;;) {
		struct pollfd p[2] = { { s->stop[0], POLLIN, 0 }, { s->fd, POLLIN, 0 } };
		int c;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents || (p[1].revents & (POLLERR | POLLHUP | POLLNVAL)))
			break;
		if (!(p[1].revents & POLLIN))
			continue;
		if ((c = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
			continue;
		serve_one(s, c);
		close(c);
	}
	return NULL;
}

static int bind_listen(struct msk_server *s, struct err *e)
{
	struct sockaddr_un a;
	char path[4300];
	int dirfd, rc = -1;

	if (addr_of(s->dir, s->name, &a, &dirfd, e) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", s->dir, s->name);
	(void)unlink(path);                /* a job of this task that died left it */
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		err_set(e, "cannot create a unix socket: %s", strerror(errno));
	else if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->fd, 16) != 0)
		err_set(e, "cannot listen on %s: %s", path, strerror(errno));
	else
		rc = 0;
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}

int msk_listen(struct msk_server *s, const char *data_dir, const char *task_id, msk_take_fn take, void *arg,
	       struct err *e)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->stop[0] = s->stop[1] = -1;
	s->take = take;
	s->arg = arg;
	msk_locate(data_dir, task_id, s->dir, sizeof(s->dir), s->name, sizeof(s->name));
	if (private_dir(s->dir, e) != 0 || bind_listen(s, e) != 0)
		goto fail;
	if (pipe2(s->stop, O_CLOEXEC | O_NONBLOCK) != 0) {
		err_set(e, "cannot create a pipe: %s", strerror(errno));
		goto fail;
	}
	if (pthread_create(&s->th, NULL, listener, s) != 0) {
		err_set(e, "cannot start the message socket's thread");
		goto fail;
	}
	s->th_on = 1;
	return 0;
fail:
	msk_close(s);
	return -1;
}

void msk_close(struct msk_server *s)
{
	char path[4300];

	if (s->th_on) {
		if (write(s->stop[1], "x", 1) < 0)
			shutdown(s->fd, SHUT_RDWR);        /* the thread then sees POLLHUP */
		pthread_join(s->th, NULL);
		s->th_on = 0;
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
		snprintf(path, sizeof(path), "%s/%s", s->dir, s->name);
		(void)unlink(path);
	}
	if (s->stop[0] >= 0)
		close(s->stop[0]), close(s->stop[1]);
	s->stop[0] = s->stop[1] = -1;
}

/* Connected to the task's socket: the fd, or -1 with e set. */
static int dial(const char *data_dir, const char *task_id, struct err *e)
{
	char dir[4200], name[48];
	struct sockaddr_un a;
	int dirfd, fd;

	msk_locate(data_dir, task_id, dir, sizeof(dir), name, sizeof(name));
	if (addr_of(dir, name, &a, &dirfd, e) != 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err_set(e, "cannot create a unix socket: %s", strerror(errno));
	else if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		err_set(e, "no job listens for task %s (%s)", task_id, strerror(errno));
		close(fd);
		fd = -1;
	}
	if (dirfd >= 0)
		close(dirfd);
	return fd;
}

int msk_send(const char *data_dir, const char *task_id, const void *frame, size_t n, int timeout_ms,
	     struct err *e)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	uint8_t head[8];
	char ack = 0;
	int fd;

	if (n == 0 || n > MSK_FRAME_MAX)
		return err_set(e, "a message frame of %zu bytes is out of range", n);
	if ((fd = dial(data_dir, task_id, e)) < 0)
		return -1;
	memcpy(head, magic, 4);
	head[4] = (uint8_t)(n >> 24), head[5] = (uint8_t)(n >> 16), head[6] = (uint8_t)(n >> 8), head[7] = (uint8_t)n;
	if (io_all(fd, head, sizeof(head), 0, deadline) != 0 || io_all(fd, (void *)frame, n, 0, deadline) != 0 ||
	    io_all(fd, &ack, 1, 1, deadline) != 0)
		err_set(e, "the job of task %s did not answer within %d ms", task_id, timeout_ms);
	else if (ack != 'k')
		err_set(e, "the job of task %s refused the message", task_id);
	close(fd);
	return ack == 'k' ? 0 : -1;
}

void msk_remove(const char *data_dir, const char *task_id)
{
	char dir[4200], name[48], path[4300];

	msk_locate(data_dir, task_id, dir, sizeof(dir), name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	(void)unlink(path);
}
